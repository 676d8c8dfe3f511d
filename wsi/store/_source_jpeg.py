"""The source-JPEG layout of a tile store: the slide's own JPEG tiles (private).

When the patch grid's read level is a JPEG-tiled TIFF page that is read at exactly
the target resolution (no resampling), a patch's pixels are those of the level's
tiles under it. A source-JPEG store then keeps, instead of decoded pixels, the
compressed bytes of those tiles as they are in the slide file
(``Arrays.SOURCE_TILES``: one element per tile, bit-identical, no re-encoding), their
``(row, col)`` on the level (``Arrays.SOURCE_TILE_GRID``, row-major) and what
decoding needs (the ``source_jpeg`` entry of the ``tiling`` attributes: JPEG tables,
colour spaces, tile and level size). :func:`read_patches` decodes the tiles that the
requested patches cover, each once per process thanks to the shared tile cache, and
cuts the patches out as :class:`wsi.slide._tiffread.TiffLevels` does: the same pixels as a
``patches`` store of the same slide, white outside the level and in absent tiles
(a tile byte count of 0, stored as empty bytes).

Examples
--------
>>> codec = JpegCodec(size_px=(1000, 700), tile_px=(512, 512), tables=None,
...                   colorspace=None, outcolorspace=2)
>>> rowcol = np.array([[0, 0], [0, 5], [5, 10]])     # stride 96: 96 px patches
>>> tiles_under(rowcol, stride_px=96, patch_px=96, codec=codec).tolist()
[[0, 0], [0, 1], [1, 1]]
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import zarr

from wsi.errors import OutputError, WsiError
from wsi.geometry import TileGrid
from wsi.slide._tiffread import (
    JpegCodec,
    JpegTiles,
    TileDecodeError,
    compose_region,
    tile_cache,
)
from wsi.slide.reader import Slide

__all__ = [
    "TILES_PER_CHUNK",
    "codec_attrs",
    "codec_from_attrs",
    "read_patches",
    "source_tiles",
    "tiles_under",
]

logger = logging.getLogger(__name__)

#: Tiles per zarr chunk of ``source_tiles`` (and per unit of resumable work): about
#: 1-2 MB of a Camelyon16 level's 512 px tiles, so that a patch read loads little.
TILES_PER_CHUNK: Final = 16
#: Patches cut per batch of decoded tiles in :func:`read_patches`.
_BLOCK_PATCHES: Final = 256
#: Decoded tiles by level ``(row, col)``; None for an absent tile.
_Decoded = dict[tuple[int, int], npt.NDArray[np.uint8] | None]


def codec_attrs(codec: JpegCodec, *, level: int) -> dict[str, Any]:
    r"""The JSON-able ``source_jpeg`` attributes of a store (:func:`codec_from_attrs`).

    Examples
    --------
    >>> c = JpegCodec(size_px=(9, 8), tile_px=(16, 16), tables=b"\\xff\\xd8",
    ...               colorspace=None, outcolorspace=2)
    >>> codec_from_attrs(codec_attrs(c, level=2)) == c
    True
    """
    tables = codec.tables
    return {
        "level": level,
        "level_size_px": list(codec.size_px),
        "tile_size_px": list(codec.tile_px),
        "jpeg_tables_base64": None
        if tables is None
        else base64.b64encode(tables).decode(),
        "colorspace": codec.colorspace,
        "outcolorspace": codec.outcolorspace,
        "tiles_per_chunk": TILES_PER_CHUNK,
    }


def codec_from_attrs(attrs: Mapping[str, Any]) -> JpegCodec:
    """The :class:`JpegCodec` that :func:`codec_attrs` describes."""
    tables = attrs["jpeg_tables_base64"]
    width, height = (int(v) for v in attrs["level_size_px"])
    tile_w, tile_h = (int(v) for v in attrs["tile_size_px"])
    return JpegCodec(
        size_px=(width, height),
        tile_px=(tile_w, tile_h),
        tables=None if tables is None else base64.b64decode(tables),
        colorspace=attrs["colorspace"],
        outcolorspace=attrs["outcolorspace"],
    )


def source_tiles(slide: Slide, grid: TileGrid, *, required: bool) -> JpegTiles | None:
    """The read level's JPEG tiles, when they are the patches' exact pixels.

    They are when ``grid`` is read without resampling from a level that
    :meth:`wsi.slide.reader.Slide.jpeg_tiles` gives.

    Raises
    ------
    WsiError
        They are not, and ``required`` (``--patch-layout source-jpeg``).
    """
    plan = grid.plan
    jpeg = slide.jpeg_tiles(plan.level) if plan.is_direct else None
    if jpeg is None and required:
        why = (
            f"level {plan.level} is not JPEG tiles decoded directly"
            if plan.is_direct
            else f"its {grid.mpp} um/px patches are resampled from level {plan.level}"
        )
        raise WsiError(
            f"{slide.path} cannot keep its JPEG tiles as patches ({why}); use "
            "`tiling.patch_layout` auto (or patches)"
        )
    logger.debug(
        "%s: level %d %s its JPEG tiles",
        slide.path.name,
        plan.level,
        "can keep" if jpeg is not None else "cannot keep",
    )
    return jpeg


def tiles_under(
    rowcol: npt.NDArray[np.int64], *, stride_px: int, patch_px: int, codec: JpegCodec
) -> npt.NDArray[np.int64]:
    """The level's tiles that patches ``rowcol`` cover.

    Parameters
    ----------
    rowcol
        ``int64[N, 2]`` grid ``(row, col)`` of the patches; patch ``(r, c)`` is the
        level region from level pixel ``(c * stride_px, r * stride_px)``, ``patch_px``
        square (the grid is read without resampling).
    stride_px, patch_px
        Grid step and patch side, in level pixels.
    codec
        The level's size and tile size.

    Returns
    -------
    numpy.ndarray
        ``int64[M, 2]`` tile ``(row, col)`` of every tile that some patch covers
        inside the level, row-major, each once.
    """
    tile_w, tile_h = codec.tile_px
    level_w, level_h = codec.size_px
    rowcol = np.asarray(rowcol, dtype=np.int64).reshape(-1, 2)
    x0, y0 = rowcol[:, 1] * stride_px, rowcol[:, 0] * stride_px
    x1 = np.minimum(x0 + patch_px, level_w)
    y1 = np.minimum(y0 + patch_px, level_h)
    inside = (x0 < x1) & (y0 < y1)
    last_tx, last_ty = (x1 - 1) // tile_w, (y1 - 1) // tile_h
    found = []
    for dy in range((patch_px - 1) // tile_h + 2):
        for dx in range((patch_px - 1) // tile_w + 2):
            ty, tx = y0 // tile_h + dy, x0 // tile_w + dx
            keep = inside & (ty <= last_ty) & (tx <= last_tx)
            found.append(np.stack([ty[keep], tx[keep]], axis=1))
    across = -(-level_w // tile_w)
    both = np.concatenate(found) if found else np.zeros((0, 2), np.int64)
    keys = np.unique(both[:, 0] * across + both[:, 1])
    return np.stack([keys // across, keys % across], axis=1).astype(np.int64)


def read_patches(
    rowcol: npt.NDArray[np.int64],
    *,
    stride_px: int,
    patch_px: int,
    codec: JpegCodec,
    tile_grid: npt.NDArray[np.int64],
    tiles: zarr.Array[Any],
    cache_key: tuple[Any, ...],
    path: Path,
) -> npt.NDArray[np.uint8]:
    """Patches ``rowcol`` cut from the stored tiles, ``uint8[N, patch_px, patch_px, 3]``.

    Parameters
    ----------
    rowcol
        ``int64[N, 2]`` grid ``(row, col)`` of the patches.
    stride_px, patch_px
        Grid step and patch side, in level pixels.
    codec
        How the tiles decode (:func:`codec_from_attrs`).
    tile_grid
        ``int64[T, 2]`` the store's ``source_tile_grid``.
    tiles
        The store's ``source_tiles``.
    cache_key
        Identifies the store's tiles in the process-wide cache of decoded tiles.
    path
        The store (for error messages).

    Raises
    ------
    OutputError
        A tile the patches need is missing from the store or does not decode.
    """
    rowcol = np.asarray(rowcol, dtype=np.int64).reshape(-1, 2)
    out = np.empty((len(rowcol), patch_px, patch_px, 3), dtype=np.uint8)
    across = -(-codec.size_px[0] // codec.tile_px[0])
    stored = tile_grid[:, 0] * across + tile_grid[:, 1]  # row-major keys, once
    # A block at a time: the decoded tiles held at once stay few, however many
    # patches are asked for (patches are row-major, so a block's tiles are close).
    for lo in range(0, len(rowcol), _BLOCK_PATCHES):
        block = rowcol[lo : lo + _BLOCK_PATCHES]
        wanted = tiles_under(block, stride_px=stride_px, patch_px=patch_px, codec=codec)
        decoded = _decoded(wanted, codec, stored, tiles, cache_key, path)

        def tile_at(
            col: int, row: int, found: _Decoded = decoded
        ) -> npt.NDArray[np.uint8] | None:
            return found[row, col]

        for i, (row, col) in enumerate(block.tolist(), start=lo):
            compose_region(
                tile_at,
                x=col * stride_px,
                y=row * stride_px,
                width=patch_px,
                height=patch_px,
                size_px=codec.size_px,
                tile_px=codec.tile_px,
                out=out[i],
            )
    return out


def _decoded(
    wanted: npt.NDArray[np.int64],
    codec: JpegCodec,
    stored: npt.NDArray[np.int64],
    tiles: zarr.Array[Any],
    cache_key: tuple[Any, ...],
    path: Path,
) -> _Decoded:
    """Tiles ``wanted`` decoded (None: absent); only those not cached are read.

    ``stored`` are the store's tiles as row-major keys ``row * across + col``.
    """
    across = -(-codec.size_px[0] // codec.tile_px[0])
    keys = wanted[:, 0] * across + wanted[:, 1]
    index = np.minimum(np.searchsorted(stored, keys), max(len(stored) - 1, 0))
    if len(stored) == 0 or not np.array_equal(stored[index], keys):
        bad = wanted[0] if len(stored) == 0 else wanted[stored[index] != keys][0]
        raise OutputError(
            f"{path} lacks tile {tuple(bad.tolist())} of its slide's level; "
            "the store is damaged: tile the slide again with `overwrite`"
        )
    cache = tile_cache()
    names = [(*cache_key, int(r), int(c)) for r, c in wanted.tolist()]
    missing = [j for j, name in enumerate(names) if not cache.has(name)]
    raw = dict(zip(missing, _blobs(tiles, index[missing]), strict=True))
    found: _Decoded = {}
    for j, name in enumerate(names):
        where = (int(wanted[j, 0]), int(wanted[j, 1]))

        def decode(
            j: int = j, where: tuple[int, int] = where
        ) -> npt.NDArray[np.uint8] | None:
            # Not read above when it was cached then, evicted since.
            blob = raw.pop(j) if j in raw else _blobs(tiles, index[j : j + 1])[0]
            try:
                return codec.decode(blob)
            except TileDecodeError as err:
                # The bytes were copied from the slide undecoded: the slide itself
                # may be corrupt there, which tiling again would not mend.
                raise OutputError(
                    f"{path}: stored tile {where} does not decode ({err}); the "
                    "slide's JPEG data is corrupt there or the store is damaged: "
                    "check that the slide opens in a viewer, then tile it again "
                    "with `overwrite`"
                ) from err

        found[where] = cache.get_or_decode(name, decode)
    return found


def _blobs(tiles: zarr.Array[Any], index: npt.NDArray[np.intp]) -> list[bytes]:
    """The stored bytes of tiles ``index`` (empty for an absent tile)."""
    if len(index) == 0:
        return []
    data = np.asarray(tiles.get_coordinate_selection(index), dtype=object)
    return [bytes(blob) for blob in data.tolist()]
