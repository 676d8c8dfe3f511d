"""Patch codecs: every codec round-trips the pixels; stores of earlier versions read."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from tests.fakes import ColourClassifier
from tests.slides import SlideSpec
from wsi.scoring import ScoringParams, score_store
from wsi.store.layout import Arrays
from wsi.store.slide_store import PATCH_CODECS, array, codec_name, open_tile_store
from wsi.tiles.tiler import TilingParams, tile_slide
from wsi.tiles.tissue import TissueParams

OLD_STORE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "stores" / "old-zstd.zarr"
)
OLD_PATCHES_SHA256 = "eb9488025f44a8d3524bb3441e470e4e75154c1cec03f089483343e4121261fe"


def _patches(store: Path) -> np.ndarray:
    return np.asarray(array(zarr.open_group(store, mode="r"), Arrays.PATCHES)[:])


def test_every_codec_stores_the_same_pixels(
    tiny_slide: SlideSpec, tmp_path: Path
) -> None:
    pixels = {}
    for codec in PATCH_CODECS:
        store = tmp_path / f"{codec}.zarr"
        tile_slide(
            tiny_slide.path,
            store,
            tiling=TilingParams(
                patch_codec=codec,
                chunk_patches=4,
                stride_px=48,
                patch_layout="patches",
            ),
            tissue=TissueParams(),
        )
        patches = array(zarr.open_group(store, mode="r"), Arrays.PATCHES)
        expected = {"none": "none", "blosc-lz4": "blosc-lz4", "zstd": "zstd-1"}[codec]
        assert codec_name(patches.compressors) == expected
        assert open_tile_store(store).tiling["patch_codec"] == expected
        pixels[codec] = np.asarray(patches[:])
    assert pixels["none"].shape[0] > 4  # more than one chunk
    for codec in PATCH_CODECS:
        np.testing.assert_array_equal(pixels[codec], pixels["none"])


@pytest.mark.parametrize(
    ("stride", "layout", "expected"),
    [
        (96, "auto", "none"),
        (48, "auto", "none"),  # cells: each pixel once, nothing repeats
        (48, "patches", "zstd-1"),  # whole overlapping patches repeat their pixels
        (64, "auto", "zstd-1"),  # 64 does not divide 96: whole patches
    ],
)
def test_auto_codec_compresses_only_overlapping_patches(
    tiny_slide: SlideSpec, tmp_path: Path, stride: int, layout: str, expected: str
) -> None:
    store = tmp_path / "auto.zarr"
    tile_slide(
        tiny_slide.path,
        store,
        tiling=TilingParams(stride_px=stride, patch_layout=layout),  # type: ignore[arg-type]
        tissue=TissueParams(),
    )
    assert open_tile_store(store).tiling["patch_codec"] == expected


def test_a_store_resumes_with_the_codec_it_was_created_with(
    tiny_slide: SlideSpec, tmp_path: Path
) -> None:
    store = tmp_path / "s.zarr"
    # Whole patches: the codec compresses decoded pixels (not a source-JPEG store).
    first = tile_slide(
        tiny_slide.path,
        store,
        tiling=TilingParams(patch_codec="zstd", patch_layout="patches"),
        tissue=TissueParams(),
    )
    again = tile_slide(
        tiny_slide.path,
        store,
        tiling=TilingParams(patch_codec="none", patch_layout="patches"),
        tissue=TissueParams(),
    )
    assert again.resumed
    assert again.patches_written == 0
    assert again.n_patches == first.n_patches
    assert open_tile_store(store).tiling["patch_codec"] == "zstd-1"


def test_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="patch_codec must be 'auto' or one of"):
        TilingParams(patch_codec="lzma")  # type: ignore[arg-type]


def test_a_store_written_by_an_earlier_version_reads_and_scores(tmp_path: Path) -> None:
    store = tmp_path / "old.zarr"
    shutil.copytree(OLD_STORE, store)
    tiles = open_tile_store(store)
    assert tiles.n_patches == 5
    patches = _patches(store)
    assert hashlib.sha256(patches.tobytes()).hexdigest() == OLD_PATCHES_SHA256
    group = zarr.open_group(store, mode="r")
    assert codec_name(array(group, Arrays.PATCHES).compressors) == "zstd-1"
    classifier = ColourClassifier()
    result = score_store(store, params=ScoringParams(), classifier=classifier)
    assert result.n_patches == 5
    scores = np.asarray(array(zarr.open_group(store, mode="r"), Arrays.SCORES)[:])
    np.testing.assert_allclose(scores, classifier(patches), rtol=1e-6)
