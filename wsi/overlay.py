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

__all__ = ["add_legend", "heatmap_on_thumbnail", "render_overlay", "save_overlay_png"]

logger = logging.getLogger(__name__)

#: overlay.png gets a legend strip (colour bar, outline keys) from this width on.
LEGEND_MIN_WIDTH_PX = 400


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
    line_px = _outline_px(height, width)
    rings = []
    for region in regions:
        geom = region.polygon
        for part in geom.geoms if isinstance(geom, MultiPolygon) else [geom]:
            for ring in [part.exterior, *part.interiors]:
                # Level-0 edges to thumbnail pixel-centre coordinates (PIL's frame).
                xy = np.asarray(ring.coords) / thumbnail_downsample - 0.5
                rings.append([tuple(p) for p in xy.tolist()])
    if line_px > 1:  # a white halo keeps black lines visible over dark red
        for ring in rings:
            draw.line(ring, fill=(255, 255, 255), width=line_px + 2, joint="curve")
    for ring in rings:
        draw.line(ring, fill=TUMOR_OUTLINE_RGB, width=line_px, joint="curve")
    return np.asarray(image)


def _outline_px(height: int, width: int) -> int:
    """Width of the tumour outlines: 1 px on small images, 2 px from 900 px, ..."""
    return max(1, round(max(height, width) / 450))


def add_legend(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Append a legend strip under an overlay: the colour bar and the outline keys.

    Images under `LEGEND_MIN_WIDTH_PX` wide are returned as they are (no room for
    the text).

    Parameters
    ----------
    rgb
        ``uint8[H, W, 3]`` from `render_overlay`.

    Returns
    -------
    numpy.ndarray
        ``uint8[H + h, W, 3]``: white strip of height ``h`` below the image.
    """
    from PIL import Image, ImageDraw, ImageFont

    height, width = rgb.shape[:2]
    if width < LEGEND_MIN_WIDTH_PX:
        return rgb
    font_px = max(12, min(28, width // 60))
    strip_px = 3 * font_px + 12
    image = Image.new("RGB", (width, height + strip_px), (255, 255, 255))
    image.paste(Image.fromarray(np.ascontiguousarray(rgb[..., :3])), (0, 0))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=font_px)
    top = height + 6
    pad = font_px
    bar_w = max(100, width // 3)
    bar_h = font_px
    ramp = colourise(np.linspace(0.0, 1.0, bar_w, dtype=np.float32))
    image.paste(Image.fromarray(np.repeat(ramp[None], bar_h, axis=0)), (pad, top))
    draw.rectangle([pad - 1, top - 1, pad + bar_w, top + bar_h], outline=(0, 0, 0))
    label_y = top + bar_h + 2
    for value, anchor in ((0.0, "la"), (0.5, "ma"), (1.0, "ra")):
        x = pad + value * (bar_w - 1)
        draw.line([(x, top + bar_h), (x, top + bar_h + 3)], fill=(0, 0, 0))
        draw.text((x, label_y), f"{value:g}", fill=(0, 0, 0), font=font, anchor=anchor)
    draw.text(
        (pad + bar_w / 2, label_y + font_px),
        "tumour probability (heatmap tint)",
        fill=(0, 0, 0),
        font=font,
        anchor="ma",
    )
    x = pad + bar_w + 2 * pad
    line_px = _outline_px(height, width)
    for label, colour, halo in (
        ("tissue outline", TISSUE_OUTLINE_RGB, False),
        ("tumour region", TUMOR_OUTLINE_RGB, line_px > 1),
    ):
        y = top + bar_h // 2
        if halo:
            draw.line(
                [(x, y), (x + 2 * pad, y)], fill=(200, 200, 200), width=line_px + 2
            )
        draw.line([(x, y), (x + 2 * pad, y)], fill=colour, width=max(2, line_px))
        draw.text((x + 2 * pad + 6, y), label, fill=(0, 0, 0), font=font, anchor="lm")
        x += 2 * pad + 12 + int(draw.textlength(label, font=font)) + 2 * pad
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
    1 px); tumour polygons, holes included, are black (`TUMOR_OUTLINE_RGB`, 1 px on
    small images, 2 px from 900 px, with a white halo from 2 px so that they show
    over dark red). Images at least `LEGEND_MIN_WIDTH_PX` wide get a legend strip
    below (`add_legend`).

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

    from wsi._png import save_png

    out = render_overlay(
        thumbnail=thumbnail,
        tissue_mask=tissue_mask,
        heatmap=heatmap,
        grid=grid,
        thumbnail_downsample=thumbnail_downsample,
        regions=regions,
        alpha=alpha,
    )
    out = add_legend(out)
    with atomic_output(path) as tmp:
        save_png(Image.fromarray(out), tmp)
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
