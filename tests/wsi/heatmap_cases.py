"""Shared cases of the heatmap, export and overlay tests: grids and a known heatmap.

The geometry contract is written out here independently of `TileGrid`, straight from
the issue: with patch 96 and stride s, heatmap cell (i, j) is the s x s target-pixel
square from (x, y) = (j*s + (96-s)/2, i*s + (96-s)/2); level-0 = target x downsample.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from shapely.geometry import Polygon, box

from wsi.geometry import PCAM_MPP, SlideGeometry, TileGrid

#: (stride_px, level-0 mpp): strides 96, 32, 48, at 0.243 (exact level, downsample 4)
#: and 0.226 (Utrecht: no level matches, downsample 4.3009 is not an integer).
CONTRACT_CASES = [(s, mpp) for s in (96, 32, 48) for mpp in (0.243, 0.226)]

#: The known tumour cells of `known_heatmap` (9 x 12): a ring around a 1-cell hole, an
#: L, a diagonal pair (one region, two parts), a single cell, a 3 x 3 block whose centre
#: has no patch (a NaN hole).
TUMOUR_CELLS = (
    [(1, 1), (1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2), (3, 3)]
    + [(5, 1), (6, 1), (7, 1), (7, 2), (7, 3)]
    + [(1, 7), (2, 8)]
    + [(6, 10)]
    + [(r, c) for r in (4, 5, 6) for c in (5, 6, 7) if (r, c) != (5, 6)]
)
NAN_CELLS = [(0, 10), (0, 11), (5, 6), (8, 0)]
ROWS, COLS = 9, 12


def expected_downsample(mpp: float) -> float:
    """Level-0 px per target px: PCam's level 2 exactly at 0.243, else resampled."""
    return 4.0 if mpp == 0.243 else PCAM_MPP / mpp


def make_grid(
    *, stride_px: int, mpp: float, rows: int = ROWS, cols: int = COLS
) -> TileGrid:
    """A grid of exactly ``rows x cols`` cells on a 2-level slide at ``mpp``."""
    ds = expected_downsample(mpp)
    width = 4 * math.ceil(((cols - 1) * stride_px + 96 + stride_px / 2) * ds / 4)
    height = 4 * math.ceil(((rows - 1) * stride_px + 96 + stride_px / 2) * ds / 4)
    geometry = SlideGeometry(
        width_px=width,
        height_px=height,
        mpp_x=mpp,
        mpp_y=mpp,
        level_dimensions=((width, height), (width // 4, height // 4)),
    )
    grid = TileGrid(geometry=geometry, stride_px=stride_px)
    if grid.shape != (rows, cols) or not math.isclose(grid.downsample, ds):
        raise AssertionError(f"test grid is {grid.shape}, ds {grid.downsample}")
    return grid


def contract_box(row: int, col: int, *, stride_px: int, mpp: float) -> Polygon:
    """Level-0 square of heatmap cell (row, col), from the contract's formula."""
    ds = expected_downsample(mpp)
    offset = (96 - stride_px) / 2
    x0 = (col * stride_px + offset) * ds
    y0 = (row * stride_px + offset) * ds
    return box(x0, y0, x0 + stride_px * ds, y0 + stride_px * ds)


def known_heatmap() -> npt.NDArray[np.float32]:
    """9 x 12 heatmap: `TUMOUR_CELLS` >= 0.6 (all distinct), others < 0.5, NaN holes."""
    rng = np.random.default_rng(7)
    heatmap = rng.uniform(0.05, 0.45, size=(ROWS, COLS)).astype(np.float32)
    for k, (r, c) in enumerate(TUMOUR_CELLS):
        heatmap[r, c] = 0.6 + 0.012 * k
    for r, c in NAN_CELLS:
        heatmap[r, c] = np.nan
    return heatmap
