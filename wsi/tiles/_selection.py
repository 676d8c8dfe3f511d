"""Which grid patches have enough tissue: tissue mask + grid -> kept cells (private).

Pure maths on the mask lattice, re-exported by :mod:`wsi.tiles.tiler`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from wsi.geometry import CENTER_PX, MASK_CELL_PX, TileGrid

__all__ = ["patch_tissue_fraction", "select_patches"]


def patch_tissue_fraction(
    mask: npt.NDArray[np.bool_],
    grid: TileGrid,
    *,
    region: Literal["center", "patch"] = "center",
) -> npt.NDArray[np.float64]:
    """Tissue fraction of every grid patch's centre (or whole patch).

    Parameters
    ----------
    mask
        ``bool[H, W]`` tissue mask, ``MASK_CELL_PX`` target pixels per mask pixel,
        origin at the slide's top-left (``grid.mask_shape``).
    grid
        The patch grid.
    region
        ``"center"`` (the ``CENTER_PX`` square) or ``"patch"``.

    Returns
    -------
    numpy.ndarray
        ``float64[rows, cols]`` in [0, 1], exact area fractions (regions that do
        not align with mask pixels are weighted by overlap).

    Examples
    --------
    >>> from wsi.geometry import SlideGeometry
    >>> g = SlideGeometry(width_px=800, height_px=400, mpp_x=0.243, mpp_y=0.243,
    ...                   level_dimensions=((800, 400),))
    >>> grid = TileGrid(geometry=g, mpp=0.972, stride_px=96)   # 200 x 100 target px
    >>> mask = np.zeros(grid.mask_shape, bool)
    >>> mask[4:8, 4:8] = True                   # target px 32..64: patch (0, 0)'s centre
    >>> patch_tissue_fraction(mask, grid).tolist()
    [[1.0, 0.0]]
    >>> patch_tissue_fraction(mask, grid, region="patch").round(3).tolist()
    [[0.111, 0.0]]
    """
    rows, cols = grid.shape
    if region == "center":
        offset_px, size_px = (grid.tile_px - CENTER_PX) / 2, float(CENTER_PX)
    elif region == "patch":
        offset_px, size_px = 0.0, float(grid.tile_px)
    else:
        raise ValueError(f"region must be 'center' or 'patch', got {region!r}")
    if rows == 0 or cols == 0 or mask.size == 0:
        return np.zeros((rows, cols))
    # Integral image: sat[i, j] = tissue pixels above row i and left of column j.
    # It is bilinear inside each mask pixel, so linear interpolation of it gives
    # exact areas for rectangles that cut mask pixels.
    sat = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1))
    sat[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1)
    ys = (np.arange(rows) * grid.stride_px + offset_px) / MASK_CELL_PX
    xs = (np.arange(cols) * grid.stride_px + offset_px) / MASK_CELL_PX
    side = size_px / MASK_CELL_PX
    top = _interp_rows(sat, ys)
    bottom = _interp_rows(sat, ys + side)
    diff = bottom - top  # (rows, W+1): tissue in the row span, left of each column
    area = _interp_rows(diff.T, xs + side).T - _interp_rows(diff.T, xs).T
    fraction: npt.NDArray[np.float64] = np.clip(area / (side * side), 0.0, 1.0)
    return fraction


def _interp_rows(
    table: npt.NDArray[np.float64], at: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Linear interpolation of ``table``'s rows (at least 2) at fractional positions."""
    at = np.clip(at, 0, table.shape[0] - 1)
    lo = np.minimum(np.floor(at).astype(np.int64), table.shape[0] - 2)
    frac = (at - lo)[:, None]
    rows: npt.NDArray[np.float64] = table[lo] * (1 - frac) + table[lo + 1] * frac
    return rows


def select_patches(
    mask: npt.NDArray[np.bool_],
    grid: TileGrid,
    *,
    min_fraction: float,
    region: Literal["center", "patch"] = "center",
) -> npt.NDArray[np.int64]:
    """``int64[N, 2]`` ``(row, col)`` of the kept patches, row-major."""
    fraction = patch_tissue_fraction(mask, grid, region=region)
    keep = fraction >= min_fraction - 1e-9
    if min_fraction <= 0:
        keep = fraction > 0
    return np.argwhere(keep).astype(np.int64)
