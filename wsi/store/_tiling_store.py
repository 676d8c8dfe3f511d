"""The tiler's side of the zarr store: its settings and its arrays (private).

Used by :func:`wsi.tiles.tiler.tile_slide`: :func:`tiling_settings` is what decides a
store's content (hashed and compared on resume); :func:`write_layout` creates the
store with its final shapes before any patch is read, or reopens it to resume.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import zarr
from zarr.dtype import VariableLengthBytes
from zarr.errors import UnstableSpecificationWarning

from wsi.errors import SlideReadError
from wsi.geometry import MASK_CELL_PX, PATCH_PX, TileGrid
from wsi.provenance import git_commit, software_versions
from wsi.slide._tiffread import JpegTiles, TileDecodeError
from wsi.slide.reader import Slide, slide_fingerprint
from wsi.store._source_jpeg import codec_attrs
from wsi.store.layout import Arrays, Attr
from wsi.store.slide_store import (
    STORE_FORMAT_VERSION,
    TissueMask,
    attrs_section,
    check_settings,
    chunk_flags,
    codec_name,
    create_chunk_flags,
    ensure_array,
    geometry_attrs,
    mark_chunk_done,
    settings_section,
)
from wsi.store.slide_store import array as store_array

if TYPE_CHECKING:
    from wsi.tiles.tiler import TilingParams
    from wsi.tiles.tissue import TissueParams

__all__ = ["StoredPixels", "copy_tiles", "now", "tiling_settings", "write_layout"]

logger = logging.getLogger(__name__)


@functools.cache
def _provenance() -> tuple[dict[str, str], str | None]:
    """Package versions and git commit (looked up once per process)."""
    return software_versions(), git_commit()


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class StoredPixels:
    """What a store's pixel array holds: the patches, the cells, or the JPEG tiles.

    Attributes
    ----------
    grid
        The grid of what is stored: the patch grid, or the cell grid
        (:mod:`wsi.store._cells`); for JPEG tiles, the patch grid (the tiles are the
        read level's own).
    positions
        ``int64[M, 2]`` ``(row, col)`` of everything stored, row-major: on ``grid``,
        or for JPEG tiles on the level's tile grid.
    per_chunk
        How many go in one zarr chunk (and one unit of resumable work).
    patch_cells
        Cell layout: ``int32[N, k * k]``, each patch's cells; None otherwise.
    jpeg
        Source-JPEG layout (:mod:`wsi.store._source_jpeg`): where the level's tiles lie
        in the slide file; None otherwise.
    """

    grid: TileGrid
    positions: npt.NDArray[np.int64]
    per_chunk: int
    patch_cells: npt.NDArray[np.int32] | None = None
    jpeg: JpegTiles | None = None

    @property
    def layout(self) -> str:
        """``patches``, ``cells`` or ``source-jpeg``."""
        if self.jpeg is not None:
            return "source-jpeg"
        return "patches" if self.patch_cells is None else "cells"

    @property
    def pixels_array(self) -> str:
        """Name of the pixel (or tile) array."""
        return {
            "patches": Arrays.PATCHES,
            "cells": Arrays.CELLS,
            "source-jpeg": Arrays.SOURCE_TILES,
        }[self.layout]

    @property
    def positions_array(self) -> str:
        """Name of the array of ``positions``."""
        return {
            "patches": Arrays.GRID,
            "cells": Arrays.CELL_GRID,
            "source-jpeg": Arrays.SOURCE_TILE_GRID,
        }[self.layout]

    @property
    def n_chunks(self) -> int:
        """Zarr chunks (units of resumable work) of the pixel array."""
        return -(-len(self.positions) // self.per_chunk)

    def chunk_slice(self, chunk: int) -> slice:
        """Positions of chunk ``chunk``."""
        start = chunk * self.per_chunk
        return slice(start, min(start + self.per_chunk, len(self.positions)))

    def chunk_size(self, chunk: int) -> int:
        """How many are stored in chunk ``chunk``."""
        part = self.chunk_slice(chunk)
        return int(part.stop - part.start)

    def patches_in(self, n_stored: int, n_patches: int) -> int:
        """Patches that ``n_stored`` of the stored items stand for (in proportion)."""
        return n_stored * n_patches // max(len(self.positions), 1)


def now() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def tiling_settings(
    slide: Slide,
    tiling: TilingParams,
    tissue: TissueParams,
    read_layout: dict[str, int],
    *,
    layout: str,
) -> dict[str, Any]:
    """Everything that decides the store's content (hashed; compared on resume).

    ``layout`` is the store's (``TilingParams.layout_for``).
    """
    fingerprint = slide_fingerprint(slide.path)
    return {
        "format_version": STORE_FORMAT_VERSION,
        "software_version": _provenance()[0].get("wsi-heatmap"),
        "slide_size_bytes": fingerprint["size_bytes"],
        "slide_sha256_first_mib": fingerprint["sha256_first_mib"],
        # Direct tile decoding and OpenSlide differ where OpenSlide interpolates.
        "pixel_source": slide.pixel_source(slide.geometry.read_plan(tiling.mpp).level),
        "level0_mpp_x": slide.geometry.mpp_x,
        "level0_mpp_y": slide.geometry.mpp_y,
        "mpp": tiling.mpp,
        "tile_px": PATCH_PX,
        "stride_px": tiling.stride_px,
        "min_tissue_fraction": tiling.min_tissue_fraction,
        "tissue_region": tiling.tissue_region,
        "chunk_patches": tiling.chunk_patches,
        **read_layout,
        "mask_cell_px": MASK_CELL_PX,
        "tissue": dataclasses.asdict(tissue),
        # Only cell and source-JPEG stores name their layout, so that the settings
        # (and the hash) of every patch store written before cells existed stay the
        # same.
        **({"patch_layout": layout} if layout != "patches" else {}),
    }


def write_layout(
    store_path: Path,
    slide: Slide,
    grid: TileGrid,
    mask: TissueMask,
    rowcol: npt.NDArray[np.int64],
    settings: dict[str, Any],
    tiling: TilingParams,
    stored: StoredPixels,
) -> tuple[zarr.Group, bool]:
    """Create (or reopen) the store with its final shapes; True when resuming.

    ``stored`` is what the pixel array holds (and, for cells, the cell arrays).
    """
    selection = hashlib.sha256(np.ascontiguousarray(rowcol).tobytes()).hexdigest()
    group = zarr.open_group(store_path, mode="a", zarr_format=3)
    resumed = check_settings(
        group, section=Attr.TILING, settings=settings, path=store_path
    )
    previous = attrs_section(group, Attr.TILING) if resumed else {}
    if resumed and previous.get("selection_sha256") != selection:
        logger.warning(
            "%s: patch selection changed since the last run; starting over", store_path
        )
        resumed = False
    plan = grid.plan
    section = settings_section(
        settings,
        # Flat keys that scoring, stitching and export read.
        tile_px=grid.tile_px,
        stride_px=grid.stride_px,
        mask_cell_px=MASK_CELL_PX,
        requested_mpp=plan.requested_mpp,
        effective_mpp=plan.effective_mpp,
        level=plan.level,
        downsample=plan.downsample,
        slide={
            "path": str(slide.path.resolve()),
            "name": slide.path.name,
            "vendor": slide.properties.get("openslide.vendor"),
            "mpp_source": slide.mpp_source,
        },
        geometry=geometry_attrs(slide.geometry),
        grid={
            "mpp": grid.mpp,
            "tile_px": grid.tile_px,
            "stride_px": grid.stride_px,
            "shape": list(grid.shape),
        },
        read={
            "level": plan.level,
            "level_downsample": plan.level_downsample,
            "downsample": plan.downsample,
            "resample_factor": plan.resample_factor,
            "requested_mpp": plan.requested_mpp,
            "effective_mpp": plan.effective_mpp,
        },
        tissue_mask={
            "mpp": mask.mpp,
            "downsample": mask.downsample,
            "level": mask.level,
            "shape": list(mask.mask.shape),
            "tissue_fraction": mask.tissue_fraction,
        },
        n_patches=len(rowcol),
        selection_sha256=selection,
        software=_provenance()[0],
        git_commit=_provenance()[1],
        created=previous.get("created", now()) if resumed else now(),
    )
    group.attrs.update(
        {
            Attr.TILING: section,
            Attr.TILING_COMPLETE: False,
            Attr.SETTINGS_HASH: section["settings_hash"],
        }
    )
    n = len(rowcol)
    big = (min(n, 65536), 2)
    for name, data in ((Arrays.GRID, rowcol), (Arrays.COORDS, grid.coords(rowcol))):
        array, _ = ensure_array(group, name, shape=(n, 2), dtype=np.int64, chunks=big)
        array[:] = data
    mask_chunks = (1024, 1024)
    array, _ = ensure_array(
        group, Arrays.TISSUE_MASK, shape=mask.mask.shape, dtype=bool, chunks=mask_chunks
    )
    array[:] = mask.mask
    array, _ = ensure_array(
        group,
        Arrays.THUMBNAIL,
        shape=mask.thumbnail.shape,
        dtype=np.uint8,
        chunks=(*mask_chunks, 3),
    )
    array[:] = mask.thumbnail
    size, n_items = stored.grid.tile_px, len(stored.positions)
    extra: tuple[tuple[str, npt.NDArray[Any], tuple[int, int]], ...] = ()
    if stored.patch_cells is not None:
        extra = (
            (Arrays.CELL_GRID, stored.positions, (min(n_items, 65536), 2)),
            (
                Arrays.PATCH_CELLS,
                stored.patch_cells,
                (tiling.chunk_patches, stored.patch_cells.shape[1]),
            ),
        )
    elif stored.jpeg is not None:
        extra = ((Arrays.SOURCE_TILE_GRID, stored.positions, (max(1, n_items), 2)),)
    for key, data, chunks in extra:
        array, _ = ensure_array(
            group, key, shape=data.shape, dtype=data.dtype, chunks=chunks
        )
        array[:] = data
    # A store smaller than one chunk gets a chunk its size: zarr pads edge chunks to
    # the full chunk shape, which uncompressed would double a small slide's store.
    per_chunk = max(1, min(stored.per_chunk, n_items))
    if stored.jpeg is not None:
        pixels, created = _ensure_tile_bytes(group, n=n_items, per_chunk=per_chunk)
        section["source_jpeg"] = codec_attrs(stored.jpeg.codec, level=stored.jpeg.level)
    else:
        pixels, created = ensure_array(
            group,
            stored.pixels_array,
            shape=(n_items, size, size, 3),
            dtype=np.uint8,
            chunks=(per_chunk, size, size, 3),
            compression_level=tiling.compression_level,
            codec=tiling.codec,
        )
    section["patch_layout"] = stored.layout
    section["patch_codec"] = codec_name(pixels.compressors)
    group.attrs[Attr.TILING] = section
    n_chunks = stored.n_chunks
    flags = chunk_flags(group, Arrays.TILED)
    if created or not resumed or len(flags) != n_chunks:
        create_chunk_flags(group, Arrays.TILED, n_chunks=n_chunks)
        resumed = resumed and not created
    return group, resumed


def _ensure_tile_bytes(
    group: zarr.Group, *, n: int, per_chunk: int
) -> tuple[zarr.Array[Any], bool]:
    """The ``source_tiles`` array (variable-length bytes), created if needed."""
    name = Arrays.SOURCE_TILES
    existing = group.get(name)
    if (
        isinstance(existing, zarr.Array)
        and existing.shape == (n,)
        and existing.chunks == (per_chunk,)
        and isinstance(
            getattr(existing.metadata, "data_type", None), VariableLengthBytes
        )
    ):
        return existing, False
    with warnings.catch_warnings():
        # zarr-python's vlen-bytes has no zarr v3 spec yet; zarr-python reads it
        # (and records its version with the store).
        warnings.simplefilter("ignore", UnstableSpecificationWarning)
        tiles = group.create_array(
            name,
            shape=(n,),
            chunks=(per_chunk,),
            dtype=VariableLengthBytes(),
            compressors=None,  # JPEG bytes do not compress
            fill_value=b"",
            overwrite=True,
        )
    return tiles, True


def copy_tiles(
    group: zarr.Group,
    stored: StoredPixels,
    chunks: Sequence[int],
    *,
    on_done: Callable[[int], None],
) -> None:
    """Copy the JPEG tiles of ``chunks`` from the slide file into the store.

    Each chunk is written whole, then its ``tiled_chunks`` flag is set.

    Raises
    ------
    SlideReadError
        The slide file cannot be read or is cut short.
    """
    jpeg = stored.jpeg
    if jpeg is None:  # pragma: no cover - the caller checks
        raise ValueError("copy_tiles needs a source-JPEG StoredPixels")
    tiles = store_array(group, Arrays.SOURCE_TILES)
    try:
        fd = os.open(jpeg.path, os.O_RDONLY)
    except OSError as err:
        raise SlideReadError(f"cannot read {jpeg.path}: {err}") from err
    try:
        for chunk in chunks:
            part = stored.chunk_slice(chunk)
            data = np.empty(part.stop - part.start, dtype=object)
            try:
                data[:] = [
                    jpeg.read(fd, int(row), int(col))
                    for row, col in stored.positions[part].tolist()
                ]
            except (OSError, TileDecodeError) as err:
                raise SlideReadError(
                    f"cannot read the JPEG tiles of {jpeg.path} ({err}); the file is "
                    "corrupt or truncated: download or export it again"
                ) from err
            tiles[part] = data
            mark_chunk_done(group, Arrays.TILED, chunk)
            on_done(len(data))
    finally:
        os.close(fd)
