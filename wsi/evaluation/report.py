"""Evaluation reports: ``metrics.json``, ``slides.csv``, ``froc.png`` and ``roc.png``."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsi.provenance import git_commit, software_versions
from wsi.store.atomic import atomic_output

if TYPE_CHECKING:
    from wsi.evaluation.evaluator import EvalReport
    from wsi.evaluation.froc import FrocCurve
    from wsi.evaluation.slide_level import RocCurve

__all__ = ["SLIDE_COLUMNS", "plot_froc", "plot_roc", "slides_csv_text", "write_reports"]

logger = logging.getLogger(__name__)

#: Columns of ``slides.csv``, one row per evaluated slide.
SLIDE_COLUMNS = (
    "slide",
    "label",
    "label_source",
    "truth_file",
    "slide_probability",
    "n_detections",
    "n_lesions",
    "n_itc",
    "n_lesions_detected",
    "n_false_positives",
    "n_ignored_itc",
    "dice",
    "iou",
    "predicted_area_um2",
    "truth_area_um2",
    "eval_mpp",
    "in_froc",
    "notes",
)


def write_reports(
    report: EvalReport, folder: Path, *, plots: bool = True
) -> dict[str, Path]:
    """Write the reports of an evaluation into ``folder`` (created).

    Returns
    -------
    dict
        ``metrics_json``, ``slides_csv`` and, with ``plots``, ``froc_png`` (when there
        is a FROC) and ``roc_png`` (when there is a slide AUC) -> their paths.

    Raises
    ------
    OutputError
        A file cannot be written.
    """
    folder = Path(folder)
    files = {
        "metrics_json": folder / "metrics.json",
        "slides_csv": folder / "slides.csv",
    }
    metrics = report.metrics() | {
        "versions": software_versions(),
        "git_commit": git_commit(),
        "out_dir": str(report.config.out_dir),
        "annotations": str(report.config.annotations),
        "reference": None
        if report.config.reference is None
        else str(report.config.reference),
    }
    _write_text(files["metrics_json"], json.dumps(metrics, indent=2) + "\n")
    _write_text(files["slides_csv"], slides_csv_text(report))
    if plots and report.froc is not None:
        files["froc_png"] = folder / "froc.png"
        plot_froc(report.froc, files["froc_png"])
    if plots and report.roc is not None and report.slide_auc is not None:
        files["roc_png"] = folder / "roc.png"
        plot_roc(
            report.roc, files["roc_png"], auc=report.slide_auc, ci=report.slide_auc_ci
        )
    logger.info("wrote the evaluation reports to %s", folder)
    return files


def slides_csv_text(report: EvalReport) -> str:
    """The per-slide CSV (header `SLIDE_COLUMNS`), empty cells for missing values."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SLIDE_COLUMNS)
    for s in report.slides:
        writer.writerow(
            [
                s.stem,
                "tumor" if s.is_tumor else "normal",
                s.label_source,
                "" if s.truth_file is None else s.truth_file.name,
                _cell(s.slide_probability),
                s.n_detections,
                s.n_lesions,
                s.n_itc,
                s.n_detected,
                s.n_false_positives,
                s.n_ignored_itc,
                _cell(s.dice),
                _cell(s.iou),
                _cell(s.predicted_area_um2, 1),
                _cell(s.truth_area_um2, 1),
                _cell(s.eval_mpp),
                int(s.in_froc),
                "; ".join(s.notes),
            ]
        )
    return buffer.getvalue()


def plot_froc(curve: FrocCurve, path: Path) -> None:
    """Plot the FROC curve (log FP axis) with the six read-out rates marked."""
    figure, axes = _figure()
    fp, sensitivity = curve.fp_per_slide[::-1], curve.sensitivity[::-1]
    positive = fp[fp > 0]
    low = min([0.125, *positive.tolist()]) / 1.5
    high = max(16.0, float(fp.max()) * 1.5)
    # linear between the points, as the read-out interpolates; flat beyond the last
    axes.plot(
        [*fp, high],
        [*sensitivity, sensitivity[-1]],
        color="#c00000",
        label="FROC curve",
    )
    rates = list(curve.sensitivity_at)
    axes.plot(
        rates,
        [curve.sensitivity_at[r] for r in rates],
        "o",
        color="black",
        label=f"FROC = {curve.froc:.3f}",
    )
    axes.set_xscale("log")
    axes.set_xlim(low, high)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("average false positives per slide")
    axes.set_ylabel("sensitivity")
    axes.set_title(
        f"Lesion level: {_count(curve.n_lesions, 'lesion')}, "
        f"{_count(curve.n_slides, 'slide')}"
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right")
    _save(figure, path)


def plot_roc(
    curve: RocCurve, path: Path, *, auc: float, ci: tuple[float, float] | None
) -> None:
    """Plot the slide-level ROC curve with its AUC (and interval) in the legend."""
    figure, axes = _figure()
    interval = "" if ci is None else f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})"
    axes.plot(
        curve.false_positive_rate,
        curve.true_positive_rate,
        color="#c00000",
        drawstyle="steps-post",
        label=f"AUC = {auc:.3f}{interval}",
    )
    axes.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.01)
    axes.set_xlabel("false positive rate (normal slides)")
    axes.set_ylabel("true positive rate (tumour slides)")
    axes.set_title("Slide level")
    axes.set_aspect("equal")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right")
    _save(figure, path)


def _figure() -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 5), dpi=100, layout="constrained")
    return figure, figure.add_subplot()


def _save(figure: Any, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png")


def _write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _cell(value: float | None, digits: int = 6) -> str:
    return "" if value is None else f"{value:.{digits}f}"
