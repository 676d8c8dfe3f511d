"""How every PNG the tool writes is encoded: one speed/size trade-off (private).

PIL's default zlib level (6) spends most of the export stage compressing: on a
61,440 px slide's 1920 x 2016 overlay and 1920 x 1920 tissue map, level 1 encodes
4-5x faster for 5-13% more bytes (``python benchmarks/bench_png.py RUN_FOLDER``). The
images are for looking at, not for archiving, so they are written at level 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Final

from PIL import Image

__all__ = ["PNG_COMPRESS_LEVEL", "save_png"]

#: zlib level of every PNG written (0-9; PIL's default is 6).
PNG_COMPRESS_LEVEL: Final = 1


def save_png(image: Image.Image, target: str | Path | IO[bytes]) -> None:
    """Write ``image`` as PNG to a path or a binary file object."""
    image.save(target, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
