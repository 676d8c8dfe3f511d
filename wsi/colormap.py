"""The colours of the heatmap renderings (PNG, TIFF, overlay) and of tumour outlines."""

from __future__ import annotations

from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "HEATMAP_CMAP",
    "NO_DATA_RGB",
    "TISSUE_OUTLINE_RGB",
    "TUMOR_OUTLINE_RGB",
    "TUMOR_RGB",
    "colourise",
]

#: Matplotlib colour map for probabilities 0..1: blue (normal) to dark red (tumour).
HEATMAP_CMAP: Final = "turbo"
#: Colour of cells without a tissue patch (NaN) in the PNG and the TIFF.
NO_DATA_RGB: Final = (224, 224, 224)
#: QuPath's default colour of the "Tumor" class, used for the GeoJSON classification.
TUMOR_RGB: Final = (200, 0, 0)
#: Outline of tumour polygons in the overlay (black: the map's colours are all lighter).
TUMOR_OUTLINE_RGB: Final = (0, 0, 0)
#: Outline of the tissue mask in the overlay (green, apart from H&E and the polygons).
TISSUE_OUTLINE_RGB: Final = (0, 150, 0)


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
