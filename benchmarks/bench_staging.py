"""Lesion size classes and pN stages on Camelyon17-style development patients.

Builds on the patients of ``tools/make_staging_set.py``; runs the pipeline on a set
with the model's settings (later calls reuse the stores the same model wrote and
re-score those of another), then stages the
patients from the stored heatmaps with each staging setting and scores them against
the set's ``stage_labels.csv`` (node accuracy, quadratic kappa, diameter error)::

    python benchmarks/bench_staging.py --evalset /work/stagingset --set tune --sweep
    python benchmarks/bench_staging.py --evalset /work/stagingset --set heldout

``--sweep`` tries other cell and lesion thresholds (choose on ``tune`` only); the
``oracle`` row stages a perfect heatmap (1 on the cells whose PCam centre meets a
lesion), the ceiling of the stride-96 measurement.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from _report import markdown_table
from bench_detection import Heatmap, load_heatmaps, oracle_maps

from wsi.evaluation.staging import staging_report, truth_diameters
from wsi.pipeline import RunConfig, run, tuned_sections
from wsi.regions.lesion_class import (
    StagingParams,
    node_class,
    size_class,
    staging_lesions,
)
from wsi.staging.stage_run import NodeResult

logger = logging.getLogger("bench_staging")
REPO = Path(__file__).resolve().parent.parent

#: Confident area: one, two or three cells at stride 96 (93.3 um squares).
SWEEP = [
    StagingParams(cell_threshold=c, min_probability=m, min_confident_area_um2=a)
    for c in (0.3, 0.5, 0.7)
    for m in (0.5, 0.7, 0.9, 0.95, 0.98)
    for a in (0.0, 15_000.0, 25_000.0)
    if c <= m
]


def node_results(
    maps: Sequence[Heatmap], params: StagingParams
) -> dict[str, NodeResult]:
    """Each slide's class and longest lesion from its heatmap."""
    out = {}
    for m in maps:
        lesions = staging_lesions(m.heatmap, grid=m.grid, params=params)
        out[m.stem] = NodeResult(
            stem=m.stem,
            file_name=f"{m.stem}.tif",
            node_class=node_class(lesions),
            largest_diameter_mm=lesions[0].diameter_mm if lesions else None,
            mpp=m.grid.geometry.mpp,
        )
    return out


def row(
    name: str,
    maps: Sequence[Heatmap],
    params: StagingParams,
    labels: Path,
    truth: dict[str, float],
) -> dict[str, Any]:
    """One table row: the metrics of staging ``maps`` with ``params``."""
    report = staging_report(
        node_results(maps, params), labels, truth_diameters_mm=truth
    )
    return {
        "name": name,
        "params": asdict(params),
        "node_accuracy": report.node_accuracy,
        "node_accuracy_ci": report.node_accuracy_ci,
        "kappa": report.kappa,
        "kappa_ci": report.kappa_ci,
        "diameter_mae_mm": report.diameter_mae_mm,
        "micro_diameter_mae_mm": report.micro_diameter_mae_mm,
        "confusion": report.confusion,
        "patients": report.patients,
        "diameters": report.diameters,
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


COLUMNS = (
    "staging",
    "node accuracy (95% CI)",
    "patient kappa (95% CI)",
    "diameter error, mm",
    "micro: diameter error, mm",
    "confusion (rows negative / itc / micro / macro)",
)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: one line per setting."""
    lines = []
    for r in rows:
        ci, aci = r["kappa_ci"], r.get("node_accuracy_ci")
        values = [
            r["name"],
            _fmt(r["node_accuracy"], 2)
            + ("" if aci is None else f" ({aci[0]:.2f}-{aci[1]:.2f})"),
            _fmt(r["kappa"]) + ("" if ci is None else f" ({ci[0]:.2f}-{ci[1]:.2f})"),
            _fmt(r["diameter_mae_mm"]),
            _fmt(r["micro_diameter_mae_mm"]),
            " / ".join(" ".join(str(v) for v in row) for row in r["confusion"]),
        ]
        lines.append(dict(zip(COLUMNS, values, strict=True)))
    return markdown_table(lines, COLUMNS)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evalset", type=Path, default=Path("/work/stagingset"))
    parser.add_argument("--set", default="tune", choices=["tune", "heldout"])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--runs", type=Path, help="[EVALSET/runs/<model>[-tta]-<set>]")
    parser.add_argument(
        "--tta", choices=["none", "flips", "dihedral"], help="[the model's own]"
    )
    parser.add_argument("--sweep", action="store_true", help="other thresholds too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)

    folder = args.evalset / args.set
    tta = f"-{args.tta}" if args.tta else ""
    runs = (
        args.runs or args.evalset / "runs" / f"{Path(args.model).stem}{tta}-{args.set}"
    )
    overrides = {"scoring": {"tta": args.tta}} if args.tta else {}
    slides = sorted((folder / "slides").glob("*.tif"))
    stems = [p.stem for p in slides]
    # Always through the pipeline: it reuses finished stores and re-scores those
    # another model or TTA wrote.
    report = run(
        RunConfig(
            slides=tuple(slides),
            out_dir=runs,
            **tuned_sections(args.model, **overrides),
        )
    )
    if report.failures:
        raise SystemExit(f"failed: {report.failures}")
    maps = load_heatmaps(runs, stems)
    truth = truth_diameters(
        folder / "annotations", {m.stem: m.grid.geometry.mpp for m in maps}
    )
    labels = folder / "stage_labels.csv"
    tuned = tuned_sections(args.model)["staging"]
    rows = [row("defaults " + _params(tuned), maps, tuned, labels, truth)]
    if args.sweep:
        rows += [row(_params(p), maps, p, labels, truth) for p in SWEEP if p != tuned]
    rows.append(
        row("oracle heatmap, defaults", oracle_maps(maps, folder), tuned, labels, truth)
    )
    boundary = near_boundaries(rows[0]["diameters"])
    command = (
        f"`python benchmarks/bench_staging.py --evalset {args.evalset} --set "
        f"{args.set} --model {args.model}{' --tta ' + args.tta if args.tta else ''}"
        f"{' --sweep' if args.sweep else ''}`"
    )
    md = (
        f"Model `{args.model}`, set `{args.set}` ({len(stems)} nodes, "
        f"{len(stems) // 5} patients); {command}\n\n" + table(rows) + "\n\n"
        "Largest lesions near a class limit (0.1-0.3 mm, 1.5-2.5 mm), defaults:\n\n"
        + boundary
        + "\n"
    )
    out = REPO / "benchmarks" / "results"
    stem = f"bench_staging-{Path(args.model).stem}{tta}-{args.evalset.name}-{args.set}"
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / f"{stem}.md").write_text(md)
    print(md)
    return 0


def near_boundaries(diameters: Sequence[tuple[str, float, float]]) -> str:
    """Markdown: the nodes whose true largest lesion is within 0.1 mm of 0.2 mm or
    0.5 mm of 2 mm, with the estimate and whether the class agrees."""
    lines = []
    for stem, truth, estimate in sorted(diameters, key=lambda d: d[1]):
        if 0.1 <= truth <= 0.3 or 1.5 <= truth <= 2.5:
            same = size_class(truth) == size_class(estimate) if estimate else False
            lines.append(
                {
                    "node": stem,
                    "true mm": f"{truth:.3f}",
                    "estimate mm": f"{estimate:.3f}" if estimate else "none",
                    "class": f"{size_class(truth).value} -> "
                    + (size_class(estimate).value if estimate else "negative"),
                    "same class": "yes" if same else "no",
                }
            )
    columns = ("node", "true mm", "estimate mm", "class", "same class")
    return markdown_table(lines, columns) if lines else "(none)"


def _params(p: StagingParams) -> str:
    return (
        f"cells >= {p.cell_threshold}, {p.min_confident_area_um2:,.0f} um2 of cells "
        f">= {p.min_probability}"
    )


if __name__ == "__main__":
    sys.exit(main())
