"""Lesion candidates: peaks of the smoothed heatmap, NMS by distance in microns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.wsi.heatmap_cases import make_grid
from wsi.geometry import TileGrid
from wsi.regions.detection import (
    DetectionParams,
    cell_size_um,
    lesion_candidates,
    smooth_heatmap,
    suppress_near,
)


def _blob(
    grid: TileGrid, *, centre_rc: tuple[float, float], radius_cells: float, p: float
) -> np.ndarray:
    rows, cols = grid.shape
    rr, cc = np.mgrid[:rows, :cols]
    dist = np.hypot(rr - centre_rc[0], cc - centre_rc[1])
    return np.where(dist <= radius_cells, p, 0.05).astype(np.float32)


def _l0_to_rc(grid: TileGrid, xy: tuple[int, int]) -> tuple[int, int]:
    col, row = np.floor(grid.level0_to_heatmap([xy])[0]).astype(int)
    return int(row), int(col)


@pytest.mark.parametrize("stride_px", [96, 32])
def test_candidates_land_on_a_lesion_blob(stride_px: int) -> None:
    grid = make_grid(stride_px=stride_px, mpp=0.243, rows=60, cols=60)
    heatmap = _blob(grid, centre_rc=(30, 20), radius_cells=4, p=0.9)
    heatmap[5, 50] = 0.99  # a lone hard normal cell
    heatmap[55, 3] = np.nan
    candidates = lesion_candidates(heatmap, grid=grid, params=DetectionParams())
    best = candidates[0]
    row, col = _l0_to_rc(grid, best.l0_xy)
    assert (row, col) == best.rc
    assert math.hypot(row - 30, col - 20) <= 1.5
    assert best.probability > 0.8
    lone = [c for c in candidates if c.rc == (5, 50)]
    assert lone, "the lone cell is still a (weak) candidate"
    assert lone[0].raw_probability == pytest.approx(0.99)
    assert lone[0].probability < best.probability
    assert [c.probability for c in candidates] == sorted(
        (c.probability for c in candidates), reverse=True
    )


def test_nms_suppresses_near_duplicates_by_distance_in_um() -> None:
    grid = make_grid(stride_px=96, mpp=0.243, rows=20, cols=40)
    cell_um = cell_size_um(grid)
    assert cell_um == pytest.approx(96 * 0.972, rel=1e-3)
    heatmap = np.zeros(grid.shape, np.float32)
    heatmap[10, 5] = 0.9
    heatmap[10, 7] = 0.8  # 2 cells = 187 um from the first
    heatmap[10, 20] = 0.7
    heatmap[10, 24] = 0.6  # 4 cells = 373 um from the third
    near = lesion_candidates(
        heatmap, grid=grid, params=DetectionParams(smooth_sigma_um=0, nms_radius_um=150)
    )
    assert [c.rc for c in near] == [(10, 5), (10, 7), (10, 20), (10, 24)]
    mid = lesion_candidates(
        heatmap, grid=grid, params=DetectionParams(smooth_sigma_um=0, nms_radius_um=250)
    )
    assert [c.rc for c in mid] == [(10, 5), (10, 20), (10, 24)]
    far = lesion_candidates(
        heatmap, grid=grid, params=DetectionParams(smooth_sigma_um=0, nms_radius_um=400)
    )
    assert [c.rc for c in far] == [(10, 5), (10, 20)]
    assert [c.probability for c in far] == pytest.approx([0.9, 0.7])


def test_suppress_near_is_greedy_and_keeps_ties_in_order() -> None:
    xy = [[0, 0], [5, 0], [12, 0], [100, 100], [100, 100]]
    kept = suppress_near(xy, [0.5, 0.5, 0.9, 0.3, 0.3], radius_um=10)
    # 0.9 at x=12 kills x=5 (7 um) but not x=0 (12 um); the tie at (100, 100) keeps
    # the first.
    assert kept.tolist() == [2, 0, 3]
    assert suppress_near(np.zeros((0, 2)), [], radius_um=1).tolist() == []
    with pytest.raises(ValueError, match="2 points but 1 scores"):
        suppress_near([[0, 0], [1, 1]], [0.5], radius_um=1)


def test_plateau_gives_one_candidate() -> None:
    grid = make_grid(stride_px=96, mpp=0.243, rows=20, cols=20)
    heatmap = np.zeros(grid.shape, np.float32)
    heatmap[5:8, 5:8] = 1.0
    params = DetectionParams(smooth_sigma_um=0, nms_radius_um=300)
    assert len(lesion_candidates(heatmap, grid=grid, params=params)) == 1


def test_floor_cap_and_empty_heatmaps() -> None:
    grid = make_grid(stride_px=96, mpp=0.243, rows=30, cols=30)
    heatmap = np.zeros(grid.shape, np.float32)
    for k in range(5):
        heatmap[3 + 5 * k, 3 + 5 * k] = 0.1 * (k + 1)
    assert (
        len(
            lesion_candidates(
                heatmap,
                grid=grid,
                params=DetectionParams(smooth_sigma_um=0, nms_radius_um=100),
            )
        )
        == 5
    )
    floor = DetectionParams(smooth_sigma_um=0, nms_radius_um=100, min_probability=0.35)
    assert [
        round(c.probability, 1)
        for c in lesion_candidates(heatmap, grid=grid, params=floor)
    ] == [0.5, 0.4]
    cap = DetectionParams(smooth_sigma_um=0, nms_radius_um=100, max_candidates=2)
    assert len(lesion_candidates(heatmap, grid=grid, params=cap)) == 2
    empty = np.full(grid.shape, np.nan, np.float32)
    assert lesion_candidates(empty, grid=grid, params=DetectionParams()) == []


def test_smoothing_ignores_cells_without_patches() -> None:
    values = np.full((7, 7), np.nan, np.float32)
    values[2:5, 2:5] = 0.6
    out = smooth_heatmap(values, sigma_cells=1.5)
    assert np.isnan(out[0, 0])
    assert np.isnan(out[6, 3])
    # normalised: a uniform tissue stays uniform, even at its edge
    assert np.allclose(out[2:5, 2:5], 0.6)
    with pytest.raises(ValueError, match="sigma_cells must be >= 0"):
        smooth_heatmap(values, sigma_cells=-1)
    with pytest.raises(ValueError, match="2-D"):
        smooth_heatmap(values[0], sigma_cells=1)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"smooth_sigma_um": -1.0}, "smooth_sigma_um must be a finite number >= 0"),
        ({"smooth_sigma_um": math.inf}, "smooth_sigma_um"),
        ({"nms_radius_um": 0.0}, "nms_radius_um must be a finite number > 0"),
        ({"min_probability": 1.5}, r"min_probability must be in \[0, 1\]"),
        ({"max_candidates": 0}, "max_candidates must be an integer >= 1"),
        ({"max_candidates": True}, "max_candidates must be an integer >= 1"),
    ],
)
def test_detection_params_are_validated(bad: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DetectionParams(**bad)  # type: ignore[arg-type]
