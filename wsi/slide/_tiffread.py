"""Direct tile decoding for the TIFF slides OpenSlide reads plainly (private).

OpenSlide composites every read through cairo, which costs more per pixel than
decoding the tiles. For generic tiled TIFFs (Camelyon16) and Aperio SVS, whose
pyramid levels are plain tiled TIFF pages, :class:`TiffLevels` decodes the tiles with
tifffile and imagecodecs (the same libjpeg-turbo / OpenJPEG, giving identical pixels)
straight into numpy, each tile once thanks to a process-wide cache. Anything else
(other vendors, other codecs, a level without a matching page) is read by OpenSlide.

A JPEG level's compressed tiles can also be handed out as they are
(:meth:`TiffLevels.jpeg_tiles`): a tile store of the ``source-jpeg`` layout keeps them
and decodes them with :class:`JpegCodec`, the same call that tifffile makes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import tifffile

__all__ = [
    "TILE_CACHE_BYTES",
    "JpegCodec",
    "JpegTiles",
    "TiffLevels",
    "TileDecodeError",
    "compose_region",
    "tile_cache",
]

logger = logging.getLogger(__name__)

#: Decoded tiles kept in memory, shared by every slide of the process.
TILE_CACHE_BYTES: Final = 192 << 20
# OpenSlide vendors whose levels are plain tiled pages of the TIFF.
_VENDORS: Final = frozenset({"generic-tiff", "aperio"})
# TIFF compressions checked to decode to OpenSlide's exact pixels: none, LZW, JPEG,
# deflate (two codes), Aperio JPEG 2000 RGB.
_CODECS: Final = frozenset({1, 5, 7, 8, 32946, 33005})
_JPEG: Final = 7


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

    def has(self, key: tuple[Any, ...]) -> bool:
        """Whether the tile under ``key`` is cached (it may be evicted at any time)."""
        with self._lock:
            return key in self._tiles

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


def tile_cache() -> _TileCache:
    """The process-wide cache of decoded tiles (slides and ``source-jpeg`` stores)."""
    return _CACHE


@dataclass(frozen=True, slots=True, kw_only=True)
class JpegCodec:
    """How the JPEG tiles of one TIFF page decode: what tifffile passes imagecodecs.

    Attributes
    ----------
    size_px
        ``(width, height)`` of the page (level) in pixels.
    tile_px
        ``(width, height)`` of its tiles.
    tables
        The page's JPEGTables (quantisation and Huffman tables the tiles share), or
        None when every tile holds its own.
    colorspace, outcolorspace
        ``imagecodecs.jpeg_decode`` colour spaces (``tifffile.jpeg_decode_colorspace``
        of the page).
    """

    size_px: tuple[int, int]
    tile_px: tuple[int, int]
    tables: bytes | None
    colorspace: int | None
    outcolorspace: int | str | None

    def decode(self, data: bytes) -> npt.NDArray[np.uint8] | None:
        """``uint8[tile_h, tile_w, 3]`` of one tile's bytes; None for an absent tile.

        Raises
        ------
        TileDecodeError
            The bytes are not a JPEG tile of this page.
        """
        if not data:
            return None
        import imagecodecs

        width, height = self.tile_px
        try:
            decoded = imagecodecs.jpeg_decode(
                data,
                bitspersample=8,
                tables=self.tables,
                header=None,
                colorspace=self.colorspace,
                outcolorspace=self.outcolorspace,
                shape=(height, width),
            )
            tile = np.asarray(decoded, np.uint8).reshape(height, width, 3)
        except Exception as err:  # imagecodecs raises its own error classes
            raise TileDecodeError(f"a {width}x{height} JPEG tile: {err}") from err
        return np.ascontiguousarray(tile)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class JpegTiles:
    """Where the compressed tiles of one JPEG level lie in the slide file.

    Attributes
    ----------
    path
        The slide file.
    level
        The pyramid level.
    codec
        How its tiles decode.
    offsets, bytecounts
        ``int64[tiles]``: each tile's byte range in the file, row-major; a count of 0
        is an absent tile (white).
    """

    path: Path
    level: int
    codec: JpegCodec
    offsets: npt.NDArray[np.int64]
    bytecounts: npt.NDArray[np.int64]

    @property
    def tiles_across(self) -> int:
        """Tile columns of the level."""
        return -(-self.codec.size_px[0] // self.codec.tile_px[0])

    def read(self, fd: int, row: int, col: int) -> bytes:
        """The raw bytes of tile ``(row, col)`` from ``fd``, an open ``path``."""
        index = row * self.tiles_across + col
        count = int(self.bytecounts[index])
        data = os.pread(fd, count, int(self.offsets[index])) if count else b""
        if len(data) != count:
            raise TileDecodeError(
                f"tile {index} of level {self.level} is cut short ({len(data)} of "
                f"{count} bytes)"
            )
        return data


def compose_region(
    tile_at: Callable[[int, int], npt.NDArray[np.uint8] | None],
    *,
    x: int,
    y: int,
    width: int,
    height: int,
    size_px: tuple[int, int],
    tile_px: tuple[int, int],
    out: npt.NDArray[np.uint8] | None = None,
) -> npt.NDArray[np.uint8]:
    """``uint8[height, width, 3]`` of a tiled level from level pixel ``(x, y)``.

    Parameters
    ----------
    tile_at
        ``tile_at(col, row)``: the decoded tile (``uint8[tile_h, tile_w, 3]``), or
        None for an absent tile (white, as in OpenSlide).
    x, y, width, height
        The region, in level pixels.
    size_px, tile_px
        ``(width, height)`` of the level and of its tiles.
    out
        Where to write the region (a new array when None).

    Returns
    -------
    numpy.ndarray
        ``out``; anything outside the level is white.

    Examples
    --------
    >>> tile = np.zeros((4, 4, 3), np.uint8)
    >>> region = compose_region(lambda col, row: tile, x=2, y=0, width=4, height=2,
    ...                         size_px=(5, 5), tile_px=(4, 4))
    >>> region[0, :, 0].tolist()          # level pixels 2, 3, 4 and one beyond
    [0, 0, 0, 255]
    """
    page_w, page_h = size_px
    tile_w, tile_h = tile_px
    if out is None:
        out = np.empty((height, width, 3), dtype=np.uint8)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + width, page_w), min(y + height, page_h)
    if x0 >= x1 or y0 >= y1:
        out[:] = 255
        return out
    # Every pixel is written once: tiles inside the level, white outside it.
    out[: y0 - y] = 255
    out[y1 - y :] = 255
    out[:, : x0 - x] = 255
    out[:, x1 - x :] = 255
    for ty in range(y0 // tile_h, (y1 - 1) // tile_h + 1):
        for tx in range(x0 // tile_w, (x1 - 1) // tile_w + 1):
            tile = tile_at(tx, ty)
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
        across = -(-page_w // page.tilewidth)
        return compose_region(
            lambda tx, ty: self._tile(level, page, ty * across + tx),
            x=x,
            y=y,
            width=width,
            height=height,
            size_px=(page_w, page_h),
            tile_px=(page.tilewidth, page.tilelength),
        )

    def jpeg_tiles(self, level: int) -> JpegTiles | None:
        """The compressed tiles of ``level`` as they are, if they are JPEG.

        None unless ``level`` is decoded directly from JPEG tiles, and unless
        :class:`JpegCodec` decodes its first tile exactly as tifffile does (checked
        here, once, on that tile).
        """
        page = self._pages.get(level)
        if page is None or int(page.compression) != _JPEG:
            return None
        page_h, page_w = page.shape[:2]
        # As tifffile.jpeg_decode_colorspace for these pages (3 samples, interleaved):
        # YCbCr or RGB out as RGB; RGB tiles without JFIF (Aperio) are read as RGB.
        rgb_tiles = int(page.photometric) == 2 and not page.is_jfif
        tables = page.jpegtables
        tiles = JpegTiles(
            path=Path(self._path),
            level=level,
            codec=JpegCodec(
                size_px=(int(page_w), int(page_h)),
                tile_px=(int(page.tilewidth), int(page.tilelength)),
                tables=None if tables is None else bytes(tables),
                colorspace=2 if rgb_tiles else None,
                outcolorspace=2,
            ),
            offsets=np.asarray(page.dataoffsets, dtype=np.int64),
            bytecounts=np.asarray(page.databytecounts, dtype=np.int64),
        )
        present = np.flatnonzero(tiles.bytecounts)
        if len(present) == 0:
            return None
        index = int(present[0])
        row, col = divmod(index, tiles.tiles_across)
        try:
            mine = tiles.codec.decode(tiles.read(self._fd, row, col))
            theirs = self._tile(level, page, index)
        except TileDecodeError as err:
            logger.debug(
                "%s: JPEG tiles of level %d not kept (%s)", self._path, level, err
            )
            return None
        if mine is None or theirs is None or not np.array_equal(mine, theirs):
            logger.debug("%s: level %d's tiles decode otherwise", self._path, level)
            return None
        return tiles

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
