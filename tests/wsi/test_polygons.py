"""Region cleaning: smoothing, hysteresis, hole filling and minimum area."""

from __future__ import annotations

import numpy as np
import pytest

from tests.wsi.heatmap_cases import make_grid
from wsi.regions.polygons import (
    PolygonParams,
    heatmap_regions,
    region_cells,
    region_mask,
)

CELL_UM2 = (96 * 0.972) ** 2


def _patchy_lesion(seed: int = 3) -> np.ndarray:
    """A 1-mm lesion whose cells the classifier gets only partly right, in noise."""
    rng = np.random.default_rng(seed)
    heatmap = rng.uniform(0.0, 0.35, (40, 40)).astype(np.float32)
    rr, cc = np.mgrid[:40, :40]
    lesion = np.hypot(rr - 20, cc - 20) <= 5.5
    heatmap[lesion] = rng.uniform(0.3, 1.0, int(lesion.sum()))
    heatmap[rng.random((40, 40)) < 0.01] = 0.9  # scattered hard normal cells
    heatmap[0, :] = np.nan
    return heatmap


def test_a_single_lesion_gives_one_polygon_after_cleaning() -> None:
    grid = make_grid(stride_px=96, mpp=0.243, rows=40, cols=40)
    heatmap = _patchy_lesion()
    raw = heatmap_regions(
        heatmap,
        grid=grid,
        params=PolygonParams(smooth_sigma_um=0, min_area_um2=0, max_hole_um2=0),
    )
    assert len(raw) > 5  # fragments and lone cells
    clean = PolygonParams(
        threshold=0.5,
        low_threshold=0.35,
        smooth_sigma_um=60,
        min_area_um2=4 * CELL_UM2,
        max_hole_um2=4 * CELL_UM2,
    )
    [region] = heatmap_regions(heatmap, grid=grid, params=clean)
    assert region.polygon.geom_type == "Polygon"
    assert not region.polygon.interiors
    col, row = grid.level0_to_heatmap([region.polygon.centroid.coords[0]])[0]
    assert abs(row - 20.5) < 1.5
    assert abs(col - 20.5) < 1.5
    assert 60 <= region.n_cells <= 160
    # statistics come from the raw heatmap
    assert region.max_probability <= float(np.nanmax(heatmap))
    assert region.max_probability > 0.9


@pytest.mark.parametrize("min_cells", [0, 4, 30])
def test_region_cells_are_the_exported_regions_cells(min_cells: int) -> None:
    """What heatmap.png outlines: the cells of exactly the regions exported."""
    grid = make_grid(stride_px=96, mpp=0.243, rows=40, cols=40)
    heatmap = _patchy_lesion()
    params = PolygonParams(smooth_sigma_um=0, min_area_um2=min_cells * CELL_UM2)
    cells = region_cells(heatmap, grid=grid, params=params)
    regions = heatmap_regions(heatmap, grid=grid, params=params)
    assert int(cells.sum()) == sum(r.n_cells for r in regions)
    assert not (cells & ~region_mask(heatmap, grid=grid, params=params)).any()
    assert len(regions) >= 1


def test_small_holes_are_filled_large_ones_kept() -> None:
    grid = make_grid(stride_px=96, mpp=0.243, rows=20, cols=20)
    heatmap = np.zeros(grid.shape, np.float32)
    heatmap[2:18, 2:18] = 0.9
    heatmap[4, 4] = 0.1  # a 1-cell hole
    heatmap[8:14, 8:14] = np.nan  # a 36-cell hole (no patches)
    params = PolygonParams(
        smooth_sigma_um=0, min_area_um2=0, max_hole_um2=10 * CELL_UM2
    )
    [region] = heatmap_regions(heatmap, grid=grid, params=params)
    assert len(region.polygon.interiors) == 1
    assert region.n_cells == 16 * 16 - 36
    mask = region_mask(heatmap, grid=grid, params=params)
    assert mask[4, 4]
    assert not mask[10, 10]
    [unfilled] = heatmap_regions(
        heatmap,
        grid=grid,
        params=PolygonParams(smooth_sigma_um=0, min_area_um2=0, max_hole_um2=0),
    )
    assert len(unfilled.polygon.interiors) == 2


def test_smoothing_removes_lone_cells_and_keeps_raw_statistics() -> None:
    grid = make_grid(stride_px=96, mpp=0.243, rows=20, cols=20)
    heatmap = np.full(grid.shape, 0.1, np.float32)
    heatmap[3, 3] = 1.0
    heatmap[10:14, 10:14] = 0.8
    params = PolygonParams(smooth_sigma_um=100)
    [region] = heatmap_regions(heatmap, grid=grid, params=params)
    assert region.max_probability == pytest.approx(0.8)
    assert region.mean_probability == pytest.approx(0.8)
    assert region.n_cells <= 16


@pytest.mark.parametrize(
    "bad",
    [{"smooth_sigma_um": -1.0}, {"max_hole_um2": float("inf")}],
)
def test_cleaning_params_are_validated(bad: dict[str, float]) -> None:
    name = next(iter(bad))
    with pytest.raises(ValueError, match=f"{name} must be a finite number >= 0"):
        PolygonParams(**bad)
