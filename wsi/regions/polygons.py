"""Tumour regions and lesion candidates from a heatmap, in slide level-0 pixels.

A tumour cell is a cell whose probability is at least ``threshold`` (or, with
hysteresis, at least ``low_threshold`` and 8-connected to one at least ``threshold``).
A region is an 8-connected component of tumour cells, as in the Camelyon16 evaluation
(``skimage.measure.label(..., connectivity=2)``); two cells touching only at a corner
are one region whose geometry is then a MultiPolygon. Cells without a patch (NaN) are
never tumour, so they make holes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from scipy import ndimage
from shapely.geometry import MultiPolygon, Polygon

from wsi.geometry import TileGrid, check_heatmap
from wsi.regions.cell_outlines import cell_outlines
from wsi.regions.detection import cell_size_um, smooth_heatmap
from wsi.regions.lesion_size import max_diameter_um

__all__ = [
    "PolygonParams",
    "TumorRegion",
    "detections",
    "heatmap_regions",
    "region_cells",
    "region_mask",
    "tumour_mask",
]

logger = logging.getLogger(__name__)

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True, slots=True, kw_only=True)
class PolygonParams:
    """How tumour regions are cut out of a heatmap.

    Parameters
    ----------
    threshold
        A cell is tumour when its probability is ``>= threshold`` (``--threshold``).
    low_threshold
        Hysteresis: also keep cells ``>= low_threshold`` that are 8-connected to a cell
        ``>= threshold``. None (the default) disables it.
    simplify_um
        Douglas-Peucker tolerance in microns; 0 keeps the exact cell edges (only
        collinear vertices are dropped). Topology is preserved.
    min_area_um2
        Regions whose tumour cells cover less than this are dropped (0 keeps all).
        The defaults (this, ``smooth_sigma_um`` and ``max_hole_um2``: 4 stride-96
        cells) were chosen by the Dice of ``benchmarks/bench_detection.py``
        (docs/DETECTION.md); ``smooth_sigma_um=0, min_area_um2=0,
        max_hole_um2=0`` gives exact cell regions.
    smooth_sigma_um
        The thresholds apply to the heatmap smoothed by a Gaussian of this standard
        deviation in microns (normalised over tissue cells, `smooth_heatmap`), so a
        lesion's patchy cells make one region and lone cells fall below; 0 uses the
        raw heatmap. Region statistics always use the raw probabilities.
    max_hole_um2
        Holes (normal or unscored cells enclosed by a region) up to this area are
        filled; 0 keeps every hole.

    Examples
    --------
    >>> PolygonParams(threshold=0.7, low_threshold=0.4).low_threshold
    0.4
    >>> PolygonParams(threshold=0.3, low_threshold=0.4)
    Traceback (most recent call last):
    ...
    ValueError: low_threshold=0.4 must be in [0, threshold=0.3]
    """

    threshold: float = 0.5
    low_threshold: float | None = None
    simplify_um: float = 0.0
    min_area_um2: float = 35_000.0
    smooth_sigma_um: float = 100.0
    max_hole_um2: float = 35_000.0

    def __post_init__(self) -> None:
        """Reject thresholds outside [0, 1] and negative tolerances or areas."""
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        low = self.low_threshold
        if low is not None and not 0.0 <= low <= self.threshold:
            raise ValueError(
                f"low_threshold={low} must be in [0, threshold={self.threshold}]"
            )
        if not (np.isfinite(self.simplify_um) and self.simplify_um >= 0):
            raise ValueError(f"simplify_um must be >= 0, got {self.simplify_um}")
        for name in ("min_area_um2", "smooth_sigma_um", "max_hole_um2"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TumorRegion:
    """One connected tumour region of a heatmap.

    Attributes
    ----------
    polygon
        Outline in slide level-0 pixels along cell edges, holes kept; a
        MultiPolygon when parts touch only at corners. Always valid.
    max_probability, mean_probability
        Over the region's tumour cells.
    area_um2
        Area of the region's tumour cells in square microns (holes excluded; before
        any simplification).
    n_cells
        Number of tumour cells.
    max_diameter_um
        Longest diameter: the largest distance between two points of the region
        (`wsi.regions.lesion_size.max_diameter_um`), in microns.
    l0_peak_xy
        Level-0 ``(x, y)``, rounded to whole pixels, of the centre of the cell with the
        highest probability (the first in row-major order on ties): the region's
        Camelyon16 lesion candidate.
    """

    polygon: Polygon | MultiPolygon
    max_probability: float
    mean_probability: float
    area_um2: float
    n_cells: int
    l0_peak_xy: tuple[int, int]
    max_diameter_um: float

    def name(self, number: int) -> str:
        """The region's name in QuPath and ASAP: number, size class, diameter.

        Examples
        --------
        >>> from shapely.geometry import box
        >>> TumorRegion(polygon=box(0, 0, 1, 1), max_probability=0.9,
        ...             mean_probability=0.8, area_um2=1.0, n_cells=1,
        ...             l0_peak_xy=(0, 0), max_diameter_um=431.0).name(2)
        'Tumor 2 (micro, 0.43 mm)'
        """
        from wsi.regions.lesion_class import size_class

        mm = self.max_diameter_um / 1000
        return f"Tumor {number} ({size_class(mm).value}, {mm:.2f} mm)"


@dataclass(frozen=True, slots=True)
class _Component:
    slices: tuple[slice, slice]
    label: int
    n_cells: int
    max_probability: float
    mean_probability: float
    peak_rc: tuple[int, int]


def heatmap_regions(
    heatmap: npt.NDArray[np.floating], *, grid: TileGrid, params: PolygonParams
) -> list[TumorRegion]:
    """Outline the tumour regions of a heatmap in slide level-0 pixels.

    Parameters
    ----------
    heatmap
        ``float32[rows, cols]`` probabilities from `stitch` (NaN: no patch).
    grid
        The grid the heatmap was stitched on.
    params
        Thresholds, simplification and minimum area.

    Returns
    -------
    list of TumorRegion
        Highest ``max_probability`` first (ties in row-major order of the region's
        first cell).

    Notes
    -----
    1. Regions are traced along cell edges in cell units by `cell_outlines` (exact:
       integer corners, holes kept, only corners as vertices).
    2. With ``simplify_um > 0`` they are simplified in cell units (tolerance
       ``simplify_um`` over the cell side in microns, topology kept).
    3. They are mapped to level-0 pixels by `TileGrid.heatmap_to_level0`, an affine
       map with a positive scale, which keeps them valid (checked; repaired with a
       warning if not).

    Examples
    --------
    >>> from wsi.geometry import SlideGeometry
    >>> g = SlideGeometry(width_px=1024, height_px=1024, mpp_x=0.25, mpp_y=0.25,
    ...                   level_dimensions=((1024, 1024),))
    >>> grid = TileGrid(geometry=g, mpp=1.0, stride_px=96)   # 384-px cells, no offset
    >>> h = np.array([[0.9, 0.6], [0.1, np.nan]], np.float32)
    >>> raw = PolygonParams(smooth_sigma_um=0, min_area_um2=0, max_hole_um2=0)   # exact cells, no smoothing
    >>> [region] = heatmap_regions(h, grid=grid, params=raw)
    >>> region.polygon.wkt
    'POLYGON ((0 0, 0 384, 768 384, 768 0, 0 0))'
    >>> region.n_cells, round(region.mean_probability, 2), region.l0_peak_xy
    (2, 0.75, (192, 192))
    """
    values = check_heatmap(heatmap, grid)
    labels, components = _components(values, grid=grid, params=params)
    if not components:
        return []
    kept = np.zeros(int(labels.max()) + 1, dtype=labels.dtype)
    for comp in components:
        kept[comp.label] = comp.label
    outlines = cell_outlines(kept[labels], kept.size - 1)
    tolerance_cells = params.simplify_um / (grid.cell_size_l0 * grid.geometry.mpp)
    regions = []
    for comp in components:
        geom = outlines[comp.label - 1]
        if tolerance_cells > 0:
            geom = shapely.simplify(geom, tolerance_cells, preserve_topology=True)
        geom = shapely.transform(geom, grid.heatmap_to_level0)
        if not geom.is_valid:  # pragma: no cover - a safety net, never seen
            logger.warning(
                "repairing a tumour polygon: %s", shapely.is_valid_reason(geom)
            )
            geom = shapely.make_valid(geom)
        regions.append(
            TumorRegion(
                polygon=geom,
                max_probability=comp.max_probability,
                mean_probability=comp.mean_probability,
                area_um2=comp.n_cells * _cell_area_um2(grid),
                n_cells=comp.n_cells,
                l0_peak_xy=_cell_centre_l0(grid, comp.peak_rc),
                max_diameter_um=max_diameter_um(geom, mpp=grid.geometry.mpp),
            )
        )
    logger.debug("%d tumour regions at threshold %s", len(regions), params.threshold)
    return regions


def detections(
    heatmap: npt.NDArray[np.floating], *, grid: TileGrid, params: PolygonParams
) -> list[tuple[float, int, int]]:
    """Camelyon16 lesion candidates: one per tumour region, at its most likely cell.

    Each region of `heatmap_regions` (same thresholds and minimum area) gives one
    ``(probability, X, Y)``: its maximum probability and the level-0 centre of that
    cell. One point per connected component keeps the FROC count of false positives
    honest (the evaluation ignores extra hits inside a lesion but counts every miss);
    pass a lower ``threshold`` for more, less likely candidates.

    Parameters
    ----------
    heatmap
        ``float32[rows, cols]`` probabilities (NaN: no patch).
    grid
        The grid the heatmap was stitched on.
    params
        As for `heatmap_regions` (simplification does not matter here).

    Returns
    -------
    list of (float, int, int)
        ``(probability, X, Y)`` in integer level-0 pixels, most likely first.

    Examples
    --------
    >>> from wsi.geometry import SlideGeometry
    >>> g = SlideGeometry(width_px=1024, height_px=1024, mpp_x=0.25, mpp_y=0.25,
    ...                   level_dimensions=((1024, 1024),))
    >>> grid = TileGrid(geometry=g, mpp=1.0, stride_px=32)   # 128-px cells, offset 128
    >>> h = np.zeros(grid.shape, np.float32); h[0, 0] = 0.75; h[3, 4] = 0.875
    >>> detections(h, grid=grid, params=PolygonParams(smooth_sigma_um=0, min_area_um2=0, max_hole_um2=0))
    [(0.875, 704, 576), (0.75, 192, 192)]
    """
    values = check_heatmap(heatmap, grid)
    _, components = _components(values, grid=grid, params=params)
    return [
        (comp.max_probability, *_cell_centre_l0(grid, comp.peak_rc))
        for comp in components
    ]


def tumour_mask(
    heatmap: npt.NDArray[np.floating], *, params: PolygonParams
) -> npt.NDArray[np.bool_]:
    """Boolean mask of tumour cells (threshold, optional hysteresis; NaN never).

    Examples
    --------
    >>> h = np.array([[0.9, 0.4, 0.2, 0.45]], np.float32)
    >>> tumour_mask(h, params=PolygonParams(threshold=0.5, low_threshold=0.3)).tolist()
    [[True, True, False, False]]
    """
    values = np.asarray(heatmap, dtype=np.float32)
    finite = np.isfinite(values)
    high = finite & (np.where(finite, values, 0.0) >= params.threshold)
    if params.low_threshold is None:
        return high
    low = finite & (np.where(finite, values, 0.0) >= params.low_threshold)
    labels, n = ndimage.label(low, structure=_EIGHT_CONNECTED)
    keep = np.zeros(n + 1, dtype=bool)
    keep[labels[high]] = True
    keep[0] = False
    mask: npt.NDArray[np.bool_] = keep[labels]
    return mask


def region_mask(
    heatmap: npt.NDArray[np.floating], *, grid: TileGrid, params: PolygonParams
) -> npt.NDArray[np.bool_]:
    """Tumour cells after smoothing, thresholds, hysteresis and hole filling.

    Examples
    --------
    >>> from wsi.geometry import SlideGeometry
    >>> g = SlideGeometry(width_px=1536, height_px=1536, mpp_x=0.25, mpp_y=0.25,
    ...                   level_dimensions=((1536, 1536),))
    >>> grid = TileGrid(geometry=g, mpp=1.0, stride_px=96)   # 96-um cells, 4 x 4
    >>> h = np.full((4, 4), 0.9, np.float32); h[1, 1] = 0.1; h[3, :] = 0.0
    >>> raw = PolygonParams(smooth_sigma_um=0, min_area_um2=0, max_hole_um2=0)
    >>> int(region_mask(h, grid=grid, params=raw).sum())
    11
    >>> p = PolygonParams(smooth_sigma_um=0, min_area_um2=0, max_hole_um2=10_000)
    >>> int(region_mask(h, grid=grid, params=p).sum())
    12
    """
    values = np.asarray(heatmap, dtype=np.float32)
    if params.smooth_sigma_um > 0:
        sigma_cells = params.smooth_sigma_um / cell_size_um(grid)
        values = smooth_heatmap(values, sigma_cells=sigma_cells)
    mask = tumour_mask(values, params=params)
    if params.max_hole_um2 > 0 and mask.any():
        holes = ndimage.binary_fill_holes(mask) & ~mask
        labels, n = ndimage.label(holes)
        if n:
            sizes = np.bincount(labels.ravel(), minlength=n + 1)
            small = sizes * _cell_area_um2(grid) <= params.max_hole_um2
            small[0] = False
            mask = mask | small[labels]
    return mask


def region_cells(
    heatmap: npt.NDArray[np.floating], *, grid: TileGrid, params: PolygonParams
) -> npt.NDArray[np.bool_]:
    """The cells of the regions :func:`heatmap_regions` exports.

    :func:`region_mask` less the regions smaller than ``min_area_um2``: what
    ``heatmap.png`` outlines.
    """
    values = np.asarray(heatmap, dtype=np.float32)
    labels, components = _components(values, grid=grid, params=params)
    keep = np.zeros(int(labels.max()) + 1, dtype=bool)
    keep[[c.label for c in components]] = True
    cells: npt.NDArray[np.bool_] = keep[labels]
    return cells


def _components(
    values: npt.NDArray[np.float32], *, grid: TileGrid, params: PolygonParams
) -> tuple[npt.NDArray[np.int32], list[_Component]]:
    """Label the 8-connected tumour regions, keep those large enough, sort them.

    Statistics (maximum, mean, peak) use the raw finite probabilities of the
    region's cells; filled holes without a patch count in ``n_cells`` only.
    """
    mask = region_mask(values, grid=grid, params=params)
    labels, n = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    if n == 0:
        return labels, []
    index = np.arange(1, n + 1)
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    finite = np.isfinite(values)
    safe = np.where(mask & finite, values, 0.0)
    maxima = ndimage.maximum(safe, labels, index)
    n_finite = ndimage.sum(finite, labels, index)
    means = ndimage.sum(safe, labels, index) / np.maximum(n_finite, 1)
    min_cells = params.min_area_um2 / _cell_area_um2(grid)
    components = []
    for label, slices in enumerate(ndimage.find_objects(labels), start=1):
        if slices is None or counts[label - 1] < min_cells:
            continue
        inside = (labels[slices] == label) & finite[slices]
        window = np.where(inside, safe[slices], -1.0)
        r, c = np.unravel_index(int(np.argmax(window)), window.shape)
        components.append(
            _Component(
                slices=(slices[0], slices[1]),
                label=label,
                n_cells=int(counts[label - 1]),
                max_probability=float(maxima[label - 1]),
                mean_probability=float(means[label - 1]),
                peak_rc=(slices[0].start + int(r), slices[1].start + int(c)),
            )
        )
    components.sort(key=lambda comp: -comp.max_probability)  # stable: ties by label
    return labels, components


def _cell_area_um2(grid: TileGrid) -> float:
    side = grid.cell_size_l0
    return side * grid.geometry.mpp_x * side * grid.geometry.mpp_y


def _cell_centre_l0(grid: TileGrid, rc: tuple[int, int]) -> tuple[int, int]:
    x, y = grid.heatmap_to_level0([[rc[1] + 0.5, rc[0] + 0.5]])[0]
    return int(np.rint(x)), int(np.rint(y))
