"""Write Camelyon-like pyramidal TIFFs (doctor, benchmarks, tests, the demo).

OpenSlide reads these as generic tiled TIFFs: one tiled JPEG (or other) page per
level, finest first, each with resolution tags in pixels per centimetre.
:func:`write_pyramid_tiff` writes an image held in memory;
:func:`write_pyramid_tiff_tiles` writes slides of any size tile by tile from a
renderer such as :class:`SyntheticTissue` (textured H&E-like tissue). Both size
their levels with :func:`pyramid_levels` and describe their pages with
:func:`page_options`, which the test suite's slide writer uses as well.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "GLASS_RGB",
    "Compression",
    "PyramidLevel",
    "SyntheticTissue",
    "TileRenderer",
    "downscale",
    "page_options",
    "pyramid_levels",
    "write_pyramid_tiff",
    "write_pyramid_tiff_tiles",
]

#: Tile codecs: JPEG (lossy, at a quality), zlib (lossless) or none.
Compression = Literal["jpeg", "zlib", "none"]


class PyramidLevel(NamedTuple):
    """A pyramid level's size and the downsample a reader derives from it."""

    width: int
    height: int
    #: Level-0 pixels per level pixel: the mean over both axes of level 0's size
    #: over this level's, as OpenSlide computes it.
    downsample: float


def pyramid_levels(
    size_px: tuple[int, int], downsamples: Sequence[float]
) -> list[PyramidLevel]:
    """Sizes and actual downsamples of the levels of a pyramid.

    Parameters
    ----------
    size_px
        Level-0 ``(width, height)``.
    downsamples
        Nominal downsamples, first 1; they need not be powers of two or divide the
        size: each level's size is level 0's divided by its downsample, rounded (at
        least 1 px), and its actual downsample comes from that size.

    Returns
    -------
    list of PyramidLevel
        One per downsample, finest first.

    Raises
    ------
    ValueError
        ``downsamples`` not starting at 1, or a size below 1 px.

    Examples
    --------
    >>> [(w, h, round(d, 4)) for w, h, d in pyramid_levels((2048, 1000), (1, 3))]
    [(2048, 1000, 1.0), (683, 333, 3.0008)]
    """
    if not downsamples or downsamples[0] != 1:
        raise ValueError(f"downsamples must start at 1, got {tuple(downsamples)}")
    width, height = size_px
    if width < 1 or height < 1:
        raise ValueError(f"size_px must be positive, got {size_px}")
    levels = []
    for factor in downsamples:
        w, h = max(1, round(width / factor)), max(1, round(height / factor))
        levels.append(PyramidLevel(w, h, (width / w + height / h) / 2))
    return levels


def page_options(
    *,
    tile_px: int,
    compression: Compression = "jpeg",
    quality: int = 90,
    mpp: float | None = None,
    reduced: bool = False,
) -> dict[str, Any]:
    """Keyword arguments of ``tifffile.TiffWriter.write`` for one RGB pyramid page.

    Parameters
    ----------
    tile_px
        Tile side (a positive multiple of 16, as TIFF requires).
    compression
        Tile codec.
    quality
        JPEG quality (1-100); unused by the other codecs.
    mpp
        Microns per pixel of this page (a reduced level's is level 0's times its
        downsample), written as resolution tags in pixels per centimetre; None
        writes none. OpenSlide's generic TIFF reader takes the slide's from level 0.
    reduced
        A reduced-resolution page (every level but level 0): NewSubfileType 1
        instead of 0.

    Returns
    -------
    dict
        ``tile``, ``photometric``, ``subfiletype``, ``metadata`` (None: no tifffile
        JSON description), the codec and, with ``mpp``, ``resolution`` and
        ``resolutionunit``.

    Raises
    ------
    ValueError
        ``tile_px`` not a positive multiple of 16, or an unknown codec.

    Examples
    --------
    >>> page_options(tile_px=256, compression="zlib", mpp=0.25)["resolution"]
    (40000.0, 40000.0)
    """
    if tile_px < 16 or tile_px % 16:
        raise ValueError(f"tile_px must be a positive multiple of 16, got {tile_px}")
    options: dict[str, Any] = {
        "tile": (tile_px, tile_px),
        "photometric": "rgb",
        "subfiletype": 1 if reduced else 0,
        "metadata": None,
    }
    if compression == "jpeg":
        options |= {"compression": "jpeg", "compressionargs": {"level": quality}}
    elif compression == "zlib":
        options["compression"] = "zlib"
    elif compression != "none":
        raise ValueError(f"unknown compression {compression!r}")
    if mpp is not None:
        options |= {
            "resolution": (1e4 / mpp, 1e4 / mpp),
            "resolutionunit": "CENTIMETER",
        }
    return options


def _level_pages(
    levels: Sequence[PyramidLevel],
    *,
    mpp: float | None,
    tile_px: int,
    compression: Compression,
    quality: int,
) -> list[dict[str, Any]]:
    """:func:`page_options` of each level, given level 0's microns per pixel."""
    return [
        page_options(
            tile_px=tile_px,
            compression=compression,
            quality=quality,
            mpp=None if mpp is None else mpp * level.downsample,
            reduced=i > 0,
        )
        for i, level in enumerate(levels)
    ]


def downscale(rgb: npt.NDArray[np.uint8], factor: float) -> npt.NDArray[np.uint8]:
    """Anti-aliased downscale of an RGB image by ``factor`` (>= 1)."""
    from skimage.transform import rescale

    if factor == 1:
        return rgb
    out = rescale(
        rgb,
        1 / factor,
        channel_axis=2,
        anti_aliasing=True,
        preserve_range=True,
        order=1,
    )
    scaled: npt.NDArray[np.uint8] = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return scaled


def write_pyramid_tiff(
    path: Path,
    level0: npt.NDArray[np.uint8],
    *,
    mpp: float | None,
    downsamples: Sequence[float] = (1, 4, 16),
    tile_px: int = 256,
    compression: Compression = "jpeg",
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
        Level-0 microns per pixel, written (times each level's downsample) as
        resolution tags; None writes none.
    downsamples
        Pyramid levels, first 1; need not be powers of two (level sizes are
        rounded: :func:`pyramid_levels`).
    tile_px
        TIFF tile side (a multiple of 16).
    compression, quality
        Tile codec and, for JPEG, its quality.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import tifffile

    height, width = level0.shape[:2]
    levels = pyramid_levels((width, height), downsamples)
    pages = _level_pages(
        levels, mpp=mpp, tile_px=tile_px, compression=compression, quality=quality
    )
    with tifffile.TiffWriter(path, bigtiff=level0.nbytes > 2**31) as tif:
        for factor, (w, h, _), options in zip(downsamples, levels, pages, strict=True):
            tif.write(downscale(level0, factor)[:h, :w], **options)
    return Path(path)


#: Glass, eosin-stained stroma and haematoxylin-stained nuclei (RGB).
GLASS_RGB = (243, 242, 240)
_STROMA_RGB = (232, 168, 206)
_NUCLEUS_RGB = (112, 66, 158)
#: Nucleus radius and share of tissue area covered by nuclei (a lymph node is dense).
_NUCLEUS_RADIUS_UM = 3.0
_NUCLEUS_SHARE = 0.25
#: Textured tiles drawn per level; each tile of the slide is one of them, turned.
_BANK_SIZE = 16


class TileRenderer(Protocol):
    """Pixels of one region of one pyramid level, ``uint8[height, width, 3]``."""

    def __call__(
        self, *, downsample: float, xy_px: tuple[int, int], size_px: tuple[int, int]
    ) -> npt.NDArray[np.uint8]:
        """Render ``size_px`` (width, height) level pixels from level pixel ``xy_px``.

        ``downsample`` is level-0 pixels per level pixel.
        """
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SyntheticTissue:
    """Camelyon-like H&E: textured tissue in ellipses on glass, at any downsample.

    Tissue is pink stroma with purple nuclei (about 3 um in radius, a quarter of the
    area) and stain noise; glass is near white with sensor noise. Each level is
    rendered on its own (levels agree on where tissue is, not pixel for pixel), so a
    slide of any size is written tile by tile.

    Parameters
    ----------
    ellipses_l0_px
        Tissue as ellipses ``(cx, cy, rx, ry)`` in level-0 pixels.
    mpp
        Level-0 microns per pixel (scales the nuclei).
    seed
        Seed of the texture.
    """

    ellipses_l0_px: tuple[tuple[float, float, float, float], ...]
    mpp: float = 0.243
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.mpp > 0:
            raise ValueError(f"mpp must be positive, got {self.mpp}")
        for cx, cy, rx, ry in self.ellipses_l0_px:
            if not (rx > 0 and ry > 0):
                raise ValueError(
                    f"ellipse radii must be positive, got {(cx, cy, rx, ry)}"
                )

    @classmethod
    def lymph_node(cls, size_px: tuple[int, int], **kw: float) -> SyntheticTissue:
        """Two oval sections side by side: two thirds of a ``(width, height)`` slide."""
        width, height = size_px
        ellipses = tuple(
            (f * width, 0.5 * height, 0.24 * width, 0.45 * height) for f in (0.25, 0.75)
        )
        return cls(ellipses_l0_px=ellipses, **kw)  # type: ignore[arg-type]

    def tissue_fraction(self, size_px: tuple[int, int]) -> float:
        """Share of a ``(width, height)`` slide covered by the ellipses (no overlap)."""
        area = sum(np.pi * rx * ry for _, _, rx, ry in self.ellipses_l0_px)
        return float(area / (size_px[0] * size_px[1]))

    def __call__(
        self, *, downsample: float, xy_px: tuple[int, int], size_px: tuple[int, int]
    ) -> npt.NDArray[np.uint8]:
        """Render a region of the level whose downsample is ``downsample``."""
        width, height = size_px
        side = max(width, height)
        rng = np.random.default_rng([self.seed, round(downsample * 1000), *xy_px])
        turn, flip = int(rng.integers(4)), bool(rng.integers(2))
        glass = _turned(
            _bank(self.seed, "glass", 1.0, self.mpp, side)[rng.integers(_BANK_SIZE)],
            turn,
            flip,
        )[:height, :width]
        x0, y0 = xy_px[0] * downsample, xy_px[1] * downsample
        x1, y1 = x0 + width * downsample, y0 + height * downsample
        inside = [e for e in self.ellipses_l0_px if _box_meets(e, x0, y0, x1, y1)]
        if not inside:
            return glass
        tissue = _turned(
            _bank(self.seed, "tissue", downsample, self.mpp, side)[
                rng.integers(_BANK_SIZE)
            ],
            turn,
            flip,
        )[:height, :width]
        if any(_box_within(e, x0, y0, x1, y1) for e in inside):
            return tissue
        xs = x0 + (np.arange(width) + 0.5) * downsample
        ys = (y0 + (np.arange(height) + 0.5) * downsample)[:, None]
        mask = np.zeros((height, width), bool)
        for cx, cy, rx, ry in inside:
            mask |= ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
        return np.where(mask[..., None], tissue, glass)


def write_pyramid_tiff_tiles(
    path: Path,
    render: TileRenderer,
    *,
    size_px: tuple[int, int],
    mpp: float | None,
    downsamples: Sequence[float] = (1, 4, 16, 64),
    tile_px: int = 512,
    compression: Compression = "jpeg",
    quality: int = 80,
) -> Path:
    """Write a pyramidal tiled TIFF tile by tile, never holding a level in memory.

    Parameters
    ----------
    path
        Output file (BigTIFF).
    render
        Gives each tile's pixels (a :class:`SyntheticTissue`, say); called once per
        tile, rows first, with ``size_px=(tile_px, tile_px)`` (edge tiles are
        cropped by the writer).
    size_px
        Level-0 ``(width, height)``.
    mpp
        Level-0 microns per pixel, written (times each level's downsample) as
        resolution tags; None writes none.
    downsamples
        Pyramid levels, first 1. Level sizes are rounded (:func:`pyramid_levels`),
        so a reader's downsamples come from the sizes.
    tile_px
        TIFF tile side (a multiple of 16).
    compression, quality
        Tile codec and, for JPEG, its quality.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile, tifffile
    >>> tissue = SyntheticTissue.lymph_node((1024, 512))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = write_pyramid_tiff_tiles(Path(tmp) / "s.tif", tissue,
    ...                                    size_px=(1024, 512), mpp=0.243,
    ...                                    downsamples=(1, 4), tile_px=256)
    ...     with tifffile.TiffFile(out) as tif:
    ...         [page.shape for page in tif.pages]
    [(512, 1024, 3), (128, 256, 3)]
    """
    import tifffile

    levels = pyramid_levels(size_px, downsamples)
    pages = _level_pages(
        levels, mpp=mpp, tile_px=tile_px, compression=compression, quality=quality
    )
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for (w, h, ds), options in zip(levels, pages, strict=True):
            tiles = (
                render(downsample=ds, xy_px=(tx, ty), size_px=(tile_px, tile_px))
                for ty in range(0, h, tile_px)
                for tx in range(0, w, tile_px)
            )
            tif.write(tiles, shape=(h, w, 3), dtype=np.uint8, **options)
    return Path(path)


def _box_meets(
    e: tuple[float, float, float, float], x0: float, y0: float, x1: float, y1: float
) -> bool:
    """Whether the ellipse meets the box.

    It does when the box's point nearest the centre is within 1, in radii, of it.
    """
    cx, cy, rx, ry = e
    dx = (min(max(cx, x0), x1) - cx) / rx
    dy = (min(max(cy, y0), y1) - cy) / ry
    return bool(dx * dx + dy * dy <= 1)


def _box_within(
    e: tuple[float, float, float, float], x0: float, y0: float, x1: float, y1: float
) -> bool:
    """Whether the box lies inside the (convex) ellipse: all four corners do."""
    cx, cy, rx, ry = e
    return all(
        ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
        for x in (x0, x1)
        for y in (y0, y1)
    )


def _turned(
    tile: npt.NDArray[np.uint8], turn: int, flip: bool
) -> npt.NDArray[np.uint8]:
    out = np.rot90(tile, turn)
    return out[:, ::-1] if flip else out


@functools.lru_cache(maxsize=16)
def _bank(
    seed: int, kind: str, downsample: float, mpp: float, side: int
) -> npt.NDArray[np.uint8]:
    """``_BANK_SIZE`` textured square tiles of glass or tissue at ``downsample``."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng([seed, len(kind), round(downsample * 1000), side])
    out = np.empty((_BANK_SIZE, side, side, 3), np.uint8)
    yy, xx = np.mgrid[:side, :side].astype(np.float32)
    for k in range(_BANK_SIZE):
        noise = rng.normal(0, 3 if kind == "glass" else 6, (side, side, 1)).astype(
            np.float32
        )
        if kind == "glass":
            out[k] = np.clip(np.asarray(GLASS_RGB) + noise, 0, 255).astype(np.uint8)
            continue
        # Stain varies slowly across the tissue (a few tens of microns).
        shade = np.ones((side, side), np.float32)
        for _ in range(3):
            angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
            period_px = rng.uniform(40, 160) / (mpp * downsample)
            shade += 0.05 * np.sin(
                (xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period_px
                + phase
            )
        sigma_px = _NUCLEUS_RADIUS_UM / (mpp * downsample) / 3
        if sigma_px >= 0.5:  # nuclei span pixels: blobs of thresholded smooth noise
            field = gaussian_filter(
                rng.standard_normal((side, side), np.float32), sigma_px, mode="wrap"
            )
            nuclei = (field > np.quantile(field, 1 - _NUCLEUS_SHARE)).astype(np.float32)
            alpha = gaussian_filter(nuclei, 0.6)[..., None]
        else:  # nuclei below a pixel: their average colour
            alpha = np.full((side, side, 1), _NUCLEUS_SHARE, np.float32)
        stroma = np.asarray(_STROMA_RGB, np.float32) * shade[..., None]
        rgb = (
            (1 - alpha) * stroma + alpha * np.asarray(_NUCLEUS_RGB, np.float32) + noise
        )
        out[k] = np.clip(rgb, 0, 255).astype(np.uint8)
    return out
