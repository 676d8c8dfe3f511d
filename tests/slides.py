"""Camelyon-like pyramidal TIFF slides for tests and benchmarks, written with tifffile.

The slides are generic tiled TIFFs as OpenSlide reads Camelyon16's: one page per
level, finest first, JPEG (or lossless) tiles, and each page's resolution tags in
pixels per centimetre. Content is synthetic H&E: a near-white glass background, pink
tissue with purple nuclei inside ellipses given in level-0 pixels, and optionally
green pen or black regions.

Small slides (``write_slide``) render level 0 in memory and build every level from it
by exact area averaging, so levels agree. Large slides (``write_large_slide``) render
each tile of each level on its own and never hold a level in memory. How pages are
written (level sizes, tiles, codecs, resolution tags, tile by tile for large slides)
is the library's: ``wsi.synthetic``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import tifffile
from PIL import Image

from wsi.synthetic import (
    GLASS_RGB,
    Compression,
    TileRenderer,
    page_options,
    pyramid_levels,
    write_pyramid_tiff_tiles,
)

__all__ = [
    "BACKGROUND_RGB",
    "Blob",
    "SlideSpec",
    "render_region",
    "write_large_slide",
    "write_slide",
]

BACKGROUND_RGB = GLASS_RGB
_TISSUE_RGB = (226, 150, 196)
_NUCLEUS_RGB = (118, 72, 160)
_KIND_RGB = {"pen": (40, 160, 120), "black": (12, 12, 12)}
_NUCLEUS_SPACING_L0 = 32
_NUCLEUS_RADIUS_L0 = 7.0

Kind = Literal["tissue", "pen", "black"]


@dataclass(frozen=True, slots=True)
class Blob:
    """An ellipse of tissue (or green pen, or black) in level-0 pixels."""

    cx: float
    cy: float
    rx: float
    ry: float
    kind: Kind = "tissue"

    def contains(
        self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.bool_]:
        """Whether level-0 points ``(x, y)`` lie inside."""
        return ((x - self.cx) / self.rx) ** 2 + ((y - self.cy) / self.ry) ** 2 <= 1.0


@dataclass(frozen=True, slots=True)
class SlideSpec:
    """What was written: the file and the truth about it."""

    path: Path
    width_px: int
    height_px: int
    mpp: float | None
    level_dimensions: tuple[tuple[int, int], ...]
    blobs: tuple[Blob, ...] = field(default=())

    def tissue_at(self, x: npt.ArrayLike, y: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether level-0 points lie in a tissue blob."""
        xa, ya = np.asarray(x, float), np.asarray(y, float)
        inside = np.zeros(np.broadcast(xa, ya).shape, bool)
        for blob in self.blobs:
            if blob.kind == "tissue":
                inside |= blob.contains(xa, ya)
        return inside


def render_region(
    *,
    x0: float,
    y0: float,
    width: int,
    height: int,
    downsample: float,
    blobs: Sequence[Blob],
    seed: int = 0,
) -> npt.NDArray[np.uint8]:
    """Synthetic H&E at ``downsample`` level-0 px per pixel, top-left at level-0
    ``(x0, y0)``; ``uint8[height, width, 3]``."""
    xs = (x0 + (np.arange(width, dtype=np.float64) + 0.5) * downsample)[None, :]
    ys = (y0 + (np.arange(height, dtype=np.float64) + 0.5) * downsample)[:, None]
    out = np.empty((height, width, 3), np.uint8)
    out[:] = BACKGROUND_RGB
    tissue = np.zeros((height, width), bool)
    for blob in blobs:
        if blob.kind == "tissue":
            tissue |= blob.contains(xs, ys)
    rows, cols = np.flatnonzero(tissue.any(axis=1)), np.flatnonzero(tissue.any(axis=0))
    if len(rows):
        # Work inside the tissue's bounding box only.
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        x, y, inside = xs[:, c0:c1], ys[r0:r1], tissue[r0:r1, c0:c1]
        shade = (1.0 + 0.06 * np.sin(x / 90.0) * np.cos(y / 70.0))[..., None]
        spacing = _NUCLEUS_SPACING_L0
        if downsample > 4:
            # Nuclei are below a pixel: draw their average colour.
            share = np.pi * _NUCLEUS_RADIUS_L0**2 / spacing**2
            base = (1 - share) * np.asarray(_TISSUE_RGB) + share * np.asarray(
                _NUCLEUS_RGB
            )
            nucleus = np.zeros_like(inside)
        else:
            base = np.asarray(_TISSUE_RGB, np.float64)
            cx = np.floor(x / spacing).astype(np.int64)
            cy = np.floor(y / spacing).astype(np.int64)
            h = (cx * 73856093) ^ (cy * 19349663) ^ seed
            jx, jy = h % 17 - 8 + spacing / 2, (h // 17) % 17 - 8 + spacing / 2
            dist2 = (x - cx * spacing - jx) ** 2 + (y - cy * spacing - jy) ** 2
            nucleus = inside & (dist2 <= _NUCLEUS_RADIUS_L0**2)
        box = out[r0:r1, c0:c1]
        pink = np.clip(base * shade, 0, 255).astype(np.uint8)
        box[inside] = pink[inside]
        box[nucleus] = _NUCLEUS_RGB
    for blob in blobs:
        if blob.kind != "tissue":
            out[blob.contains(xs, ys)] = _KIND_RGB[blob.kind]
    rng = np.random.default_rng([seed, int(x0), int(y0)])
    noise = rng.integers(-4, 5, size=(height, width, 1), dtype=np.int16)
    noisy: npt.NDArray[np.uint8] = np.clip(out + noise, 0, 255).astype(np.uint8)
    return noisy


def write_slide(
    path: Path,
    *,
    size_px: tuple[int, int] = (2048, 2048),
    mpp: float | None = 0.243,
    downsamples: Sequence[float] = (1, 2, 4, 8),
    blobs: Sequence[Blob] = (Blob(1024, 1024, 600, 450),),
    image: npt.NDArray[np.uint8] | None = None,
    tile_px: int = 256,
    compression: Compression = "jpeg",
    quality: int = 90,
    seed: int = 0,
    aperio_magnification: float | None = None,
) -> SlideSpec:
    """Write a small pyramidal TIFF; levels are exact area averages of level 0.

    ``downsamples`` need not be powers of two (level sizes are rounded, so the
    downsamples OpenSlide reports come from the sizes). ``image`` replaces the
    synthetic level 0. ``mpp`` is written as each page's resolution tags (times its
    level's downsample; OpenSlide reads level 0's); ``mpp=None`` writes none.
    ``aperio_magnification`` writes an Aperio description instead (OpenSlide then
    reports that objective power and the ``mpp``, if any, from the description).
    """
    width, height = size_px
    if image is None:
        image = render_region(
            x0=0,
            y0=0,
            width=width,
            height=height,
            downsample=1.0,
            blobs=blobs,
            seed=seed,
        )
    height, width = image.shape[:2]
    levels = pyramid_levels((width, height), downsamples)
    base = Image.fromarray(image)
    description = None
    if aperio_magnification is not None:
        description = _aperio_description(width, height, aperio_magnification, mpp)
    with tifffile.TiffWriter(path) as tif:
        for i, (w, h, ds) in enumerate(levels):
            level = (
                image
                if i == 0
                else np.asarray(base.resize((w, h), Image.Resampling.BOX))
            )
            if i == 1 and description is not None:
                # Every reduced page names level 1's size, as it always has.
                description = (
                    f"Aperio Image Library v10.0.0\n{width}x{height} -> {w}x{h}"
                )
            options = page_options(
                tile_px=tile_px,
                compression=compression,
                quality=quality,
                # An Aperio description replaces the resolution tags.
                mpp=None if mpp is None or description is not None else mpp * ds,
                reduced=i > 0,
            )
            if description is not None:
                options["description"] = description
            tif.write(level, **options)
    return SlideSpec(
        path=Path(path),
        width_px=width,
        height_px=height,
        mpp=mpp,
        level_dimensions=tuple((w, h) for w, h, _ in levels),
        blobs=tuple(blobs),
    )


def _aperio_description(
    width: int, height: int, magnification: float, mpp: float | None
) -> str:
    fields = [f"AppMag = {magnification:g}"] + ([f"MPP = {mpp}"] if mpp else [])
    return (
        f"Aperio Image Library v10.0.0\n{width}x{height} [0,0 {width}x{height}] "
        f"(256x256) JPEG/RGB Q=90|" + "|".join(fields)
    )


def write_large_slide(
    path: Path,
    *,
    size_px: tuple[int, int] = (20_000, 20_000),
    mpp: float = 0.243,
    downsamples: Sequence[float] = (1, 2, 4, 8, 16, 32),
    blobs: Sequence[Blob] | None = None,
    tile_px: int = 512,
    quality: int = 80,
) -> SlideSpec:
    """Write a large Camelyon-like slide tile by tile (memory independent of size).

    Default blobs: three lymph-node-like ellipses covering about a third of the slide.
    """
    width, height = size_px
    if blobs is None:
        blobs = (
            Blob(0.30 * width, 0.35 * height, 0.22 * width, 0.25 * height),
            Blob(0.70 * width, 0.60 * height, 0.20 * width, 0.28 * height),
            Blob(0.45 * width, 0.85 * height, 0.12 * width, 0.08 * height),
        )
    write_pyramid_tiff_tiles(
        path,
        _renderer(blobs),
        size_px=size_px,
        mpp=mpp,
        downsamples=downsamples,
        tile_px=tile_px,
        compression="jpeg",
        quality=quality,
    )
    return SlideSpec(
        path=Path(path),
        width_px=width,
        height_px=height,
        mpp=mpp,
        level_dimensions=tuple(
            (w, h) for w, h, _ in pyramid_levels(size_px, downsamples)
        ),
        blobs=tuple(blobs),
    )


def _renderer(blobs: Sequence[Blob]) -> TileRenderer:
    """Tiles from ``render_region``; tiles clear of every blob's box are plain glass."""

    def render(
        *, downsample: float, xy_px: tuple[int, int], size_px: tuple[int, int]
    ) -> npt.NDArray[np.uint8]:
        (tx, ty), (width, height) = xy_px, size_px
        x0, y0 = tx * downsample, ty * downsample
        x1, y1 = (tx + width) * downsample, (ty + height) * downsample
        touches = any(
            b.cx + b.rx >= x0
            and b.cx - b.rx <= x1
            and b.cy + b.ry >= y0
            and b.cy - b.ry <= y1
            for b in blobs
        )
        if not touches:
            return np.full((height, width, 3), BACKGROUND_RGB, np.uint8)
        return render_region(
            x0=x0, y0=y0, width=width, height=height, downsample=downsample, blobs=blobs
        )

    return render
