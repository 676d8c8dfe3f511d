"""``evaluate(config) -> EvalReport``: Camelyon16 metrics of a ``wsi-heatmap`` run.

The one orchestrator of the package: it finds the slides' outputs and the truth
files, evaluates each slide (a slide that fails is recorded and the others go on),
then computes the FROC over the lesion-level slides, the slide-level ROC AUC with its
bootstrap interval and the mean Dice, and writes ``metrics.json``, ``slides.csv``
and the two plots into ``eval_out``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsi.errors import WsiError
from wsi.evaluation.froc import FP_RATES, FrocCurve, bootstrap_froc_ci, froc_curve
from wsi.evaluation.masks import (
    CAMELYON_L0_MPP,
    DISTANCE_THRESHOLD_UM,
    EVALUATION_LEVEL,
    ITC_MAJOR_AXIS_UM,
)
from wsi.evaluation.outputs import find_slide_outputs
from wsi.evaluation.slide import SlideEvaluation, SlideSettings, evaluate_slide
from wsi.evaluation.slide_level import RocCurve, bootstrap_auc_ci, roc_auc, roc_curve
from wsi.evaluation.truth import find_annotations, match_annotations, read_reference_csv
from wsi.progress import Progress, ensure_progress

__all__ = ["CAMELYON16_EXCLUDED", "EvalConfig", "EvalFailure", "EvalReport", "evaluate"]

logger = logging.getLogger(__name__)

#: Camelyon16 test slides the organisers left out of the FROC.
CAMELYON16_EXCLUDED = frozenset({"Test_049", "Test_114"})


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalConfig:
    """Settings of an evaluation (defaults: the official Camelyon16 protocol).

    Parameters
    ----------
    out_dir
        The ``--out`` folder of a ``wsi-heatmap`` run (``OUT/<stem>/`` per slide),
        or one slide's folder.
    annotations
        An annotation file or a folder of them, matched to slides by stem.
    reference
        Optional Camelyon16 ``reference.csv`` giving each slide's label.
    eval_out
        Where the reports go; default ``out_dir / "evaluation"``.
    include_excluded
        Keep `excluded_slides` in the FROC.
    excluded_slides
        Stems left out of the FROC (Test_049 and Test_114).
    level, reference_mpp
        The evaluation level of a ``reference_mpp`` um/px level 0 (5 of 0.243:
        7.776 um per pixel).
    distance_threshold_um, itc_major_axis_um
        The 75 um growth and 275 um ITC rules.
    fp_rates
        Average false positives per slide of the FROC.
    n_bootstrap, confidence, seed
        The slide-AUC interval: stratified bootstrap samples, coverage, seed.
    default_mpp
        Level-0 um/px assumed where the outputs do not record it (with a note).
    plots
        Write ``froc.png`` and ``roc.png``.
    """

    out_dir: Path
    annotations: Path
    reference: Path | None = None
    eval_out: Path | None = None
    include_excluded: bool = False
    excluded_slides: frozenset[str] = CAMELYON16_EXCLUDED
    level: int = EVALUATION_LEVEL
    reference_mpp: float = CAMELYON_L0_MPP
    distance_threshold_um: float = DISTANCE_THRESHOLD_UM
    itc_major_axis_um: float = ITC_MAJOR_AXIS_UM
    fp_rates: tuple[float, ...] = FP_RATES
    n_bootstrap: int = 2000
    confidence: float = 0.95
    seed: int = 0
    default_mpp: float = CAMELYON_L0_MPP
    plots: bool = True

    def __post_init__(self) -> None:
        for name in (
            "reference_mpp",
            "distance_threshold_um",
            "itc_major_axis_um",
            "default_mpp",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.level < 0:
            raise ValueError(f"level must be >= 0, got {self.level}")
        if not self.fp_rates or any(r <= 0 for r in self.fp_rates):
            raise ValueError(f"fp_rates must be positive rates, got {self.fp_rates}")
        if self.n_bootstrap < 1:
            raise ValueError(f"n_bootstrap must be >= 1, got {self.n_bootstrap}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")

    @property
    def output_dir(self) -> Path:
        """Where the reports are written."""
        return Path(self.eval_out or Path(self.out_dir) / "evaluation")

    def settings(self) -> dict[str, Any]:
        """The protocol settings, JSON-able (recorded in ``metrics.json``)."""
        return {
            "level": self.level,
            "reference_mpp": self.reference_mpp,
            "distance_threshold_um": self.distance_threshold_um,
            "itc_major_axis_um": self.itc_major_axis_um,
            "fp_rates": list(self.fp_rates),
            "excluded_slides": []
            if self.include_excluded
            else sorted(self.excluded_slides),
            "n_bootstrap": self.n_bootstrap,
            "confidence": self.confidence,
            "seed": self.seed,
            "default_mpp": self.default_mpp,
        }


@dataclass(frozen=True, slots=True)
class EvalFailure:
    """A slide (or annotation file) left out of the evaluation, and why."""

    slide: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalReport:
    """Everything an evaluation measured.

    ``froc`` (and its bootstrap interval ``froc_ci``, slides resampled) is None
    without lesions; ``slide_auc`` / ``slide_auc_ci`` / ``roc``
    are None unless both tumour and normal slides have a slide probability;
    ``dice`` / ``iou`` are means over tumour slides with a ``tumor.geojson``
    (None if none). ``files`` maps report names to the files written.
    """

    config: EvalConfig
    slides: tuple[SlideEvaluation, ...]
    failures: tuple[EvalFailure, ...]
    froc: FrocCurve | None
    slide_auc: float | None
    slide_auc_ci: tuple[float, float] | None
    roc: RocCurve | None
    froc_ci: tuple[float, float] | None = None
    dice: float | None
    iou: float | None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No slide or annotation failed."""
        return not self.failures

    @property
    def n_lesions(self) -> int:
        """Lesions (not ITC) on the slides in the FROC."""
        return sum(s.n_lesions for s in self.slides if s.in_froc)

    def metrics(self) -> dict[str, Any]:
        """The ``metrics.json`` content (see docs/EVALUATION.md)."""
        froc_slides = [s for s in self.slides if s.in_froc]
        return {
            "froc": None if self.froc is None else self.froc.froc,
            "froc_ci": None if self.froc_ci is None else list(self.froc_ci),
            "sensitivity_at": None
            if self.froc is None
            else {_rate(r): v for r, v in self.froc.sensitivity_at.items()},
            "slide_auc": self.slide_auc,
            "slide_auc_ci": None
            if self.slide_auc_ci is None
            else list(self.slide_auc_ci),
            "dice": self.dice,
            "iou": self.iou,
            "n_slides": len(self.slides),
            "n_tumor_slides": sum(s.is_tumor for s in self.slides),
            "n_normal_slides": sum(not s.is_tumor for s in self.slides),
            "n_froc_slides": len(froc_slides),
            "n_lesions": self.n_lesions,
            "n_itc": sum(s.n_itc for s in froc_slides),
            "n_lesions_detected": sum(s.n_detected for s in froc_slides),
            "n_detections": sum(s.n_detections for s in froc_slides),
            "n_false_positives": sum(s.n_false_positives for s in froc_slides),
            "froc_curve": None
            if self.froc is None
            else {
                "thresholds": [_finite(t) for t in self.froc.thresholds],
                "fp_per_slide": self.froc.fp_per_slide.tolist(),
                "sensitivity": self.froc.sensitivity.tolist(),
            },
            "failures": [
                {"slide": f.slide, "message": f.message} for f in self.failures
            ],
            "settings": self.config.settings(),
        }


def evaluate(config: EvalConfig, *, progress: Progress | None = None) -> EvalReport:
    """Evaluate a run's outputs against Camelyon16-style truth.

    Parameters
    ----------
    config
        What to evaluate and how.
    progress
        Advanced once per slide.

    Returns
    -------
    EvalReport
        With the report files written (``metrics.json``, ``slides.csv``,
        ``froc.png``, ``roc.png``) listed in ``files``.

    Raises
    ------
    EvaluationError
        The outputs folder, the annotations or the reference cannot be used at all.
        Problems with single slides or annotation files are recorded in
        ``EvalReport.failures`` instead.
    """
    from wsi.evaluation.report import write_reports

    slides = find_slide_outputs(config.out_dir)
    files = find_annotations(config.annotations)
    reference = (
        read_reference_csv(config.reference) if config.reference is not None else None
    )
    matched, unmatched = match_annotations(files, [s.stem for s in slides])
    failures = [EvalFailure(file.name, message) for file, message in unmatched]
    for failure in failures:
        logger.error("%s", failure.message)
    settings = SlideSettings(
        level=config.level,
        reference_mpp=config.reference_mpp,
        distance_threshold_um=config.distance_threshold_um,
        itc_major_axis_um=config.itc_major_axis_um,
        default_mpp=config.default_mpp,
    )
    excluded = frozenset() if config.include_excluded else config.excluded_slides
    results: list[SlideEvaluation] = []
    bar = ensure_progress(progress)
    bar.start(len(slides), "evaluate")
    try:
        for outputs in slides:
            stem = outputs.stem
            label = None if reference is None else reference.get(stem)
            try:
                if reference is not None and label is None and stem not in matched:
                    raise _unlabelled(stem, config)
                results.append(
                    evaluate_slide(
                        outputs,
                        truth_file=matched.get(stem),
                        reference_label=label,
                        excluded=stem in excluded,
                        settings=settings,
                    )
                )
            except WsiError as err:
                logger.error("%s: %s", stem, err)
                failures.append(EvalFailure(stem, str(err)))
            bar.advance(1)
    finally:
        bar.close()
    report = _summarise(config, results, failures)
    written = write_reports(report, config.output_dir, plots=config.plots)
    return dataclasses.replace(report, files=written)


def _unlabelled(stem: str, config: EvalConfig) -> WsiError:
    from wsi.errors import EvaluationError

    return EvaluationError(
        f"{stem}: no annotation in {config.annotations} and no entry in "
        f"{config.reference}; add '{stem},Normal' (or Tumor) to the reference or its "
        f"annotation file"
    )


def _summarise(
    config: EvalConfig, results: list[SlideEvaluation], failures: list[EvalFailure]
) -> EvalReport:
    froc_slides = [s for s in results if s.in_froc]
    froc: FrocCurve | None = None
    froc_ci: tuple[float, float] | None = None
    if froc_slides and any(s.n_lesions for s in froc_slides):
        froc = froc_curve([s.hits for s in froc_slides], fp_rates=config.fp_rates)
        froc_ci = bootstrap_froc_ci(
            [s.hits for s in froc_slides],
            fp_rates=config.fp_rates,
            n_resamples=config.n_bootstrap,
            confidence=config.confidence,
            seed=config.seed,
        )
    else:
        logger.warning("no lesions on the evaluated slides: no FROC")
    scored = [s for s in results if s.slide_probability is not None]
    labels = np.array([s.is_tumor for s in scored], dtype=bool)
    scores = np.array([s.slide_probability for s in scored], dtype=np.float64)
    auc: float | None = None
    ci: tuple[float, float] | None = None
    roc: RocCurve | None = None
    if labels.any() and not labels.all():
        auc = roc_auc(labels, scores)
        ci = bootstrap_auc_ci(
            labels,
            scores,
            n_resamples=config.n_bootstrap,
            confidence=config.confidence,
            seed=config.seed,
        )
        roc = roc_curve(labels, scores)
    else:
        logger.warning("slide AUC needs tumour and normal slides with summary.json")
    dice = [s.dice for s in results if s.is_tumor and s.dice is not None]
    iou = [s.iou for s in results if s.is_tumor and s.iou is not None]
    return EvalReport(
        config=config,
        slides=tuple(results),
        failures=tuple(failures),
        froc=froc,
        slide_auc=auc,
        slide_auc_ci=ci,
        roc=roc,
        froc_ci=froc_ci,
        dice=float(np.mean(dice)) if dice else None,
        iou=float(np.mean(iou)) if iou else None,
    )


def _rate(rate: float) -> str:
    """JSON key of a false-positive rate: ``0.25``, ``1``, ``8``."""
    return f"{rate:g}"


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
