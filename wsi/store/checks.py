"""Whether a slide store's chunks still hold what their flags promise.

A chunk's flag is set after its data is written, but files can go missing or be cut
short later (a disk, a copy, a person). These checks read the data back: scores as
finite probabilities, the heatmap, the patch grid in row-major order, and the
patches about to be scored. The pipeline redoes what fails them (docs/OUTPUTS.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import zarr

from wsi.errors import OutputError
from wsi.store.layout import Arrays
from wsi.store.slide_store import array, chunk_flags, open_store, open_tile_store

__all__ = [
    "chunks_to_score",
    "damaged_patch_chunks",
    "damaged_score_chunks",
    "grid_intact",
    "scores_intact",
]

logger = logging.getLogger(__name__)


def damaged_score_chunks(
    group: zarr.Group, *, chunk: int, warn: bool = True
) -> list[int]:
    """The flagged ``scores`` chunks that do not read back as finite probabilities.

    A chunk file that is missing reads as the fill value (NaN), a truncated or
    corrupted one fails to decompress: either way the chunk's flag lies. Scores are
    probabilities, never NaN, so reading them back is the check (the whole array is
    4 bytes a patch). Each damaged chunk is named in a warning.
    """
    if Arrays.SCORES not in group or Arrays.SCORED not in group:
        return []
    scores = array(group, Arrays.SCORES)
    flags = chunk_flags(group, Arrays.SCORED)
    damaged = []
    for index in np.flatnonzero(flags):
        part = slice(int(index) * chunk, min(scores.shape[0], (int(index) + 1) * chunk))
        try:
            ok = bool(np.isfinite(np.asarray(scores[part])).all())
        except Exception as err:  # noqa: BLE001 - any decode error means damaged
            logger.debug("reading scores chunk %d: %s", index, err)
            ok = False
        if not ok:
            (logger.warning if warn else logger.debug)(
                "%s: scores chunk %d is missing or damaged; it will be scored again",
                _store_dir(group) / Arrays.SCORES / "c" / str(int(index)),
                index,
            )
            damaged.append(int(index))
    return damaged


def _store_dir(group: zarr.Group) -> Path:
    """The folder of a local store (zarr names it ``file:///...``)."""
    return Path(str(group.store).removeprefix("file://"))


def chunks_to_score(group: zarr.Group, *, warn: bool = True) -> list[int]:
    """The scores chunks to (re)compute: not flagged done, or flagged but damaged.

    All of them while the store has no scores yet (or flags of another chunking).
    """
    tiles = open_tile_store(_store_dir(group))
    n_chunks = -(-tiles.n_patches // tiles.chunk_patches)
    done = chunk_flags(group, Arrays.SCORED)
    if Arrays.SCORES not in group or len(done) != n_chunks:
        return list(range(n_chunks))
    chunk = int(array(group, Arrays.SCORES).chunks[0])
    for index in damaged_score_chunks(group, chunk=chunk, warn=warn):
        done[index] = False
    return [int(i) for i in np.flatnonzero(~done)]


def scores_intact(path: Path, *, heatmap: bool = False) -> bool:
    """Whether a store's scores are complete and every chunk reads back.

    With ``heatmap``, the stitched heatmap must read back too (it is small).
    """
    try:
        group = open_store(Path(path))
        chunk = int(array(group, Arrays.SCORES).chunks[0])
        complete = bool(chunk_flags(group, Arrays.SCORED).all())
    except (OutputError, OSError, ValueError, KeyError):
        return False
    if heatmap:
        try:
            np.asarray(array(group, Arrays.HEATMAP)[...])
        except Exception as err:  # noqa: BLE001 - missing, or fails to decode
            logger.warning("%s: the heatmap does not read back (%s)", path, err)
            return False
    return complete and not damaged_score_chunks(group, chunk=chunk, warn=False)


def damaged_patch_chunks(path: Path, chunks: list[int]) -> list[int]:
    """The patch chunks among ``chunks`` whose patches do not read back.

    A chunk file that fails to decode, or a missing one (it reads as the fill
    value: black patches, which tissue selection never keeps). Scoring reads exactly these patches next, so the check costs one more read of
    the chunks about to be scored. Each damaged chunk is named in a warning.
    """
    tiles = open_tile_store(Path(path))
    group = tiles.open()
    if chunks and tiles.layout == "source-jpeg" and not _source_tiles_present(group):
        logger.warning(
            "%s: some stored slide tiles are missing or empty; the slide is tiled "
            "again",
            path,
        )
        return list(chunks)
    damaged = []
    for index in chunks:
        start = index * tiles.chunk_patches
        try:
            block = tiles.read_patches(start, start + tiles.chunk_patches, group=group)
            ok = bool(block.reshape(len(block), -1).max(axis=1).all())
        except Exception as err:  # noqa: BLE001 - any decode or shape error
            logger.debug("reading patch chunk %d of %s: %s", index, path, err)
            ok = False
        if not ok:
            logger.warning(
                "%s: the patches of chunk %d are missing or damaged (%s layout); the "
                "slide is tiled again",
                path,
                index,
                tiles.layout,
            )
            damaged.append(index)
    return damaged


def _source_tiles_present(group: zarr.Group) -> bool:
    """Whether every stored slide tile of a source-JPEG store has its bytes.

    A missing ``source_tiles`` chunk reads as empty tiles, which patches would take
    for background; only the stored bytes tell.
    """
    try:
        blobs = array(group, Arrays.SOURCE_TILES)[:]
    except Exception as err:  # noqa: BLE001 - a chunk that fails to decode
        logger.debug("reading source tiles: %s", err)
        return False
    return all(len(bytes(blob)) > 0 for blob in np.asarray(blobs, dtype=object))


def grid_intact(path: Path) -> bool:
    """Whether a store's patch grid reads back: one distinct cell per patch, in order.

    Patches are stored row-major, so their ``(row, col)`` keys strictly increase; a
    missing ``grid`` chunk reads as zeros and breaks that, a damaged one fails to
    decode. Stitching places the scores by this grid.
    """
    try:
        group = open_store(Path(path))
        rowcol = np.asarray(array(group, Arrays.GRID)[:], dtype=np.int64)
        coords = np.asarray(array(group, Arrays.COORDS)[:], dtype=np.int64)
    except Exception as err:  # noqa: BLE001 - missing array or a decode error
        logger.warning("%s: the patch grid does not read back (%s)", path, err)
        return False
    if len(rowcol) != len(coords):
        logger.warning("%s: the patch grid and coordinates disagree", path)
        return False
    if len(rowcol) < 2:
        return True
    keys = rowcol[:, 0] * (int(rowcol[:, 1].max()) + 1) + rowcol[:, 1]
    ok = bool(np.all(np.diff(keys) > 0)) and bool(
        np.all(np.diff(coords[:, 1] * (int(coords[:, 0].max()) + 1) + coords[:, 0]) > 0)
    )
    if not ok:
        logger.warning("%s: the patch grid is damaged (patches out of order)", path)
    return ok
