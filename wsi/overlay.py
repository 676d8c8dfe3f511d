"""The heatmap over the slide thumbnail, with the tissue outline and tumour polygons.

Everything meets in level-0 pixels: thumbnail pixel ``(x, y)`` covers level-0
``[x*d, (x+1)*d)`` by ``[y*d, (y+1)*d)`` with ``d = thumbnail_downsample``; its heatmap
cell is the one that contains its centre (`TileGrid.level0_to_heatmap`); polygon
vertices in level-0 pixels are divided by ``d``. Thumbnail, heatmap and polygons thus
agree exactly, whatever the stride, cell offset or downsample.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from shapely.geometry import MultiPolygon

from wsi._atomic import atomic_output
from wsi.colormap import TISSUE_OUTLINE_RGB, TUMOR_OUTLINE_RGB, colourise
from wsi.geometry import TileGrid
from wsi.heatmap_tiff import check_heatmap
from wsi.polygons import TumorRegion

__all__ = ["heatmap_on_thumbnail", "render_overlay", "save_overlay_png"]

logger = logging.getLogger(__name__)


def heatmap_on_thumbnail(
    heatmap: npt.NDArray[np.floating],
    *,
    grid: TileGrid,
    shape: tuple[int, int],
    thumbnail_downsample: float,
) -> npt.NDArray[np.float32]:
    """Resample the heatmap onto thumbnail pixels (nearest cell; NaN outside the grid).

    Parameters
    ----------
    heatmap
        ``float32[rows, cols]`` on ``grid``.
    grid
        The patch grid.
    shape
        ``(height, width)`` of the thumbnail.
    thumbnail_downsample
        Level-0 pixels per thumbnail pixel.

    Returns
    -------
    numpy.ndarray
        ``float32[height, width]``: the value of the cell containing each pixel centre.

    Examples
    --------
    >>> from wsi.geometry import SlideGeometry
    >>> g = SlideGeometry(width_px=512, height_px=512, mpp_x=0.25, mpp_y=0.25,
    ...                   level_dimensions=((512, 512),))
    >>> grid = TileGrid(geometry=g, mpp=1.0, stride_px=32)  # 2 x 2 cells of 128 px
    >>> h = np.array([[0.1, 0.2], [0.3, 0.4]], np.float32)  # from level-0 px 128
    >>> heatmap_on_thumbnail(h, grid=grid, shape=(4, 4), thumbnail_downsample=128.0)
    array([[nan, nan, nan, nan],
           [nan, 0.1, 0.2, nan],
           [nan, 0.3, 0.4, nan],
           [nan, nan, nan, nan]], dtype=float32)
    """
    values = check_heatmap(heatmap, grid)
    height, width = shape
    if not thumbnail_downsample > 0:
        raise ValueError(
            f"thumbnail_downsample must be positive, got {thumbnail_downsample}"
        )
    rows, cols = values.shape
    centres_x = (np.arange(width) + 0.5) * thumbnail_downsample
    centres_y = (np.arange(height) + 0.5) * thumbnail_downsample
    col = np.floor(grid.level0_to_heatmap(np.stack([centres_x, centres_x], 1))[:, 0])
    row = np.floor(grid.level0_to_heatmap(np.stack([centres_y, centres_y], 1))[:, 1])
    col_ok = (col >= 0) & (col < cols)
    row_ok = (row >= 0) & (row < rows)
    out = np.full((height, width), np.nan, dtype=np.float32)
    out[np.ix_(row_ok, col_ok)] = values[
        np.ix_(row[row_ok].astype(np.intp), col[col_ok].astype(np.intp))
    ]
    return out


def render_overlay(
    *,
    thumbnail: npt.NDArray[np.uint8],
    tissue_mask: npt.NDArray[np.bool_],
    heatmap: npt.NDArray[np.floating],
    grid: TileGrid,
    thumbnail_downsample: float,
    regions: Sequence[TumorRegion],
    alpha: float = 0.45,
) -> npt.NDArray[np.uint8]:
    """Draw the overlay in memory (see `save_overlay_png` for the parameters).

    Returns
    -------
    numpy.ndarray
        ``uint8[H, W, 3]``.
    """
    from PIL import Image, ImageDraw

    rgb = _check_inputs(thumbnail, tissue_mask, alpha)
    height, width = rgb.shape[:2]
    sampled = heatmap_on_thumbnail(
        heatmap,
        grid=grid,
        shape=(height, width),
        thumbnail_downsample=thumbnail_downsample,
    )
    scored = np.isfinite(sampled)
    blend = rgb.astype(np.float32)
    blend[scored] = (1 - alpha) * blend[scored] + alpha * colourise(sampled[scored])
    out = np.rint(blend).astype(np.uint8)
    mask = np.asarray(tissue_mask, dtype=bool)
    out[mask & ~ndimage.binary_erosion(mask, border_value=0)] = TISSUE_OUTLINE_RGB
    image = Image.fromarray(out)
    draw = ImageDraw.Draw(image)
    line_px = max(1, round(max(height, width) / 3000))
    for region in regions:
        geom = region.polygon
        for part in geom.geoms if isinstance(geom, MultiPolygon) else [geom]:
            for ring in [part.exterior, *part.interiors]:
                # Level-0 edges to thumbnail pixel-centre coordinates (PIL's frame).
                xy = np.asarray(ring.coords) / thumbnail_downsample - 0.5
                draw.line(
                    [tuple(p) for p in xy.tolist()],
                    fill=TUMOR_OUTLINE_RGB,
                    width=line_px,
                    joint="curve",
                )
    return np.asarray(image)


def save_overlay_png(
    *,
    thumbnail: npt.NDArray[np.uint8],
    tissue_mask: npt.NDArray[np.bool_],
    heatmap: npt.NDArray[np.floating],
    grid: TileGrid,
    thumbnail_downsample: float,
    regions: Sequence[TumorRegion],
    path: Path,
    alpha: float = 0.45,
) -> None:
    """Save the heatmap blended over the thumbnail, with tissue outline and polygons.

    Scored cells are tinted with `HEATMAP_CMAP` at opacity ``alpha`` (cells without a
    patch are not tinted); the tissue mask's outline is green (`TISSUE_OUTLINE_RGB`,
    1 px); tumour polygons, holes included, are black (`TUMOR_OUTLINE_RGB`, 1 px,
    wider on thumbnails over 4500 px).

    Parameters
    ----------
    thumbnail
        ``uint8[H, W, 3]`` RGB (an alpha channel is ignored) at the tissue-mask scale.
    tissue_mask
        ``bool[H, W]``.
    heatmap
        ``float32[rows, cols]`` on ``grid``.
    grid
        The patch grid.
    thumbnail_downsample
        Level-0 pixels per thumbnail pixel (``MASK_CELL_PX * grid.downsample`` for the
        tiler's thumbnail).
    regions
        From `heatmap_regions`, polygons in level-0 pixels.
    path
        The PNG to write (parent folders are created).
    alpha
        Opacity of the heatmap, 0..1.

    Raises
    ------
    ValueError
        If the shapes disagree.
    OutputError
        If the file cannot be written.
    """
    from PIL import Image

    out = render_overlay(
        thumbnail=thumbnail,
        tissue_mask=tissue_mask,
        heatmap=heatmap,
        grid=grid,
        thumbnail_downsample=thumbnail_downsample,
        regions=regions,
        alpha=alpha,
    )
    with atomic_output(path) as tmp:
        Image.fromarray(out).save(tmp, format="PNG")
    logger.info("wrote %s (%dx%d)", path, out.shape[1], out.shape[0])


def _check_inputs(
    thumbnail: npt.ArrayLike, tissue_mask: npt.ArrayLike, alpha: float
) -> npt.NDArray[np.uint8]:
    rgb = np.asarray(thumbnail)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8:
        raise ValueError(
            f"thumbnail must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}"
        )
    mask_shape = np.shape(tissue_mask)
    if mask_shape != rgb.shape[:2]:
        raise ValueError(
            f"tissue_mask {mask_shape} and thumbnail {rgb.shape[:2]} must have the "
            f"same height and width (both at the tissue-mask scale)"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within [0, 1], got {alpha}")
    return rgb[..., :3]
