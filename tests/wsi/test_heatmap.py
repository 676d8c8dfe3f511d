"""Stitching, the heatmap's geometry attributes, its TIFF, PNG and zarr forms."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.wsi.heatmap_cases import (
    COLS,
    CONTRACT_CASES,
    ROWS,
    contract_box,
    expected_downsample,
    known_heatmap,
    make_grid,
)
from wsi.errors import OutputError
from wsi.heatmap.colormap import NO_DATA_RGB, colourise
from wsi.heatmap.stitching import save_heatmap_png, stitch, write_heatmap_tiff
from wsi.heatmap.tiff import tiff_layout
from wsi.store.heatmap_section import (
    heatmap_attrs,
    read_heatmap_zarr,
    write_heatmap_zarr,
)

# --- stitch --------------------------------------------------------------------------


def test_stitch_places_each_score_in_its_cell() -> None:
    rc = np.array([[0, 0], [2, 3], [1, 1]], dtype=np.int64)
    heatmap = stitch(np.array([0.1, 0.9, 0.5], np.float32), rc, shape=(3, 4))
    assert heatmap.dtype == np.float32
    assert heatmap.shape == (3, 4)
    assert heatmap[0, 0] == np.float32(0.1)
    assert heatmap[2, 3] == np.float32(0.9)
    assert heatmap[1, 1] == np.float32(0.5)
    assert np.isnan(heatmap).sum() == 12 - 3


def test_stitch_of_nothing_is_all_nan() -> None:
    heatmap = stitch(np.zeros(0, np.float32), np.zeros((0, 2), np.int64), shape=(2, 2))
    assert np.isnan(heatmap).all()


@pytest.mark.parametrize(
    ("rc", "match"),
    [
        ([[0, 0], [0, 0]], r"repeats 1 cells, e.g. \(row, col\) = \(0, 0\)"),
        ([[0, 0], [3, 0]], r"outside shape=\(3, 4\), e.g. \(row, col\) = \(3, 0\)"),
        ([[0, 0], [0, -1]], "outside"),
    ],
)
def test_stitch_rejects_bad_indices(rc: list[list[int]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        stitch(np.array([0.1, 0.2]), np.array(rc, dtype=np.int64), shape=(3, 4))


def test_stitch_rejects_mismatched_lengths_and_float_indices() -> None:
    with pytest.raises(ValueError, match="3 values but grid_rc has 2 rows"):
        stitch(np.zeros(3), np.zeros((2, 2), np.int64), shape=(2, 2))
    with pytest.raises(ValueError, match="integer array"):
        stitch(np.zeros(2), np.zeros((2, 2)), shape=(2, 2))


def test_stitch_uses_the_grid_numbering_of_tile_grid() -> None:
    grid = make_grid(stride_px=32, mpp=0.243)
    rows, cols = grid.shape
    rc = np.stack(np.nonzero(np.ones((rows, cols), bool)), axis=1).astype(np.int64)
    scores = np.arange(rows * cols, dtype=np.float32)
    heatmap = stitch(scores, rc, shape=grid.shape)
    # The patch at coords()[k] (row-major) scores k and sits at heatmap cell k.
    xy = grid.coords()
    k = 17
    row, col = divmod(k, cols)
    assert heatmap[row, col] == k
    assert tuple(xy[k]) == (round(col * 32 * 4.0), round(row * 32 * 4.0))


# --- the geometry contract -------------------------------------------------------------


@pytest.mark.parametrize(("stride_px", "mpp"), CONTRACT_CASES)
def test_cells_map_to_level0_as_the_contract_says(stride_px: int, mpp: float) -> None:
    grid = make_grid(stride_px=stride_px, mpp=mpp)
    attrs = heatmap_attrs(grid)
    json.dumps(attrs)  # JSON-able
    ds = expected_downsample(mpp)
    assert attrs["cell_size_l0_px"] == pytest.approx(stride_px * ds)
    assert attrs["shape"] == [ROWS, COLS]
    origin_x, origin_y = attrs["origin_l0_px"]
    size = attrs["cell_size_l0_px"]
    for row in range(ROWS):
        for col in range(COLS):
            expected = contract_box(row, col, stride_px=stride_px, mpp=mpp).bounds
            x0, y0 = grid.cell_to_level0([[row, col]])[0]
            assert (x0, y0) == pytest.approx(expected[:2])
            from_attrs = (origin_x + col * size, origin_y + row * size)
            assert from_attrs == pytest.approx(expected[:2])
            back = grid.level0_to_heatmap([[x0 + 1e-6, y0 + 1e-6]])[0]
            assert tuple(np.floor(back).astype(int)) == (col, row)
    if stride_px == 32:  # the PCam centre cell: 32 x 32 target px from (32, 32)
        assert attrs["cell_offset_px"] == 32
    assert attrs["cell_size_um"][0] == pytest.approx(stride_px * ds * mpp)


def test_heatmap_zarr_round_trip_keeps_values_and_attrs() -> None:
    import zarr

    grid = make_grid(stride_px=48, mpp=0.226)
    heatmap = known_heatmap()
    root = zarr.group(zarr.storage.MemoryStore())
    write_heatmap_zarr(root, heatmap, grid=grid)
    np.testing.assert_array_equal(read_heatmap_zarr(root), heatmap)
    stored: Any = dict(root.attrs)["heatmap"]
    assert stored == json.loads(json.dumps(heatmap_attrs(grid)))
    assert dict(root["heatmap"].attrs)["origin_l0_px"] == stored["origin_l0_px"]
    write_heatmap_zarr(root, np.zeros_like(heatmap), grid=grid)  # replaces
    assert not read_heatmap_zarr(root).any()


# --- heatmap.tif ------------------------------------------------------------------------


@pytest.mark.parametrize(("stride_px", "mpp"), CONTRACT_CASES)
def test_tiff_lines_up_with_the_slide_cell_by_cell(
    stride_px: int, mpp: float, tmp_path: Path
) -> None:
    openslide = pytest.importorskip("openslide")
    grid = make_grid(stride_px=stride_px, mpp=mpp)
    heatmap = known_heatmap()
    path = tmp_path / "heatmap.tif"
    write_heatmap_tiff(heatmap, path, grid=grid)
    layout = tiff_layout(grid)
    with openslide.OpenSlide(str(path)) as slide:
        assert slide.properties["openslide.vendor"] == "generic-tiff"
        mpp_tiff = float(slide.properties["openslide.mpp-x"])
        assert mpp_tiff == pytest.approx(layout.pixel_l0 * mpp, rel=1e-6)
        assert float(slide.properties["openslide.mpp-y"]) == pytest.approx(mpp_tiff)
        width, height = slide.dimensions
        # The TIFF covers the slide: same physical size within one TIFF pixel.
        assert 0 <= width * layout.pixel_l0 - grid.geometry.width_px < layout.pixel_l0
        assert 0 <= height * layout.pixel_l0 - grid.geometry.height_px < layout.pixel_l0
        pixels = np.asarray(slide.read_region((0, 0), 0, (width, height)))[..., :3]
    colours = colourise(heatmap)
    k = layout.cell_px
    for row in range(ROWS):
        for col in range(COLS):
            # Where the contract puts the cell on the slide, in TIFF pixels.
            x0, y0, x1, y1 = contract_box(row, col, stride_px=stride_px, mpp=mpp).bounds
            px = np.array([x0, x1, y0, y1]) / layout.pixel_l0
            assert px == pytest.approx(np.rint(px), abs=1e-6)  # on pixel edges
            c0, c1, r0, r1 = np.rint(px).astype(int)
            assert (c1 - c0, r1 - r0) == (k, k)
            block = pixels[r0:r1, c0:c1].reshape(-1, 3)
            assert (block == colours[row, col]).all(), (row, col)
    # Outside the grid: no-data colour.
    assert (pixels[0, 0] == NO_DATA_RGB).all() or layout.pad_px == 0


def test_tiff_is_a_tiled_pyramid_with_resolution_in_px_per_cm(tmp_path: Path) -> None:
    import tifffile

    grid = make_grid(stride_px=32, mpp=0.243, rows=700, cols=900)
    heatmap = np.random.default_rng(0).random(grid.shape, dtype=np.float32)
    heatmap[:10] = np.nan
    path = tmp_path / "heatmap.tif"
    write_heatmap_tiff(heatmap, path, grid=grid)
    with tifffile.TiffFile(path) as tif:
        pages = [page for page in tif.pages if isinstance(page, tifffile.TiffPage)]
        # 903 -> 452 -> 226 px wide: halved until one tile holds it.
        assert len(pages) == 3
        sizes = [(p.imagewidth, p.imagelength) for p in pages]
        layout = tiff_layout(grid)
        assert sizes[0] == (layout.width_px, layout.height_px) == (903, 703)
        for page, (w, _) in zip(pages, sizes, strict=True):
            assert page.is_tiled
            assert page.tilewidth == 256
            assert page.photometric == tifffile.PHOTOMETRIC.RGB
            assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
            assert page.tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
            num, den = page.tags["XResolution"].value
            um_per_px = 1e4 / (num / den)
            assert um_per_px == pytest.approx(128 * 0.243 * 903 / w, rel=1e-6)
        # Reduced levels keep the maximum of each block: a hot cell stays visible.
        assert (pages[0].asarray()[5, 5] == NO_DATA_RGB).all()


def test_tiff_reduced_levels_keep_hot_spots(tmp_path: Path) -> None:
    openslide = pytest.importorskip("openslide")
    grid = make_grid(stride_px=32, mpp=0.243, rows=600, cols=600)
    heatmap = np.zeros(grid.shape, np.float32)
    heatmap[301, 301] = 1.0
    path = tmp_path / "heatmap.tif"
    write_heatmap_tiff(heatmap, path, grid=grid)
    with openslide.OpenSlide(str(path)) as slide:
        level = slide.level_count - 1
        image = np.asarray(
            slide.read_region((0, 0), level, slide.level_dimensions[level])
        )
    assert (image[..., :3] == colourise(np.float32(1.0))).all(axis=-1).sum() == 1


def test_tiff_rejects_a_heatmap_of_another_grid(tmp_path: Path) -> None:
    grid = make_grid(stride_px=32, mpp=0.243)
    with pytest.raises(ValueError, match="does not match the grid"):
        write_heatmap_tiff(np.zeros((2, 2), np.float32), tmp_path / "h.tif", grid=grid)


def test_tiff_layout_makes_the_cell_offset_whole() -> None:
    assert tiff_layout(make_grid(stride_px=96, mpp=0.243)).pad_px == 0
    layout = tiff_layout(make_grid(stride_px=32, mpp=0.226))
    assert (layout.cell_px, layout.pad_px) == (1, 1)
    layout = tiff_layout(make_grid(stride_px=48, mpp=0.226))  # offset half a cell
    assert (layout.cell_px, layout.pad_px) == (2, 1)
    assert layout.pixel_l0 == pytest.approx(24 * 0.972 / 0.226)


# --- heatmap.png --------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_png_is_written_with_a_colour_bar(
    threshold: float | None, tmp_path: Path
) -> None:
    from PIL import Image

    path = tmp_path / "sub" / "heatmap.png"
    save_heatmap_png(known_heatmap(), path, threshold=threshold, title="Tumor_001")
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"))
    assert width > height > 300  # the map (at least 400 px a side) and its colour bar
    grey = (pixels == NO_DATA_RGB).all(axis=-1)
    assert grey.any()  # NaN cells are drawn in the no-data grey
    assert [p.name for p in path.parent.iterdir()] == ["heatmap.png"]


def test_png_outlines_the_cells_it_is_given(tmp_path: Path) -> None:
    """The stages pass the polygons' region mask: the PNG outlines what is exported."""
    from PIL import Image

    heatmap = np.full((20, 20), 0.1, np.float32)
    heatmap[5:15, 5:15] = 0.9
    heatmap[9, 9] = 0.1  # a one-cell hole: raw cells outline it, a filled region not

    def white(outline: np.ndarray | None) -> int:
        path = tmp_path / "h.png"
        save_heatmap_png(heatmap, path, threshold=0.5, outline=outline)
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        return int((pixels == 255).all(axis=-1).sum())

    filled = heatmap >= 0.5
    filled[9, 9] = True
    nothing, region, raw = white(np.zeros_like(filled)), white(filled), white(None)
    assert nothing < region < raw  # the hole's outline is drawn only from raw cells
    with pytest.raises(ValueError, match="outline must have the heatmap's shape"):
        save_heatmap_png(heatmap, tmp_path / "h.png", threshold=0.5, outline=filled[:5])


@pytest.mark.parametrize(
    "heatmap",
    [
        np.full((5, 7), np.nan, np.float32),
        np.zeros((1, 1), np.float32),
        np.full((3, 3), 0.9, np.float32),
    ],
)
def test_png_handles_empty_tiny_and_flat_heatmaps(
    heatmap: np.ndarray, tmp_path: Path
) -> None:
    save_heatmap_png(heatmap, tmp_path / "h.png", threshold=0.5)
    assert (tmp_path / "h.png").stat().st_size > 0


def test_png_reports_an_unwritable_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x", encoding="ascii")
    with pytest.raises(OutputError, match="cannot write"):
        save_heatmap_png(known_heatmap(), tmp_path / "file" / "h.png")


def test_png_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2-D"):
        save_heatmap_png(np.zeros(3, np.float32), tmp_path / "h.png")
    with pytest.raises(ValueError, match="threshold"):
        save_heatmap_png(
            np.zeros((2, 2), np.float32), tmp_path / "h.png", threshold=2.0
        )


def test_the_colour_map_runs_blue_to_red() -> None:
    low, high = colourise(np.array([0.0, 1.0], np.float32))
    assert low[2] > low[0]
    assert high[0] > high[2]
    assert math.isclose(
        len({tuple(c) for c in colourise(np.linspace(0, 1, 256))}), 256, abs_tol=40
    )
