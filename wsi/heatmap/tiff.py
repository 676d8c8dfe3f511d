"""Write the heatmap as a pyramidal TIFF that lines up with its slide.

Format choice (see ``docs/OUTPUTS.md``): 8-bit RGB, colour-mapped with `HEATMAP_CMAP`,
tiled 256 x 256, deflate-compressed, one TIFF page per pyramid level (halving each time,
the "generic tiled TIFF" that OpenSlide reads, and that QuPath opens through OpenSlide
or Bio-Formats), with X/YResolution in pixels per centimetre. Float samples would be
exact, but OpenSlide refuses them ("can not handle images with 32-bit samples") and
QuPath shows them as a grey image needing manual contrast; the exact float values live
in the zarr store instead.

Alignment: TIFF pixel ``(0, 0)`` starts at level-0 pixel ``(0, 0)`` and the image
covers the whole slide, so opened at its physical pixel size it lies on the slide.
Each TIFF pixel is one heatmap cell, except that when the cell offset
``(P - s) / 2`` is not a whole number of cells (e.g. stride 48 gives half a cell) each
cell becomes ``k x k`` pixels with the smallest ``k`` that makes it whole, so the
picture is never shifted. Reduced levels take the maximum of each 2 x 2 block, so a
small hot spot stays visible when zoomed out.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from wsi.geometry import TileGrid, check_heatmap
from wsi.heatmap.colormap import HEATMAP_CMAP, colourise
from wsi.store.atomic import atomic_output

__all__ = ["TiffLayout", "tiff_layout", "write_heatmap_tiff"]

logger = logging.getLogger(__name__)

_TILE_PX = 256
_MAX_CELL_PX = 16
_UM_PER_CM = 10_000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TiffLayout:
    """Where the heatmap's cells fall in the TIFF's level-0 image.

    Attributes
    ----------
    cell_px
        TIFF pixels per heatmap cell side (1 unless the cell offset needs more).
    pad_px
        Empty TIFF pixels before cell ``(0, 0)``, on the left and on the top.
    pixel_l0
        Side of one TIFF pixel in slide level-0 pixels.
    width_px, height_px
        Size of the TIFF's full-resolution image.
    """

    cell_px: int
    pad_px: int
    pixel_l0: float
    width_px: int
    height_px: int


def tiff_layout(grid: TileGrid) -> TiffLayout:
    """Place the heatmap in a TIFF whose pixel ``(0, 0)`` is the slide's origin.

    Examples
    --------
    >>> from wsi.geometry import SlideGeometry
    >>> g = SlideGeometry(width_px=4000, height_px=2000, mpp_x=0.25, mpp_y=0.25,
    ...                   level_dimensions=((4000, 2000),))
    >>> tiff_layout(TileGrid(geometry=g, mpp=1.0, stride_px=32))
    TiffLayout(cell_px=1, pad_px=1, pixel_l0=128.0, width_px=32, height_px=16)
    >>> tiff_layout(TileGrid(geometry=g, mpp=1.0, stride_px=48)).cell_px
    2
    """
    stride, offset = grid.stride_px, grid.cell_offset_px
    cell_px = stride // math.gcd(stride, offset)
    if cell_px > _MAX_CELL_PX:
        cell_px = 1
        logger.warning(
            "heatmap.tif: a cell offset of %d target px is not a whole number of "
            "%d px cells; the TIFF is shifted by up to half a cell",
            offset,
            stride,
        )
    pad_px = round(offset * cell_px / stride)
    pixel_l0 = grid.cell_size_l0 / cell_px
    rows, cols = grid.shape
    geometry = grid.geometry
    width = max(math.ceil(geometry.width_px / pixel_l0 - 1e-9), pad_px + cols * cell_px)
    height = max(
        math.ceil(geometry.height_px / pixel_l0 - 1e-9), pad_px + rows * cell_px
    )
    return TiffLayout(
        cell_px=cell_px,
        pad_px=pad_px,
        pixel_l0=pixel_l0,
        width_px=width,
        height_px=height,
    )


def write_heatmap_tiff(
    heatmap: npt.NDArray[np.floating], path: Path, *, grid: TileGrid
) -> None:
    """Write a colour-mapped pyramidal TIFF of the heatmap with the slide's pixel size.

    Parameters
    ----------
    heatmap
        ``float32[rows, cols]`` probabilities from `stitch`, NaN where no patch.
    path
        The ``.tif`` to write (parent folders are created).
    grid
        The grid the heatmap was stitched on; gives the cell size and origin.

    Raises
    ------
    ValueError
        If ``heatmap`` does not have ``grid.shape``.
    OutputError
        If the file cannot be written.

    Notes
    -----
    1. A TIFF pixel is ``pixel_l0 = cell_size_l0 / k`` level-0 pixels, i.e.
       ``pixel_l0 * mpp`` microns: the resolution tags are ``10_000 / (pixel_l0 * mpp)``
       pixels per cm, separately for x and y.
    2. Cell ``(i, j)`` fills TIFF pixels ``[pad + i*k, pad + (i+1)*k)`` by
       ``[pad + j*k, pad + (j+1)*k)`` with ``pad = cell_offset_px * k / stride_px``.
    3. Level ``n`` is level ``n - 1`` reduced 2 x 2 by the maximum (NaN ignored) until
       it fits in one tile; its resolution tags scale with its size.
    """
    import tifffile

    values = check_heatmap(heatmap, grid)
    layout = tiff_layout(grid)
    k, pad = layout.cell_px, layout.pad_px
    full = np.full((layout.height_px, layout.width_px), np.nan, dtype=np.float32)
    rows, cols = values.shape
    cells = np.repeat(np.repeat(values, k, axis=0), k, axis=1) if k > 1 else values
    full[pad : pad + rows * k, pad : pad + cols * k] = cells
    levels = [full]
    while max(levels[-1].shape) > _TILE_PX:
        levels.append(_max_reduce(levels[-1]))
    geometry = grid.geometry
    res_x = _UM_PER_CM / (layout.pixel_l0 * geometry.mpp_x)
    res_y = _UM_PER_CM / (layout.pixel_l0 * geometry.mpp_y)
    description = (
        f"wsi-heatmap tumour probability heatmap, colour map {HEATMAP_CMAP} 0..1, "
        f"no tissue grey; one pixel = {layout.pixel_l0:.4f} slide level-0 px "
        f"({layout.pixel_l0 * geometry.mpp_x:.3f} um); pixel (0, 0) = slide (0, 0)"
    )
    raw_bytes = sum(level.size * 3 for level in levels)
    with (
        atomic_output(path) as tmp,
        tifffile.TiffWriter(tmp, bigtiff=raw_bytes > 3_000_000_000) as tif,
    ):
        for n, level in enumerate(levels):
            ratio_x = level.shape[1] / full.shape[1]
            ratio_y = level.shape[0] / full.shape[0]
            tif.write(
                colourise(level),
                photometric="rgb",
                tile=(_TILE_PX, _TILE_PX),
                compression="zlib",
                resolution=(res_x * ratio_x, res_y * ratio_y),
                resolutionunit="CENTIMETER",
                subfiletype=1 if n else 0,
                description=None if n else description,
                software="wsi-heatmap",
                metadata=None,
            )
    logger.info(
        "wrote %s: %dx%d px, %d levels, %.3f um/px",
        path,
        layout.width_px,
        layout.height_px,
        len(levels),
        layout.pixel_l0 * geometry.mpp_x,
    )


def _max_reduce(image: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Halve an image by the maximum of each 2 x 2 block, ignoring NaN.

    Examples
    --------
    >>> _max_reduce(np.array([[1, np.nan, 5], [2, np.nan, 4]], np.float32)).tolist()
    [[2.0, 5.0]]
    """
    rows, cols = image.shape
    padded = np.full((rows + rows % 2, cols + cols % 2), np.nan, dtype=np.float32)
    padded[:rows, :cols] = image
    # fmax ignores NaN unless both are NaN, and never warns.
    top = np.fmax(padded[0::2, 0::2], padded[0::2, 1::2])
    bottom = np.fmax(padded[1::2, 0::2], padded[1::2, 1::2])
    reduced: npt.NDArray[np.float32] = np.fmax(top, bottom)
    return reduced
