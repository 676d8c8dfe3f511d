"""CLI command ``stage``: patients' pN stages from a finished run (wsi.staging.stage_run)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from wsi.cli.flags import say

if TYPE_CHECKING:
    from wsi.staging.stage_run import NodeResult

__all__ = ["stage_command"]


@click.command("stage")
@click.argument(
    "out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--patients",
    "patients_csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV of 'slide,patient' lines grouping the slides into patients "
    "[Camelyon17 names: patient_P_node_N].",
)
def stage_command(out_dir: Path, patients_csv: Path | None) -> None:
    """Stage the patients of OUT_DIR (pN0 ... pN2) and write OUT_DIR/stages.csv.

    Each slide is a lymph node whose class (negative, itc, micro, macro) the run
    wrote into its summary.json; the patient's stage follows Camelyon17's rules.
    A patient with a slide that has no result is not staged (exit code 1).
    """
    from wsi.staging.pn_stage import write_stages_csv
    from wsi.staging.stage_run import stage_run

    staged = stage_run(out_dir, patients_csv=patients_csv)
    path = out_dir / "stages.csv"
    write_stages_csv(path, staged.patients)
    for patient in staged.patients:
        nodes = ", ".join(
            f"{_short(Path(name).stem, patient.patient)} "
            f"{'-' if cls is None else cls.value}" + _diameter(staged.nodes, name)
            for name, cls in patient.nodes
        )
        stage = "not staged" if patient.stage is None else patient.stage.value
        say(f"{patient.patient}: {stage} ({nodes})")
        for note in patient.notes:
            say(f"  note: {note}", err=patient.stage is None)
    for stem in staged.left_out:
        say(f"note: {stem} belongs to no patient; left out", err=True)
    in_patients = {Path(name).stem for p in staged.patients for name, _ in p.nodes}
    for node in staged.nodes.values():
        if node.problem is not None and node.stem in in_patients:
            say(f"error: {node.stem}: {node.problem}", err=True)
    say(f"stages: {path}")
    if any(p.stage is None for p in staged.patients):
        sys.exit(1)


def _diameter(nodes: Mapping[str, NodeResult], file_name: str) -> str:
    node = nodes.get(Path(file_name).stem)
    diameter = None if node is None else node.largest_diameter_mm
    return "" if diameter is None else f" {diameter:.2f} mm"


def _short(stem: str, patient: str) -> str:
    """``patient_004_node_2`` -> ``node_2`` under its patient; other stems as they are."""
    return stem.removeprefix(f"{patient}_") or stem
