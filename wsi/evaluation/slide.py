"""One slide's evaluation: its truth, evaluation mask, matched detections, overlap."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from shapely.geometry import MultiPolygon, Polygon

from wsi.errors import EvaluationError
from wsi.evaluation.froc import SlideHits, match_detections
from wsi.evaluation.masks import (
    EvalGrid,
    evaluation_mask,
    mask_tiff_size,
    rasterize_polygons,
    read_mask_tiff,
)
from wsi.evaluation.outputs import Detections, read_detections_csv, read_slide_info
from wsi.evaluation.overlap import Overlap, mask_overlap, polygon_overlap
from wsi.evaluation.truth import read_vector_truth, truth_kind
from wsi.formats.geojson import read_geojson
from wsi.store.layout import SlideOutputs

__all__ = ["SlideEvaluation", "SlideSettings", "evaluate_slide"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class SlideSettings:
    """The protocol settings a slide is evaluated with (from `EvalConfig`)."""

    level: int
    reference_mpp: float
    distance_threshold_um: float
    itc_major_axis_um: float
    default_mpp: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SlideEvaluation:
    """The results of one slide (one row of the per-slide CSV).

    ``is_tumor`` is the slide's label (from the reference, else from its annotation);
    ``in_froc`` whether its detections enter the FROC (False for excluded slides and
    for tumour slides without lesion annotations). Dice and IoU are None on normal
    slides and where ``tumor.geojson`` is missing. ``notes`` are one-line warnings.
    """

    stem: str
    is_tumor: bool
    truth_file: Path | None
    label_source: str
    slide_probability: float | None
    n_detections: int
    n_lesions: int
    n_itc: int
    n_detected: int
    n_false_positives: int
    n_ignored_itc: int
    dice: float | None
    iou: float | None
    predicted_area_um2: float | None
    truth_area_um2: float
    eval_mpp: float
    in_froc: bool
    notes: tuple[str, ...]
    hits: SlideHits


def evaluate_slide(
    outputs: SlideOutputs,
    *,
    truth_file: Path | None,
    reference_label: bool | None,
    excluded: bool,
    settings: SlideSettings,
) -> SlideEvaluation:
    """Evaluate one slide's outputs against its truth.

    Parameters
    ----------
    outputs
        The slide's output folder.
    truth_file
        Its annotation (None: no annotation, a normal slide unless the reference
        says otherwise).
    reference_label
        Its label in the reference CSV (True = tumour), or None.
    excluded
        Keep it out of the FROC (Test_049 and Test_114 by default).
    settings
        The protocol settings.

    Raises
    ------
    WsiError
        Its detections or annotation cannot be read, or the reference says normal
        while the annotation holds tumour.
    """
    notes: list[str] = []
    info = read_slide_info(outputs)
    detections = read_detections_csv(outputs.detections_csv)
    if len(detections) == 0:
        notes.append("detections.csv is empty (no lesion candidates)")
    predicted = read_geojson(outputs.geojson) if outputs.geojson.is_file() else None
    polygons: list[Polygon] = []
    is_mask = truth_file is not None and truth_kind(truth_file) == "mask-tiff"
    if truth_file is not None and not is_mask:
        polygons = read_vector_truth(truth_file)
    mpp = info.mpp
    if mpp is None:
        mpp = settings.default_mpp
        notes.append(f"slide um/px not recorded in the outputs; assumed {mpp}")
    width, height = info.width_px, info.height_px
    if width is None or height is None:
        width, height = _extent(truth_file, is_mask, polygons, detections, predicted)
        notes.append("slide size not recorded in the outputs; taken from the data")
    grid = EvalGrid.for_slide(
        width_px=width,
        height_px=height,
        slide_mpp=mpp,
        level=settings.level,
        reference_mpp=settings.reference_mpp,
    )
    if is_mask and truth_file is not None:
        truth = read_mask_tiff(truth_file, grid)
    else:
        truth = rasterize_polygons(polygons, grid)
    has_tumor = bool(truth.any())
    if truth_file is not None and not has_tumor:
        notes.append(f"{truth_file.name} holds no tumour")
    label_source = "annotation" if truth_file is not None else "no annotation"
    is_tumor = has_tumor
    in_froc = not excluded
    if reference_label is not None:
        label_source = "reference"
        if not reference_label and has_tumor:
            raise EvaluationError(
                f"{outputs.stem}: the reference says Normal but {truth_file} holds "
                f"tumour; fix the reference or remove the annotation"
            )
        if reference_label and not has_tumor:
            notes.append(
                "Tumor in the reference but no lesion annotation: left out of the "
                "FROC, kept for the slide AUC"
            )
            in_froc = False
        is_tumor = reference_label
    if excluded:
        notes.append("excluded from the FROC, as by the Camelyon16 organisers")
    mask = (
        evaluation_mask(
            truth,
            grid,
            distance_threshold_um=settings.distance_threshold_um,
            itc_major_axis_um=settings.itc_major_axis_um,
        )
        if has_tumor
        else None
    )
    hits = match_detections(detections, mask)
    overlap = _overlap(predicted, polygons, truth, grid, is_mask=is_mask)
    if predicted is None:
        notes.append("no tumor.geojson: no Dice")
    px_um2 = mpp * mpp
    for note in notes:
        logger.warning("%s: %s", outputs.stem, note)
    return SlideEvaluation(
        stem=outputs.stem,
        is_tumor=is_tumor,
        truth_file=truth_file,
        label_source=label_source,
        slide_probability=info.slide_probability,
        n_detections=len(detections),
        n_lesions=hits.n_lesions,
        n_itc=hits.n_itc,
        n_detected=hits.n_detected,
        n_false_positives=len(hits.fp_probabilities),
        n_ignored_itc=hits.n_ignored,
        dice=_score(overlap.dice) if overlap is not None and has_tumor else None,
        iou=_score(overlap.iou) if overlap is not None and has_tumor else None,
        predicted_area_um2=(
            None
            if overlap is None
            else _area_um2(overlap.predicted_area, is_mask, grid, px_um2)
        ),
        truth_area_um2=(
            float(truth.sum()) * grid.mpp**2
            if is_mask
            else sum(p.area for p in polygons) * px_um2
        ),
        eval_mpp=grid.mpp,
        in_froc=in_froc,
        notes=tuple(notes),
        hits=hits,
    )


def _overlap(
    predicted: list[Polygon | MultiPolygon] | None,
    polygons: list[Polygon],
    truth: np.ndarray,
    grid: EvalGrid,
    *,
    is_mask: bool,
) -> Overlap | None:
    if predicted is None:
        return None
    if is_mask:
        parts = [
            p
            for g in predicted
            for p in (g.geoms if isinstance(g, MultiPolygon) else [g])
        ]
        return mask_overlap(rasterize_polygons(parts, grid), truth)
    return polygon_overlap(predicted, polygons)


def _area_um2(area: float, is_mask: bool, grid: EvalGrid, px_um2: float) -> float:
    return area * (grid.mpp**2 if is_mask else px_um2)


def _score(value: float) -> float | None:
    return None if math.isnan(value) else value


def _extent(
    truth_file: Path | None,
    is_mask: bool,
    polygons: list[Polygon],
    detections: Detections,
    predicted: list[Polygon | MultiPolygon] | None,
) -> tuple[int, int]:
    """Level-0 size covering everything known of a slide whose size is not recorded."""
    if is_mask and truth_file is not None:
        return mask_tiff_size(truth_file)
    xs: list[float] = [1.0]
    ys: list[float] = [1.0]
    for geom in [*polygons, *(predicted or [])]:
        _, _, x1, y1 = geom.bounds
        xs.append(x1)
        ys.append(y1)
    if len(detections):
        xs.append(float(detections.l0_xy[:, 0].max()) + 1)
        ys.append(float(detections.l0_xy[:, 1].max()) + 1)
    return math.ceil(max(xs)), math.ceil(max(ys))
