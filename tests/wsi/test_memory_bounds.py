"""Memory is bounded by the read and chunk sizes, never by the slide.

Tiling (the tissue-mask thumbnail and the patch bands) and scoring are run with
small budgets; every pixel read from the slide and every block handed to the
classifier must stay within them, so no whole-slide (or whole-level) array is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import wsi.slide.reader
import wsi.tiles.tissue
from tests.fakes import ColourClassifier
from tests.slides import SlideSpec
from wsi.scoring import ScoringParams, score_store
from wsi.tiles.tiler import TilingParams, tile_slide
from wsi.tiles.tissue import TissueParams

BUDGET_PX = 40_000


class _Recording:
    """The colour classifier, recording the size of every block it scores."""

    def __init__(self) -> None:
        self.inner = ColourClassifier()
        self.input_px, self.mpp = self.inner.input_px, self.inner.mpp
        self.sha256 = self.inner.sha256
        self.blocks: list[int] = []

    def __call__(self, patches: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        self.blocks.append(len(patches))
        return self.inner(patches)


def test_no_read_or_block_grows_with_the_slide(
    tiny_slide: SlideSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[tuple[int, int]] = []
    real = wsi.slide.reader.Slide._read_pixels

    def spy(self: Any, level: int, x: int, y: int, width: int, height: int) -> Any:
        reads.append((level, width * height))
        return real(self, level, x, y, width, height)

    monkeypatch.setattr(wsi.slide.reader.Slide, "_read_pixels", spy)
    monkeypatch.setattr(wsi.tiles.tissue, "_THUMBNAIL_BAND_PIXELS", BUDGET_PX)
    store = tmp_path / "s.zarr"
    tiled = tile_slide(
        tiny_slide.path,
        store,
        tiling=TilingParams(band_pixels=BUDGET_PX, chunk_patches=8, stride_px=48),
        tissue=TissueParams(),
    )
    levels = {level for level, _ in reads}
    with wsi.slide.reader.open_slide(tiny_slide.path) as slide:
        sizes = slide.geometry.level_dimensions
    for level in levels:
        level_px = sizes[level][0] * sizes[level][1]
        mine = [px for lv, px in reads if lv == level]
        assert len(mine) > 1, level
        assert max(mine) < level_px, level  # never the whole level at once
    # Every read is about the budget (bands add their overlap and resampling margins).
    assert max(px for _, px in reads) <= 1.25 * BUDGET_PX
    classifier = _Recording()
    score_store(store, params=ScoringParams(), classifier=classifier)
    assert sum(classifier.blocks) == tiled.n_patches
    assert max(classifier.blocks) <= 8
