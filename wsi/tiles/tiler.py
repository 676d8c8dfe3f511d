"""Slide + patch grid + tissue mask -> one zarr v3 tile store per slide.

:func:`tile_slide` computes the tissue mask, keeps the grid cells whose centre (or
whole patch) is tissue, creates the store with its final shapes, then reads the slide
in row bands through dask and writes whole chunks of patches. The layout and the
resume rules are described in :mod:`wsi.store.slide_store` and the README.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from wsi.errors import MissingResolutionError, NoTissueError
from wsi.geometry import MAX_UPSAMPLE, PATCH_PX, PCAM_MPP, TileGrid
from wsi.progress import Progress, ensure_progress
from wsi.slide._tiffread import JpegTiles
from wsi.slide.reader import Slide, open_slide
from wsi.store._cells import cell_px, cells_of
from wsi.store._source_jpeg import TILES_PER_CHUNK, source_tiles, tiles_under
from wsi.store._tiling_store import (
    StoredPixels,
    copy_tiles,
    now,
    tiling_settings,
    write_layout,
)
from wsi.store.layout import Arrays, Attr
from wsi.store.locking import store_lock
from wsi.store.slide_store import (
    PATCH_CODECS,
    attrs_section,
    check_settings,
    chunk_flags,
    is_store,
    open_store,
    prepare_store,
)
from wsi.tiles._bands import write_bands
from wsi.tiles._selection import patch_tissue_fraction, select_patches
from wsi.tiles.tissue import TissueMask, TissueParams, compute_tissue_mask

if TYPE_CHECKING:
    import zarr

__all__ = [
    "PATCH_LAYOUTS",
    "TilingParams",
    "TilingResult",
    "patch_tissue_fraction",
    "select_patches",
    "tile_slide",
]

logger = logging.getLogger(__name__)

# Glass wider than this between kept patches of a band is not read.
_MAX_GAP_PX = 512
# Bands are tall enough that rows shared with the next band (stride < 96) are at most
# this share of a read.
_MAX_REREAD = 1 / 8

#: Store layouts (``TilingParams.patch_layout``; ``auto`` picks one of the others).
PATCH_LAYOUTS = ("auto", "patches", "cells", "source-jpeg")
StoreLayout = Literal["patches", "cells", "source-jpeg"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TilingParams:
    """Settings of the patch grid and of the tiler.

    Parameters
    ----------
    mpp
        Target resolution of the patches, um/px (PCam: 0.972).
    stride_px
        Grid step in target pixels (96: no overlap; 32: one patch per PCam centre).
    min_tissue_fraction
        A patch is kept when this fraction of its ``tissue_region`` is tissue.
    tissue_region
        ``"center"``: the 32 x 32 centre that a PCam label describes; ``"patch"``:
        the whole 96 x 96 patch.
    chunk_patches
        Patches per zarr chunk (and per unit of resumable work).
    band_rows
        Grid rows per read band; None: one row when patches do not overlap, else
        enough rows that the overlap is at most an eighth of a read. Recorded in
        the settings, as bands fix where reads start, hence the exact pixels.
    band_pixels
        Largest read, in target pixels (bounds memory whatever the slide size).
    workers
        Threads of dask's local scheduler; None uses the CPUs available. Ignored
        under a dask.distributed client.
    patch_layout
        ``patches``: every patch stored whole (``N x 96 x 96 x 3``); ``cells``: each
        target pixel stored once, as the ``stride x stride`` cells the kept patches
        cover, patches put together when read (``wsi.store._cells``; needs a stride below
        96 that divides 96); ``source-jpeg``: the slide's own compressed JPEG tiles
        under the kept patches, bit for bit, patches decoded and cut when read
        (``wsi.store._source_jpeg``; needs a read level of JPEG tiles at exactly the
        target resolution, see :meth:`layout_for`); ``auto`` (default): at stride
        96 ``source-jpeg`` where it applies, else ``cells`` where that applies
        (strides 48, 32, 24, ...), else ``patches``. Every layout gives the same
        patch pixels.
    patch_codec
        How the pixel array is compressed: ``auto`` (default), or one of
        ``wsi.store.slide_store.PATCH_CODECS``: ``none``, ``blosc-lz4``, ``zstd`` (the codec of
        stores written before); it applies to the layouts of decoded pixels
        (``patches``, ``cells``): ``source-jpeg`` keeps the JPEG tiles' bytes as
        they are. ``auto`` is ``none`` unless whole patches overlap
        (decoded JPEG pixels compress 1.04-1.09:1 losslessly, not worth the time),
        and ``zstd`` when they do (a chunk of overlapping patches repeats its
        pixels: 3.2:1 at stride 32); see ``benchmarks/bench_codec.py`` and
        ``bench_tiling.py``. Pixels are the same with every codec, so it is not part
        of the settings: a store is resumed with the codec it was created with.
    compression_level
        zstd level of the patches (``patch_codec = "zstd"``).
    """

    mpp: float = PCAM_MPP
    stride_px: int = PATCH_PX
    min_tissue_fraction: float = 0.5
    tissue_region: Literal["center", "patch"] = "center"
    chunk_patches: int = 256
    band_rows: int | None = None
    band_pixels: int = 8_000_000
    workers: int | None = None
    patch_layout: Literal["auto", "patches", "cells", "source-jpeg"] = "auto"
    patch_codec: Literal["auto", "none", "blosc-lz4", "zstd"] = "auto"
    compression_level: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mpp) and self.mpp > 0):
            raise ValueError(f"mpp must be a positive number of um/px, got {self.mpp}")
        if not 0 <= self.min_tissue_fraction <= 1:
            raise ValueError(
                f"min_tissue_fraction must be between 0 and 1, got {self.min_tissue_fraction}"
            )
        if self.tissue_region not in ("center", "patch"):
            raise ValueError(
                f"tissue_region must be 'center' or 'patch', got {self.tissue_region!r}"
            )
        for name in ("stride_px", "chunk_patches", "band_pixels"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"{name} must be at least 1, got {getattr(self, name)}"
                )
        if self.band_rows is not None and self.band_rows < 1:
            raise ValueError(f"band_rows must be at least 1, got {self.band_rows}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.patch_codec != "auto" and self.patch_codec not in PATCH_CODECS:
            raise ValueError(
                f"patch_codec must be 'auto' or one of {PATCH_CODECS}, got "
                f"{self.patch_codec!r}"
            )
        if self.patch_layout not in PATCH_LAYOUTS:
            raise ValueError(
                f"patch_layout must be one of {PATCH_LAYOUTS}, got {self.patch_layout!r}"
            )
        if self.patch_layout == "cells" and cell_px(self.stride_px) is None:
            raise ValueError(
                f"patch_layout 'cells' needs a stride below {PATCH_PX} that divides "
                f"{PATCH_PX} (48, 32, 24, ...), got stride_px={self.stride_px}"
            )
        if not 1 <= self.compression_level <= 22:
            raise ValueError(
                f"compression_level must be between 1 and 22, got {self.compression_level}"
            )

    def layout_for(
        self, *, jpeg_tiles: bool, existing: str | None = None
    ) -> StoreLayout:
        """The store layout ``patch_layout`` means (``auto`` resolved): the one choice.

        ``jpeg_tiles``: whether the slide's pixels at the target resolution are its
        read level's JPEG tiles as they are (a plain JPEG-tiled TIFF page decoded
        directly, no resampling: ``Slide.jpeg_tiles`` of a direct read plan). A
        ``source-jpeg`` store is only written then (:func:`tile_slide` refuses it
        otherwise). ``existing``: the layout of a store already there; ``auto``
        keeps it where it applies (every layout gives the same patches), so a store
        written before the layout ``auto`` picks now existed is reused or resumed.

        Examples
        --------
        >>> params = TilingParams()
        >>> params.layout_for(jpeg_tiles=True), params.layout_for(jpeg_tiles=False)
        ('source-jpeg', 'patches')
        >>> TilingParams(stride_px=32).layout_for(jpeg_tiles=True)
        'cells'
        >>> params.layout_for(jpeg_tiles=True, existing="patches")
        'patches'
        """
        if self.patch_layout != "auto":
            return self.patch_layout
        applies: dict[str, bool] = {
            "patches": True,
            "cells": cell_px(self.stride_px) is not None,
            "source-jpeg": jpeg_tiles and self.stride_px == PATCH_PX,
        }
        if existing is not None and applies.get(existing, False):
            return existing  # type: ignore[return-value]
        if applies["source-jpeg"]:
            return "source-jpeg"
        return "cells" if applies["cells"] else "patches"

    @property
    def layout(self) -> StoreLayout:
        """The layout on a slide whose JPEG tiles cannot be kept (``layout_for``)."""
        return self.layout_for(jpeg_tiles=False)

    @property
    def codec(self) -> str:
        """The codec ``patch_codec`` means for this layout (``auto`` resolved)."""
        if self.patch_codec != "auto":
            return self.patch_codec
        overlapping = self.layout == "patches" and self.stride_px < PATCH_PX
        return "zstd" if overlapping else "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class TilingResult:
    """What :func:`tile_slide` did.

    Attributes
    ----------
    store
        The zarr store.
    n_patches
        Patches in the store.
    grid
        The patch grid (level-0 positions via ``grid.coords(rowcol)``).
    requested_mpp, effective_mpp
        Target resolution asked for and obtained (um/px).
    level
        Pyramid level read.
    seconds
        Wall time of this call.
    resumed
        An existing store with the same settings was continued (or was complete).
    patches_written
        Patches written by this call (0 when the store was already complete).
    tissue_fraction
        Fraction of the slide's area that is tissue.
    """

    store: Path
    n_patches: int
    grid: TileGrid
    requested_mpp: float
    effective_mpp: float
    level: int
    seconds: float
    resumed: bool
    patches_written: int
    tissue_fraction: float

    @property
    def patches_per_second(self) -> float:
        """Patches written per second of this call."""
        return self.patches_written / self.seconds if self.seconds > 0 else 0.0


def tile_slide(
    slide_path: Path,
    store_path: Path,
    *,
    tiling: TilingParams,
    tissue: TissueParams,
    mpp: float | None = None,
    mpp_from_objective: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> TilingResult:
    """Cut a slide's tissue into PCam-scale patches in a zarr store.

    Parameters
    ----------
    slide_path
        The slide.
    store_path
        The zarr store to write (``SlideOutputs.store``).
    tiling, tissue
        Grid and tissue settings (recorded in the store).
    mpp, mpp_from_objective
        Level-0 resolution override, see :func:`wsi.slide.reader.open_slide`.
    overwrite
        Replace an existing store instead of resuming it.
    progress
        Receives the tissue-mask bands, then the patches.

    Returns
    -------
    TilingResult

    Raises
    ------
    SlideReadError
        The slide cannot be opened or decoded.
    MissingResolutionError
        No usable microns per pixel (or a level 0 far coarser than the target).
    NoTissueError
        The slide is smaller than one patch, or no patch has enough tissue.
    SettingsMismatchError
        The store exists with other settings and ``overwrite`` is False.
    OutputError
        The store cannot be written.
    """
    started = time.perf_counter()
    slide_path, store_path = Path(slide_path), Path(store_path)
    bar = ensure_progress(progress)
    with store_lock(store_path):
        with open_slide(
            slide_path, mpp=mpp, mpp_from_objective=mpp_from_objective
        ) as slide:
            grid = TileGrid(
                geometry=slide.geometry, mpp=tiling.mpp, stride_px=tiling.stride_px
            )
            _probe(slide)
            _check_grid(slide, grid)
            jpeg = source_tiles(
                slide, grid, required=tiling.patch_layout == "source-jpeg"
            )
            group = (
                open_store(store_path, writable=True)
                if not overwrite and is_store(store_path)
                else None
            )
            store_layout = tiling.layout_for(
                jpeg_tiles=jpeg is not None, existing=_layout_of(group)
            )
            pixel_grid = _pixel_grid(grid, store_layout)
            workers = _workers(tiling)  # for the mask's colour maps and the reads
            read_layout = _read_layout(pixel_grid, tiling)
            settings = tiling_settings(
                slide, tiling, tissue, read_layout, layout=store_layout
            )
            if group is not None:
                same = check_settings(
                    group, section=Attr.TILING, settings=settings, path=store_path
                )
                if same and group.attrs.get(Attr.TILING_COMPLETE, False):
                    logger.info("%s is already tiled with these settings", store_path)
                    return _result(
                        store_path, grid, group, started, resumed=True, written=0
                    )
            prepare_store(store_path, overwrite=overwrite)
            mask = compute_tissue_mask(
                slide,
                grid_mpp=tiling.mpp,
                params=tissue,
                progress=bar,
                workers=workers,
            )
            rowcol = select_patches(
                mask.mask,
                grid,
                min_fraction=tiling.min_tissue_fraction,
                region=tiling.tissue_region,
            )
            _check_selection(slide, mask, rowcol, tiling)
        stored = _stored_pixels(grid, pixel_grid, rowcol, tiling, store_layout, jpeg)
        group, resumed = write_layout(
            store_path, slide, grid, mask, rowcol, settings, tiling, stored
        )
        done = chunk_flags(group, Arrays.TILED)
        todo = [int(k) for k in np.flatnonzero(~done)]
        n_done = sum(stored.chunk_size(int(k)) for k in np.flatnonzero(done))
        if resumed:
            logger.info(
                "%s: resuming, %d of %d chunks already written",
                store_path,
                len(done) - len(todo),
                len(done),
            )
        bar.start(len(rowcol), f"tiling {slide_path.name}")
        in_patches = _InPatches(bar, stored, n_patches=len(rowcol))
        try:
            in_patches(n_done)
            if stored.jpeg is not None:
                copy_tiles(group, stored, todo, on_done=in_patches)
            else:
                write_bands(
                    stored.positions,
                    todo,
                    read_layout,
                    per_chunk=stored.per_chunk,
                    workers=workers,
                    slide_path=slide_path,
                    store_path=store_path,
                    slide_mpp=mpp,
                    mpp_from_objective=mpp_from_objective,
                    grid_mpp=tiling.mpp,
                    stride_px=stored.grid.stride_px,
                    tile_px=stored.grid.tile_px,
                    pixels=stored.pixels_array,
                    positions=stored.positions_array,
                    on_done=in_patches,
                )
        finally:
            bar.close()
        if not chunk_flags(group, Arrays.TILED).all():  # pragma: no cover - defensive
            raise RuntimeError(f"tiling of {store_path} left chunks unwritten")
        seconds = time.perf_counter() - started
        section = attrs_section(group, Attr.TILING)
        section.update(seconds=round(seconds, 3), finished=now())
        group.attrs.update({Attr.TILING: section, Attr.TILING_COMPLETE: True})
        # Patches completed by this call (cells: in proportion to the cells written).
        written = len(rowcol) - stored.patches_in(n_done, len(rowcol))
        logger.info(
            "%s: %d patches in %.1f s (%.0f patches/s)",
            slide_path.name,
            len(rowcol),
            seconds,
            written / seconds if seconds else 0,
        )
        return _result(
            store_path, grid, group, started, resumed=resumed, written=written
        )


class _InPatches:
    """Advances ``bar`` in patches as stored items (patches, or cells) are written."""

    def __init__(self, bar: Progress, stored: StoredPixels, *, n_patches: int) -> None:
        self._bar, self._stored, self._patches = bar, stored, n_patches
        self._done = self._reported = 0

    def __call__(self, n_stored: int) -> None:
        self._done += n_stored
        now = self._stored.patches_in(self._done, self._patches)
        self._bar.advance(now - self._reported)
        self._reported = now


def _stored_pixels(
    grid: TileGrid,
    pixel_grid: TileGrid,
    rowcol: npt.NDArray[np.int64],
    tiling: TilingParams,
    layout: StoreLayout,
    jpeg: JpegTiles | None,
) -> StoredPixels:
    """What the store will hold for patches ``rowcol``: them, their cells or tiles."""
    if layout == "patches":
        return StoredPixels(grid=grid, positions=rowcol, per_chunk=tiling.chunk_patches)
    if layout == "source-jpeg":
        assert jpeg is not None  # source_tiles checked it
        tiles = tiles_under(
            rowcol, stride_px=grid.stride_px, patch_px=grid.tile_px, codec=jpeg.codec
        )
        return StoredPixels(
            grid=grid, positions=tiles, per_chunk=TILES_PER_CHUNK, jpeg=jpeg
        )
    k = grid.tile_px // pixel_grid.tile_px
    cells, index = cells_of(rowcol, k=k)
    return StoredPixels(
        grid=pixel_grid,
        positions=cells,
        per_chunk=tiling.chunk_patches * k * k,  # the pixels of chunk_patches patches
        patch_cells=index,
    )


def _probe(slide: Slide) -> None:
    """Decode one tile of the smallest level: corrupt files fail here, first."""
    level = len(slide.geometry.level_dimensions) - 1
    width, height = slide.geometry.level_dimensions[level]
    slide.read_level(level=level, l0_xy=(0, 0), size=(min(width, 64), min(height, 64)))


def _check_grid(slide: Slide, grid: TileGrid) -> None:
    plan = grid.plan
    if plan.resample_factor < 1 / MAX_UPSAMPLE:
        raise MissingResolutionError(
            f"{slide.path}: level 0 is {slide.geometry.mpp:.4g} um/px, too coarse for "
            f"{grid.mpp} um/px patches (more than {MAX_UPSAMPLE}x enlargement); if its "
            "resolution metadata is wrong, pass `mpp` with the real value"
        )
    if 0 in grid.shape:
        g = slide.geometry
        width, height = grid.target_size_px
        raise NoTissueError(
            f"{slide.path} is {g.width_px}x{g.height_px} px, {width}x{height} px at "
            f"{grid.mpp} um/px: smaller than one {grid.tile_px}x{grid.tile_px} patch; "
            "there is nothing to tile"
        )


def _check_selection(
    slide: Slide, mask: TissueMask, rowcol: npt.NDArray[np.int64], tiling: TilingParams
) -> None:
    if not mask.mask.any():
        raise NoTissueError(
            f"no tissue found in {slide.path}: nothing in its {mask.mpp:.1f} um/px "
            "thumbnail is saturated enough (or it is all pen/black); if the slide has "
            "faint tissue, lower `tissue.min_saturation` (or set exclude_pen = false under "
            "[tissue] in the config file)"
        )
    if len(rowcol) == 0:
        raise NoTissueError(
            f"no patch of {slide.path} has {tiling.min_tissue_fraction:.0%} tissue in "
            f"its {tiling.tissue_region} ({100 * mask.tissue_fraction:.2f}% of the slide "
            "is tissue); lower `tiling.min_tissue_fraction` or use a smaller `tiling.stride_px`"
        )


def _layout_of(group: zarr.Group | None) -> str | None:
    """The layout an existing store was written with (None: no tiles in it yet)."""
    if group is None:
        return None
    settings = attrs_section(group, Attr.TILING).get("settings")
    if not settings:
        return None
    return str(settings.get("patch_layout", "patches"))  # older stores do not name it


def _pixel_grid(grid: TileGrid, layout: StoreLayout) -> TileGrid:
    """The grid of what the store holds: the patches, or the cells they cover."""
    if layout != "cells":
        return grid
    size = cell_px(grid.stride_px)
    assert size is not None  # TilingParams checked it
    return TileGrid(geometry=grid.geometry, mpp=grid.mpp, tile_px=size, stride_px=size)


def _read_layout(grid: TileGrid, tiling: TilingParams) -> dict[str, int]:
    """Band height and segment limits, in rows and columns of ``grid``.

    ``grid`` is the grid of what is read (patches or cells). The limits fix where
    reads start, so they are part of the settings.
    """
    cols = grid.shape[1]
    stride, overlap = grid.stride_px, grid.tile_px - grid.stride_px
    band_rows = tiling.band_rows
    if band_rows is None:
        # Without overlap, bands at least a patch tall (cells: a few rows each).
        by_reread = (
            math.ceil(overlap / _MAX_REREAD / stride)
            if overlap
            else math.ceil(PATCH_PX / stride)
        )
        width = cols * stride + overlap
        by_budget = (tiling.band_pixels // max(width, 1) - overlap) // stride
        band_rows = max(1, min(by_reread, by_budget))
    height = band_rows * stride + overlap
    return {
        "band_rows": band_rows,
        "max_gap_cols": _MAX_GAP_PX // stride,
        "max_cols": max(1, (tiling.band_pixels // height - overlap) // stride),
    }


def _workers(tiling: TilingParams) -> int:
    if tiling.workers is not None:
        return tiling.workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _result(
    store_path: Path,
    grid: TileGrid,
    group: zarr.Group,
    started: float,
    *,
    resumed: bool,
    written: int,
) -> TilingResult:
    section = attrs_section(group, Attr.TILING)
    return TilingResult(
        store=store_path,
        n_patches=int(section["n_patches"]),
        grid=grid,
        requested_mpp=float(section["read"]["requested_mpp"]),
        effective_mpp=float(section["read"]["effective_mpp"]),
        level=int(section["read"]["level"]),
        seconds=time.perf_counter() - started,
        resumed=resumed,
        patches_written=written,
        tissue_fraction=float(section["tissue_mask"]["tissue_fraction"]),
    )
