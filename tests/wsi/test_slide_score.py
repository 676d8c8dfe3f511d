"""The slide probability: a lesion outranks scattered single high cells."""

from __future__ import annotations

import numpy as np
import pytest

from tests.wsi.heatmap_cases import make_grid
from wsi.geometry import TileGrid
from wsi.regions.slide_score import SlideScoreParams, slide_score

METHODS = ["max_smoothed", "top_mean", "largest_region"]
#: The neighbourhood scores; top_mean is not one (12 lone cells fill its top area).
NEIGHBOURHOOD = ["max_smoothed", "largest_region"]


def _slides() -> tuple[np.ndarray, np.ndarray, TileGrid]:
    grid = make_grid(stride_px=96, mpp=0.243, rows=40, cols=40)
    rng = np.random.default_rng(0)
    normal = rng.uniform(0.0, 0.3, grid.shape).astype(np.float32)
    normal.ravel()[rng.choice(normal.size, 12, replace=False)] = 0.995
    tumour = rng.uniform(0.0, 0.3, grid.shape).astype(np.float32)
    tumour[18:23, 10:15] = rng.uniform(0.75, 0.95, (5, 5))  # a 470-um lesion
    return normal, tumour, grid


@pytest.mark.parametrize("method", NEIGHBOURHOOD)
def test_a_lesion_outranks_scattered_single_high_cells(method: str) -> None:
    normal, tumour, grid = _slides()
    params = SlideScoreParams(method=method)  # type: ignore[arg-type]
    s_normal = slide_score(normal, grid=grid, params=params)
    s_tumour = slide_score(tumour, grid=grid, params=params)
    assert s_normal.max_probability > s_tumour.max_probability  # max cell fails
    assert s_tumour.probability > s_normal.probability
    assert s_tumour.method == method
    assert s_tumour.probability == s_tumour.scores[method]
    assert 0.0 <= s_normal.probability <= 1.0


def test_the_default_is_a_neighbourhood_score_and_top_mean_is_fooled() -> None:
    assert SlideScoreParams().method in NEIGHBOURHOOD
    normal, tumour, grid = _slides()
    params = SlideScoreParams(method="top_mean")
    assert (
        slide_score(normal, grid=grid, params=params).probability
        > slide_score(tumour, grid=grid, params=params).probability
    )


def test_max_cell_is_the_highest_cell_and_empty_heatmaps_score_zero() -> None:
    normal, _, grid = _slides()
    score = slide_score(normal, grid=grid, params=SlideScoreParams(method="max_cell"))
    assert score.probability == pytest.approx(0.995)
    empty = np.full(normal.shape, np.nan, np.float32)
    zero = slide_score(empty, grid=grid, params=SlideScoreParams())
    assert zero.probability == 0.0
    assert set(zero.scores) == {"max_cell", *METHODS}


def test_top_mean_averages_the_requested_area() -> None:
    grid = make_grid(stride_px=96, mpp=0.243, rows=10, cols=10)
    heatmap = np.zeros(grid.shape, np.float32)
    heatmap.ravel()[:4] = [1.0, 0.8, 0.6, 0.4]
    cell_um2 = (96 * 0.972) ** 2
    params = SlideScoreParams(method="top_mean", top_area_um2=2 * cell_um2)
    assert slide_score(heatmap, grid=grid, params=params).probability == (
        pytest.approx(0.9)
    )


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"method": "mean"}, "method must be one of max_cell, max_smoothed"),
        ({"smooth_sigma_um": -5.0}, "smooth_sigma_um must be a finite number >= 0"),
        ({"top_area_um2": 0.0}, "top_area_um2 must be a finite number > 0"),
        ({"region_scale_um2": float("nan")}, "region_scale_um2"),
        ({"region_threshold": 2.0}, r"region_threshold must be in \[0, 1\]"),
    ],
)
def test_slide_score_params_are_validated(bad: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SlideScoreParams(**bad)  # type: ignore[arg-type]
