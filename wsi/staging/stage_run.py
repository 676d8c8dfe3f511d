"""Stage the patients of a finished run folder (``wsi-heatmap stage``).

Each slide's class is the ``node_class`` of its ``summary.json`` (written by the
pipeline and by ``stitch``); a slide that failed (listed in ``run.json``'s failures, or
without a summary) has no class and its patient is not staged. Slides are grouped
into patients by their Camelyon17 names or a ``slide,patient`` CSV
(`wsi.staging.pn_stage.group_patients`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsi.errors import WsiError
from wsi.regions.lesion_class import NodeClass
from wsi.run_record import read_run_json
from wsi.staging.pn_stage import PatientStage, group_patients, read_patient_csv
from wsi.store.layout import SlideOutputs

__all__ = ["NodeResult", "StagedRun", "read_node_results", "stage_run"]


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeResult:
    """One slide of a run, as staging sees it.

    Attributes
    ----------
    stem
        The slide's stem (its output folder's name).
    file_name
        The slide's file name (``patient_0_node_1.tif``), for the stages CSV.
    node_class
        Its class; None when it has no finished result.
    largest_diameter_mm
        Its longest lesion, mm (None without one).
    mpp
        The slide's level-0 um/px (None when not recorded).
    problem
        Why it has no class.
    """

    stem: str
    file_name: str
    node_class: NodeClass | None
    largest_diameter_mm: float | None = None
    mpp: float | None = None
    problem: str | None = None


def read_node_results(out_dir: Path) -> dict[str, NodeResult]:
    """Every slide of a run folder (stem -> result), finished or failed.

    Raises
    ------
    WsiError
        ``out_dir`` is not a folder or holds no slide.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise WsiError(
            f"{out_dir} is not a folder; pass the `out_dir` folder of a wsi-heatmap run"
        )
    results: dict[str, NodeResult] = {}
    for stem, (slide, message) in _failures(out_dir).items():
        results[stem] = NodeResult(
            stem=stem, file_name=Path(slide).name, node_class=None, problem=message
        )
    for folder in sorted(p for p in out_dir.iterdir() if p.is_dir()):
        outputs = SlideOutputs(folder)
        if outputs.summary_json.is_file():
            results[outputs.stem] = _from_summary(outputs)
        elif outputs.store.exists() and outputs.stem not in results:
            results[outputs.stem] = NodeResult(
                stem=outputs.stem,
                file_name=f"{outputs.stem}.tif",
                node_class=None,
                problem=f"{outputs.folder}: not finished (no summary.json); run "
                "wsi-heatmap on the slide again",
            )
    if not results:
        raise WsiError(
            f"{out_dir} holds no slide results (OUT/<stem>/summary.json); run "
            f"`wsi-heatmap SLIDE... --out {out_dir}` first"
        )
    return results


def _from_summary(outputs: SlideOutputs) -> NodeResult:
    try:
        summary: Any = json.loads(outputs.summary_json.read_text())
        value = summary["node_class"]
        node_class = NodeClass(value)
        slide = Path(str(summary.get("slide", {}).get("path") or outputs.stem))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return NodeResult(
            stem=outputs.stem,
            file_name=f"{outputs.stem}.tif",
            node_class=None,
            problem=f"{outputs.summary_json}: no node class (written by an older "
            f"version?); run 'wsi-heatmap stitch {outputs.folder}' to add it",
        )
    file_name = slide.name if slide.suffix else f"{outputs.stem}.tif"
    diameter = summary.get("largest_diameter_mm")
    mpp = summary.get("slide_mpp")
    return NodeResult(
        stem=outputs.stem,
        file_name=file_name,
        node_class=node_class,
        largest_diameter_mm=None if diameter is None else float(diameter),
        mpp=float(np.mean(mpp)) if isinstance(mpp, list) and mpp else None,
    )


def _failures(out_dir: Path) -> dict[str, tuple[str, str]]:
    """Each failed slide of ``run.json``: stem -> (slide, message)."""
    failures = read_run_json(out_dir / "run.json").get("failures", [])
    out = {}
    for failure in failures if isinstance(failures, list) else []:
        if (
            isinstance(failure, dict)
            and failure.get("slide")
            and not failure.get("busy")
        ):
            slide = str(failure["slide"])
            out[Path(slide).stem] = (slide, f"failed: {failure.get('message', '?')}")
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class StagedRun:
    """The patients of a run and the slides that belong to none."""

    patients: tuple[PatientStage, ...]
    left_out: tuple[str, ...]
    nodes: dict[str, NodeResult]


def stage_run(out_dir: Path, *, patients_csv: Path | None = None) -> StagedRun:
    """Stage every patient of a run folder.

    Raises
    ------
    WsiError
        No results, an unreadable or inconsistent patient CSV, no patient found, or
        a patient with more than five nodes.
    """
    mapping = None if patients_csv is None else read_patient_csv(patients_csv)
    nodes = read_node_results(out_dir)
    groups, left_out = group_patients(sorted(nodes), mapping)
    if not groups:
        raise WsiError(
            f"{out_dir}: no slide is named like Camelyon17's patient_P_node_N; give "
            "`patients_csv` (lines 'slide,patient') to group the slides"
        )
    patients = tuple(
        PatientStage.of(
            patient,
            [(nodes[s].file_name, nodes[s].node_class) for s in stems],
        )
        for patient, stems in sorted(groups.items())
    )
    return StagedRun(patients=patients, left_out=tuple(left_out), nodes=nodes)
