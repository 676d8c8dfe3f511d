"""Slide + patch grid + tissue mask -> one zarr v3 tile store per slide.

:func:`tile_slide` computes the tissue mask, keeps the grid cells whose centre (or
whole patch) is tissue, creates the store with its final shapes, then reads the slide
in row bands through dask and writes whole chunks of patches. The layout and the
resume rules are described in :mod:`wsi.store` and the README.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import zarr

from wsi._bands import BandLayout, make_tasks, run_tasks
from wsi.errors import MissingResolutionError, NoTissueError
from wsi.geometry import CENTER_PX, MASK_CELL_PX, MAX_UPSAMPLE, PATCH_PX, PCAM_MPP, TileGrid
from wsi.layout import Arrays, Attr
from wsi.progress import Progress, ensure_progress
from wsi.provenance import git_commit, software_versions
from wsi.reader import Slide, open_slide, slide_fingerprint
from wsi.store import (
    STORE_FORMAT_VERSION,
    check_settings,
    chunk_flags,
    create_chunk_flags,
    ensure_array,
    geometry_attrs,
    is_store,
    open_store,
    prepare_store,
    settings_section,
)
from wsi.tissue import TissueMask, TissueParams, compute_tissue_mask

__all__ = [
    "TilingParams",
    "TilingResult",
    "patch_tissue_fraction",
    "select_patches",
    "tile_slide",
]

logger = logging.getLogger(__name__)

_MIN_BAND_HEIGHT_PX = 512
_MIN_BANDS = 16


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
        Grid rows read at once; None sizes bands from ``band_pixels``. Recorded in
        the settings: bands fix where reads start, hence the exact pixels.
    band_pixels
        Target pixels per band read when ``band_rows`` is None (bounds memory).
    workers
        Threads of dask's local scheduler; None uses the CPUs available. Ignored
        under a dask.distributed client.
    compression_level
        zstd level of the patches.
    """

    mpp: float = PCAM_MPP
    stride_px: int = PATCH_PX
    min_tissue_fraction: float = 0.5
    tissue_region: Literal["center", "patch"] = "center"
    chunk_patches: int = 256
    band_rows: int | None = None
    band_pixels: int = 8_000_000
    workers: int | None = None
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
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.band_rows is not None and self.band_rows < 1:
            raise ValueError(f"band_rows must be at least 1, got {self.band_rows}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if not 1 <= self.compression_level <= 22:
            raise ValueError(
                f"compression_level must be between 1 and 22, got {self.compression_level}"
            )


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


def patch_tissue_fraction(
    mask: npt.NDArray[np.bool_],
    grid: TileGrid,
    *,
    region: Literal["center", "patch"] = "center",
) -> npt.NDArray[np.float64]:
    """Tissue fraction of every grid patch's centre (or whole patch).

    Parameters
    ----------
    mask
        ``bool[H, W]`` tissue mask, ``MASK_CELL_PX`` target pixels per mask pixel,
        origin at the slide's top-left (``grid.mask_shape``).
    grid
        The patch grid.
    region
        ``"center"`` (the ``CENTER_PX`` square) or ``"patch"``.

    Returns
    -------
    numpy.ndarray
        ``float64[rows, cols]`` in [0, 1], exact area fractions (regions that do
        not align with mask pixels are weighted by overlap).

    Examples
    --------
    >>> from wsi.geometry import SlideGeometry
    >>> g = SlideGeometry(width_px=800, height_px=400, mpp_x=0.243, mpp_y=0.243,
    ...                   level_dimensions=((800, 400),))
    >>> grid = TileGrid(geometry=g, mpp=0.972, stride_px=96)   # 200 x 100 target px
    >>> mask = np.zeros(grid.mask_shape, bool)
    >>> mask[4:8, 4:8] = True                   # target px 32..64: patch (0, 0)'s centre
    >>> patch_tissue_fraction(mask, grid).tolist()
    [[1.0, 0.0]]
    >>> patch_tissue_fraction(mask, grid, region="patch").round(3).tolist()
    [[0.111, 0.0]]
    """
    rows, cols = grid.shape
    if region == "center":
        offset_px, size_px = (grid.tile_px - CENTER_PX) / 2, float(CENTER_PX)
    elif region == "patch":
        offset_px, size_px = 0.0, float(grid.tile_px)
    else:
        raise ValueError(f"region must be 'center' or 'patch', got {region!r}")
    if rows == 0 or cols == 0 or mask.size == 0:
        return np.zeros((rows, cols))
    # Integral image: sat[i, j] = tissue pixels above row i and left of column j.
    # It is bilinear inside each mask pixel, so linear interpolation of it gives
    # exact areas for rectangles that cut mask pixels.
    sat = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1))
    sat[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1)
    ys = (np.arange(rows) * grid.stride_px + offset_px) / MASK_CELL_PX
    xs = (np.arange(cols) * grid.stride_px + offset_px) / MASK_CELL_PX
    side = size_px / MASK_CELL_PX
    top = _interp_rows(sat, ys)
    bottom = _interp_rows(sat, ys + side)
    diff = bottom - top  # (rows, W+1): tissue in the row span, left of each column
    area = _interp_rows(diff.T, xs + side).T - _interp_rows(diff.T, xs).T
    return np.clip(area / (side * side), 0.0, 1.0)


def _interp_rows(
    table: npt.NDArray[np.float64], at: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Linear interpolation of ``table``'s rows (at least 2) at fractional positions."""
    at = np.clip(at, 0, table.shape[0] - 1)
    lo = np.minimum(np.floor(at).astype(np.int64), table.shape[0] - 2)
    frac = (at - lo)[:, None]
    return table[lo] * (1 - frac) + table[lo + 1] * frac


def select_patches(
    mask: npt.NDArray[np.bool_],
    grid: TileGrid,
    *,
    min_fraction: float,
    region: Literal["center", "patch"] = "center",
) -> npt.NDArray[np.int64]:
    """``int64[N, 2]`` ``(row, col)`` of the kept patches, row-major."""
    fraction = patch_tissue_fraction(mask, grid, region=region)
    keep = fraction >= min_fraction - 1e-9
    if min_fraction <= 0:
        keep = fraction > 0
    return np.argwhere(keep).astype(np.int64)


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
        Level-0 resolution override, see :func:`wsi.reader.open_slide`.
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
    with open_slide(slide_path, mpp=mpp, mpp_from_objective=mpp_from_objective) as slide:
        grid = TileGrid(geometry=slide.geometry, mpp=tiling.mpp, stride_px=tiling.stride_px)
        _check_grid(slide, grid)
        band_rows = _band_rows(grid, tiling)
        settings = _settings(slide, tiling, tissue, band_rows)
        if not overwrite and is_store(store_path):
            group = open_store(store_path, writable=True)
            if check_settings(group, section=Attr.TILING, settings=settings, path=store_path):
                if group.attrs.get(Attr.TILING_COMPLETE, False):
                    logger.info("%s is already tiled with these settings", store_path)
                    return _result(store_path, grid, group, started, resumed=True, written=0)
        prepare_store(store_path, overwrite=overwrite)
        mask = compute_tissue_mask(slide, grid_mpp=tiling.mpp, params=tissue, progress=bar)
        rowcol = select_patches(
            mask.mask, grid, min_fraction=tiling.min_tissue_fraction,
            region=tiling.tissue_region,
        )
        _check_selection(slide, mask, rowcol, tiling)
    layout = BandLayout.build(rowcol, band_rows=band_rows, chunk_patches=tiling.chunk_patches)
    group, resumed = _write_layout(store_path, slide, grid, mask, rowcol, settings, tiling)
    done = chunk_flags(group, Arrays.TILED)
    todo = [int(k) for k in np.flatnonzero(~done)]
    n_done = sum(layout.chunk_size(k) for k in np.flatnonzero(done))
    if resumed:
        logger.info("%s: resuming, %d of %d chunks already written",
                    store_path, len(done) - len(todo), len(done))
    tasks = make_tasks(
        layout, todo, slide_path=str(slide_path.resolve()), slide_mpp=mpp,
        mpp_from_objective=mpp_from_objective, store_path=str(store_path.resolve()),
        grid_mpp=tiling.mpp, stride_px=tiling.stride_px,
    )
    bar.start(len(rowcol), f"tiling {slide_path.name}")
    try:
        bar.advance(n_done)
        run_tasks(tasks, workers=_workers(tiling), progress=bar)
    finally:
        bar.close()
    if not chunk_flags(group, Arrays.TILED).all():  # pragma: no cover - defensive
        raise RuntimeError(f"tiling of {store_path} left chunks unwritten")
    seconds = time.perf_counter() - started
    section = dict(group.attrs[Attr.TILING])
    section.update(seconds=round(seconds, 3), finished=_now())
    group.attrs.update({Attr.TILING: section, Attr.TILING_COMPLETE: True})
    written = len(rowcol) - n_done
    logger.info("%s: %d patches in %.1f s (%.0f patches/s)", slide_path.name,
                len(rowcol), seconds, written / seconds if seconds else 0)
    return _result(store_path, grid, group, started, resumed=resumed, written=written)


def _check_grid(slide: Slide, grid: TileGrid) -> None:
    plan = grid.plan
    if plan.resample_factor < 1 / MAX_UPSAMPLE:
        raise MissingResolutionError(
            f"{slide.path}: level 0 is {slide.geometry.mpp:.4g} um/px, too coarse for "
            f"{grid.mpp} um/px patches (more than {MAX_UPSAMPLE}x enlargement); if its "
            "resolution metadata is wrong, pass --mpp with the real value"
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
            "faint tissue, lower --min-saturation (or set exclude_pen = false under "
            "[tissue] in the config file)"
        )
    if len(rowcol) == 0:
        raise NoTissueError(
            f"no patch of {slide.path} has {tiling.min_tissue_fraction:.0%} tissue in "
            f"its {tiling.tissue_region} ({100 * mask.tissue_fraction:.2f}% of the slide "
            "is tissue); lower --min-tissue or use a smaller --stride"
        )


def _band_rows(grid: TileGrid, tiling: TilingParams) -> int:
    if tiling.band_rows is not None:
        return tiling.band_rows
    rows, cols = grid.shape
    stride, overlap = grid.stride_px, grid.tile_px - grid.stride_px
    width = cols * stride + overlap
    by_budget = (tiling.band_pixels // max(width, 1) - overlap) // stride
    by_height = math.ceil((_MIN_BAND_HEIGHT_PX - overlap) / stride)
    by_split = math.ceil(rows / _MIN_BANDS)
    return max(1, min(by_budget, max(by_height, by_split)))


def _workers(tiling: TilingParams) -> int:
    if tiling.workers is not None:
        return tiling.workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _settings(
    slide: Slide, tiling: TilingParams, tissue: TissueParams, band_rows: int
) -> dict[str, Any]:
    """Everything that decides the store's content (hashed; compared on resume)."""
    fingerprint = slide_fingerprint(slide.path)
    return {
        "format_version": STORE_FORMAT_VERSION,
        "software_version": software_versions(("wsi-heatmap",)).get("wsi-heatmap"),
        "slide_size_bytes": fingerprint["size_bytes"],
        "slide_sha256_first_mib": fingerprint["sha256_first_mib"],
        "level0_mpp_x": slide.geometry.mpp_x,
        "level0_mpp_y": slide.geometry.mpp_y,
        "mpp": tiling.mpp,
        "tile_px": PATCH_PX,
        "stride_px": tiling.stride_px,
        "min_tissue_fraction": tiling.min_tissue_fraction,
        "tissue_region": tiling.tissue_region,
        "chunk_patches": tiling.chunk_patches,
        "band_rows": band_rows,
        "mask_cell_px": MASK_CELL_PX,
        "tissue": dataclasses.asdict(tissue),
    }


def _write_layout(
    store_path: Path,
    slide: Slide,
    grid: TileGrid,
    mask: TissueMask,
    rowcol: npt.NDArray[np.int64],
    settings: dict[str, Any],
    tiling: TilingParams,
) -> tuple[zarr.Group, bool]:
    """Create (or reopen) the store with its final shapes; True when resuming."""
    selection = hashlib.sha256(np.ascontiguousarray(rowcol).tobytes()).hexdigest()
    group = zarr.open_group(store_path, mode="a", zarr_format=3)
    resumed = check_settings(group, section=Attr.TILING, settings=settings, path=store_path)
    previous = group.attrs.get(Attr.TILING, {}) if resumed else {}
    if resumed and previous.get("selection_sha256") != selection:
        logger.warning("%s: patch selection changed since the last run; starting over",
                       store_path)
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
        slide={"path": str(slide.path.resolve()), "name": slide.path.name,
               "vendor": slide.properties.get("openslide.vendor"),
               "mpp_source": slide.mpp_source},
        geometry=geometry_attrs(slide.geometry),
        grid={"mpp": grid.mpp, "tile_px": grid.tile_px, "stride_px": grid.stride_px,
              "shape": list(grid.shape)},
        read={"level": plan.level, "level_downsample": plan.level_downsample,
              "downsample": plan.downsample, "resample_factor": plan.resample_factor,
              "requested_mpp": plan.requested_mpp, "effective_mpp": plan.effective_mpp},
        tissue_mask={"mpp": mask.mpp, "downsample": mask.downsample, "level": mask.level,
                     "shape": list(mask.mask.shape),
                     "tissue_fraction": mask.tissue_fraction},
        n_patches=len(rowcol),
        selection_sha256=selection,
        software=software_versions(),
        git_commit=git_commit(),
        created=previous.get("created", _now()) if resumed else _now(),
    )
    group.attrs.update({Attr.TILING: section, Attr.TILING_COMPLETE: False,
                        Attr.SETTINGS_HASH: section["settings_hash"]})
    n = len(rowcol)
    big = (min(n, 65536), 2)
    for name, data in ((Arrays.GRID, rowcol), (Arrays.COORDS, grid.coords(rowcol))):
        array, _ = ensure_array(group, name, shape=(n, 2), dtype=np.int64, chunks=big)
        array[:] = data
    mask_chunks = (1024, 1024)
    array, _ = ensure_array(group, Arrays.TISSUE_MASK, shape=mask.mask.shape, dtype=bool,
                            chunks=mask_chunks)
    array[:] = mask.mask
    array, _ = ensure_array(group, Arrays.THUMBNAIL, shape=mask.thumbnail.shape,
                            dtype=np.uint8, chunks=(*mask_chunks, 3))
    array[:] = mask.thumbnail
    tile = grid.tile_px
    _, created = ensure_array(
        group, Arrays.PATCHES, shape=(n, tile, tile, 3), dtype=np.uint8,
        chunks=(tiling.chunk_patches, tile, tile, 3),
        compression_level=tiling.compression_level,
    )
    n_chunks = -(-n // tiling.chunk_patches)
    flags = chunk_flags(group, Arrays.TILED)
    if created or not resumed or len(flags) != n_chunks:
        create_chunk_flags(group, Arrays.TILED, n_chunks=n_chunks)
        resumed = resumed and not created
    return group, resumed


def _result(
    store_path: Path, grid: TileGrid, group: zarr.Group, started: float, *,
    resumed: bool, written: int,
) -> TilingResult:
    section = group.attrs[Attr.TILING]
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
