"""Colour maps of a thumbnail for tissue detection: saturation, dark pixels, pen ink.

Private to :mod:`wsi.tiles.tissue`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = ["STRIP_PIXELS", "colour_maps"]

#: Thumbnail pixels converted at once (bounds the float temporaries).
STRIP_PIXELS: Final = 1 << 20
# Marker ink in HSV (hue in degrees). H&E stains lie between about 260 and 345 deg
# with saturation below about 0.7: green and blue ink sit outside that hue range, red
# ink at its red end (345-20 deg, which wraps through 0) or beyond its saturation.
_GREEN_BLUE_PEN_HUE_DEG: Final = (70.0, 250.0)
_GREEN_BLUE_MIN_SATURATION: Final = 0.1
_RED_PEN_HUE_DEG: Final = (345.0, 20.0)
_RED_PEN_MIN_SATURATION: Final = 0.25
_VIVID_RED_HUE_DEG: Final = (320.0, 20.0)
_VIVID_MIN_SATURATION: Final = 0.75


def _blurred_hsv(
    rgb: npt.NDArray[np.uint8], *, sigma_px: float
) -> tuple[npt.NDArray[np.float32], ...]:
    """Blurred ``r, g, b`` and HSV saturation and value, all float32 in [0, 1]."""
    channels = []
    for c in range(3):
        channel = rgb[..., c].astype(np.float32)
        channel *= np.float32(1 / 255)
        if sigma_px > 0:
            channel = ndimage.gaussian_filter(channel, sigma_px, mode="nearest")
        channels.append(channel)
    r, g, b = channels
    val = np.maximum(np.maximum(r, g), b)
    delta = val - np.minimum(np.minimum(r, g), b)
    sat = np.divide(delta, val, out=np.zeros_like(val), where=val > 0)
    return r, g, b, sat, val


def _hue_deg(
    r: npt.NDArray[np.float32], g: npt.NDArray[np.float32], b: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """HSV hue in degrees of (1-D) colours that are not grey."""
    val = np.maximum(np.maximum(r, g), b)
    delta = val - np.minimum(np.minimum(r, g), b)
    delta[delta == 0] = 1  # grey: any hue
    hue = np.where(
        val == r,
        ((g - b) / delta) % 6,
        np.where(val == g, (b - r) / delta + 2, (r - g) / delta + 4),
    )
    degrees: npt.NDArray[np.float32] = (hue * 60).astype(np.float32)
    return degrees


def _pen(
    r: npt.NDArray[np.float32],
    g: npt.NDArray[np.float32],
    b: npt.NDArray[np.float32],
    sat: npt.NDArray[np.float32],
) -> npt.NDArray[np.bool_]:
    """Marker ink; hue is computed only where saturation allows any ink."""
    pen = np.zeros(sat.shape, dtype=bool)
    coloured = sat >= min(_GREEN_BLUE_MIN_SATURATION, _RED_PEN_MIN_SATURATION)
    s, hue = sat[coloured], _hue_deg(r[coloured], g[coloured], b[coloured])
    lo, hi = _GREEN_BLUE_PEN_HUE_DEG
    green_blue = (hue >= lo) & (hue < hi) & (s >= _GREEN_BLUE_MIN_SATURATION)
    red_lo, red_hi = _RED_PEN_HUE_DEG
    red = ((hue >= red_lo) | (hue < red_hi)) & (s >= _RED_PEN_MIN_SATURATION)
    vivid_lo, vivid_hi = _VIVID_RED_HUE_DEG
    vivid = ((hue >= vivid_lo) | (hue < vivid_hi)) & (s >= _VIVID_MIN_SATURATION)
    pen[coloured] = green_blue | red | vivid
    return pen


def colour_maps(
    rgb: npt.NDArray[np.uint8],
    *,
    sigma_px: float,
    min_value: float,
    workers: int = 1,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Blurred saturation, dark pixels and (ungrown) pen, computed in row strips.

    Strips overlap by the blur's radius, so the result equals a whole-image pass while
    the float temporaries stay the size of a strip. With ``workers > 1`` the strips
    are converted by that many threads (numpy and scipy release the GIL), each
    writing its own rows: the same maps, sooner.
    """
    height, width = rgb.shape[:2]
    sat = np.empty((height, width), np.float32)
    dark = np.empty((height, width), bool)
    pen = np.empty((height, width), bool)
    halo = int(4 * sigma_px + 0.5) + 1  # gaussian_filter's radius, +1
    rows = max(1, STRIP_PIXELS // max(width, 1))

    def strip(top: int) -> None:
        bottom = min(height, top + rows)
        first, last = max(0, top - halo), min(height, bottom + halo)
        r, g, b, s, v = _blurred_hsv(rgb[first:last], sigma_px=sigma_px)
        inner = slice(top - first, bottom - first)
        sat[top:bottom] = s[inner]
        dark[top:bottom] = v[inner] < min_value
        pen[top:bottom] = _pen(r[inner], g[inner], b[inner], s[inner])

    tops = range(0, height, rows)
    if workers > 1 and len(tops) > 1:
        with ThreadPoolExecutor(min(workers, len(tops))) as pool:
            list(pool.map(strip, tops))  # list(): re-raise any strip's error
    else:
        for top in tops:
            strip(top)
    return sat, dark, pen
