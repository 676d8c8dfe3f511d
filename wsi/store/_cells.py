"""The cell layout of a tile store: each target pixel stored once (private).

At a stride ``s`` below 96 that divides 96, neighbouring patches overlap, and storing
every patch would store each pixel ``(96 / s) ** 2`` times. A cell store keeps
instead the ``s x s`` cells of the *cell grid* (the patch grid's lattice, cells
``s`` target pixels apart) that some kept patch covers, in row-major order; a patch
is the ``k x k`` block of cells (``k = 96 / s``) whose top-left cell has the patch's
own ``(row, col)``, and is put together when it is read.

Examples
--------
>>> rowcol = np.array([[0, 0], [0, 1]])
>>> cells, index = cells_of(rowcol, k=3)
>>> len(cells), index.shape                # 3 rows x 4 columns of cells
(12, (2, 9))
>>> index[1, :3].tolist()                  # patch (0, 1): cells (0, 1), (0, 2), (0, 3)
[1, 2, 3]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from wsi.geometry import PATCH_PX

__all__ = ["assemble_patches", "cell_px", "cells_of"]


def cell_px(stride_px: int) -> int | None:
    """The cell size for patches ``stride_px`` apart, or None if cells do not apply.

    Cells apply when patches overlap and the stride divides the patch size.

    Examples
    --------
    >>> cell_px(32), cell_px(48), cell_px(96), cell_px(64)
    (32, 48, None, None)
    """
    if stride_px < PATCH_PX and PATCH_PX % stride_px == 0:
        return stride_px
    return None


def cells_of(
    rowcol: npt.NDArray[np.int64], *, k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]:
    """The cells that patches ``rowcol`` cover, and each patch's cells.

    Parameters
    ----------
    rowcol
        ``int64[N, 2]`` grid ``(row, col)`` of the patches.
    k
        Cells per patch side (``96 // stride``).

    Returns
    -------
    cells
        ``int64[M, 2]`` cell-grid ``(row, col)`` of every covered cell, row-major.
    index
        ``int32[N, k * k]``: row ``i`` lists patch ``i``'s cells (indices into
        ``cells``), row by row.
    """
    offsets = np.stack(
        np.meshgrid(np.arange(k), np.arange(k), indexing="ij"), axis=-1
    ).reshape(-1, 2)
    covered = rowcol[:, None, :].astype(np.int64) + offsets[None]  # [N, k*k, 2]
    width = int(covered[..., 1].max()) + 1 if len(rowcol) else 1
    keys = covered[..., 0] * width + covered[..., 1]
    unique, inverse = np.unique(keys.ravel(), return_inverse=True)
    cells = np.stack([unique // width, unique % width], axis=1).astype(np.int64)
    return cells, inverse.reshape(keys.shape).astype(np.int32)


def assemble_patches(
    cells: npt.NDArray[np.uint8], index: npt.NDArray[np.integer[Any]], *, k: int
) -> npt.NDArray[np.uint8]:
    """Put patches together from their cells.

    Parameters
    ----------
    cells
        ``uint8[M, s, s, 3]``: the cells that ``index`` refers to.
    index
        ``int[N, k * k]``: each patch's cells, row by row (indices into ``cells``).
    k
        Cells per patch side.

    Returns
    -------
    numpy.ndarray
        ``uint8[N, k * s, k * s, 3]``.
    """
    n, s = len(index), cells.shape[1]
    blocks = cells[index.reshape(n, k, k)]  # [N, k, k, s, s, 3]
    return np.ascontiguousarray(blocks.transpose(0, 1, 3, 2, 4, 5)).reshape(
        n, k * s, k * s, 3
    )
