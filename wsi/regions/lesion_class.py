"""A node's metastasis size class from its heatmap: the staging view of the lesions.

The display polygons (`wsi.regions.polygons`) are smoothed and cleaned for the eye: a lesion
of a few tumour cells disappears from them. Staging needs every lesion, so it looks
at the raw heatmap:

1. Lesion cells are the cells with probability >= ``cell_threshold``; lesions are
   their 8-connected groups (no smoothing, no minimum size).
2. A lesion counts when its cells that reach ``min_probability`` cover at least
   ``min_confident_area_um2`` (default: 25,000 um^2 of cells >= 0.9, three cells at
   stride 96, 27 at stride 32; a normal node of real size, 10,000-20,000 cells at
   stride 96, holds two confident neighbouring cells by chance, see
   docs/STAGING.md); a node without one is negative. An area, not a count, so that
   the rule means the same at every stride.
3. A lesion's longest diameter is measured on its cells' label windows: PCam labels a
   patch by the centre 32 x 32 px (31 um) of its 96 px, so a tumour cell says that
   tumour reaches that window. The longest distance between the centres of two
   lesion cells plus the gap between neighbouring windows (the cell side minus the
   31 um window: 62 um at stride 96, 0 at stride 32) is the estimate; one cell alone
   measures the gap plus nothing more, i.e. at most an ITC at stride 96. The error
   is about half a cell either way (47 um at stride 96, 16 um at stride 32).
4. The node's class is the Camelyon17 class of its longest lesion: **macro** > 2.0 mm,
   **micro** > 0.2 mm, **itc** <= 0.2 mm, **negative** without a lesion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial.distance import cdist

from wsi.geometry import CENTER_PX, TileGrid, check_heatmap

__all__ = [
    "ITC_MAX_MM",
    "MICRO_MAX_MM",
    "NodeClass",
    "NodeLesion",
    "StagingParams",
    "describe_node",
    "node_class",
    "size_class",
    "staging_lesions",
]

#: Camelyon17's limits on the longest diameter, mm: ITC <= 0.2 < micro <= 2.0 < macro.
ITC_MAX_MM = 0.2
MICRO_MAX_MM = 2.0


class NodeClass(str, Enum):
    """A lymph node's metastasis class (Camelyon17), in increasing order."""

    NEGATIVE = "negative"
    ITC = "itc"
    MICRO = "micro"
    MACRO = "macro"

    @property
    def rank(self) -> int:
        """0 (negative) to 3 (macro)."""
        return list(NodeClass).index(self)


def size_class(diameter_mm: float) -> NodeClass:
    """The class of a lesion by its longest diameter.

    Examples
    --------
    >>> [size_class(d).value for d in (0.19, 0.2, 0.21, 2.0, 2.1)]
    ['itc', 'itc', 'micro', 'micro', 'macro']
    """
    if not (math.isfinite(diameter_mm) and diameter_mm >= 0):
        raise ValueError(f"diameter_mm must be a finite number >= 0, got {diameter_mm}")
    if diameter_mm <= ITC_MAX_MM:
        return NodeClass.ITC
    return NodeClass.MICRO if diameter_mm <= MICRO_MAX_MM else NodeClass.MACRO


@dataclass(frozen=True, slots=True, kw_only=True)
class StagingParams:
    """How lesions are found for staging (see the module notes).

    Parameters
    ----------
    cell_threshold
        A cell belongs to a lesion from this probability.
    min_probability
        A cell of a lesion is confident from this probability.
    min_confident_area_um2
        A lesion counts when its confident cells cover at least this area (and
        it has one at all).

    Examples
    --------
    >>> StagingParams(cell_threshold=0.9, min_probability=0.5)
    Traceback (most recent call last):
    ...
    ValueError: need 0 < cell_threshold <= min_probability <= 1, got 0.9 and 0.5
    """

    cell_threshold: float = 0.5
    min_probability: float = 0.9
    min_confident_area_um2: float = 25_000.0

    def __post_init__(self) -> None:
        """Both probabilities in (0, 1], the lesion's above the cells'; area >= 0."""
        if not 0 < self.cell_threshold <= self.min_probability <= 1:
            raise ValueError(
                "need 0 < cell_threshold <= min_probability <= 1, got "
                f"{self.cell_threshold} and {self.min_probability}"
            )
        area = self.min_confident_area_um2
        if isinstance(area, bool) or not (
            isinstance(area, int | float) and math.isfinite(area) and area >= 0
        ):
            raise ValueError(
                f"min_confident_area_um2 must be a number >= 0, got {area!r}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeLesion:
    """One lesion of the staging view.

    Attributes
    ----------
    diameter_mm
        Estimated longest diameter (module notes, 3).
    size_class
        Its Camelyon17 class.
    area_um2
        Area of its cells.
    n_cells
        Number of its cells.
    max_probability
        Its most confident cell.
    l0_xy
        Level-0 ``(x, y)`` of its centre: the middle of its longest diameter.
    """

    diameter_mm: float
    size_class: NodeClass
    area_um2: float
    n_cells: int
    max_probability: float
    l0_xy: tuple[int, int]

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields (``summary.json``'s ``lesions``)."""
        return {
            "diameter_mm": round(self.diameter_mm, 4),
            "class": self.size_class.value,
            "area_um2": round(self.area_um2, 1),
            "n_cells": self.n_cells,
            "max_probability": round(self.max_probability, 4),
            "x_l0": self.l0_xy[0],
            "y_l0": self.l0_xy[1],
        }


_EIGHT = np.ones((3, 3), bool)


def window_gap_um(grid: TileGrid) -> float:
    """Distance between the label windows of two neighbouring cells, microns."""
    return max(grid.stride_px - CENTER_PX, 0) * grid.downsample * grid.geometry.mpp


def staging_lesions(
    heatmap: npt.NDArray[np.floating],
    *,
    grid: TileGrid,
    params: StagingParams | None = None,
) -> list[NodeLesion]:
    """The counted lesions of a heatmap, longest first (module notes, 1-3).

    Parameters
    ----------
    heatmap
        ``float32[rows, cols]`` from `wsi.heatmap.stitching.stitch` (NaN: no patch).
    grid
        The grid it was stitched on.
    params
        Thresholds; the defaults when None.
    """
    params = StagingParams() if params is None else params
    values = check_heatmap(heatmap, grid=grid)
    finite = np.isfinite(values)
    mask = finite & (np.where(finite, values, 0.0) >= params.cell_threshold)
    labels, n = ndimage.label(mask, structure=_EIGHT)
    if n == 0:
        return []
    geometry = grid.geometry
    cell_um = (
        grid.cell_size_l0 * geometry.mpp_x,
        grid.cell_size_l0 * geometry.mpp_y,
    )
    cell_area_um2 = cell_um[0] * cell_um[1]
    gap_um = window_gap_um(grid)
    lesions = []
    for label, slices in enumerate(ndimage.find_objects(labels), start=1):
        if slices is None:
            continue
        inside = labels[slices] == label
        window = np.where(inside, values[slices], -1.0)
        peak = float(window.max())
        confident = int((window >= params.min_probability).sum())
        if confident == 0 or confident * cell_area_um2 < params.min_confident_area_um2:
            continue
        n_cells = int(inside.sum())
        # The farthest pair lies on the outline: measure between its cells only.
        edge_rows, edge_cols = np.nonzero(
            inside & ~ndimage.binary_erosion(inside, structure=_EIGHT)
        )
        centres = np.column_stack([edge_cols * cell_um[0], edge_rows * cell_um[1]])
        distances = cdist(centres, centres)
        i, j = np.unravel_index(int(np.argmax(distances)), distances.shape)
        diameter = (float(distances[i, j]) + gap_um) / 1000
        # The lesion's centre: the middle of its longest diameter (in cell units).
        mid_col = slices[1].start + (edge_cols[i] + edge_cols[j]) / 2 + 0.5
        mid_row = slices[0].start + (edge_rows[i] + edge_rows[j]) / 2 + 0.5
        x, y = grid.heatmap_to_level0([[mid_col, mid_row]])[0]
        lesions.append(
            NodeLesion(
                diameter_mm=diameter,
                size_class=size_class(diameter),
                area_um2=float(n_cells * cell_area_um2),
                n_cells=n_cells,
                max_probability=peak,
                l0_xy=(int(np.rint(x)), int(np.rint(y))),
            )
        )
    lesions.sort(key=lambda les: (-les.diameter_mm, -les.max_probability))
    return lesions


def describe_node(lesions: Sequence[NodeLesion]) -> str:
    """The node's class and its largest lesion, as the overlay and the CLI say it.

    Examples
    --------
    >>> describe_node([])
    'negative'
    """
    text = node_class(list(lesions)).value
    if lesions:
        text += f" (largest lesion {lesions[0].diameter_mm:.2f} mm)"
    return text


def node_class(lesions: list[NodeLesion]) -> NodeClass:
    """The node's class: its longest lesion's, negative without one.

    Examples
    --------
    >>> node_class([])
    <NodeClass.NEGATIVE: 'negative'>
    """
    if not lesions:
        return NodeClass.NEGATIVE
    return max((les.size_class for les in lesions), key=lambda cls: cls.rank)
