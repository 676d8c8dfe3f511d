"""Region overlap: Dice and IoU of predicted tumour polygons against the truth.

Against vector truth (XML, GeoJSON, NCRF JSON) the areas are exact, computed with
shapely on the level-0 polygons (holes included) of both sides. Against a raster
truth (``*_Mask.tif``) the predicted polygons are rasterised on the same evaluation
grid and pixels are counted. The truth is the annotation itself, not the grown
evaluation mask.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import MultiPolygon, Polygon

__all__ = ["Overlap", "mask_overlap", "polygon_overlap"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Overlap:
    """Areas (level-0 px^2, or pixels of a raster) and the two overlap scores.

    ``dice`` and ``iou`` are NaN when both areas are 0 (a normal slide with no
    predicted tumour: nothing to overlap).
    """

    predicted_area: float
    truth_area: float
    intersection_area: float

    @property
    def dice(self) -> float:
        """``2 |P & T| / (|P| + |T|)``."""
        total = self.predicted_area + self.truth_area
        return 2 * self.intersection_area / total if total > 0 else math.nan

    @property
    def iou(self) -> float:
        """``|P & T| / |P | T|``."""
        union = self.predicted_area + self.truth_area - self.intersection_area
        return self.intersection_area / union if union > 0 else math.nan


def polygon_overlap(
    predicted: Sequence[Polygon | MultiPolygon], truth: Sequence[Polygon]
) -> Overlap:
    """Exact overlap of two sets of level-0 polygons (each set's union is taken).

    Examples
    --------
    >>> from shapely.geometry import box
    >>> o = polygon_overlap([box(0, 0, 10, 10)], [box(5, 0, 15, 10)])
    >>> o.dice, round(o.iou, 4)
    (0.5, 0.3333)
    """
    pred = shapely.union_all([shapely.make_valid(g) for g in predicted])
    true = shapely.union_all([shapely.make_valid(g) for g in truth])
    return Overlap(
        predicted_area=float(pred.area),
        truth_area=float(true.area),
        intersection_area=float(pred.intersection(true).area),
    )


def mask_overlap(
    predicted: npt.NDArray[np.bool_], truth: npt.NDArray[np.bool_]
) -> Overlap:
    """Overlap of two boolean rasters of one grid, in pixels.

    Examples
    --------
    >>> mask_overlap(np.array([1, 1, 0], bool), np.array([0, 1, 1], bool)).dice
    0.5
    """
    if predicted.shape != truth.shape:
        raise ValueError(f"shapes differ: {predicted.shape} and {truth.shape}")
    return Overlap(
        predicted_area=float(predicted.sum()),
        truth_area=float(truth.sum()),
        intersection_area=float((predicted & truth).sum()),
    )
