"""The heatmap over the slide thumbnail, with the tissue outline and tumour polygons.

Everything meets in level-0 pixels: thumbnail pixel ``(x, y)`` covers level-0
``[x*d, (x+1)*d)`` by ``[y*d, (y+1)*d)`` with ``d = thumbnail_downsample``; its heatmap
cell is the one that contains its centre (`TileGrid.level0_to_heatmap`); polygon
vertices in level-0 pixels are divided by ``d``. Thumbnail, heatmap and polygons thus
agree exactly, whatever the stride, cell offset or downsample.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from shapely.geometry import MultiPolygon

from wsi.geometry import TileGrid, check_heatmap
from wsi.heatmap.colormap import (
    LEGEND_BACKGROUND_RGB,
    LESION_MARKER_RGB,
    TINT_FLOOR,
    TISSUE_OUTLINE_RGB,
    TUMOR_OUTLINE_RGB,
    tint,
)
from wsi.regions.polygons import TumorRegion
from wsi.store.atomic import atomic_output

if TYPE_CHECKING:
    from PIL import Image, ImageDraw, ImageFont

    from wsi.regions.lesion_class import NodeLesion

__all__ = [
    "add_legend",
    "format_length_um",
    "heatmap_on_thumbnail",
    "legend_labels",
    "render_overlay",
    "save_overlay_png",
    "scale_bar_um",
]

logger = logging.getLogger(__name__)

#: overlay.png gets a legend strip (tint ramp, outline keys, scale bar) from this width.
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
    lesions: Sequence[NodeLesion] = (),
) -> npt.NDArray[np.uint8]:
    """Draw the overlay in memory (see `save_overlay_png` for the parameters).

    Returns
    -------
    numpy.ndarray
        ``uint8[H, W, 3]``.
    """
    from PIL import Image, ImageDraw

    rgb = _check_inputs(thumbnail, tissue_mask)
    height, width = rgb.shape[:2]
    sampled = heatmap_on_thumbnail(
        heatmap,
        grid=grid,
        shape=(height, width),
        thumbnail_downsample=thumbnail_downsample,
    )
    colours, opacity = tint(sampled)
    blend = rgb.astype(np.float32)
    blend += opacity[..., None] * (colours - blend)
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
    px_per_um = 1 / (thumbnail_downsample * grid.geometry.mpp)
    for lesion in lesions:
        # A circle of the lesion's longest diameter around its most confident cell
        # (at least a few pixels, so that a lesion of two cells still shows).
        x, y = (np.asarray(lesion.l0_xy, float) / thumbnail_downsample - 0.5).tolist()
        r = max(lesion.diameter_mm * 500 * px_per_um, 4.0 * line_px + 3)
        box = [x - r, y - r, x + r, y + r]
        draw.ellipse(box, outline=(255, 255, 255), width=line_px + 2)
        draw.ellipse(box, outline=LESION_MARKER_RGB, width=line_px)
    return np.asarray(image)


def _outline_px(height: int, width: int) -> int:
    """Width of the tumour outlines: 1 px on small images, 2 px from 900 px, ..."""
    return max(1, round(max(height, width) / 450))


def scale_bar_um(width_px: int, um_per_px: float) -> float:
    """The scale bar's length: a round length near 1/6.3 of the image width.

    Round lengths are 1, 2 and 5 times a power of ten µm; the one chosen is the
    nearest (on a log scale) to the geometric middle of 1/8 and 1/5 of the width.

    Parameters
    ----------
    width_px
        Width of the image in pixels.
    um_per_px
        Its resolution (µm per pixel).

    Returns
    -------
    float
        The length in µm; ``length / um_per_px`` pixels on the image.

    Examples
    --------
    >>> scale_bar_um(1000, 7.8), scale_bar_um(1000, 1.0), scale_bar_um(400, 0.5)
    (1000.0, 200.0, 20.0)
    """
    if width_px <= 0 or not um_per_px > 0:
        raise ValueError(
            f"width_px and um_per_px must be positive, got {width_px}, {um_per_px}"
        )
    target = math.log10(width_px * um_per_px / math.sqrt(5 * 8))
    decade = math.floor(target)
    lengths = [m * 10.0**e for e in (decade, decade + 1) for m in (1, 2, 5)]
    return min(lengths, key=lambda um: abs(math.log10(um) - target))


def format_length_um(length_um: float) -> str:
    """A length for a label: µm below 1 mm, else mm.

    Examples
    --------
    >>> format_length_um(500.0), format_length_um(2000.0), format_length_um(20.0)
    ('500 µm', '2 mm', '20 µm')
    """
    if length_um >= 1000:
        return f"{length_um / 1000:g} mm"
    return f"{length_um:g} µm"


def legend_labels(
    *, model_name: str | None = None, lesions: bool = False
) -> dict[str, str]:
    """The texts of the legend strip, by item (the model only when given).

    Examples
    --------
    >>> legend_labels(model_name="nasnet")["model"]
    'model: nasnet'
    >>> legend_labels()["ramp"]
    'tumour probability (no tint below 0.2)'
    """
    labels = {
        "ramp": f"tumour probability (no tint below {TINT_FLOOR:g})",
        "tissue": "tissue outline",
        "tumour": "tumour region",
    }
    if model_name:
        labels["model"] = f"model: {model_name}"
    if lesions:
        labels["lesions"] = "\u25cb lesions counted for the node class"
    return labels


def add_legend(
    rgb: npt.NDArray[np.uint8],
    *,
    um_per_px: float | None = None,
    model_name: str | None = None,
    verdict: Sequence[str] = (),
    lesion_key: bool = False,
) -> npt.NDArray[np.uint8]:
    """Append a legend under an overlay: tint ramp, outline keys, verdict, scale bar.

    The ramp shows the tint over `LEGEND_BACKGROUND_RGB` (no tint below `TINT_FLOOR`),
    with ticks at 0, the floor, 0.5 and 1. The blocks (ramp; outline keys and the
    model; scale bar) are laid out left to right, wrapping onto a second band when
    the image is too narrow. Images under `LEGEND_MIN_WIDTH_PX` wide are returned as
    they are (no room for the text).

    Parameters
    ----------
    rgb
        ``uint8[H, W, 3]`` from `render_overlay`.
    um_per_px
        Resolution of ``rgb`` for the scale bar (`scale_bar_um`); None for no bar.
    model_name
        Printed as "model: NAME" under the outline keys when given.
    verdict
        Up to two lines about the slide (its probability, the node's class), in a
        block of their own after the keys.
    lesion_key
        Add the key of the lesion circles (in their colour) under the verdict.

    Returns
    -------
    numpy.ndarray
        ``uint8[H + h, W, 3]``: white strip of height ``h`` below the image.
    """
    from PIL import Image, ImageDraw

    height, width = rgb.shape[:2]
    if width < LEGEND_MIN_WIDTH_PX:
        return rgb
    font_px = max(12, min(28, width // 60))
    style = _Style(
        font=_legend_font(font_px),
        font_px=font_px,
        row_px=round(1.3 * font_px),
        pad_px=font_px,
        measure=ImageDraw.Draw(Image.new("RGB", (1, 1))),
    )
    labels = legend_labels(model_name=model_name, lesions=lesion_key)
    blocks = [
        _ramp_block(labels["ramp"], width, style),
        _keys_block(labels, width, _outline_px(height, width), style),
    ]
    lines = [(line, (0, 0, 0)) for line in list(verdict)[:2]]
    if "lesions" in labels:
        lines.append((labels["lesions"], LESION_MARKER_RGB))
    if lines:
        blocks.append(_text_block(lines, width, style))
    if um_per_px is not None:
        blocks.append(_scale_block(width, um_per_px, style))
    pad, band_px = style.pad_px, 3 * style.row_px + style.pad_px // 2
    bands: list[list[_Block]] = [[]]
    used = pad
    for block in blocks:
        if bands[-1] and used + block.width_px > width - pad:
            bands.append([])
            used = pad
        bands[-1].append(block)
        used += block.width_px + 3 * pad
    image = Image.new(
        "RGB", (width, height + len(bands) * band_px + pad // 2), (255, 255, 255)
    )
    image.paste(Image.fromarray(np.ascontiguousarray(rgb[..., :3])), (0, 0))
    draw = ImageDraw.Draw(image)
    for i, band in enumerate(bands):
        x, top = pad, height + pad // 2 + i * band_px
        for block in band:
            left = width - pad - block.width_px if block.right else x
            block.draw(image, draw, left, top)
            x += block.width_px + 3 * pad
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
    model_name: str | None = None,
    verdict: Sequence[str] = (),
    lesions: Sequence[NodeLesion] = (),
) -> None:
    """Save the heatmap blended over the thumbnail, with tissue outline and polygons.

    Cells at or above `TINT_FLOOR` are tinted (`wsi.heatmap.colormap.tint`: yellow-orange at
    the floor to deep red at 1, more opaque as the probability rises); lower cells
    and cells without a patch keep their H&E colours. The tissue mask's outline is
    green (`TISSUE_OUTLINE_RGB`, 1 px); tumour polygons, holes included, are black
    (`TUMOR_OUTLINE_RGB`, 1 px on small images, 2 px from 900 px, with a white halo
    from 2 px so that they show over dark red). Images at least `LEGEND_MIN_WIDTH_PX`
    wide get a legend strip below (`add_legend`: the tint ramp, the outline keys, a
    scale bar, the model, the ``verdict`` lines).

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
    model_name
        The model that scored the slide, printed in the legend when given.
    verdict
        Lines about the slide for the legend (`add_legend`).
    lesions
        The staging view's lesions (`wsi.regions.lesion_class.staging_lesions`),
        circled in `LESION_MARKER_RGB` with their longest diameter; the legend
        then has their key.

    Raises
    ------
    ValueError
        If the shapes disagree.
    OutputError
        If the file cannot be written.
    """
    from PIL import Image

    from wsi.heatmap._png import save_png

    out = render_overlay(
        thumbnail=thumbnail,
        tissue_mask=tissue_mask,
        heatmap=heatmap,
        grid=grid,
        thumbnail_downsample=thumbnail_downsample,
        regions=regions,
        lesions=lesions,
    )
    out = add_legend(
        out,
        um_per_px=thumbnail_downsample * grid.geometry.mpp,
        model_name=model_name,
        verdict=verdict,
        lesion_key=bool(lesions),
    )
    with atomic_output(path) as tmp:
        save_png(Image.fromarray(out), tmp)
    logger.info("wrote %s (%dx%d)", path, out.shape[1], out.shape[0])


@dataclass(frozen=True, slots=True)
class _Style:
    """Font and spacing of the legend strip (all in pixels)."""

    font: ImageFont.ImageFont | ImageFont.FreeTypeFont
    font_px: int
    row_px: int
    pad_px: int
    measure: ImageDraw.ImageDraw

    def text_px(self, text: str) -> int:
        return math.ceil(self.measure.textlength(text, font=self.font))


@dataclass(frozen=True, slots=True)
class _Block:
    """One item of the legend strip: its width and how to draw it at ``(x, top)``."""

    width_px: int
    draw: Callable[[Image.Image, ImageDraw.ImageDraw, int, int], None]
    right: bool = False  # aligned on the strip's right edge


def _ramp_block(caption: str, width: int, style: _Style) -> _Block:
    """The tint over the neutral background, ticks at 0, the floor, 0.5, 1, caption."""
    from PIL import Image

    bar_w = max(100, width // 3)
    bar_h = style.font_px
    colours, opacity = tint(np.linspace(0.0, 1.0, bar_w, dtype=np.float32))
    background = np.array(LEGEND_BACKGROUND_RGB, np.float32)
    ramp = np.rint(background + opacity[:, None] * (colours - background))
    pixels = np.repeat(ramp.astype(np.uint8)[None], bar_h, axis=0)

    def draw_ramp(
        image: Image.Image, draw: ImageDraw.ImageDraw, x: int, top: int
    ) -> None:
        image.paste(Image.fromarray(pixels), (x, top))
        draw.rectangle([x - 1, top - 1, x + bar_w, top + bar_h], outline=(0, 0, 0))
        label_y = top + bar_h + 2
        for value, anchor in ((0.0, "la"), (TINT_FLOOR, "ma"), (0.5, "ma"), (1, "ra")):
            tick_x = x + value * (bar_w - 1)
            draw.line([(tick_x, top + bar_h), (tick_x, label_y + 1)], fill=(0, 0, 0))
            draw.text(
                (tick_x, label_y),
                f"{value:g}",
                fill=(0, 0, 0),
                font=style.font,
                anchor=anchor,
            )
        draw.text((x, top + 2 * style.row_px), caption, fill=(0, 0, 0), font=style.font)

    return _Block(max(bar_w, style.text_px(caption)), draw_ramp)


def _keys_block(
    labels: dict[str, str], width: int, line_px: int, style: _Style
) -> _Block:
    """The tissue and tumour outline keys, then "model: NAME" when given."""
    pad = style.pad_px
    keys = [
        (labels["tissue"], TISSUE_OUTLINE_RGB, False),
        (labels["tumour"], TUMOR_OUTLINE_RGB, line_px > 1),
    ]
    model = labels.get("model")
    if model is not None:
        model = _elide(model, width - 2 * pad, style)
    texts = [2 * pad + 6 + style.text_px(label) for label, _, _ in keys]
    block_px = max([*texts, style.text_px(model) if model else 0])

    def draw_keys(
        image: Image.Image, draw: ImageDraw.ImageDraw, x: int, top: int
    ) -> None:
        for row, (label, colour, halo) in enumerate(keys):
            y = top + row * style.row_px + style.font_px // 2
            if halo:
                draw.line(
                    [(x, y), (x + 2 * pad, y)], fill=(200, 200, 200), width=line_px + 2
                )
            draw.line([(x, y), (x + 2 * pad, y)], fill=colour, width=max(2, line_px))
            draw.text(
                (x + 2 * pad + 6, y),
                label,
                fill=(0, 0, 0),
                font=style.font,
                anchor="lm",
            )
        if model:
            draw.text(
                (x, top + 2 * style.row_px), model, fill=(0, 0, 0), font=style.font
            )

    return _Block(block_px, draw_keys)


def _text_block(
    lines: list[tuple[str, tuple[int, int, int]]], width: int, style: _Style
) -> _Block:
    """Lines of text in their colours, one per legend row."""
    lines = [(_elide(text, width - 2 * style.pad_px, style), c) for text, c in lines]

    def draw_text(
        image: Image.Image, draw: ImageDraw.ImageDraw, x: int, top: int
    ) -> None:
        for row, (text, colour) in enumerate(lines):
            draw.text((x, top + row * style.row_px), text, fill=colour, font=style.font)

    return _Block(max(style.text_px(text) for text, _ in lines), draw_text)


def _scale_block(width: int, um_per_px: float, style: _Style) -> _Block:
    """A black bar of `scale_bar_um` with its length written under it."""
    length_um = scale_bar_um(width, um_per_px)
    bar_px = round(length_um / um_per_px)
    label = format_length_um(length_um)
    block_px = max(bar_px, style.text_px(label))
    thick_px = max(3, style.font_px // 4)

    def draw_bar(
        image: Image.Image, draw: ImageDraw.ImageDraw, x: int, top: int
    ) -> None:
        left = x + block_px - bar_px  # flush right
        y = top + (style.font_px - thick_px) // 2
        draw.rectangle([left, y, left + bar_px - 1, y + thick_px - 1], fill=(0, 0, 0))
        draw.text(
            (left + bar_px / 2, top + style.font_px + 2),
            label,
            fill=(0, 0, 0),
            font=style.font,
            anchor="ma",
        )

    return _Block(block_px, draw_bar, right=True)


def _legend_font(size_px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Matplotlib's DejaVu Sans (it has "µ", Pillow's default font has not)."""
    import matplotlib
    from PIL import ImageFont

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(path, size_px)
    except OSError:
        return ImageFont.load_default(size=size_px)


def _elide(text: str, max_px: int, style: _Style) -> str:
    """``text``, or its start and end around "…" so that it fits ``max_px``."""
    if style.text_px(text) <= max_px:
        return text
    keep = len(text)
    while (
        keep > 2
        and style.text_px(text[: keep // 2] + "…" + text[-(keep // 2) :]) > max_px
    ):
        keep -= 1
    return text[: keep // 2] + "…" + text[-(keep // 2) :]


def _check_inputs(
    thumbnail: npt.ArrayLike, tissue_mask: npt.ArrayLike
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
    return rgb[..., :3]
