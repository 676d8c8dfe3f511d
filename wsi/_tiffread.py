"""Direct tile decoding for the TIFF slides OpenSlide reads plainly (private).

OpenSlide composites every read through cairo, which costs more per pixel than
decoding the tiles. For generic tiled TIFFs (Camelyon16) and Aperio SVS, whose
pyramid levels are plain tiled TIFF pages, :class:`TiffLevels` decodes the tiles with
tifffile and imagecodecs (the same libjpeg-turbo / OpenJPEG, giving identical pixels)
straight into numpy, each tile once thanks to a process-wide cache. Anything else
(other vendors, other codecs, a level without a matching page) is read by OpenSlide.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import tifffile

__all__ = ["TILE_CACHE_BYTES", "TiffLevels", "TileDecodeError"]

logger = logging.getLogger(__name__)

#: Decoded tiles kept in memory, shared by every slide of the process.
TILE_CACHE_BYTES: Final = 192 << 20
# OpenSlide vendors whose levels are plain tiled pages of the TIFF.
_VENDORS: Final = frozenset({"generic-tiff", "aperio"})
# TIFF compressions checked to decode to OpenSlide's exact pixels: none, LZW, JPEG,
# deflate (two codes), Aperio JPEG 2000 RGB.
_CODECS: Final = frozenset({1, 5, 7, 8, 32946, 33005})


class TileDecodeError(Exception):
    """A tile's bytes do not decode (the reader turns it into a SlideReadError)."""


class _TileCache:
    """A thread-safe LRU of decoded tiles, bounded in bytes.

    A tile wanted by several threads at once is decoded by the first of them; the
    others wait for it rather than decode it again.
    """

    def __init__(self, capacity_bytes: int) -> None:
        self._capacity = capacity_bytes
        self._size = 0
        self._tiles: OrderedDict[tuple[Any, ...], npt.NDArray[np.uint8]] = OrderedDict()
        self._pending: dict[tuple[Any, ...], threading.Event] = {}
        self._lock = threading.Lock()

    def get_or_decode(
        self,
        key: tuple[Any, ...],
        decode: Callable[[], npt.NDArray[np.uint8] | None],
    ) -> npt.NDArray[np.uint8] | None:
        """The tile under ``key``, from ``decode()`` if no thread has it yet.

        ``None`` (an absent tile) is not cached; an error of ``decode`` propagates,
        and a thread that was waiting for that tile tries it itself.
        """
        while True:
            with self._lock:
                tile = self._tiles.get(key)
                if tile is not None:
                    self._tiles.move_to_end(key)
                    return tile
                busy = self._pending.get(key)
                if busy is None:
                    done = self._pending[key] = threading.Event()
                    break
            busy.wait()
        try:
            tile = decode()
            if tile is not None:
                self._put(key, tile)
            return tile
        finally:
            with self._lock:
                del self._pending[key]
            done.set()

    def _put(self, key: tuple[Any, ...], tile: npt.NDArray[np.uint8]) -> None:
        with self._lock:
            if key in self._tiles:
                return
            self._tiles[key] = tile
            self._size += tile.nbytes
            while self._size > self._capacity and len(self._tiles) > 1:
                _, old = self._tiles.popitem(last=False)
                self._size -= old.nbytes


_CACHE = _TileCache(TILE_CACHE_BYTES)


class TiffLevels:
    """Tile-by-tile access to a slide's pyramid levels, in level pixels."""

    def __init__(self, path: Path, tiff: Any, pages: Mapping[int, Any]) -> None:
        self._path = str(path.resolve())
        self._tiff = tiff
        self._pages = dict(pages)
        self._fd = os.open(path, os.O_RDONLY)
        # Identifies this file's tiles in the shared cache (a rewritten file differs).
        stat = os.fstat(self._fd)
        self._key = (self._path, stat.st_size, stat.st_mtime_ns)

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        vendor: str | None,
        level_dimensions: tuple[tuple[int, int], ...],
    ) -> TiffLevels | None:
        """Direct access to the levels of ``path`` that allow it, or None."""
        if vendor not in _VENDORS:
            return None
        try:
            tiff = tifffile.TiffFile(path)
        except (OSError, ValueError, tifffile.TiffFileError) as err:
            logger.debug("%s: no direct TIFF access (%s)", path, err)
            return None
        pages: dict[int, Any] = {}
        try:
            for level, (width, height) in enumerate(level_dimensions):
                for page in tiff.pages:
                    if _plain(page) and tuple(page.shape[:2]) == (height, width):
                        pages[level] = page
                        break
        except (OSError, ValueError, tifffile.TiffFileError) as err:
            logger.debug("%s: no direct TIFF access (%s)", path, err)
            pages = {}
        if not pages:
            tiff.close()
            return None
        logger.debug("%s: decoding levels %s directly", path.name, sorted(pages))
        return cls(path, tiff, pages)

    def has(self, level: int) -> bool:
        """Whether ``level`` is decoded directly."""
        return level in self._pages

    def close(self) -> None:
        """Release the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._tiff.close()

    def read(
        self, level: int, *, x: int, y: int, width: int, height: int
    ) -> npt.NDArray[np.uint8]:
        """``uint8[height, width, 3]`` of ``level`` from level pixel ``(x, y)``.

        Anything outside the level is white.
        """
        page = self._pages[level]
        page_h, page_w = page.shape[:2]
        tile_h, tile_w = page.tilelength, page.tilewidth
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, page_w), min(y + height, page_h)
        if x0 >= x1 or y0 >= y1:
            return np.full((height, width, 3), 255, dtype=np.uint8)
        # Every pixel is written once: tiles inside the level, white outside it.
        out = np.empty((height, width, 3), dtype=np.uint8)
        out[: y0 - y] = 255
        out[y1 - y :] = 255
        out[:, : x0 - x] = 255
        out[:, x1 - x :] = 255
        across = -(-page_w // tile_w)
        for ty in range(y0 // tile_h, (y1 - 1) // tile_h + 1):
            for tx in range(x0 // tile_w, (x1 - 1) // tile_w + 1):
                tile = self._tile(level, page, ty * across + tx)
                left, top = tx * tile_w, ty * tile_h
                a, b = max(x0, left), min(x1, left + tile_w)
                c, d = max(y0, top), min(y1, top + tile_h)
                if tile is None:  # an absent tile is transparent, as in OpenSlide
                    out[c - y : d - y, a - x : b - x] = 255
                    continue
                out[c - y : d - y, a - x : b - x] = tile[
                    c - top : d - top, a - left : b - left
                ]
        return out

    def _tile(self, level: int, page: Any, index: int) -> npt.NDArray[np.uint8] | None:
        def decode() -> npt.NDArray[np.uint8] | None:
            offset, count = page.dataoffsets[index], page.databytecounts[index]
            if not count:
                return None
            data = os.pread(self._fd, count, offset)
            try:
                decoded, _, _ = page.decode(data, index, jpegtables=page.jpegtables)
            except Exception as err:
                raise TileDecodeError(f"tile {index} of level {level}: {err}") from err
            shape = (page.tilelength, page.tilewidth, 3)
            return np.ascontiguousarray(np.asarray(decoded, np.uint8).reshape(shape))

        return _CACHE.get_or_decode((*self._key, level, index), decode)


def _plain(page: Any) -> bool:
    """A tiled, 8-bit, interleaved RGB page in a codec known to match OpenSlide."""
    try:
        return bool(
            page.is_tiled
            and page.tiledepth == 1
            and page.imagedepth == 1
            and int(page.compression) in _CODECS
            and int(page.photometric) in (2, 6)  # RGB, YCbCr (JPEG only)
            and (int(page.photometric) == 2 or int(page.compression) == 7)
            and page.bitspersample == 8
            and page.samplesperpixel == 3
            and int(page.planarconfig) == 1
        )
    except (AttributeError, TypeError, ValueError):
        return False
