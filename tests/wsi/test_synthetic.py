"""Generated slides: the tile-by-tile pyramid writer and its textured tissue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from wsi.geometry import PATCH_PX, PCAM_MPP
from wsi.slide.reader import open_slide
from wsi.synthetic import GLASS_RGB, SyntheticTissue, write_pyramid_tiff_tiles
from wsi.tiles.tiler import TilingParams, tile_slide
from wsi.tiles.tissue import TissueParams

MPP = 0.243
SIZE_PX = (6144, 3072)  # level-0 (width, height); level 4 is 1536 x 768


@pytest.fixture(scope="module")
def tissue() -> SyntheticTissue:
    return SyntheticTissue.lymph_node(SIZE_PX, mpp=MPP)


@pytest.fixture(scope="module")
def slide(tissue: SyntheticTissue, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synthetic") / "node.tif"
    return write_pyramid_tiff_tiles(
        path, tissue, size_px=SIZE_PX, mpp=MPP, downsamples=(1, 4, 16, 64), tile_px=256
    )


def test_levels_sizes_and_resolution(slide: Path) -> None:
    with open_slide(slide) as opened:
        geometry = opened.geometry
    assert geometry.level_dimensions == (
        (6144, 3072),
        (1536, 768),
        (384, 192),
        (96, 48),
    )
    assert geometry.level_downsamples == pytest.approx((1, 4, 16, 64))
    assert geometry.mpp == pytest.approx(MPP)


@pytest.mark.parametrize("level", [0, 1, 3])
def test_tissue_is_in_the_ellipses_on_every_level(slide: Path, level: int) -> None:
    # Level-0 points: centre of each section, and glass between and beside them.
    points = {"tissue": [(1536, 1536), (4608, 1536)], "glass": [(3072, 100), (60, 60)]}
    with open_slide(slide) as opened:
        for kind, xys in points.items():
            for xy in xys:
                rgb = opened.read_level(level=level, l0_xy=xy, size=(4, 4))
                mean = rgb.reshape(-1, 3).mean(axis=0)
                if kind == "glass":
                    np.testing.assert_allclose(mean, GLASS_RGB, atol=8)
                else:  # pink to purple: green well below red and blue
                    assert mean[1] < min(mean[0], mean[2]) - 30, (level, xy, mean)


def test_tissue_is_textured_at_pcam_scale(tissue: SyntheticTissue) -> None:
    patch = tissue(downsample=4.0, xy_px=(300, 300), size_px=(PATCH_PX, PATCH_PX))
    assert patch.shape == (PATCH_PX, PATCH_PX, 3)
    assert patch.dtype == np.uint8
    assert patch[..., 1].std() > 15  # nuclei on stroma, not a flat colour
    again = tissue(downsample=4.0, xy_px=(300, 300), size_px=(PATCH_PX, PATCH_PX))
    np.testing.assert_array_equal(patch, again)


def test_tile_slide_finds_the_expected_patches(
    slide: Path, tissue: SyntheticTissue, tmp_path: Path
) -> None:
    result = tile_slide(
        slide, tmp_path / "s.zarr", tiling=TilingParams(), tissue=TissueParams()
    )
    patch_l0_px = PATCH_PX * PCAM_MPP / MPP
    expected = (
        tissue.tissue_fraction(SIZE_PX) * SIZE_PX[0] * SIZE_PX[1] / patch_l0_px**2
    )
    # About 90 patches, a third of them on an edge, where the mask's coarse cells and
    # the centre rule round up or down: 15% covers that.
    assert result.n_patches == pytest.approx(expected, rel=0.15)


def test_render_is_called_once_per_tile(tmp_path: Path) -> None:
    calls: list[tuple[float, tuple[int, int]]] = []

    def flat(
        *, downsample: float, xy_px: tuple[int, int], size_px: tuple[int, int]
    ) -> npt.NDArray[np.uint8]:
        calls.append((downsample, xy_px))
        return np.full((size_px[1], size_px[0], 3), 200, np.uint8)

    write_pyramid_tiff_tiles(
        tmp_path / "flat.tif",
        flat,
        size_px=(100, 40),
        mpp=None,
        downsamples=(1, 2),
        tile_px=32,
        compression="zlib",
    )
    # Level 0: 4 x 2 tiles; level 1 (50 x 20): 2 x 1 tiles.
    assert len(calls) == 8 + 2
    assert calls[0] == (1.0, (0, 0))
    assert calls[-1] == (2.0, (32, 0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"downsamples": (2, 4)}, "downsamples must start at 1"),
        ({"tile_px": 100}, "tile_px must be a positive multiple of 16"),
        ({"size_px": (0, 10)}, "size_px must be positive"),
    ],
)
def test_bad_arguments_are_refused(
    kwargs: dict[str, object], message: str, tissue: SyntheticTissue, tmp_path: Path
) -> None:
    options: dict[str, object] = {"size_px": (64, 64), "mpp": MPP} | kwargs
    with pytest.raises(ValueError, match=message):
        write_pyramid_tiff_tiles(tmp_path / "bad.tif", tissue, **options)  # type: ignore[arg-type]


def test_bad_ellipse_is_refused() -> None:
    with pytest.raises(ValueError, match="radii must be positive"):
        SyntheticTissue(ellipses_l0_px=((10, 10, 0, 5),))
