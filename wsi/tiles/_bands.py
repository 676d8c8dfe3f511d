"""Reading bands of patches and writing whole chunks: the tiler's dask tasks (private).

Band ``b`` holds grid rows ``[b * R, (b + 1) * R)``. Within a band, the columns that
hold kept patches are split into segments at gaps of glass (and at a maximum width);
each segment is one read, always from the same origin: the band's first row and the
segment's first column. Reads start there and stop where a task's patches end. Since
:meth:`wsi.slide.reader.Slide.read_target` gives values that depend on where a read starts,
never on its size, a patch's pixels do not depend on how chunks are grouped into
tasks, on the number of workers, or on where an interrupted run stopped.

In a cell store (:mod:`wsi.store._cells`) the same machinery reads and writes cells
instead: a "patch" below is whatever the store's pixel array holds, on its own grid.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wsi.geometry import PATCH_PX, TileGrid
from wsi.slide.reader import Slide, open_slide
from wsi.store.layout import Arrays
from wsi.store.slide_store import array, mark_chunk_done, open_store

__all__ = [
    "BandLayout",
    "TileTask",
    "make_tasks",
    "run_task",
    "run_tasks",
    "write_bands",
]

logger = logging.getLogger(__name__)

# Tasks per worker the patches are split into (progress steps, load balance).
_TASKS_PER_WORKER = 4
_MAX_CHUNKS_PER_TASK = 16

#: A segment is one read: ``(band, first column, last column)``.
Segment = tuple[int, int, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class BandLayout:
    """How the kept patches fall into chunks, bands and read segments."""

    n_patches: int
    chunk_patches: int
    band_rows: int
    #: Every read, sorted by band then first column.
    segments: tuple[Segment, ...]
    #: ``(first band, last band)`` of every chunk's patches.
    chunk_bands: tuple[tuple[int, int], ...]

    @classmethod
    def build(
        cls,
        rowcol: npt.NDArray[np.int64],
        *,
        band_rows: int,
        chunk_patches: int,
        max_gap_cols: int,
        max_cols: int,
    ) -> BandLayout:
        """Layout of ``rowcol`` (``int64[N, 2]``, row-major).

        Columns of a band more than ``max_gap_cols`` apart go to separate segments,
        and no segment spans more than ``max_cols`` columns.
        """
        bands = rowcol[:, 0] // band_rows
        segments: list[Segment] = []
        for band in np.unique(bands):
            cols = np.unique(rowcol[bands == band, 1])
            start = prev = int(cols[0])
            for col in (int(c) for c in cols[1:]):
                if col - prev > max_gap_cols + 1 or col - start >= max_cols:
                    segments.append((int(band), start, prev))
                    start = col
                prev = col
            segments.append((int(band), start, prev))
        starts = np.arange(0, len(rowcol), chunk_patches)
        ends = np.minimum(starts + chunk_patches, len(rowcol)) - 1
        return cls(
            n_patches=len(rowcol),
            chunk_patches=chunk_patches,
            band_rows=band_rows,
            segments=tuple(segments),
            chunk_bands=tuple(
                (int(bands[s]), int(bands[e]))
                for s, e in zip(starts, ends, strict=True)
            ),
        )

    def chunk_size(self, chunk: int) -> int:
        """Patches in chunk ``chunk``."""
        return min(self.chunk_patches, self.n_patches - chunk * self.chunk_patches)

    def group_chunks(
        self, chunks: Sequence[int], *, per_task: int
    ) -> list[tuple[int, ...]]:
        """Runs of consecutive chunks, at most ``per_task`` long (one task each)."""
        groups: list[list[int]] = []
        for chunk in sorted(chunks):
            last = groups[-1] if groups else None
            if last and last[-1] == chunk - 1 and len(last) < per_task:
                last.append(chunk)
            else:
                groups.append([chunk])
        return [tuple(group) for group in groups]

    def segments_of(self, chunks: Sequence[int]) -> tuple[Segment, ...]:
        """The segments of the bands that ``chunks`` touch."""
        first = min(self.chunk_bands[c][0] for c in chunks)
        last = max(self.chunk_bands[c][1] for c in chunks)
        return tuple(seg for seg in self.segments if first <= seg[0] <= last)


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
    #: The store's pixel array, its positions, and the size of what it holds:
    #: patches (``patches``, ``grid``, 96) or cells (``cells``, ``cell_grid``, s).
    pixels: str = Arrays.PATCHES
    positions: str = Arrays.GRID
    tile_px: int = PATCH_PX
    n_patches: int
    band_rows: int
    segments: tuple[Segment, ...]
    chunks: tuple[int, ...]


def make_tasks(
    layout: BandLayout, chunks: Sequence[int], *, per_task: int, **common: Any
) -> list[TileTask]:
    """Tasks covering ``chunks`` (the unwritten ones)."""
    return [
        TileTask(
            chunk_patches=layout.chunk_patches,
            n_patches=layout.n_patches,
            band_rows=layout.band_rows,
            segments=layout.segments_of(group),
            chunks=group,
            **common,
        )
        for group in layout.group_chunks(chunks, per_task=per_task)
    ]


def run_task(task: TileTask) -> int:
    """Read the segments ``task`` needs and write its chunks; returns patches written.

    The task opens its own slide handle (handles never travel in a dask graph).
    """
    with open_slide(
        Path(task.slide_path),
        mpp=task.slide_mpp,
        mpp_from_objective=task.mpp_from_objective,
    ) as slide:
        return _write_chunks(task, slide)


def _write_chunks(task: TileTask, slide: Slide) -> int:
    grid = TileGrid(
        geometry=slide.geometry,
        mpp=task.grid_mpp,
        tile_px=task.tile_px,
        stride_px=task.stride_px,
    )
    group = open_store(Path(task.store_path), writable=True)
    # The array's config is not stored: without this, zarr compares every chunk
    # with the fill value before writing it (a fifth of the tiler's CPU time).
    patches = array(group, task.pixels).with_config({"write_empty_chunks": True})
    size, tile, stride = task.chunk_patches, grid.tile_px, grid.stride_px
    first = task.chunks[0] * size
    last = min(task.n_patches, (task.chunks[-1] + 1) * size)
    rowcol = np.asarray(array(group, task.positions)[first:last], dtype=np.int64)
    reads = _Reads(task, grid, slide, rowcol)
    written = 0
    # One buffer for the task's chunks (each write completes before the next chunk).
    buffer = np.empty((min(size, last - first), tile, tile, 3), dtype=np.uint8)
    for chunk in task.chunks:
        lo = chunk * size - first
        hi = min(task.n_patches, (chunk + 1) * size) - first
        out = buffer[: hi - lo]
        for seg, index in reads.by_segment(lo, hi):
            image, x0, y0 = reads.image(seg)
            for i in index:
                y = int(rowcol[i, 0]) * stride - y0
                x = int(rowcol[i, 1]) * stride - x0
                out[i - lo] = image[y : y + tile, x : x + tile]
        patches[first + lo : first + hi] = out
        mark_chunk_done(group, Arrays.TILED, chunk)
        written += hi - lo
    return written


class _Reads:
    """A task's segment images, each read once from its fixed origin."""

    def __init__(
        self,
        task: TileTask,
        grid: TileGrid,
        slide: Slide,
        rowcol: npt.NDArray[np.int64],
    ) -> None:
        self._grid, self._slide, self._plan = grid, slide, grid.plan
        self._segments = task.segments
        self._rows = task.band_rows
        # Segment of every patch: the last segment starting at or before it.
        keys = np.array([b << 32 | c for b, c, _ in task.segments], dtype=np.int64)
        cells = (rowcol[:, 0] // task.band_rows) << 32 | rowcol[:, 1]
        self._seg_of = np.searchsorted(keys, cells, side="right") - 1
        # How far the task's patches reach in each segment: last row, last column.
        self._extent: dict[int, tuple[int, int]] = {}
        for seg in np.unique(self._seg_of):
            mine = rowcol[self._seg_of == seg]
            self._extent[int(seg)] = (int(mine[:, 0].max()), int(mine[:, 1].max()))
        self._cache: dict[int, tuple[npt.NDArray[np.uint8], int, int]] = {}

    def by_segment(self, lo: int, hi: int) -> list[tuple[int, npt.NDArray[np.intp]]]:
        """Patches ``lo .. hi`` of the task grouped by segment, in reading order."""
        segs = self._seg_of[lo:hi]
        return [(int(s), lo + np.flatnonzero(segs == s)) for s in np.unique(segs)]

    def image(self, seg: int) -> tuple[npt.NDArray[np.uint8], int, int]:
        """The segment's pixels and the target-pixel ``(x, y)`` of their origin."""
        if seg not in self._cache:
            band = self._segments[seg][0]
            # Chunks move down the slide: earlier bands are not needed again.
            for old in [k for k in self._cache if self._segments[k][0] < band]:
                del self._cache[old]
            stride, tile = self._grid.stride_px, self._grid.tile_px
            x0, y0 = self._segments[seg][1] * stride, band * self._rows * stride
            last_row, last_col = self._extent[seg]
            pixels = self._slide.read_target(
                self._plan,
                x_px=x0,
                y_px=y0,
                width_px=last_col * stride + tile - x0,
                height_px=last_row * stride + tile - y0,
            )
            self._cache[seg] = (pixels, x0, y0)
        return self._cache[seg]


def run_tasks(
    tasks: Sequence[TileTask], *, workers: int, on_done: Callable[[int], None]
) -> None:
    """Run ``tasks`` through dask, calling ``on_done(written)`` as each finishes.

    On the active dask.distributed client if there is one, else on the local threaded
    scheduler with ``workers`` threads.
    """
    if not tasks:
        return
    from dask.base import compute
    from dask.callbacks import Callback
    from dask.delayed import delayed
    from dask.threaded import get as threaded_get

    graph = [
        delayed(run_task, pure=True)(
            task, dask_key_name=f"tile-chunks-{task.chunks[0]}"
        )
        for task in tasks
    ]
    client = _distributed_client()
    if client is not None:
        from distributed import as_completed

        for future in as_completed(client.compute(graph)):
            on_done(int(future.result()))
        return

    class Advance(Callback):
        def _posttask(
            self, key: Any, result: Any, dsk: Any, state: Any, id: Any
        ) -> None:
            if isinstance(result, int):
                on_done(result)

    # The threaded scheduler as a function: naming it "threads" makes dask import
    # distributed to look for a client (0.4 s).
    with Advance():
        compute(*graph, scheduler=threaded_get, num_workers=workers)


def _distributed_client() -> Any:
    """The active dask.distributed client, or None (never imports distributed)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def write_bands(
    rowcol: npt.NDArray[np.int64],
    todo: Sequence[int],
    read_layout: dict[str, int],
    *,
    per_chunk: int,
    workers: int,
    slide_path: Path,
    store_path: Path,
    slide_mpp: float | None,
    mpp_from_objective: bool,
    on_done: Callable[[int], None],
    **common: Any,
) -> None:
    """Read the bands of chunks ``todo`` and write their pixels, through dask.

    ``rowcol`` are the stored items' positions on their grid (patches or cells),
    ``read_layout`` the band and segment limits; ``common`` the other
    :class:`TileTask` fields.
    """
    layout = BandLayout.build(rowcol, chunk_patches=per_chunk, **read_layout)
    per_task = math.ceil(len(todo) / (_TASKS_PER_WORKER * workers))
    tasks = make_tasks(
        layout,
        todo,
        per_task=max(1, min(_MAX_CHUNKS_PER_TASK, per_task)),
        slide_path=str(slide_path.resolve()),
        slide_mpp=slide_mpp,
        mpp_from_objective=mpp_from_objective,
        store_path=str(store_path.resolve()),
        **common,
    )
    run_tasks(tasks, workers=workers, on_done=on_done)
