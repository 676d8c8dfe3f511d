"""Exact separable resampling of an RGB region by a fractional factor (private).

Used by :meth:`wsi.slide.reader.Slide.read_target`. Each output pixel's weights depend only
on its absolute position and on where the source region starts, never on the size of
the region, so splitting a read into pieces changes no value, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = ["margin_px", "resample"]

# Output rows resampled at once (bounds the float32 intermediates).
_STRIP_ROWS = 256


def margin_px(factor: float) -> int:
    """Source pixels needed around a region's footprint (filter reach, plus slack)."""
    return math.ceil(max(factor, 1.0)) + 2


def _axis_weights(
    *, start: int, n: int, factor: float, origin: float, n_src: int, skip: int = 0
) -> sp.csr_matrix:
    """``(n, n_src)`` weights mapping source pixels to outputs ``start .. start + n``.

    Output pixel ``i`` covers ``[i * factor, (i + 1) * factor)`` in source pixels,
    shifted by ``origin`` (where the source region's first pixel lies); the matrix
    starts at source pixel ``skip`` (an integer shift, so weights stay bit-identical
    whatever part of the source a caller passes). Reduction
    (``factor >= 1``) weighs each source pixel by its overlap with that footprint
    (exact area averaging); enlargement interpolates linearly between pixel centres.
    """
    index = start + np.arange(n, dtype=np.float64)
    if factor >= 1:
        left = index * factor - origin
        right = left + factor
        taps = math.ceil(factor) + 1
        cols = np.floor(left).astype(np.int64)[:, None] + np.arange(taps)[None, :]
        weights = np.minimum(right[:, None], cols + 1) - np.maximum(left[:, None], cols)
        weights = np.clip(weights, 0, None) / factor
    else:
        centre = (index + 0.5) * factor - origin - 0.5  # in source pixel-centre units
        base = np.floor(centre).astype(np.int64)
        frac = centre - base
        cols = base[:, None] + np.arange(2)[None, :]
        weights = np.stack([1 - frac, frac], axis=1)
    cols = cols - skip
    if cols.min() < 0 or cols.max() >= n_src:
        raise ValueError(
            "resampling footprint leaves the source region; widen its margin"
        )
    rows = np.repeat(np.arange(n), cols.shape[1])
    return sp.csr_matrix(
        (weights.ravel().astype(np.float32), (rows, cols.ravel())), shape=(n, n_src)
    )


def resample(
    region: npt.NDArray[np.uint8],
    *,
    x_px: int,
    y_px: int,
    width_px: int,
    height_px: int,
    factor: float,
    origin_xy: tuple[float, float],
) -> npt.NDArray[np.uint8]:
    """Resample ``region`` to the output pixels ``[x_px, x_px + width_px)`` etc.

    Parameters
    ----------
    region
        ``uint8[H, W, 3]`` source pixels.
    x_px, y_px, width_px, height_px
        Output pixels wanted, in the output's own (absolute) pixel grid.
    factor
        Source pixels per output pixel.
    origin_xy
        Where ``region[0, 0]`` lies in absolute source pixels (may be fractional).

    Returns
    -------
    numpy.ndarray
        ``uint8[height_px, width_px, 3]``.
    """
    h_src, w_src = region.shape[:2]
    wx = _axis_weights(
        start=x_px, n=width_px, factor=factor, origin=origin_xy[0], n_src=w_src
    )
    out = np.empty((height_px, width_px, 3), dtype=np.uint8)
    reach = margin_px(factor)
    for top in range(0, height_px, _STRIP_ROWS):
        n = min(_STRIP_ROWS, height_px - top)
        # Source rows under this strip of output rows (weights ignore the rest).
        first = max(0, math.floor((y_px + top) * factor - origin_xy[1]) - reach)
        last = min(h_src, math.ceil((y_px + top + n) * factor - origin_xy[1]) + reach)
        source = region[first:last]
        wy = _axis_weights(
            start=y_px + top,
            n=n,
            factor=factor,
            origin=origin_xy[1],
            n_src=last - first,
            skip=first,
        )
        rows = wy @ source.reshape(last - first, w_src * 3).astype(np.float32)
        cols = rows.reshape(n, w_src, 3).transpose(1, 0, 2).reshape(w_src, n * 3)
        strip = (wx @ cols).reshape(width_px, n, 3).transpose(1, 0, 2)
        out[top : top + n] = np.clip(np.rint(strip), 0, 255)
    return out
