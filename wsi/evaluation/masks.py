"""The Camelyon16 evaluation mask: truth rasterised at level 5, grown, filled, labelled.

The official ``Evaluation_FROC.py`` reads the truth mask at level 5 of a 0.243 um/px
slide (7.776 um per pixel), keeps the pixels closer than ``75 / (2 * 7.776)`` pixels
to tumour (a Euclidean distance transform: tumour grown by 37.5 um, so that tumour
areas under 75 um apart merge), fills holes, labels 8-connected regions, and calls a
region an isolated tumour cell (ITC) when its major axis (``skimage.measure.
regionprops``) is under ``275 / 7.776`` pixels. This module does the same from
vectors: polygons are rasterised straight at the evaluation level (pixel centres,
one polygon's bounding box at a time), and the distance transform runs only on the
box around the tumour, so memory follows the lesions, not the slide.

On a slide whose level 0 is not within 1% of 0.243 um/px, the evaluation pixel stays
7.776 um (the downsample is ``7.776 / slide_mpp``), so the 75 um and 275 um rules keep
their physical size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.ndimage as ndi
import skimage.measure
from shapely.geometry import Polygon

from wsi.errors import AnnotationError

__all__ = [
    "CAMELYON_L0_MPP",
    "DISTANCE_THRESHOLD_UM",
    "EVALUATION_LEVEL",
    "ITC_MAJOR_AXIS_UM",
    "EvalGrid",
    "EvalMask",
    "evaluation_mask",
    "mask_tiff_size",
    "rasterize_polygons",
    "read_mask_tiff",
]

#: Level-0 um/px of the Camelyon16 scanners the protocol was written for.
CAMELYON_L0_MPP = 0.243
#: The pyramid level of the official evaluation mask.
EVALUATION_LEVEL = 5
#: The organisers' distance threshold (the script grows tumour by half of it).
DISTANCE_THRESHOLD_UM = 75.0
#: Regions whose major axis is shorter are isolated tumour cells.
ITC_MAJOR_AXIS_UM = 275.0


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalGrid:
    """The evaluation raster of one slide (level 5 of a Camelyon16 slide).

    Pixel ``(r, c)`` covers level-0 ``x`` in ``[c*d, (c+1)*d)`` and ``y`` in
    ``[r*d, (r+1)*d)`` with ``d = downsample``; ``mpp`` is its size in um.

    Examples
    --------
    >>> grid = EvalGrid.for_slide(width_px=6912, height_px=8448, slide_mpp=0.243)
    >>> grid.downsample, grid.shape, round(grid.mpp, 3)
    (32.0, (264, 216), 7.776)
    >>> utrecht = EvalGrid.for_slide(width_px=1000, height_px=1000, slide_mpp=0.226)
    >>> round(utrecht.downsample, 4), utrecht.shape, round(utrecht.mpp, 3)
    (34.4071, (30, 30), 7.776)
    """

    downsample: float
    shape: tuple[int, int]
    mpp: float

    def __post_init__(self) -> None:
        if not self.downsample > 0 or not self.mpp > 0:
            raise ValueError(
                f"downsample and mpp must be positive, got {self.downsample}, "
                f"{self.mpp}"
            )
        if min(self.shape) < 1:
            raise ValueError(f"shape must be at least 1 x 1, got {self.shape}")

    @classmethod
    def for_slide(
        cls,
        *,
        width_px: int,
        height_px: int,
        slide_mpp: float,
        level: int = EVALUATION_LEVEL,
        reference_mpp: float = CAMELYON_L0_MPP,
    ) -> EvalGrid:
        """The grid of a slide of level-0 size ``width_px`` x ``height_px``.

        Within 1% of ``reference_mpp`` the downsample is ``2**level`` (the official
        level 5, 32) and a pixel ``32 * slide_mpp`` um; otherwise a pixel is
        ``reference_mpp * 2**level`` um and the downsample follows.
        """
        if not slide_mpp > 0:
            raise ValueError(f"slide_mpp must be positive, got {slide_mpp}")
        eval_mpp = reference_mpp * 2**level
        if abs(slide_mpp / reference_mpp - 1) <= 0.01:
            downsample, eval_mpp = float(2**level), slide_mpp * 2**level
        else:
            downsample = eval_mpp / slide_mpp
        shape = (
            max(1, math.ceil(height_px / downsample)),
            max(1, math.ceil(width_px / downsample)),
        )
        return cls(downsample=downsample, shape=shape, mpp=eval_mpp)

    def pixels_of(self, l0_xy: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """``int64[N, 2]`` ``(row, col)`` pixels of level-0 ``(x, y)`` points.

        As the official script looks them up: ``int(y / d), int(x / d)``.

        >>> EvalGrid(downsample=32.0, shape=(4, 4), mpp=7.776).pixels_of([[63, 64]])
        array([[2, 1]])
        """
        xy = np.asarray(l0_xy, dtype=np.float64).reshape(-1, 2)
        return np.floor(xy[:, ::-1] / self.downsample).astype(np.int64)


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalMask:
    """Labelled evaluation regions of a slide, stored as the box around them.

    ``labels[r - row0, c - col0]`` is the region of grid pixel ``(r, c)`` (0 outside
    every region, and everywhere outside the box); ``itc`` holds the labels of the
    isolated-tumour-cell regions.
    """

    grid: EvalGrid
    labels: npt.NDArray[np.int32]
    offset_rc: tuple[int, int]
    itc: frozenset[int]

    @property
    def n_regions(self) -> int:
        """Number of labelled regions, ITC included."""
        return int(self.labels.max(initial=0))

    @property
    def n_lesions(self) -> int:
        """Regions that count as lesions (not ITC)."""
        return self.n_regions - len(self.itc)

    def label_at(self, l0_xy: npt.ArrayLike) -> npt.NDArray[np.int32]:
        """The region label under each level-0 point (0: no region, or off the box)."""
        rc = self.grid.pixels_of(l0_xy) - np.asarray(self.offset_rc)
        rows, cols = self.labels.shape
        inside = (
            (rc[:, 0] >= 0) & (rc[:, 0] < rows) & (rc[:, 1] >= 0) & (rc[:, 1] < cols)
        )
        out = np.zeros(len(rc), dtype=np.int32)
        out[inside] = self.labels[rc[inside, 0], rc[inside, 1]]
        return out


def rasterize_polygons(
    polygons: Sequence[Polygon], grid: EvalGrid
) -> npt.NDArray[np.bool_]:
    """Rasterise level-0 polygons (holes kept) onto the evaluation grid.

    A pixel is set when its centre lies inside a polygon and outside its holes
    (filled by scanlines over the edges; a centre exactly on an edge counts, except
    on a bottom edge). A polygon that covers no pixel centre (smaller than a pixel)
    sets the pixel under its representative point, so no lesion vanishes.

    Returns
    -------
    ndarray
        ``bool[rows, cols]`` of ``grid.shape``.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> grid = EvalGrid(downsample=32.0, shape=(4, 5), mpp=7.776)
    >>> rasterize_polygons([box(32, 0, 96, 64), box(150, 100, 151, 101)], grid).astype(int)
    array([[0, 1, 1, 0, 0],
           [0, 1, 1, 0, 0],
           [0, 0, 0, 0, 0],
           [0, 0, 0, 0, 1]])
    """
    mask = np.zeros(grid.shape, dtype=bool)
    rows, cols = grid.shape
    d = grid.downsample
    for polygon in polygons:
        if polygon.is_empty:
            continue
        x0, y0, x1, y1 = polygon.bounds
        r0, c0 = max(0, math.floor(y0 / d)), max(0, math.floor(x0 / d))
        r1, c1 = min(rows, math.ceil(y1 / d) + 1), min(cols, math.ceil(x1 / d) + 1)
        if r0 >= r1 or c0 >= c1:
            continue
        local = np.zeros((r1 - r0, c1 - c0), dtype=bool)
        _fill_ring(local, polygon.exterior.coords, d, (r0, c0), value=True)
        for ring in polygon.interiors:
            _fill_ring(local, ring.coords, d, (r0, c0), value=False)
        if not local.any():
            point = polygon.representative_point()
            r, c = math.floor(point.y / d) - r0, math.floor(point.x / d) - c0
            if 0 <= r < local.shape[0] and 0 <= c < local.shape[1]:
                local[r, c] = True
        mask[r0:r1, c0:c1] |= local
    return mask


def evaluation_mask(
    truth: npt.NDArray[np.bool_],
    grid: EvalGrid,
    *,
    distance_threshold_um: float = DISTANCE_THRESHOLD_UM,
    itc_major_axis_um: float = ITC_MAJOR_AXIS_UM,
) -> EvalMask:
    """Grow, fill and label a truth raster as the official script does.

    Parameters
    ----------
    truth
        ``bool[rows, cols]`` tumour pixels on ``grid``.
    grid
        The evaluation grid.
    distance_threshold_um
        Pixels whose distance to tumour is under ``distance_threshold_um / 2`` um
        (``75 / (2 * 7.776)`` = 4.82 px) are grown in, as in ``Evaluation_FROC.py``.
    itc_major_axis_um
        Regions whose ``regionprops`` major axis is under this (in um) are ITC.

    Returns
    -------
    EvalMask

    Notes
    -----
    1. Distance: ``scipy.ndimage.distance_transform_edt`` of the non-tumour pixels.
    2. Growth: ``distance < distance_threshold_um / (2 * grid.mpp)``.
    3. ``scipy.ndimage.binary_fill_holes``, then ``skimage.measure.label`` with
       ``connectivity=2`` (8-connected).
    4. ITC: ``axis_major_length < itc_major_axis_um / grid.mpp``.

    Only the box around the tumour, padded by the growth radius and one pixel (and
    clipped to the grid), is computed: nothing outside it is grown, and its border is
    background or the slide's edge, so filling holes gives the same regions as on the
    whole raster.

    Examples
    --------
    >>> grid = EvalGrid(downsample=32.0, shape=(60, 60), mpp=7.776)
    >>> truth = np.zeros(grid.shape, bool)
    >>> truth[10:12, 10:12] = True       # 16 um across: an ITC after growth
    >>> truth[20:60, 30:34] = True       # 311 um long: a lesion
    >>> m = evaluation_mask(truth, grid)
    >>> m.n_regions, sorted(m.itc), m.n_lesions
    (2, [1], 1)
    """
    if truth.shape != grid.shape:
        raise ValueError(f"truth has shape {truth.shape}, the grid {grid.shape}")
    if not distance_threshold_um > 0 or not itc_major_axis_um > 0:
        raise ValueError("distance_threshold_um and itc_major_axis_um must be positive")
    threshold_px = distance_threshold_um / (2 * grid.mpp)
    rows = np.flatnonzero(truth.any(axis=1))
    if rows.size == 0:
        return EvalMask(
            grid=grid,
            labels=np.zeros((0, 0), np.int32),
            offset_rc=(0, 0),
            itc=frozenset(),
        )
    cols = np.flatnonzero(truth.any(axis=0))
    pad = math.ceil(threshold_px) + 1
    r0, c0 = max(int(rows[0]) - pad, 0), max(int(cols[0]) - pad, 0)
    r1 = min(int(rows[-1]) + pad + 1, grid.shape[0])
    c1 = min(int(cols[-1]) + pad + 1, grid.shape[1])
    box = truth[r0:r1, c0:c1]
    distance = ndi.distance_transform_edt(~box)
    grown = ndi.binary_fill_holes(distance < threshold_px)
    labels = skimage.measure.label(grown, connectivity=2).astype(np.int32)  # type: ignore[no-untyped-call]
    itc_px = itc_major_axis_um / grid.mpp
    itc = frozenset(
        int(region.label)
        for region in skimage.measure.regionprops(labels)  # type: ignore[no-untyped-call]
        if region.axis_major_length < itc_px
    )
    return EvalMask(grid=grid, labels=labels, offset_rc=(r0, c0), itc=itc)


def read_mask_tiff(path: Path, grid: EvalGrid) -> npt.NDArray[np.bool_]:
    """Read a Camelyon16 ``*_Mask.tif`` onto the evaluation grid (non-zero = tumour).

    The pyramid level nearest the evaluation level without being coarser is read,
    sampled at the centres of the evaluation pixels (exactly the level's pixels when
    its downsample is the grid's, as for Camelyon16's level 5). Only the sampled
    rows and columns are decoded, through tifffile's zarr view, so memory stays at
    the grid's size even for a mask without reduced levels.

    Raises
    ------
    AnnotationError
        The file is not a readable TIFF.
    """
    import tifffile
    import zarr

    try:
        with tifffile.TiffFile(path) as tif:
            levels = _mask_levels(tif)
            width0 = levels[0].shape[1]
            downsamples = [width0 / level.shape[1] for level in levels]
            fitting = [
                i for i, ds in enumerate(downsamples) if ds <= grid.downsample * 1.01
            ]
            index = max(fitting, key=lambda i: downsamples[i]) if fitting else 0
            level, ds = levels[index], downsamples[index]
            rows = _centres(grid.shape[0], grid.downsample / ds, level.shape[0])
            cols = _centres(grid.shape[1], grid.downsample / ds, level.shape[1])
            store = level.aszarr()
            try:
                data = zarr.open_array(store, mode="r")
                sampled = np.asarray(data.get_orthogonal_selection((rows, cols)))
            finally:
                store.close()
    except (OSError, ValueError, KeyError, tifffile.TiffFileError) as err:
        raise AnnotationError(
            f"cannot read the mask {path}: {err}; expected a Camelyon16 *_Mask.tif "
            f"(pyramidal TIFF, non-zero = tumour)"
        ) from err
    if sampled.ndim == 3:
        sampled = sampled[..., 0]
    mask = np.zeros(grid.shape, dtype=bool)
    mask[: sampled.shape[0], : sampled.shape[1]] = sampled != 0
    return mask


def mask_tiff_size(path: Path) -> tuple[int, int]:
    """Level-0 ``(width, height)`` of a mask TIFF.

    Raises
    ------
    AnnotationError
        The file is not a readable TIFF.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            shape = _mask_levels(tif)[0].shape
    except (OSError, ValueError, IndexError, tifffile.TiffFileError) as err:
        raise AnnotationError(
            f"cannot read the mask {path}: {err}; expected a Camelyon16 *_Mask.tif"
        ) from err
    return int(shape[1]), int(shape[0])


def _mask_levels(tif: Any) -> list[Any]:
    """The pages of a mask pyramid, finest first (series levels, else main pages)."""
    series = tif.series[0]
    levels = list(series.levels)
    if len(levels) == 1 and len(tif.pages) > 1:
        ratio = levels[0].shape[1] / levels[0].shape[0]
        pages = [
            p
            for p in tif.pages
            if p.shape and abs(p.shape[1] / p.shape[0] - ratio) < 0.05
        ]
        levels = sorted(pages, key=lambda p: -p.shape[1])
    return levels


def _centres(n: int, step: float, size: int) -> npt.NDArray[np.int64]:
    """Source indices of ``n`` destination pixel centres ``step`` source px apart."""
    index = np.floor((np.arange(n) + 0.5) * step).astype(np.int64)
    inside: npt.NDArray[np.int64] = index[index < size]
    return inside


def _fill_ring(
    local: npt.NDArray[np.bool_],
    coords: object,
    d: float,
    origin_rc: tuple[int, int],
    *,
    value: bool,
) -> None:
    """Set the pixels of ``local`` whose centres a closed ring encloses (scanlines).

    In coordinates where pixel centres are integers, each edge crosses the rows ``k``
    with ``min(r0, r1) <= k < max(r0, r1)`` (a vertex on a row counts once); on each
    row, the crossings sorted by column pair up (even-odd), and the centres from
    ``ceil(a)`` to ``floor(b)`` of each pair are set. Cost: the crossings, not the
    pixels times the vertices.
    """
    xy = np.asarray(coords, dtype=np.float64)
    r = xy[:, 1] / d - 0.5 - origin_rc[0]
    c = xy[:, 0] / d - 0.5 - origin_rc[1]
    r0, r1, c0, c1 = r[:-1], r[1:], c[:-1], c[1:]
    first = np.ceil(np.minimum(r0, r1)).astype(np.int64)
    counts = np.maximum(np.ceil(np.maximum(r0, r1)).astype(np.int64) - first, 0)
    if counts.sum() == 0:
        return
    edge = np.repeat(np.arange(len(r0)), counts)
    step = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = first[edge] + step
    cols = c0[edge] + (rows - r0[edge]) / (r1[edge] - r0[edge]) * (c1[edge] - c0[edge])
    order = np.lexsort((cols, rows))
    rows, cols = rows[order].reshape(-1, 2), cols[order].reshape(-1, 2)
    row = rows[:, 0]
    start = np.ceil(cols[:, 0]).astype(np.int64)
    stop = np.floor(cols[:, 1]).astype(np.int64) + 1
    height, width = local.shape
    keep = (row >= 0) & (row < height) & (stop > start)
    row, start, stop = (
        row[keep],
        np.clip(start[keep], 0, width),
        np.clip(stop[keep], 0, width),
    )
    cover = np.zeros((height, width + 1), dtype=np.int32)
    np.add.at(cover, (row, start), 1)
    np.add.at(cover, (row, stop), -1)
    local[np.cumsum(cover, axis=1)[:, :width] > 0] = value
