"""The colours of the heatmap renderings (PNG, TIFF, overlay, viewer) and of outlines.

Two looks: `colourise` maps the whole 0..1 range with `HEATMAP_CMAP`, for the
standalone ``heatmap.png`` and ``heatmap.tif``; `tint` gives the see-through tint laid
over H&E (``overlay.png`` and the viewer): nothing below `TINT_FLOOR`, then
`TINT_CMAP` from yellow-orange to deep red with an opacity rising from
``TINT_OPACITY[0]`` to ``TINT_OPACITY[1]``, so normal tissue keeps its stain colours.
"""

from __future__ import annotations

from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "HEATMAP_CMAP",
    "LEGEND_BACKGROUND_RGB",
    "LESION_MARKER_RGB",
    "NO_DATA_RGB",
    "TINT_CMAP",
    "TINT_CMAP_SPAN",
    "TINT_FLOOR",
    "TINT_OPACITY",
    "TISSUE_OUTLINE_RGB",
    "TUMOR_OUTLINE_RGB",
    "TUMOR_RGB",
    "colourise",
    "tint",
]

#: Matplotlib colour map for probabilities 0..1: blue (normal) to dark red (tumour).
HEATMAP_CMAP: Final = "turbo"
#: No tint below this tumour probability: normal tissue shows its real H&E colours.
TINT_FLOOR: Final = 0.2
#: Matplotlib colour map of the tint over H&E, and the part of it spread over
#: probabilities `TINT_FLOOR`..1: yellow-orange at the floor to deep red at 1.
TINT_CMAP: Final = "YlOrRd"
TINT_CMAP_SPAN: Final = (0.3, 0.85)
#: Opacity of the tint at `TINT_FLOOR` and at probability 1, linear in between.
TINT_OPACITY: Final = (0.25, 0.6)
#: Behind the tint in legends (overlay strip, viewer colour bar): "no tint" reads as it.
LEGEND_BACKGROUND_RGB: Final = (232, 232, 232)
#: Colour of cells without a tissue patch (NaN) in the PNG and the TIFF.
NO_DATA_RGB: Final = (224, 224, 224)
#: QuPath's default colour of the "Tumor" class, used for the GeoJSON classification.
TUMOR_RGB: Final = (200, 0, 0)
#: Outline of tumour polygons in the overlay (black: the map's colours are all lighter).
TUMOR_OUTLINE_RGB: Final = (0, 0, 0)
#: Outline of the tissue mask in the overlay (green, apart from H&E and the polygons).
TISSUE_OUTLINE_RGB: Final = (0, 150, 0)
#: Circles around the lesions that set the node's class (blue: apart from the tint).
LESION_MARKER_RGB: Final = (0, 90, 255)


@cache
def _lut(cmap: str) -> npt.NDArray[np.uint8]:
    import matplotlib

    colours = matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3]
    lut: npt.NDArray[np.uint8] = np.rint(colours * 255).astype(np.uint8)
    return lut


def colourise(
    heatmap: npt.ArrayLike, *, cmap: str = HEATMAP_CMAP
) -> npt.NDArray[np.uint8]:
    """Colour-map probabilities to RGB, with `NO_DATA_RGB` where the value is NaN.

    Parameters
    ----------
    heatmap
        Float array of any shape, probabilities in ``[0, 1]`` (clipped), NaN for none.
    cmap
        A matplotlib colour map name.

    Returns
    -------
    numpy.ndarray
        ``uint8[..., 3]``: the 256-entry colour map looked up at ``round(p * 255)``.

    Examples
    --------
    >>> colourise(np.array([[0.0, 1.0, np.nan]], dtype=np.float32)).tolist()
    [[[48, 18, 59], [122, 4, 3], [224, 224, 224]]]
    """
    values = np.asarray(heatmap, dtype=np.float32)
    finite = np.isfinite(values)
    index = np.rint(np.clip(np.where(finite, values, 0.0), 0.0, 1.0) * 255)
    rgb: npt.NDArray[np.uint8] = _lut(cmap)[index.astype(np.uint8)]
    rgb[~finite] = NO_DATA_RGB
    return rgb


@cache
def _tint_lut() -> npt.NDArray[np.uint8]:
    import matplotlib

    start, stop = TINT_CMAP_SPAN
    colours = matplotlib.colormaps[TINT_CMAP](np.linspace(start, stop, 256))[:, :3]
    lut: npt.NDArray[np.uint8] = np.rint(colours * 255).astype(np.uint8)
    return lut


def tint(
    heatmap: npt.ArrayLike, *, floor: float = TINT_FLOOR
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """Colour and opacity of the tint over H&E: none below the floor or where NaN.

    From `TINT_FLOOR` to 1 the colour runs through `TINT_CMAP` (its
    `TINT_CMAP_SPAN`, 256 steps) and the opacity rises linearly through
    `TINT_OPACITY`; both depend on the probability only, so a higher ``floor``
    hides more cells without changing the others.

    Parameters
    ----------
    heatmap
        Float array of any shape, probabilities in ``[0, 1]`` (clipped), NaN for none.
    floor
        Cells below ``max(floor, TINT_FLOOR)`` are not tinted (opacity 0).

    Returns
    -------
    rgb : numpy.ndarray
        ``uint8[..., 3]`` colours (those of untinted cells are meaningless).
    opacity : numpy.ndarray
        ``float32[...]`` in ``[0, TINT_OPACITY[1]]``; blend as
        ``(1 - opacity) * he + opacity * rgb``.

    Examples
    --------
    >>> rgb, opacity = tint(np.array([0.05, 0.2, 1.0, np.nan], dtype=np.float32))
    >>> rgb[1:3].tolist(), [round(float(a), 2) for a in opacity]
    ([[254, 202, 102], [196, 5, 36]], [0.0, 0.25, 0.6, 0.0])
    """
    values = np.asarray(heatmap, dtype=np.float32)
    finite = np.isfinite(values)
    clipped = np.clip(np.where(finite, values, 0.0), 0.0, 1.0)
    ramp = np.clip((clipped - TINT_FLOOR) / (1.0 - TINT_FLOOR), 0.0, 1.0)
    rgb: npt.NDArray[np.uint8] = _tint_lut()[np.rint(ramp * 255).astype(np.uint8)]
    low, high = TINT_OPACITY
    shown = finite & (clipped >= max(floor, TINT_FLOOR))
    opacity = np.where(shown, low + (high - low) * ramp, 0.0).astype(np.float32)
    return rgb, opacity
