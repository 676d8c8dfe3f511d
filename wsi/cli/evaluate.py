"""CLI command ``evaluate``: Camelyon16 and Camelyon17 metrics of a run's outputs.

See wsi.evaluation (lesions, slides, Dice) and wsi.evaluation.staging (node classes,
pN stages, lesion size).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from wsi.cli.flags import say

__all__ = ["evaluate_command"]


@click.command("evaluate")
@click.argument(
    "out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--annotations",
    type=click.Path(exists=True, path_type=Path),
    help="Truth: a file or folder of ASAP .xml, QuPath .geojson, NCRF .json or "
    "*_Mask.tif, matched to slides by stem; a slide without one is normal.",
)
@click.option(
    "--stages",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Camelyon17 stage_labels.csv: node classes and patients' pN stages "
    "(with --annotations, also the lesion-size error).",
)
@click.option(
    "--reference",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Camelyon16 reference.csv (Test_001,Tumor,...) giving the slide labels.",
)
@click.option(
    "--eval-out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Report folder [OUT/evaluation]: metrics.json, slides.csv, froc.png, roc.png.",
)
@click.option(
    "--include-excluded",
    is_flag=True,
    help="Keep Test_049 and Test_114 in the FROC (the organisers leave them out).",
)
def evaluate_command(
    out_dir: Path,
    annotations: Path | None,
    stages: Path | None,
    reference: Path | None,
    eval_out: Path | None,
    include_excluded: bool,
) -> None:
    """Score the outputs in OUT_DIR against the truth: FROC, slide AUC, Dice, stages.

    --annotations gives the Camelyon16 metrics (lesions, slides, Dice); --stages the
    Camelyon17 ones (node classes, patients' pN stages). Give one or both.
    """
    if annotations is None and stages is None:
        raise click.UsageError("give --annotations, --stages or both")
    ok = True
    if annotations is not None:
        ok = _camelyon16(
            out_dir, annotations, reference, eval_out, include_excluded=include_excluded
        )
    if stages is not None:
        from wsi.evaluation.staging import evaluate_staging

        report = evaluate_staging(
            out_dir,
            stages,
            annotations=annotations if annotations and annotations.is_dir() else None,
            eval_out=eval_out or out_dir / "evaluation",
        )
        _print_staging(report)
    if not ok:
        sys.exit(1)


def _camelyon16(
    out_dir: Path,
    annotations: Path,
    reference: Path | None,
    eval_out: Path | None,
    *,
    include_excluded: bool,
) -> bool:
    from wsi.evaluation import EvalConfig, evaluate
    from wsi.progress import TqdmProgress

    config = EvalConfig(
        out_dir=out_dir,
        annotations=annotations,
        reference=reference,
        eval_out=eval_out,
        include_excluded=include_excluded,
    )
    report = evaluate(config, progress=TqdmProgress(leave=False))
    _print_report(report)
    return bool(report.ok)


def _print_staging(report: Any) -> None:
    classes = ["negative", "itc", "micro", "macro"]
    say("nodes: truth (rows) x predicted (columns)")
    width = max(map(len, classes))
    say(" " * width + "  " + "  ".join(c.rjust(width) for c in classes))
    for name, row in zip(classes, report.confusion, strict=True):
        say(name.ljust(width) + "  " + "  ".join(str(v).rjust(width) for v in row))
    ci = (
        ""
        if report.node_accuracy_ci is None
        else ", 95% CI {:.2f}-{:.2f}".format(*report.node_accuracy_ci)
    )
    say(
        f"node accuracy {_number(report.node_accuracy)}{ci} "
        f"({report.n_nodes - len(report.unscored_nodes)} of {report.n_nodes} nodes "
        "with a result)"
    )
    for patient, truth, predicted in report.patients:
        shown = predicted or "not staged"
        mark = "" if predicted == truth else "  <-"
        say(f"{patient}: truth {truth}, predicted {shown}{mark}")
    if report.kappa is not None:
        ci = (
            ""
            if report.kappa_ci is None
            else f" (95% CI {report.kappa_ci[0]:.3f}-{report.kappa_ci[1]:.3f})"
        )
        say(f"patient kappa (quadratic) {report.kappa:.3f}{ci}")
    if report.diameters:
        say(
            f"largest-lesion diameter error {_number(report.diameter_mae_mm)} mm "
            f"({len(report.diameters)} tumour nodes); micro-metastases "
            f"{_number(report.micro_diameter_mae_mm)} mm"
        )
    for stem in report.unscored_nodes:
        say(f"error: {stem}: no result in the run", err=True)


def _print_report(report: Any) -> None:
    rows = [("slide", "label", "slide prob", "lesions hit", "ITC", "FP", "Dice")]
    for s in report.slides:
        rows.append(
            (
                s.stem + ("" if s.in_froc else " (not in FROC)"),
                "tumour" if s.is_tumor else "normal",
                _number(s.slide_probability),
                f"{s.n_detected}/{s.n_lesions}" if s.is_tumor else "-",
                str(s.n_itc),
                str(s.n_false_positives),
                _number(s.dice),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        say("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    froc = report.froc
    if froc is not None:
        at = ", ".join(f"{r:g}: {v:.3f}" for r, v in froc.sensitivity_at.items())
        ci = (
            ""
            if report.froc_ci is None
            else f"95% CI {report.froc_ci[0]:.3f}-{report.froc_ci[1]:.3f}; "
        )
        say(
            f"FROC {froc.froc:.3f} ({froc.n_lesions} lesion(s), {froc.n_slides} "
            f"slide(s); {ci}sensitivity at FP/slide {at})"
        )
    else:
        say("FROC: no lesions to detect")
    if report.slide_auc is not None:
        low, high = report.slide_auc_ci
        say(f"slide AUC {report.slide_auc:.3f} (95% CI {low:.3f}-{high:.3f})")
    else:
        say("slide AUC: needs tumour and normal slides with summary.json")
    say(f"Dice {_number(report.dice)}, IoU {_number(report.iou)} (tumour slides)")
    for failure in report.failures:
        say(f"error: {failure.slide}: {failure.message}", err=True)
    say(f"reports: {report.config.output_dir}")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
