"""The evaluation mask: rasterising at level 5, growth, holes, 8-connectivity, ITC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from shapely.geometry import Polygon, box

from wsi.errors import AnnotationError
from wsi.evaluation.masks import (
    EvalGrid,
    evaluation_mask,
    mask_tiff_size,
    rasterize_polygons,
    read_mask_tiff,
)

GRID = EvalGrid(downsample=32.0, shape=(120, 120), mpp=7.776)


def _bar(n_px: int, *, row: int = 10, col: int = 50) -> Polygon:
    """A 1-pixel-wide vertical bar of ``n_px`` evaluation pixels, in level-0 px."""
    return box(col * 32, row * 32, (col + 1) * 32, (row + n_px) * 32)


def _major_axis_px(region: np.ndarray) -> float:
    """4 sqrt(largest eigenvalue of the pixel covariance): the ellipse's major axis."""
    rows, cols = np.nonzero(region)
    cov = np.cov(np.stack([rows, cols]).astype(float), bias=True)
    return float(4 * np.sqrt(np.linalg.eigvalsh(cov).max()))


def _grow_by_hand(truth: np.ndarray, radius_px: float) -> np.ndarray:
    """Pixels within ``radius_px`` (strictly) of a tumour pixel, by brute force."""
    out = np.zeros_like(truth)
    reach = int(np.ceil(radius_px))
    for r, c in zip(*np.nonzero(truth), strict=True):
        for dr in range(-reach, reach + 1):
            for dc in range(-reach, reach + 1):
                if dr * dr + dc * dc < radius_px**2:
                    out[r + dr, c + dc] = True
    return out


def test_grid_of_a_camelyon16_slide_is_level_5() -> None:
    grid = EvalGrid.for_slide(width_px=97792, height_px=221184, slide_mpp=0.243)
    assert grid.downsample == 32
    assert grid.shape == (6912, 3056)
    assert grid.mpp == pytest.approx(7.776)


def test_grid_of_another_scanner_keeps_7776_um_pixels() -> None:
    grid = EvalGrid.for_slide(width_px=10000, height_px=5000, slide_mpp=0.226)
    assert grid.mpp == pytest.approx(7.776)
    assert grid.downsample == pytest.approx(7.776 / 0.226)
    # within 1% of 0.243: level 5 as is, its pixel 32 x the slide's um/px
    near = EvalGrid.for_slide(width_px=100, height_px=100, slide_mpp=0.2431)
    assert near.downsample == 32
    assert near.mpp == pytest.approx(0.2431 * 32)


def test_detection_lookup_truncates_like_the_official_script() -> None:
    rc = GRID.pixels_of(np.array([[31.9, 0], [32, 63.99], [64, 64]]))
    assert rc.tolist() == [[0, 0], [1, 1], [2, 2]]


def test_rasterise_uses_pixel_centres_and_keeps_holes() -> None:
    ring = Polygon(
        box(0, 0, 5 * 32, 5 * 32).exterior.coords,
        [box(2 * 32, 2 * 32, 3 * 32, 3 * 32).exterior.coords],
    )
    mask = rasterize_polygons(
        [ring], EvalGrid(downsample=32.0, shape=(6, 6), mpp=7.776)
    )
    expected = np.zeros((6, 6), bool)
    expected[:5, :5] = True
    expected[2, 2] = False
    np.testing.assert_array_equal(mask, expected)


def test_island_inside_a_hole_survives_rasterising() -> None:
    outer = Polygon(
        box(0, 0, 9 * 32, 9 * 32).exterior.coords,
        [box(2 * 32, 2 * 32, 7 * 32, 7 * 32).exterior.coords],
    )
    island = box(4 * 32, 4 * 32, 5 * 32, 5 * 32)
    for order in ([outer, island], [island, outer]):
        mask = rasterize_polygons(
            order, EvalGrid(downsample=32.0, shape=(9, 9), mpp=7.776)
        )
        assert mask[4, 4]
        assert not mask[3, 3]
        assert mask[0, 0]


def test_growth_is_the_official_distance_threshold() -> None:
    truth = rasterize_polygons([_bar(5)], GRID)
    m = evaluation_mask(truth, GRID)
    full = np.zeros(GRID.shape, bool)
    r0, c0 = m.offset_rc
    full[r0 : r0 + m.labels.shape[0], c0 : c0 + m.labels.shape[1]] = m.labels > 0
    # 75 um / (2 * 7.776 um) = 4.82 px: squared distances up to 23 are in
    np.testing.assert_array_equal(full, _grow_by_hand(truth, 75 / (2 * 7.776)))


def test_tumour_closer_than_75_um_merges_and_farther_does_not() -> None:
    truth = np.zeros(GRID.shape, bool)
    truth[10:50, 10] = True
    truth[10:50, 19] = True  # 8 px gap = 62 um: the grown regions touch
    truth[10:50, 40] = True
    truth[10:50, 51] = True  # 10 px gap = 78 um: they stay apart
    m = evaluation_mask(truth, GRID)
    assert m.n_regions == 3


def test_holes_are_filled_and_diagonal_contact_connects() -> None:
    truth = np.zeros(GRID.shape, bool)
    truth[10:60, 10:60] = True
    truth[20:50, 20:50] = False  # a 30-px hole: far larger than the growth
    m = evaluation_mask(truth, GRID)
    assert m.n_regions == 1
    assert m.label_at([[35 * 32, 35 * 32]]).tolist() == [1]  # inside the hole
    # two squares touching only at a corner after growth are one region (8-conn.)
    grid = EvalGrid(downsample=32.0, shape=(60, 60), mpp=100.0)  # growth < 1 px
    corner = np.zeros(grid.shape, bool)
    corner[10:20, 10:20] = True
    corner[20:30, 20:30] = True
    assert evaluation_mask(corner, grid).n_regions == 1


@pytest.mark.parametrize(("n_px", "is_itc"), [(23, True), (24, False)])
def test_itc_rule_at_the_evaluation_level(n_px: int, is_itc: bool) -> None:
    # A 1 x n bar grown by 4.82 px: major axis 34.39 px (267 um) for n = 23, 35.54 px
    # (276 um) for n = 24, against 275 um / 7.776 = 35.37 px.
    truth = rasterize_polygons([_bar(n_px)], GRID)
    m = evaluation_mask(truth, GRID)
    assert m.n_regions == 1
    major = _major_axis_px(m.labels == 1)
    assert (major < 275 / 7.776) is is_itc
    assert major == pytest.approx(34.39 if is_itc else 35.54, abs=0.01)
    assert (1 in m.itc) is is_itc
    assert m.n_lesions == (0 if is_itc else 1)


def test_itc_rule_keeps_its_physical_size_on_another_scanner() -> None:
    # The same 24-px-long bar in micrometres, on a 0.226 um/px slide.
    grid = EvalGrid.for_slide(width_px=60000, height_px=60000, slide_mpp=0.226)
    d = grid.downsample
    bar = box(50 * d, 10 * d, 51 * d, 34 * d)
    m = evaluation_mask(rasterize_polygons([bar], grid), grid)
    assert m.n_lesions == 1
    short = box(50 * d, 10 * d, 51 * d, 33 * d)
    assert evaluation_mask(rasterize_polygons([short], grid), grid).n_lesions == 0


def test_empty_truth_has_no_regions() -> None:
    m = evaluation_mask(np.zeros(GRID.shape, bool), GRID)
    assert m.n_regions == 0
    assert m.label_at([[100, 100]]).tolist() == [0]


def test_detections_off_the_box_or_the_slide_are_background() -> None:
    truth = rasterize_polygons([_bar(30)], GRID)
    m = evaluation_mask(truth, GRID)
    labels = m.label_at([[50 * 32 + 5, 20 * 32], [0, 0], [10**7, 10**7], [-5, -5]])
    assert labels.tolist() == [1, 0, 0, 0]


def _write_mask(path: Path, level0: np.ndarray, *, reduced: bool) -> None:
    with tifffile.TiffWriter(path) as tif:
        tif.write(level0, tile=(64, 64))
        for k in (2, 4, 8, 16, 32):
            page = level0[k // 2 :: k, k // 2 :: k].copy()
            if page.shape[0] >= 16:
                tif.write(page, tile=(16, 16), subfiletype=1 if reduced else 0)


@pytest.mark.parametrize("reduced", [True, False])
def test_mask_tiff_reads_the_level_nearest_the_evaluation_level(
    tmp_path: Path, reduced: bool
) -> None:
    level0 = np.zeros((1024, 1536), np.uint8)
    level0[320:640, 512:1024] = 255
    path = tmp_path / "Tumor_001_Mask.tif"
    _write_mask(path, level0, reduced=reduced)
    grid = EvalGrid.for_slide(width_px=1536, height_px=1024, slide_mpp=0.243)
    mask = read_mask_tiff(path, grid)
    expected = np.zeros(grid.shape, bool)
    expected[10:20, 16:32] = True
    np.testing.assert_array_equal(mask, expected)
    assert mask_tiff_size(path) == (1536, 1024)


def test_mask_tiff_that_is_not_a_tiff(tmp_path: Path) -> None:
    path = tmp_path / "Tumor_001_Mask.tif"
    path.write_bytes(b"not a tiff")
    with pytest.raises(AnnotationError, match=r"Tumor_001_Mask\.tif"):
        read_mask_tiff(path, GRID)
