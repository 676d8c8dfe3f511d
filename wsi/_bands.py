"""Reading row bands of patches and writing whole chunks: the tiler's dask tasks.

Private to :mod:`wsi.tiling`. Band ``b`` holds grid rows ``[b * R, (b + 1) * R)`` and
is always read from the same origin: its first row and the leftmost column holding a
kept patch. Extents vary with what a task needs, never origins, and
:meth:`wsi.reader.Slide.read_target` gives values that depend on the origin only; so a
patch's pixels do not depend on how chunks are grouped into tasks, on the number of
workers, or on where an interrupted run stopped.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import zarr

from wsi.geometry import TileGrid
from wsi.layout import Arrays
from wsi.progress import Progress
from wsi.reader import Slide, open_slide
from wsi.store import mark_chunk_done

__all__ = ["BandLayout", "TileTask", "run_tasks"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class BandLayout:
    """How the kept patches fall into chunks and bands."""

    n_patches: int
    chunk_patches: int
    band_rows: int
    #: ``(band, leftmost kept column)`` of every band that holds patches.
    band_cols: tuple[tuple[int, int], ...]
    #: ``(first band, last band)`` of every chunk's patches.
    chunk_bands: tuple[tuple[int, int], ...]

    @classmethod
    def build(
        cls, rowcol: npt.NDArray[np.int64], *, band_rows: int, chunk_patches: int
    ) -> BandLayout:
        """Layout of ``rowcol`` (``int64[N, 2]``, row-major)."""
        bands = rowcol[:, 0] // band_rows
        band_cols = {}
        for band in np.unique(bands):
            band_cols[int(band)] = int(rowcol[bands == band, 1].min())
        starts = np.arange(0, len(rowcol), chunk_patches)
        ends = np.minimum(starts + chunk_patches, len(rowcol)) - 1
        return cls(
            n_patches=len(rowcol),
            chunk_patches=chunk_patches,
            band_rows=band_rows,
            band_cols=tuple(sorted(band_cols.items())),
            chunk_bands=tuple(
                (int(bands[s]), int(bands[e])) for s, e in zip(starts, ends, strict=True)
            ),
        )

    def chunk_size(self, chunk: int) -> int:
        """Patches in chunk ``chunk``."""
        return min(self.chunk_patches, self.n_patches - chunk * self.chunk_patches)

    def group_chunks(self, chunks: Sequence[int]) -> list[tuple[int, ...]]:
        """Group chunks into tasks: the chunks that start in the same band."""
        groups: dict[int, list[int]] = {}
        for chunk in chunks:
            groups.setdefault(self.chunk_bands[chunk][0], []).append(chunk)
        return [tuple(group) for _, group in sorted(groups.items())]

    def bands_of(self, chunks: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """``(band, leftmost column)`` of the bands that ``chunks`` touch."""
        first = min(self.chunk_bands[c][0] for c in chunks)
        last = max(self.chunk_bands[c][1] for c in chunks)
        return tuple((b, c) for b, c in self.band_cols if first <= b <= last)


@dataclass(frozen=True, slots=True, kw_only=True)
class TileTask:
    """One unit of dask work: write some chunks of patches. Plain values only."""

    slide_path: str
    slide_mpp: float | None
    mpp_from_objective: bool
    store_path: str
    grid_mpp: float
    stride_px: int
    chunk_patches: int
    n_patches: int
    band_rows: int
    band_cols: tuple[tuple[int, int], ...]
    chunks: tuple[int, ...]


def make_tasks(
    layout: BandLayout, chunks: Sequence[int], **common: Any
) -> list[TileTask]:
    """Tasks covering ``chunks`` (the unwritten ones), grouped by band."""
    return [
        TileTask(
            chunk_patches=layout.chunk_patches,
            n_patches=layout.n_patches,
            band_rows=layout.band_rows,
            band_cols=layout.bands_of(group),
            chunks=group,
            **common,
        )
        for group in layout.group_chunks(chunks)
    ]


def run_task(task: TileTask) -> int:
    """Read the bands ``task`` needs and write its chunks; returns patches written.

    The task opens its own slide handle (handles never travel in a dask graph).
    """
    with open_slide(
        Path(task.slide_path), mpp=task.slide_mpp, mpp_from_objective=task.mpp_from_objective
    ) as slide:
        return _write_chunks(task, slide)


def _write_chunks(task: TileTask, slide: Slide) -> int:
    grid = TileGrid(geometry=slide.geometry, mpp=task.grid_mpp, stride_px=task.stride_px)
    group = zarr.open_group(task.store_path, mode="r+", zarr_format=3)
    patches = group[Arrays.PATCHES]
    size = task.chunk_patches
    first = task.chunks[0] * size
    last = min(task.n_patches, (task.chunks[-1] + 1) * size)
    rowcol = np.asarray(group[Arrays.GRID][first:last], dtype=np.int64)
    bands = _Bands(task, grid, rowcol, slide)
    written = 0
    for chunk in task.chunks:
        lo, hi = chunk * size - first, min(task.n_patches, (chunk + 1) * size) - first
        cells = rowcol[lo:hi]
        out = np.empty((len(cells), grid.tile_px, grid.tile_px, 3), dtype=np.uint8)
        for band, index in _by_band(cells, task.band_rows):
            image, x0, y0 = bands.get(band)
            for i in index:
                y = int(cells[i, 0]) * grid.stride_px - y0
                x = int(cells[i, 1]) * grid.stride_px - x0
                out[i] = image[y : y + grid.tile_px, x : x + grid.tile_px]
        patches[first + lo : first + hi] = out
        mark_chunk_done(group, Arrays.TILED, chunk)
        written += len(cells)
    return written


def _by_band(
    cells: npt.NDArray[np.int64], band_rows: int
) -> Iterator[tuple[int, npt.NDArray[np.intp]]]:
    bands = cells[:, 0] // band_rows
    for band in np.unique(bands):
        yield int(band), np.flatnonzero(bands == band)


class _Bands:
    """The task's current band image, read once from the band's fixed origin."""

    def __init__(self, task: TileTask, grid: TileGrid, rowcol: npt.NDArray[np.int64],
                 slide: Slide) -> None:
        self._grid, self._slide, self._plan = grid, slide, grid.plan
        self._origin = dict(task.band_cols)
        self._rows = task.band_rows
        bands = rowcol[:, 0] // task.band_rows
        # Extent the task needs in each band: its last row and rightmost column.
        self._extent = {
            int(b): (int(rowcol[bands == b, 0].max()), int(rowcol[bands == b, 1].max()))
            for b in np.unique(bands)
        }
        self._band = -1
        self._image: npt.NDArray[np.uint8] = np.empty((0, 0, 3), np.uint8)
        self._xy = (0, 0)

    def get(self, band: int) -> tuple[npt.NDArray[np.uint8], int, int]:
        if band != self._band:
            stride, tile = self._grid.stride_px, self._grid.tile_px
            x0, y0 = self._origin[band] * stride, band * self._rows * stride
            last_row, last_col = self._extent[band]
            self._image = self._slide.read_target(
                self._plan, x_px=x0, y_px=y0,
                width_px=last_col * stride + tile - x0,
                height_px=last_row * stride + tile - y0,
            )
            self._band, self._xy = band, (x0, y0)
        return self._image, *self._xy


def run_tasks(tasks: Sequence[TileTask], *, workers: int, progress: Progress) -> None:
    """Run ``tasks`` through dask: a dask.distributed client if one is active, else
    the local threaded scheduler with ``workers`` threads."""
    if not tasks:
        return
    import dask
    from dask.callbacks import Callback

    graph = [
        dask.delayed(run_task, pure=True)(task, dask_key_name=f"tile-chunks-{task.chunks[0]}")
        for task in tasks
    ]
    client = _distributed_client()
    if client is not None:
        from distributed import as_completed

        for future in as_completed(client.compute(graph)):
            progress.advance(int(future.result()))
        return

    class Advance(Callback):  # type: ignore[misc]
        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
            if isinstance(result, int):
                progress.advance(result)

    with Advance():
        dask.compute(*graph, scheduler="threads", num_workers=workers)


def _distributed_client() -> Any:
    """The active dask.distributed client, or None (never imports distributed)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None
