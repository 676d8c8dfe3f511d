"""Opening slides, resolution metadata, and exact reads at a target resolution."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest

import wsi.slide._tiffread
from tests.slides import SlideSpec, write_slide
from wsi.errors import MissingResolutionError, SlideReadError
from wsi.geometry import PCAM_MPP, ReadPlan
from wsi.slide.reader import Slide, open_slide, slide_fingerprint

EDGE_X_L0, EDGE_Y_L0 = 1000, 1200  # multiples of 4: exact edges at level 2
DARK, BRIGHT = 50, 250


@pytest.fixture(scope="module")
def edge_slides(generated: Path) -> dict[float, SlideSpec]:
    """Lossless slides with a vertical edge in red and a horizontal edge in green."""
    image = np.full((2048, 2048, 3), 128, np.uint8)
    image[..., 0] = np.where(np.arange(2048) < EDGE_X_L0, DARK, BRIGHT)[None, :]
    image[..., 1] = np.where(np.arange(2048) < EDGE_Y_L0, DARK, BRIGHT)[:, None]
    return {
        mpp: write_slide(
            generated / f"edges-{mpp}.tif", image=image, mpp=mpp, compression="zlib"
        )
        for mpp in (0.243, 0.226)
    }


def test_cmu_svs_geometry_and_metadata(fixture_slides: Path) -> None:
    with open_slide(fixture_slides / "cmu-1-small-region.svs") as slide:
        g = slide.geometry
        assert (g.width_px, g.height_px) == (2220, 2967)
        assert g.mpp == pytest.approx(0.499)
        assert slide.mpp_source == "metadata"
        assert slide.properties["openslide.vendor"] == "aperio"
        rgb = slide.read_level(level=0, l0_xy=(1000, 1000), size=(64, 32))
        assert rgb.shape == (32, 64, 3)
        assert rgb.dtype == np.uint8
    assert slide.closed


def test_missing_mpp_names_the_mpp_option(fixture_slides: Path) -> None:
    path = fixture_slides / "tcga-cr-7395-01a-01-ts1.svs"
    with pytest.raises(MissingResolutionError) as info:
        open_slide(path)
    message = str(info.value)
    assert path.name in message
    assert "`mpp`" in message
    assert "--mpp-from-objective" not in message  # it has no objective power either
    with pytest.raises(MissingResolutionError):
        open_slide(path, mpp_from_objective=True)


def test_user_mpp_opens_a_slide_without_metadata(fixture_slides: Path) -> None:
    with open_slide(fixture_slides / "tcga-cr-7395-01a-01-ts1.svs", mpp=0.499) as slide:
        assert slide.geometry.mpp == 0.499
        assert slide.mpp_source == "user"
        assert slide.geometry.level_downsamples[1] == pytest.approx(2.0005, abs=1e-4)
        # JPEG 2000 tiles decode.
        assert slide.read_level(level=1, l0_xy=(2000, 1600), size=(32, 32)).std() > 0


def test_objective_power_only_with_the_flag_and_a_warning(
    objective_only_slide: SlideSpec, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(
        MissingResolutionError, match=r"`mpp_from_objective` to assume 0\.25"
    ):
        open_slide(objective_only_slide.path)
    with caplog.at_level(logging.WARNING, logger="wsi"):
        slide = open_slide(objective_only_slide.path, mpp_from_objective=True)
    with slide:
        assert slide.geometry.mpp == pytest.approx(0.25)
        assert slide.mpp_source == "objective"
    assert "40x objective power" in caplog.text


@pytest.mark.parametrize("bad_mpp", [0.0, -0.5, float("nan")])
def test_invalid_user_mpp_is_refused(tiny_slide: SlideSpec, bad_mpp: float) -> None:
    with pytest.raises(ValueError, match="mpp must be a positive number"):
        open_slide(tiny_slide.path, mpp=bad_mpp)


def test_missing_path_directory_and_not_a_slide(
    fixture_slides: Path, tmp_path: Path
) -> None:
    with pytest.raises(SlideReadError, match=r"nope\.svs does not exist"):
        open_slide(tmp_path / "nope.svs")
    with pytest.raises(SlideReadError, match="is a folder, not a slide file"):
        open_slide(tmp_path)
    with pytest.raises(
        SlideReadError, match=r"broken\.svs is not a slide OpenSlide can read"
    ):
        open_slide(fixture_slides / "broken.svs")


def test_corrupt_tiles_fail_on_first_read(fixture_slides: Path) -> None:
    with (
        open_slide(fixture_slides / "unreadable.svs") as slide,
        pytest.raises(SlideReadError, match=r"unreadable\.svs.*corrupt or truncated"),
    ):
        slide.read_level(level=0, l0_xy=(0, 0), size=(16, 16))


def _read_every_level(path: Path) -> None:
    with open_slide(path) as slide:
        for level, (w, h) in enumerate(slide.geometry.level_dimensions):
            slide.read_level(level=level, l0_xy=(0, 0), size=(w, h))


def test_truncated_slide_is_a_slide_read_error(corrupt_slide: Path) -> None:
    with pytest.raises(SlideReadError, match=r"corrupt\.tif"):
        _read_every_level(corrupt_slide)


def test_regions_off_the_slide_are_white(tiny_slide: SlideSpec) -> None:
    with open_slide(tiny_slide.path) as slide:
        rgb = slide.read_level(level=0, l0_xy=(-50, 2000), size=(100, 100))
        assert (rgb[:, :50] == 255).all()  # left of the slide
        assert (rgb[48:] == 255).all()  # below it
        plan = slide.geometry.read_plan(PCAM_MPP)
        assert (
            slide.read_target(plan, x_px=600, y_px=0, width_px=8, height_px=8) == 255
        ).all()


def test_direct_plan_reads_the_level_pixels(
    edge_slides: dict[float, SlideSpec],
) -> None:
    with open_slide(edge_slides[0.243].path) as slide:
        plan = slide.geometry.read_plan(PCAM_MPP)
        assert plan.is_direct
        assert plan.level == 2
        got = slide.read_target(plan, x_px=240, y_px=290, width_px=20, height_px=20)
        want = slide.read_level(level=2, l0_xy=(960, 1160), size=(20, 20))
        np.testing.assert_array_equal(got, want)
        assert got[0, 9, 0] == DARK  # the edge is at target x 250
        assert got[0, 10, 0] == BRIGHT


def test_resampling_is_exact_area_averaging_with_sub_pixel_alignment(
    edge_slides: dict[float, SlideSpec],
) -> None:
    with open_slide(edge_slides[0.226].path) as slide:
        plan = slide.geometry.read_plan(PCAM_MPP)
        assert plan.level == 2
        assert not plan.is_direct
        f = plan.resample_factor
        x0, y0, w, h = 200, 250, 80, 60
        got = slide.read_target(plan, x_px=x0, y_px=y0, width_px=w, height_px=h)

    def expected(index: np.ndarray, edge_level_px: float) -> np.ndarray:
        dark = np.clip((edge_level_px - index * f) / f, 0, 1)
        return dark * DARK + (1 - dark) * BRIGHT

    cols, rows = np.arange(x0, x0 + w), np.arange(y0, y0 + h)
    np.testing.assert_allclose(got[0, :, 0], expected(cols, EDGE_X_L0 / 4), atol=0.5)
    np.testing.assert_allclose(got[:, 0, 1], expected(rows, EDGE_Y_L0 / 4), atol=0.5)
    # The edge pixel really is a blend (area weights), not nearest neighbour.
    assert ((got[0, :, 0] > DARK + 5) & (got[0, :, 0] < BRIGHT - 5)).sum() == 1


def test_enlargement_interpolates_linearly_between_pixel_centres(
    generated: Path,
) -> None:
    image = np.zeros((256, 256, 3), np.uint8)
    image[..., 0] = np.arange(256)[None, :]  # pixel x has value x
    spec = write_slide(
        generated / "ramp.tif",
        image=image,
        mpp=1.0,
        downsamples=(1,),
        compression="zlib",
    )
    with open_slide(spec.path) as slide:
        plan = slide.geometry.read_plan(PCAM_MPP)
        assert plan.level == 0
        assert plan.resample_factor == pytest.approx(0.972)
        got = slide.read_target(plan, x_px=10, y_px=10, width_px=200, height_px=4)
    centres = (np.arange(10, 210) + 0.5) * plan.resample_factor - 0.5
    np.testing.assert_allclose(got[0, :, 0], centres, atol=0.5)


def test_resampled_pixels_depend_on_the_origin_not_the_size(
    utrecht_slide: SlideSpec,
) -> None:
    with open_slide(utrecht_slide.path) as slide:
        plan = slide.geometry.read_plan(PCAM_MPP)
        small = slide.read_target(plan, x_px=100, y_px=90, width_px=96, height_px=96)
        large = slide.read_target(plan, x_px=100, y_px=90, width_px=300, height_px=250)
    np.testing.assert_array_equal(small, large[:96, :96])


def test_slide_fingerprint(fixture_slides: Path) -> None:
    path = fixture_slides / "cmu-1-small-region.svs"
    data = path.read_bytes()
    assert slide_fingerprint(path) == {
        "size_bytes": len(data),
        "sha256_first_mib": hashlib.sha256(data[: 1 << 20]).hexdigest(),
    }
    with pytest.raises(SlideReadError, match=r"missing\.svs"):
        slide_fingerprint(path.parent / "missing.svs")


def test_read_level_validates_arguments(tiny_slide: SlideSpec) -> None:
    with open_slide(tiny_slide.path) as slide:
        with pytest.raises(ValueError, match="level must be between 0 and 3"):
            slide.read_level(level=4, l0_xy=(0, 0), size=(1, 1))
        assert slide.read_level(level=0, l0_xy=(0, 0), size=(0, 5)).shape == (5, 0, 3)
    with pytest.raises(ValueError, match="is closed"):
        slide.read_level(level=0, l0_xy=(0, 0), size=(1, 1))


def _openslide_only(
    path: Path, monkeypatch: pytest.MonkeyPatch, *, mpp: float | None = None
) -> Slide:
    with monkeypatch.context() as patch:
        patch.setattr(wsi.slide._tiffread.TiffLevels, "open", lambda *a, **k: None)
        return open_slide(path, mpp=mpp)


@pytest.mark.parametrize(
    ("name", "slide_mpp"),
    [("cmu-1-small-region.svs", None), ("tcga-cr-7395-01a-01-ts1.svs", 0.499)],
)
def test_direct_tiles_equal_openslide_on_real_svs(
    fixture_slides: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    slide_mpp: float | None,
) -> None:
    path = fixture_slides / name
    with (
        open_slide(path, mpp=slide_mpp) as fast,
        _openslide_only(path, monkeypatch, mpp=slide_mpp) as slow,
    ):
        assert fast.pixel_source(0) == "tiff"
        assert slow.pixel_source(0) == "openslide"
        plan = fast.geometry.read_plan(PCAM_MPP)  # level 0, resampled
        args = {"x_px": 300, "y_px": 410, "width_px": 200, "height_px": 150}
        np.testing.assert_array_equal(
            fast.read_target(plan, **args), slow.read_target(plan, **args)
        )


def test_direct_tiles_equal_openslide_on_generated_tiffs(
    tiny_slide: SlideSpec, utrecht_slide: SlideSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    for spec in (tiny_slide, utrecht_slide):
        with (
            open_slide(spec.path) as fast,
            _openslide_only(spec.path, monkeypatch) as slow,
        ):
            plan = fast.geometry.read_plan(PCAM_MPP)
            assert fast.pixel_source(plan.level) == "tiff"
            width, height = fast.geometry.level_dimensions[plan.level]
            # Inside, across the left edge, and across the right and bottom edges.
            for args in (
                {"x_px": 40, "y_px": 30, "width_px": 200, "height_px": 100},
                {"x_px": -20, "y_px": 230, "width_px": 300, "height_px": 120},
                {
                    "x_px": width - 50,
                    "y_px": height - 40,
                    "width_px": 90,
                    "height_px": 70,
                },
            ):
                np.testing.assert_array_equal(
                    fast.read_target(plan, **args), slow.read_target(plan, **args)
                )


def test_direct_tiles_are_exact_where_openslide_interpolates(
    npot_slide: SlideSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tifffile

    level1 = tifffile.imread(npot_slide.path, key=1)
    plan = ReadPlan(
        level=1,
        level_downsample=2048 / 683,
        downsample=2048 / 683,
        requested_mpp=1.0,
        effective_mpp=1.0,
    )
    args = {"x_px": 101, "y_px": 77, "width_px": 50, "height_px": 40}
    with open_slide(npot_slide.path) as fast:
        got = fast.read_target(plan, **args)
    np.testing.assert_array_equal(got, level1[77:117, 101:151])
    with _openslide_only(npot_slide.path, monkeypatch) as slow:
        # OpenSlide starts at level-0 round(101 * 2.9985) = 303 = level pixel 101.05.
        interpolated = slow.read_target(plan, **args)
    assert 0 < np.abs(interpolated.astype(int) - got).max() < 60


def test_corrupt_tile_in_a_direct_read_is_a_slide_read_error(
    tiny_slide: SlideSpec, generated: Path
) -> None:
    import tifffile

    with tifffile.TiffFile(tiny_slide.path) as tif:
        page = tif.pages[2]
        offset, count = page.dataoffsets[1], page.databytecounts[1]
    data = bytearray(tiny_slide.path.read_bytes())
    data[offset : offset + count] = bytes(count)  # tile 1 of level 2: zeros
    path = generated / "bad-tile.tif"
    path.write_bytes(bytes(data))
    with open_slide(path) as slide:
        plan = slide.geometry.read_plan(PCAM_MPP)
        assert slide.read_target(plan, x_px=0, y_px=0, width_px=200, height_px=50).shape
        with pytest.raises(SlideReadError, match=r"bad-tile\.tif.*tile 1 of level 2"):
            slide.read_target(plan, x_px=0, y_px=0, width_px=300, height_px=50)


def test_other_formats_are_read_by_openslide(fixture_slides: Path) -> None:
    with open_slide(fixture_slides / "boxes.tiff", mpp=0.25) as slide:
        sources = {slide.pixel_source(level) for level in range(4)}
        plan = slide.geometry.plan_for_downsample(1.0)
        assert (
            slide.read_target(plan, x_px=0, y_px=0, width_px=300, height_px=250).std()
            > 0
        )
    assert sources <= {"tiff", "openslide"}


def test_a_tile_wanted_by_two_threads_at_once_is_decoded_once() -> None:
    import threading

    cache = wsi.slide._tiffread._TileCache(1 << 20)
    calls: list[int] = []
    started, release = threading.Event(), threading.Event()

    def slow_decode() -> np.ndarray:
        calls.append(1)
        started.set()
        release.wait(5)
        return np.full((4, 4, 3), 7, np.uint8)

    results: list[np.ndarray | None] = []
    first = threading.Thread(
        target=lambda: results.append(cache.get_or_decode(("t", 0), slow_decode))
    )
    first.start()
    assert started.wait(5)
    second = threading.Thread(
        target=lambda: results.append(cache.get_or_decode(("t", 0), slow_decode))
    )
    second.start()
    second.join(0.2)
    assert second.is_alive()  # waiting for the first decode, not decoding itself
    release.set()
    first.join(5)
    second.join(5)
    assert len(calls) == 1
    assert len(results) == 2
    assert all(r is not None and r[0, 0, 0] == 7 for r in results)


def test_a_failed_tile_decode_is_not_cached() -> None:
    cache = wsi.slide._tiffread._TileCache(1 << 20)

    def broken() -> np.ndarray:
        raise wsi.slide._tiffread.TileDecodeError("tile 0 of level 0: corrupt")

    for _ in range(2):  # the second call decodes again (and fails again)
        with pytest.raises(wsi.slide._tiffread.TileDecodeError, match="corrupt"):
            cache.get_or_decode(("t", 0), broken)
    tile = cache.get_or_decode(("t", 0), lambda: np.zeros((2, 2, 3), np.uint8))
    assert tile is not None
    assert tile.shape == (2, 2, 3)
