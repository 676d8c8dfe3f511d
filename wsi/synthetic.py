"""Write small Camelyon-like pyramidal TIFFs (doctor, benchmarks, tests, the demo).

OpenSlide reads these as generic tiled TIFFs: one tiled JPEG (or other) page per
level, finest first, resolution tags in pixels per centimetre.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["downscale", "write_pyramid_tiff"]


def downscale(rgb: npt.NDArray[np.uint8], factor: float) -> npt.NDArray[np.uint8]:
    """Anti-aliased downscale of an RGB image by ``factor`` (>= 1)."""
    from skimage.transform import rescale

    if factor == 1:
        return rgb
    out = rescale(rgb, 1 / factor, channel_axis=2, anti_aliasing=True,
                  preserve_range=True, order=1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def write_pyramid_tiff(
    path: Path,
    level0: npt.NDArray[np.uint8],
    *,
    mpp: float | None,
    downsamples: Sequence[float] = (1, 4, 16),
    tile_px: int = 256,
    compression: str = "jpeg",
    quality: int = 90,
) -> Path:
    """Write ``level0`` (uint8 H x W x 3) and its downsampled levels as a tiled TIFF.

    Parameters
    ----------
    path
        Output file.
    level0
        Full-resolution RGB pixels.
    mpp
        Level-0 microns per pixel, written as resolution tags; None writes none.
    downsamples
        Pyramid levels, first 1; need not be powers of two.
    tile_px
        TIFF tile side (a multiple of 16).
    compression, quality
        Tile codec and, for JPEG, its quality.
    """
    import tifffile

    if downsamples[0] != 1:
        raise ValueError(f"downsamples must start at 1, got {downsamples[0]}")
    height, width = level0.shape[:2]
    options: dict[str, object] = {
        "tile": (tile_px, tile_px),
        "photometric": "rgb",
        "compression": compression,
        "metadata": None,
    }
    if compression == "jpeg":
        options["compressionargs"] = {"level": quality}
    resolution = {}
    if mpp is not None:
        resolution = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(path, bigtiff=level0.nbytes > 2**31) as tif:
        tif.write(level0, **resolution, **options)
        for factor in downsamples[1:]:
            level = downscale(level0, factor)
            level = level[: max(1, int(height / factor)), : max(1, int(width / factor))]
            if mpp is not None:
                resolution = {"resolution": (1e4 / (mpp * factor),) * 2,
                              "resolutionunit": "CENTIMETER"}
            tif.write(level, subfiletype=1, **resolution, **options)
    return Path(path)
