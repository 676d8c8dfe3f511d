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
from wsi.formats.export import PolygonParams, heatmap_regions
from wsi.geometry import MASK_CELL_PX
from wsi.heatmap.colormap import (
    LEGEND_BACKGROUND_RGB,
    TINT_FLOOR,
    TISSUE_OUTLINE_RGB,
    TUMOR_OUTLINE_RGB,
    tint,
)
from wsi.heatmap.overlay import (
    LEGEND_MIN_WIDTH_PX,
    add_legend,
    format_length_um,
    heatmap_on_thumbnail,
    legend_labels,
    render_overlay,
    save_overlay_png,
    scale_bar_um,
)

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
    save_overlay_png(**args, path=path)
    with Image.open(path) as image:
        out = np.asarray(image.convert("RGB"))
    assert out.shape == args["thumbnail"].shape
    heatmap = args["heatmap"]
    # Stride 32 at mask scale: cells are 4 px, cell (i, j) starts at pixel 4 + 4 * j.

    def centre(row: int, col: int) -> np.ndarray:
        return np.asarray(out[4 + 4 * row + 2, 4 + 4 * col + 2])

    def blended(value: float) -> np.ndarray:
        rgb, opacity = tint(np.float32(value))
        return np.asarray(np.rint((1 - opacity) * np.array(PINK) + opacity * rgb))

    # Tumour cell (6, 7): its outline runs along its right and bottom edges only.
    expected = blended(heatmap[6, 7])
    assert np.abs(out[4 + 24 + 1, 4 + 28 + 1].astype(int) - expected).max() <= 1
    low = next(  # a scored cell above the floor but under 0.5: tinted too
        (r, c) for r in range(2, 7) for c in range(2, 10) if 0.25 < heatmap[r, c] < 0.5
    )
    assert np.abs(centre(*low).astype(int) - blended(heatmap[low])).max() <= 1
    assert tuple(centre(*low)) != PINK
    below = next(  # ... and one under the floor keeps its H&E colour
        (r, c) for r in range(2, 7) for c in range(2, 10) if heatmap[r, c] < TINT_FLOOR
    )
    assert tuple(centre(*below)) == PINK
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
        ({"heatmap": np.zeros((2, 2), np.float32)}, "does not match the grid"),
        ({"thumbnail_downsample": 0.0}, "thumbnail_downsample"),
    ],
)
def test_overlay_rejects_bad_inputs(change: dict[str, Any], match: str) -> None:
    args = {**_inputs(), **change}
    with pytest.raises(ValueError, match=match):
        render_overlay(**args)


def _uniform(value: float, colour: tuple[int, int, int] = PINK) -> np.ndarray:
    """The overlay of a heatmap at ``value`` everywhere over a ``colour`` thumbnail."""
    args = _inputs()
    args["heatmap"] = np.full_like(args["heatmap"], value)
    args["thumbnail"][:] = colour
    args["regions"] = []
    out = render_overlay(**args)
    return np.asarray(out[4 + 4 * 4 + 2, 4 + 4 * 6 + 2], dtype=int)  # cell (4, 6)


@pytest.mark.parametrize("colour", [PINK, (120, 60, 150), (245, 240, 245)])
def test_low_probability_leaves_the_he_colours(colour: tuple[int, int, int]) -> None:
    assert tuple(_uniform(0.05, colour)) == colour
    assert tuple(_uniform(TINT_FLOOR - 0.01, colour)) == colour


@pytest.mark.parametrize("colour", [PINK, (120, 60, 150), (245, 240, 245)])
def test_high_probability_is_tinted_red(colour: tuple[int, int, int]) -> None:
    r, g, b = _uniform(0.95, colour)
    assert r > 1.8 * g, (r, g, b)
    assert r > 1.5 * b, (r, g, b)
    assert r - max(g, b) > 60, (r, g, b)


def test_tint_opacity_rises_with_probability() -> None:
    # Over white, each channel's distance from 255 is opacity * (255 - tint colour);
    # the tint's own colour, from the LUT, gives the opacity back.
    values = np.array([TINT_FLOOR, 0.35, 0.5, 0.75, 0.95, 1.0], np.float32)
    rgb, opacity = tint(values)
    assert np.all(np.diff(opacity) > 0)
    assert opacity[0] > 0.2
    assert opacity[-1] <= 0.65
    white = (255, 255, 255)
    seen = [
        (255 - _uniform(float(v), white))[1] / (255 - float(c[1]))
        for v, c in zip(values, rgb, strict=True)
    ]
    assert np.all(np.diff(seen) > 0), seen
    np.testing.assert_allclose(seen, opacity, atol=0.01)


def test_tint_colour_runs_from_yellow_orange_to_red() -> None:
    rgb, _ = tint(np.array([TINT_FLOOR, 1.0], np.float32))
    floor, top = rgb.astype(int)
    assert floor[0] > 240  # yellow-orange
    assert 150 < floor[1] < 230
    assert floor[2] < 140
    assert top[0] > 150  # deep red
    assert top[1] < 30
    assert top[2] < 60


def test_nan_and_a_higher_floor_are_not_tinted() -> None:
    _, opacity = tint(np.array([np.nan, 0.3, 0.6], np.float32), floor=0.5)
    assert opacity.tolist()[:2] == [0.0, 0.0]
    assert opacity[2] == tint(np.float32(0.6))[1]


@pytest.mark.parametrize(
    ("width_px", "um_per_px", "expected_um"),
    [
        (1080, 1.5, 200.0),  # 1620 um wide
        (1080, 7.8, 1000.0),  # 8.4 mm
        (1200, 7.8, 2000.0),  # 9.4 mm
        (2000, 7.8, 2000.0),  # 15.6 mm
        (2000, 20.0, 5000.0),  # 40 mm
        (500, 2.0, 200.0),  # 1 mm
        (800, 1.0, 100.0),
        (800, 3.0, 500.0),
    ],
)
def test_scale_bar_is_round_and_a_fifth_to_an_eighth_of_the_width(
    width_px: int, um_per_px: float, expected_um: float
) -> None:
    length_um = scale_bar_um(width_px, um_per_px)
    assert length_um == expected_um
    fraction = length_um / (width_px * um_per_px)
    assert 1 / 10 < fraction < 1 / 4, fraction


def test_scale_bar_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="um_per_px"):
        scale_bar_um(100, 0.0)


def test_length_labels() -> None:
    assert [format_length_um(v) for v in (100, 500, 1000, 2000, 5000)] == [
        "100 µm",
        "500 µm",
        "1 mm",
        "2 mm",
        "5 mm",
    ]


def _black_runs(strip: np.ndarray) -> set[int]:
    """Lengths of the horizontal runs of black pixels in an image."""
    runs = set()
    for row in (strip == 0).all(axis=-1):
        padded = np.concatenate([[0], row.astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(padded))
        runs.update((edges[1::2] - edges[::2]).tolist())
    return runs


def test_legend_has_a_scale_bar_of_the_expected_length() -> None:
    image = np.full((600, 1080, 3), 200, np.uint8)
    out = add_legend(image, um_per_px=7.8)
    assert out.shape[1] == 1080
    assert out.shape[0] > 600
    np.testing.assert_array_equal(out[:600], image)
    strip = out[600:]
    assert round(1000 / 7.8) in _black_runs(strip)  # 1 mm: 128 px
    assert round(1000 / 7.8) not in _black_runs(add_legend(image)[600:])


def test_legend_ramp_is_neutral_below_the_floor_then_reddens() -> None:
    out = add_legend(np.full((100, 1000, 3), 200, np.uint8))
    strip = out[100:].astype(int)
    neutral = (strip == LEGEND_BACKGROUND_RGB).all(axis=-1)
    row = int(np.argmax(neutral.sum(axis=1)))  # a row through the ramp
    start, bar_w = int(np.argmax(neutral[row])), 1000 // 3
    untinted = int(np.argmin(neutral[row, start:]))  # the first run of neutral
    assert untinted == pytest.approx(TINT_FLOOR * bar_w, abs=2)
    redness = (
        strip[row, start : start + bar_w, 0] - strip[row, start : start + bar_w, 1]
    )
    assert redness[-1] > redness[bar_w // 2] > redness[int(0.3 * bar_w)] >= 0


def test_model_name_reaches_the_legend() -> None:
    labels = legend_labels(model_name="efficientnet-lite0")
    assert labels["model"] == "model: efficientnet-lite0"
    assert "model" not in legend_labels()
    assert labels["ramp"] == f"tumour probability (no tint below {TINT_FLOOR:g})"
    image = np.full((300, 900, 3), 200, np.uint8)
    plain = add_legend(image, um_per_px=2.0)
    named = add_legend(image, um_per_px=2.0, model_name="efficientnet-lite0")
    assert plain.shape == named.shape
    assert (plain != named).any()
    np.testing.assert_array_equal(plain[:300], named[:300])


def test_legend_wraps_on_narrow_images_and_skips_tiny_ones() -> None:
    wide = add_legend(np.zeros((50, 1200, 3), np.uint8), um_per_px=1.0)
    narrow = add_legend(np.zeros((50, 400, 3), np.uint8), um_per_px=1.0)
    assert narrow.shape[0] - 50 > wide.shape[0] - 50  # a second band
    tiny = np.zeros((50, LEGEND_MIN_WIDTH_PX - 1, 3), np.uint8)
    assert add_legend(tiny, um_per_px=1.0, model_name="m") is tiny


def test_save_overlay_png_prints_the_model_name(tmp_path: Path) -> None:
    from PIL import Image

    args = _inputs()
    big = np.repeat(np.repeat(args["thumbnail"], 10, axis=0), 10, axis=1)
    args["thumbnail"] = big
    args["tissue_mask"] = np.repeat(np.repeat(args["tissue_mask"], 10, 0), 10, 1)
    args["thumbnail_downsample"] /= 10
    images = []
    for name in (None, "my-model"):
        path = tmp_path / f"{name}.png"
        save_overlay_png(**args, path=path, model_name=name)
        with Image.open(path) as image:
            images.append(np.asarray(image.convert("RGB")))
    assert images[0].shape == images[1].shape
    assert images[0].shape[0] > big.shape[0]  # the legend strip
    assert (images[0] != images[1]).any()


def test_lesions_counted_for_the_class_are_circled_and_keyed() -> None:
    """Each staging lesion gets a blue circle of its longest diameter round its
    centre; the legend then explains the circles in their colour."""
    from wsi.heatmap.colormap import LESION_MARKER_RGB
    from wsi.regions.lesion_class import StagingParams, staging_lesions

    args = _inputs()
    grid = args["grid"]
    heatmap = np.full(grid.shape, 0.05, np.float32)
    heatmap[4:7, 8:11] = 0.99  # a 3 x 3 cell lesion (any size counts here)
    every = StagingParams(min_confident_area_um2=0)
    lesions = staging_lesions(heatmap, grid=grid, params=every)
    assert len(lesions) == 1
    plain = render_overlay(**(args | {"heatmap": heatmap}))
    marked = render_overlay(**(args | {"heatmap": heatmap}), lesions=lesions)
    blue = (marked == LESION_MARKER_RGB).all(axis=-1)
    assert blue.any()
    assert not (plain == LESION_MARKER_RGB).all(axis=-1).any()
    # The circle is centred on the lesion: its blue pixels balance round the centre.
    ys, xs = np.nonzero(blue)
    cx, cy = (np.asarray(lesions[0].l0_xy) / args["thumbnail_downsample"]).tolist()
    assert abs(xs.mean() - cx) < 2
    assert abs(ys.mean() - cy) < 2
    labels = legend_labels(lesions=True)
    assert labels["lesions"].endswith("lesions counted for the node class")
    image = np.full((300, 900, 3), 200, np.uint8)
    keyed = add_legend(image, um_per_px=2.0, lesion_key=True)
    assert (keyed[300:] == LESION_MARKER_RGB).all(axis=-1).any()
    assert not (add_legend(image, um_per_px=2.0) == LESION_MARKER_RGB).all(-1).any()
