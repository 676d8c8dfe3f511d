"""The one PNG writer: lossless whatever its speed setting, to paths and buffers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsi.heatmap._png import save_png


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_png_round_trips_exactly(mode: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (37, 53, len(mode)), dtype=np.uint8)
    path, buffer = tmp_path / "x.png", io.BytesIO()
    save_png(Image.fromarray(pixels, mode=mode), path)
    save_png(Image.fromarray(pixels, mode=mode), buffer)
    for source in (path, io.BytesIO(buffer.getvalue())):
        with Image.open(source) as image:
            assert image.format == "PNG"
            np.testing.assert_array_equal(np.asarray(image), pixels)
