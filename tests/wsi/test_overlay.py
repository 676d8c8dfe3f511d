"""The overlay: heatmap over the thumbnail, tissue outline, tumour polygons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.wsi.heatmap_cases import (
    COLS,
    CONTRACT_CASES,
    ROWS,
    expected_downsample,
    known_heatmap,
    make_grid,
)
from wsi.colormap import TISSUE_OUTLINE_RGB, TUMOR_OUTLINE_RGB, colourise
from wsi.export import PolygonParams, heatmap_regions
from wsi.geometry import MASK_CELL_PX
from wsi.overlay import heatmap_on_thumbnail, render_overlay, save_overlay_png

PINK = (230, 180, 210)


def _inputs(stride_px: int = 32, mpp: float = 0.243) -> dict[str, Any]:
    grid = make_grid(stride_px=stride_px, mpp=mpp)
    downsample = MASK_CELL_PX * grid.downsample
    width, height = grid.target_size_px
    shape = (height // MASK_CELL_PX, width // MASK_CELL_PX)
    thumbnail = np.empty((*shape, 3), np.uint8)
    thumbnail[:] = PINK
    mask = np.zeros(shape, bool)
    mask[2:-2, 2:-2] = True
    heatmap = known_heatmap()
    regions = heatmap_regions(
        heatmap,
        grid=grid,
        params=PolygonParams(smooth_sigma_um=0, min_area_um2=0, max_hole_um2=0),
    )
    return {
        "thumbnail": thumbnail,
        "tissue_mask": mask,
        "heatmap": heatmap,
        "grid": grid,
        "thumbnail_downsample": downsample,
        "regions": regions,
    }


@pytest.mark.parametrize(("stride_px", "mpp"), CONTRACT_CASES)
def test_thumbnail_pixels_take_the_cell_under_their_centre(
    stride_px: int, mpp: float
) -> None:
    args = _inputs(stride_px, mpp)
    height, width = args["tissue_mask"].shape
    sampled = heatmap_on_thumbnail(
        args["heatmap"],
        grid=args["grid"],
        shape=(height, width),
        thumbnail_downsample=args["thumbnail_downsample"],
    )
    # The contract, independently: cells of s * ds level-0 px from (96 - s) / 2 * ds.
    ds = expected_downsample(mpp)
    d = MASK_CELL_PX * ds
    col = np.floor(
        ((np.arange(width) + 0.5) * d / ds - (96 - stride_px) / 2) / stride_px
    )
    row = np.floor(
        ((np.arange(height) + 0.5) * d / ds - (96 - stride_px) / 2) / stride_px
    )
    for y in range(height):
        for x in range(width):
            r, c = int(row[y]), int(col[x])
            if 0 <= r < ROWS and 0 <= c < COLS:
                expected = args["heatmap"][r, c]
                assert np.array_equal(sampled[y, x], expected, equal_nan=True), (y, x)
            else:
                assert np.isnan(sampled[y, x])


def test_overlay_blends_outlines_and_draws_polygons(tmp_path: Path) -> None:
    from PIL import Image

    args = _inputs()
    path = tmp_path / "overlay.png"
    save_overlay_png(**args, path=path, alpha=0.45)
    with Image.open(path) as image:
        out = np.asarray(image.convert("RGB"))
    assert out.shape == args["thumbnail"].shape
    heatmap = args["heatmap"]
    # Stride 32 at mask scale: cells are 4 px, cell (i, j) starts at pixel 4 + 4 * j.

    def centre(row: int, col: int) -> np.ndarray:
        return np.asarray(out[4 + 4 * row + 2, 4 + 4 * col + 2])

    # Tumour cell (6, 7): its outline runs along its right and bottom edges only.
    expected = np.rint(0.55 * np.array(PINK) + 0.45 * colourise(heatmap[6, 7]))
    assert np.abs(out[4 + 24 + 1, 4 + 28 + 1].astype(int) - expected).max() <= 1
    expected = np.rint(0.55 * np.array(PINK) + 0.45 * colourise(heatmap[8, 6]))
    assert (
        np.abs(centre(8, 6).astype(int) - expected).max() <= 1
    )  # low cell, blended too
    assert tuple(centre(5, 6)) == PINK  # a cell without a patch is not tinted
    assert tuple(out[2, 5]) == TISSUE_OUTLINE_RGB  # the mask's first row and column ...
    assert tuple(out[10, 2]) == TISSUE_OUTLINE_RGB
    assert tuple(out[1, 1]) == PINK  # ... and outside it, the thumbnail as it was
    # The single tumour cell (6, 10) spans pixels x 44..47, y 28..31: its outline runs
    # along its edges.
    outline = (out == TUMOR_OUTLINE_RGB).all(axis=-1)
    assert outline[28:32, 43:45].any()
    assert outline[28:32, 47:49].any()
    assert outline[27:29, 44:48].any()
    assert outline[31:33, 44:48].any()
    assert not outline[29:31, 45:47].any()


def test_overlay_draws_holes(tmp_path: Path) -> None:
    args = _inputs()
    out = render_overlay(**args)
    outline = (out == TUMOR_OUTLINE_RGB).all(axis=-1)
    # The NaN hole at cell (5, 6): pixels x 28..31, y 24..27, outlined all round.
    assert outline[24:28, 27:29].any()
    assert outline[24:28, 31:33].any()


def test_overlay_accepts_rgba_and_no_regions() -> None:
    args = _inputs()
    args["thumbnail"] = np.dstack(
        [args["thumbnail"], np.full(args["tissue_mask"].shape, 255, np.uint8)]
    )
    args["regions"] = []
    out = render_overlay(**args)
    assert out.shape[-1] == 3
    assert not (out == TUMOR_OUTLINE_RGB).all(axis=-1).any()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"tissue_mask": np.zeros((3, 3), bool)}, "same height and width"),
        ({"thumbnail": np.zeros((3, 3), np.uint8)}, "thumbnail must be uint8"),
        ({"alpha": 1.5}, "alpha"),
        ({"heatmap": np.zeros((2, 2), np.float32)}, "does not match the grid"),
        ({"thumbnail_downsample": 0.0}, "thumbnail_downsample"),
    ],
)
def test_overlay_rejects_bad_inputs(change: dict[str, Any], match: str) -> None:
    args = {**_inputs(), **change}
    with pytest.raises(ValueError, match=match):
        render_overlay(**args)
