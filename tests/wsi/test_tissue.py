"""Tissue detection: synthetic thumbnails, real tiles, real slides vs histolab."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

import wsi.tiles.tissue
from tests.slides import SlideSpec
from wsi.errors import OutputError
from wsi.geometry import PCAM_MPP, TileGrid
from wsi.slide.reader import open_slide
from wsi.tiles.tissue import (
    TissueMask,
    TissueParams,
    compute_tissue_mask,
    tissue_mask_from_rgb,
    tissue_png,
)

GLASS = (243, 242, 240)
PINK = (220, 140, 190)


def _tile(name: str, folder: Path) -> npt.NDArray[np.uint8]:
    return np.asarray(Image.open(folder / name).convert("RGB"))


def _iou(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("min_saturation", 1.5, "min_saturation must be between 0 and 1"),
        ("max_saturation_threshold", 0.05, "must not be below min_saturation"),
        ("min_object_um2", -1.0, "min_object_um2 must be >= 0"),
        ("blur_sigma_px", -1.0, "blur_sigma_px must be >= 0"),
    ],
)
def test_params_are_validated(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TissueParams(**{field: value})  # type: ignore[arg-type]


def test_background_pen_black_and_small_objects() -> None:
    rgb = np.full((200, 200, 3), GLASS, np.uint8)
    rgb[20:120, 20:120] = PINK  # tissue, 100 x 100 px
    rgb[60:66, 60:66] = GLASS  # a small hole: filled
    rgb[150:190, 20:60] = (40, 160, 120)  # green pen
    rgb[150:190, 120:160] = (200, 30, 40)  # red pen
    rgb[20:60, 150:190] = (10, 10, 10)  # black
    rgb[180:183, 180:183] = PINK  # a speck: removed
    mask = tissue_mask_from_rgb(rgb, mpp=8.0, params=TissueParams())
    assert mask[30:110, 30:110].all()
    assert mask[60:66, 60:66].all()
    assert not mask[150:190].any()
    assert not mask[20:60, 150:190].any()
    assert not mask[178:186, 178:186].any()
    assert not mask[:, 125:].any()
    # Areas are physical: at 1 um/px the same 100 x 100 px square is too small.
    assert not tissue_mask_from_rgb(rgb, mpp=0.5, params=TissueParams()).any()
    kept = tissue_mask_from_rgb(rgb, mpp=8.0, params=TissueParams(exclude_pen=False))
    assert kept[150:190, 20:60].all()


def test_pale_tissue_is_kept_when_otsu_would_split_the_tissue() -> None:
    rgb = np.full((100, 100, 3), GLASS, np.uint8)
    rgb[:, :50] = (225, 195, 215)  # pale: saturation ~0.13
    rgb[:, 50:] = (150, 60, 140)  # dark: saturation ~0.6
    mask = tissue_mask_from_rgb(rgb, mpp=8.0, params=TissueParams())
    assert mask.all()


def test_empty_and_uniform_inputs() -> None:
    assert tissue_mask_from_rgb(
        np.zeros((0, 5, 3), np.uint8), mpp=8, params=TissueParams()
    ).shape == (0, 5)
    blank = np.full((50, 50, 3), GLASS, np.uint8)
    assert not tissue_mask_from_rgb(blank, mpp=8, params=TissueParams()).any()
    with pytest.raises(ValueError, match="rgb must be uint8"):
        tissue_mask_from_rgb(np.zeros((5, 5)), mpp=8, params=TissueParams())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        "tissue-level2-crop.png",
        "tissue-pale-level0-crop.png",
        "tissue-dense-level0-crop.png",
    ],
)
def test_real_tissue_tiles_are_tissue(tissue_fixtures: Path, name: str) -> None:
    mask = tissue_mask_from_rgb(
        _tile(name, tissue_fixtures), mpp=1.0, params=TissueParams()
    )
    assert mask.mean() > 0.95


@pytest.mark.parametrize(
    "name",
    [
        "no-tissue.png",
        "almost-white-1.png",
        "no-tissue-line.png",
        "no-tissue-green-pen.png",
    ],
)
def test_real_empty_and_pen_tiles_are_not_tissue(
    tissue_fixtures: Path, name: str
) -> None:
    mask = tissue_mask_from_rgb(
        _tile(name, tissue_fixtures), mpp=1.0, params=TissueParams()
    )
    assert mask.mean() < 0.01


def test_red_pen_tile_loses_most_of_its_ink(tissue_fixtures: Path) -> None:
    rgb = _tile("no-tissue-red-pen.png", tissue_fixtures)
    with_pen = tissue_mask_from_rgb(
        rgb, mpp=1.0, params=TissueParams(exclude_pen=False)
    )
    without = tissue_mask_from_rgb(rgb, mpp=1.0, params=TissueParams())
    # Red ink goes; the dark purple ink under it has H&E colours and partly stays.
    assert with_pen.mean() > 0.6
    assert without.mean() < 0.35


@pytest.mark.parametrize(
    ("slide", "reference", "mpp", "min_iou"),
    [
        ("cmu-1-small-region.svs", "tissue-mask-cmu-1-small-region.npy", None, 0.75),
        ("tcga-cr-7395-01a-01-ts1.svs", "tissue-mask-tcga-cr-7395.npy", 0.499, 0.9),
    ],
)
def test_real_slides_agree_with_histolab(
    fixture_slides: Path,
    tissue_fixtures: Path,
    slide: str,
    reference: str,
    mpp: float | None,
    min_iou: float,
) -> None:
    with open_slide(fixture_slides / slide, mpp=mpp) as opened:
        tissue = compute_tissue_mask(opened, grid_mpp=PCAM_MPP, params=TissueParams())
        g = opened.geometry
    ref = np.load(tissue_fixtures / reference)
    # Sample our mask at the centres of the reference's pixels.
    rows = (
        (np.arange(ref.shape[0]) + 0.5) * g.height_px / ref.shape[0] / tissue.downsample
    )
    cols = (
        (np.arange(ref.shape[1]) + 0.5) * g.width_px / ref.shape[1] / tissue.downsample
    )
    ours = tissue.mask[np.ix_(rows.astype(int), cols.astype(int))]
    assert _iou(ours, ref) >= min_iou


def test_mask_is_aligned_with_the_grid_and_finds_the_blob(
    tiny_slide: SlideSpec,
) -> None:
    with open_slide(tiny_slide.path) as slide:
        tissue = compute_tissue_mask(slide, grid_mpp=PCAM_MPP, params=TissueParams())
        grid = TileGrid(geometry=slide.geometry, mpp=PCAM_MPP)
    assert tissue.mask.shape == grid.mask_shape == (64, 64)
    assert tissue.thumbnail.shape == (64, 64, 3)
    assert tissue.downsample == pytest.approx(32.0)
    assert tissue.mpp == pytest.approx(0.243 * 32)
    assert tissue.level == 3  # the coarsest level finer than 7.8 um/px
    centres = (np.arange(64) + 0.5) * tissue.downsample
    truth = tiny_slide.tissue_at(centres[None, :], centres[:, None])
    assert _iou(tissue.mask, truth) > 0.9


def test_pen_and_black_on_a_slide_are_not_tissue(pen_slide: SlideSpec) -> None:
    with open_slide(pen_slide.path) as slide:
        tissue = compute_tissue_mask(slide, grid_mpp=PCAM_MPP, params=TissueParams())
    centres = (np.arange(tissue.mask.shape[0]) + 0.5) * tissue.downsample
    truth = pen_slide.tissue_at(centres[None, :], centres[:, None])
    assert _iou(tissue.mask, truth) > 0.9
    assert not tissue.mask[50:, :15].any()  # the pen ellipse, bottom left
    assert not tissue.mask[:15, 50:].any()  # the black ellipse, top right


def test_thumbnail_is_read_in_bands(
    tiny_slide: SlideSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_slide(tiny_slide.path) as slide:
        whole = compute_tissue_mask(slide, grid_mpp=PCAM_MPP, params=TissueParams())
        monkeypatch.setattr(wsi.tiles.tissue, "_THUMBNAIL_BAND_PIXELS", 5_000)
        calls: list[tuple[int, int]] = []
        read = slide.read_target

        def spy(plan, **kw):  # type: ignore[no-untyped-def]
            calls.append((kw["width_px"], kw["height_px"]))
            return read(plan, **kw)

        monkeypatch.setattr(slide, "read_target", spy)
        banded = compute_tissue_mask(slide, grid_mpp=PCAM_MPP, params=TissueParams())
    assert len(calls) > 1
    assert max(w * h for w, h in calls) * 16 <= 5_000 * 2  # level px per band bounded
    np.testing.assert_array_equal(whole.thumbnail, banded.thumbnail)
    np.testing.assert_array_equal(whole.mask, banded.mask)


def test_tissue_png(tmp_path: Path) -> None:
    mask = np.zeros((40, 60), bool)
    mask[10:30, 10:40] = True
    tissue = TissueMask(
        mask=mask,
        thumbnail=np.full((40, 60, 3), 200, np.uint8),
        mpp=7.776,
        downsample=32.0,
    )
    path = tmp_path / "out" / "tissue.png"
    tissue_png(tissue, path)
    image = np.asarray(Image.open(path))
    assert image.shape == (40, 60, 3)
    assert (image[20, 20] == 200).all()  # tissue keeps its colour
    assert image[0, 0].mean() > 200  # background washed out
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot write"):
        tissue_png(tissue, blocker / "tissue.png")


@pytest.mark.parametrize("workers", [1, 3])
def test_colour_strips_give_the_whole_image_result(
    fixture_slides: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    import wsi.tiles._tissue_colour

    with open_slide(fixture_slides / "cmu-1-small-region.svs") as slide:
        thumb = compute_tissue_mask(
            slide, grid_mpp=PCAM_MPP, params=TissueParams()
        ).thumbnail
    params = TissueParams(blur_sigma_px=2.0)
    whole = tissue_mask_from_rgb(thumb, mpp=7.8, params=params)
    monkeypatch.setattr(wsi.tiles._tissue_colour, "STRIP_PIXELS", 7 * thumb.shape[1])
    monkeypatch.setattr(wsi.tiles.tissue, "STRIP_PIXELS", 5 * thumb.shape[1])
    strips = tissue_mask_from_rgb(thumb, mpp=7.8, params=params, workers=workers)
    np.testing.assert_array_equal(whole, strips)
    assert whole.any()
    assert not whole.all()
