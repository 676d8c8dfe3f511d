"""Test doubles: a deterministic classifier that needs no TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wsi.geometry import CENTER_PX, PATCH_PX, PCAM_MPP

#: Colours of the synthetic slides: tumour is dark purple, normal tissue pink.
TUMOUR_RGB = (110, 40, 150)
NORMAL_RGB = (225, 160, 205)


@dataclass(frozen=True)
class ColourClassifier:
    """Probability = fraction of the centre 32x32 whose red channel is below 170.

    A deterministic function of the tile's colour: dark purple (tumour) scores 1,
    pink tissue and white background score 0. Picklable, so it runs on dask workers.
    """

    input_px: int = PATCH_PX
    mpp: float = PCAM_MPP
    sha256: str = "fake-colour-classifier"

    def __call__(self, patches: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Score ``uint8[N, 96, 96, 3]`` patches."""
        lo = (PATCH_PX - CENTER_PX) // 2
        centre = patches[:, lo : lo + CENTER_PX, lo : lo + CENTER_PX, 0]
        return (centre < 170).mean(axis=(1, 2)).astype(np.float32)
