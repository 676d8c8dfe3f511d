"""SlideGeometry, ReadPlan and TileGrid: resolution and grid maths, no I/O."""

from __future__ import annotations

import numpy as np
import pytest

from wsi.geometry import (
    CENTER_PX,
    MASK_CELL_PX,
    PATCH_PX,
    PCAM_MPP,
    SlideGeometry,
    TileGrid,
)


def _geometry(
    size: tuple[int, int] = (2048, 2048),
    mpp: float = 0.243,
    levels: tuple[tuple[int, int], ...] | None = None,
) -> SlideGeometry:
    w, h = size
    levels = levels or tuple((w // 2**i, h // 2**i) for i in range(4))
    return SlideGeometry(
        width_px=w, height_px=h, mpp_x=mpp, mpp_y=mpp, level_dimensions=levels
    )


def test_downsamples_come_from_level_sizes_not_powers_of_two() -> None:
    g = _geometry((2048, 2048), levels=((2048, 2048), (683, 683), (228, 228)))
    assert g.level_downsamples[1] == pytest.approx(2048 / 683)
    assert g.level_downsamples[2] == pytest.approx(2048 / 228)
    # An SVS-like pyramid with floor-rounded sizes.
    svs = _geometry((4443, 3567), mpp=0.5, levels=((4443, 3567), (2221, 1783)))
    assert svs.level_downsamples[1] == pytest.approx((4443 / 2221 + 3567 / 1783) / 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width_px": 0}, "slide size must be positive"),
        ({"mpp_x": float("nan")}, "mpp_x must be a positive number"),
        ({"mpp_y": -1.0}, "mpp_y must be a positive number"),
        ({"mpp_x": 0.25, "mpp_y": 0.26}, "anisotropic pixels"),
        ({"level_dimensions": ()}, "at least level 0"),
        ({"level_dimensions": ((100, 100),)}, "level 0 is (100, 100)"),
    ],
)
def test_invalid_geometry_names_the_value(
    kwargs: dict[str, object], message: str
) -> None:
    base: dict[str, object] = {
        "width_px": 1000,
        "height_px": 500,
        "mpp_x": 0.25,
        "mpp_y": 0.25,
        "level_dimensions": ((1000, 500),),
    }
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        SlideGeometry(**(base | kwargs))  # type: ignore[arg-type]


def test_radboud_reads_level_2_as_is() -> None:
    plan = _geometry(mpp=0.243).read_plan(PCAM_MPP)
    assert (plan.level, plan.is_direct) == (2, True)
    assert plan.effective_mpp == pytest.approx(0.972)
    assert plan.requested_mpp == PCAM_MPP


def test_utrecht_resamples_from_the_nearest_finer_level() -> None:
    plan = _geometry(mpp=0.226).read_plan(PCAM_MPP)
    assert plan.level == 2
    assert not plan.is_direct
    assert plan.resample_factor == pytest.approx(0.972 / 0.226 / 4)
    assert plan.effective_mpp == pytest.approx(PCAM_MPP)


def test_a_level_within_one_percent_is_read_as_is() -> None:
    # Level 1 at 0.324 * 2048/683 = 0.9715 um/px: 0.05% from the target.
    g = _geometry(mpp=0.324, levels=((2048, 2048), (683, 683), (228, 228)))
    plan = g.read_plan(PCAM_MPP)
    assert (plan.level, plan.is_direct) == (1, True)
    assert plan.effective_mpp == pytest.approx(0.324 * 2048 / 683)
    assert plan.effective_mpp != plan.requested_mpp


def test_target_finer_than_level_0_enlarges_level_0() -> None:
    plan = _geometry(mpp=1.0).read_plan(PCAM_MPP)
    assert plan.level == 0
    assert plan.resample_factor == pytest.approx(0.972)


def test_plan_for_downsample_never_snaps_to_a_level() -> None:
    g = _geometry(mpp=0.25)
    plan = g.plan_for_downsample(8.04)  # level 3 (ds 8) is within 1%
    assert plan.level == 3
    assert plan.downsample == 8.04
    assert not plan.is_direct
    with pytest.raises(ValueError, match="downsample must be positive"):
        g.plan_for_downsample(0)


def test_grid_origin_is_the_top_left_and_positions_are_reproducible() -> None:
    grid = TileGrid(geometry=_geometry(mpp=0.243), stride_px=96)
    assert grid.shape == (5, 5)  # 512 target px: 5 patches of 96
    coords = grid.coords()
    assert coords[:3].tolist() == [[0, 0], [384, 0], [768, 0]]
    assert coords[5].tolist() == [0, 384]
    np.testing.assert_array_equal(grid.coords(np.array([[1, 2]])), [[768, 384]])


def test_stride_32_gives_one_patch_per_pcam_centre_cell() -> None:
    grid = TileGrid(geometry=_geometry(mpp=0.243), stride_px=32)
    assert grid.shape == ((512 - 96) // 32 + 1,) * 2
    assert grid.cell_offset_px == (PATCH_PX - CENTER_PX) // 2
    # Heatmap cell (0, 0) is the centre 32x32 of patch (0, 0).
    np.testing.assert_allclose(grid.cell_to_level0([[0, 0]]), [[32 * 4, 32 * 4]])


def test_slide_smaller_than_a_patch_has_an_empty_grid() -> None:
    g = SlideGeometry(
        width_px=16,
        height_px=16,
        mpp_x=0.499,
        mpp_y=0.499,
        level_dimensions=((16, 16),),
    )
    assert 0 in TileGrid(geometry=g).shape


def test_grid_validates_stride() -> None:
    g = _geometry()
    with pytest.raises(ValueError, match="stride_px must be between 1 and tile_px"):
        TileGrid(geometry=g, stride_px=97)
    with pytest.raises(ValueError, match="must be even"):
        TileGrid(geometry=g, stride_px=33)


def test_mask_lattice_is_the_grid_lattice_times_mask_cell() -> None:
    grid = TileGrid(
        geometry=_geometry(
            (2000, 1000), mpp=0.226, levels=((2000, 1000), (1000, 500), (500, 250))
        )
    )
    assert grid.mask_downsample == pytest.approx(grid.downsample * MASK_CELL_PX)
    rows, cols = grid.mask_shape
    assert rows == int(np.ceil(1000 / grid.mask_downsample))
    assert cols == int(np.ceil(2000 / grid.mask_downsample))
    plan = grid.mask_plan
    assert plan.downsample == grid.mask_downsample
    assert plan.level == 2


def test_utrecht_coords_round_fractional_level0_positions() -> None:
    grid = TileGrid(geometry=_geometry(mpp=0.226), stride_px=96)
    ds = 0.972 / 0.226
    np.testing.assert_array_equal(grid.coords([[1, 1]]), [[round(96 * ds)] * 2])
