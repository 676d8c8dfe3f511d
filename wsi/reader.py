"""Open a slide with OpenSlide and read pixels at a level or at a target resolution.

``open_slide(path)`` gives a :class:`Slide`: one OpenSlide handle, the slide's
:class:`~wsi.geometry.SlideGeometry` and its properties. Every OpenSlide error is
turned into a :class:`~wsi.errors.SlideReadError` that names the file and the fix.
Use one ``Slide`` per thread or process; all handles of a process share one cache
of decoded tiles (``TILE_CACHE_BYTES``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import openslide
from PIL import Image

from wsi.errors import MissingResolutionError, SlideReadError
from wsi.geometry import ReadPlan, SlideGeometry

__all__ = [
    "TILE_CACHE_BYTES",
    "Slide",
    "open_slide",
    "slide_fingerprint",
]

logger = logging.getLogger(__name__)

#: What OpenSlide reads, for error messages.
SLIDE_FORMATS: Final = (
    "Aperio .svs, generic tiled pyramidal .tif/.tiff (e.g. Camelyon16), Hamamatsu "
    ".ndpi/.vms, MIRAX .mrxs, Leica .scn, Philips .tiff, Sakura .svslide, "
    "Ventana .bif, Zeiss .czi, DICOM"
)
_FINGERPRINT_BYTES: Final = 1 << 20
#: Decoded slide tiles kept in memory, shared by every handle of the process, so a
#: tile that two bands (or two tasks) need is decoded once.
TILE_CACHE_BYTES: Final = 128 << 20
# Extra level pixels read around a resampled region so that the filter support of
# edge pixels lies inside the read.
_RESAMPLE_MARGIN_PX: Final = 2
# Resampling runs on output blocks of this size laid from the region's top-left, each
# with the same footprint whatever the region's size: a pixel's value then depends
# only on the region's origin, bit for bit (resumed tiling equals an uninterrupted run).
_RESAMPLE_BLOCK_PX: Final = 128

RgbArray = npt.NDArray[np.uint8]


class Slide:
    """One open slide: an OpenSlide handle, its geometry and its properties.

    Use :func:`open_slide` to create one. A ``Slide`` is a context manager; it is not
    safe to share between threads: give each worker its own.

    Attributes
    ----------
    path
        The slide file.
    geometry
        Level sizes, downsamples and level-0 microns per pixel.
    properties
        OpenSlide's properties (vendor metadata), read-only.
    mpp_source
        Where the level-0 resolution came from: ``"metadata"``, ``"user"`` (``--mpp``)
        or ``"objective"`` (``--mpp-from-objective``).
    """

    def __init__(
        self,
        *,
        path: Path,
        handle: openslide.OpenSlide,
        geometry: SlideGeometry,
        mpp_source: str,
    ) -> None:
        self.path = path
        self.geometry = geometry
        self.mpp_source = mpp_source
        self.properties: Mapping[str, str] = dict(handle.properties)
        self._handle: openslide.OpenSlide | None = handle
        # OpenSlide maps level-0 coordinates with its own downsamples.
        self._os_downsamples = tuple(float(d) for d in handle.level_downsamples)

    def __repr__(self) -> str:
        g = self.geometry
        return (
            f"Slide({self.path.name!r}, {g.width_px}x{g.height_px} px, "
            f"{g.mpp:.4f} um/px, {len(g.level_dimensions)} levels)"
        )

    def __enter__(self) -> Slide:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the OpenSlide handle (idempotent)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._handle is None

    def read_level(
        self, *, level: int, l0_xy: tuple[int, int], size: tuple[int, int]
    ) -> RgbArray:
        """Read a region of one pyramid level as RGB, composited on white.

        Parameters
        ----------
        level
            Pyramid level, 0 is the finest.
        l0_xy
            ``(x, y)`` of the region's top-left corner in level-0 pixels.
        size
            ``(width, height)`` of the region in pixels of ``level``.

        Returns
        -------
        numpy.ndarray
            ``uint8[height, width, 3]``. Transparent pixels (outside the scanned area
            or the slide) are white.

        Raises
        ------
        SlideReadError
            The pixels cannot be decoded (corrupt tile data).

        Notes
        -----
        OpenSlide reads level ``L`` at level coordinates ``l0_xy / downsample``; when
        that is not a whole number it interpolates bilinearly at the sub-pixel offset.
        """
        width, height = (int(v) for v in size)
        if width < 0 or height < 0:
            raise ValueError(f"size must not be negative, got {size}")
        if not 0 <= level < len(self.geometry.level_dimensions):
            raise ValueError(
                f"level must be between 0 and {len(self.geometry.level_dimensions) - 1}"
                f" for {self.path.name}, got {level}"
            )
        if width == 0 or height == 0:
            return np.full((height, width, 3), 255, dtype=np.uint8)
        handle = self._require_open()
        x0, y0 = (int(v) for v in l0_xy)
        try:
            region = handle.read_region((x0, y0), level, (width, height))
        except openslide.OpenSlideError as err:
            raise SlideReadError(
                f"cannot decode pixels of {self.path} (level {level}, x={x0}, y={y0}, "
                f"{width}x{height} px): {err}; the file is corrupt or truncated: "
                "download or export it again"
            ) from err
        return _composite_on_white(np.asarray(region))

    def read_target(
        self, plan: ReadPlan, *, x_px: int, y_px: int, width_px: int, height_px: int
    ) -> RgbArray:
        """Read a region at the plan's resolution, resampling exactly when needed.

        Parameters
        ----------
        plan
            From ``geometry.read_plan(mpp)`` or ``geometry.plan_for_downsample(ds)``.
        x_px, y_px
            Top-left corner in pixels at the plan's resolution (target pixels): target
            pixel ``(x, y)`` covers level-0 ``[x * d, (x + 1) * d)`` with
            ``d = plan.downsample``.
        width_px, height_px
            Size in target pixels.

        Returns
        -------
        numpy.ndarray
            ``uint8[height_px, width_px, 3]``; anything off the slide is white.

        Raises
        ------
        SlideReadError
            The pixels cannot be decoded.

        Notes
        -----
        1. Without resampling (``plan.is_direct``) target pixels are the pixels of
           ``plan.level`` and are read as is.
        2. Otherwise the output pixel ``x`` covers level pixels
           ``[x * f, (x + 1) * f)`` with ``f = plan.resample_factor``. The level is
           read with a margin and reduced by area averaging over that exact,
           fractional footprint (Pillow's box filter, anti-aliased); an enlargement
           (``f < 1``) is bilinear. The footprint is measured from where OpenSlide
           actually placed the read (``l0 / downsample``), so the sub-pixel
           alignment is exact.
        3. Resampling runs on 128 x 128 output blocks laid from ``(x_px, y_px)``, so
           a pixel's value depends on the region's origin, not on its size.
        """
        if width_px < 0 or height_px < 0:
            raise ValueError(
                f"width_px and height_px must not be negative, got {width_px}x{height_px}"
            )
        if plan.is_direct:
            ds = self._os_downsamples[plan.level]
            return self.read_level(
                level=plan.level,
                l0_xy=(round(x_px * ds), round(y_px * ds)),
                size=(width_px, height_px),
            )
        if width_px == 0 or height_px == 0:
            return np.full((height_px, width_px, 3), 255, dtype=np.uint8)
        f = plan.resample_factor
        block = _RESAMPLE_BLOCK_PX
        padded_w = -(-width_px // block) * block
        padded_h = -(-height_px // block) * block
        margin = math.ceil(max(f, 1.0)) + _RESAMPLE_MARGIN_PX
        # The level region under the (block-padded) output, with a margin.
        lx0 = math.floor(x_px * f) - margin
        ly0 = math.floor(y_px * f) - margin
        lx1 = math.ceil((x_px + padded_w) * f) + margin
        ly1 = math.ceil((y_px + padded_h) * f) + margin
        ds = self._os_downsamples[plan.level]
        l0x, l0y = round(lx0 * ds), round(ly0 * ds)
        region = self.read_level(
            level=plan.level, l0_xy=(l0x, l0y), size=(lx1 - lx0, ly1 - ly0)
        )
        # Where OpenSlide placed the region's first pixel, in level pixels.
        ox, oy = l0x / ds, l0y / ds
        image = Image.fromarray(region)
        resample = Image.Resampling.BOX if f >= 1 else Image.Resampling.BILINEAR
        out = np.empty((height_px, width_px, 3), dtype=np.uint8)
        for by in range(0, height_px, block):
            top, bottom = (y_px + by) * f - oy, (y_px + by + block) * f - oy
            for bx in range(0, width_px, block):
                left, right = (x_px + bx) * f - ox, (x_px + bx + block) * f - ox
                tile = image.resize(
                    (block, block), resample=resample, box=(left, top, right, bottom)
                )
                h, w = min(block, height_px - by), min(block, width_px - bx)
                out[by : by + h, bx : bx + w] = np.asarray(tile)[:h, :w]
        return out

    def _require_open(self) -> openslide.OpenSlide:
        if self._handle is None:
            raise ValueError(f"{self.path.name} is closed; open it again with open_slide")
        return self._handle


def _composite_on_white(rgba: npt.NDArray[np.uint8]) -> RgbArray:
    """``uint8[h, w, 4]`` straight-alpha RGBA to RGB over a white background."""
    alpha = rgba[..., 3]
    if alpha.size == 0 or int(alpha.min()) == 255:
        return np.ascontiguousarray(rgba[..., :3])
    a = alpha[..., None].astype(np.uint16)
    rgb = rgba[..., :3].astype(np.uint16) * a + 255 * (255 - a)
    return ((rgb + 127) // 255).astype(np.uint8)


def open_slide(
    path: Path, *, mpp: float | None = None, mpp_from_objective: bool = False
) -> Slide:
    """Open a whole-slide image that OpenSlide reads.

    Parameters
    ----------
    path
        The slide file (for MIRAX, the ``.mrxs`` file).
    mpp
        Level-0 microns per pixel to use instead of the slide's metadata (``--mpp``).
    mpp_from_objective
        When the slide has no microns per pixel, assume ``10 / objective_power``
        um/px from its objective power (``--mpp-from-objective``); logs a warning.

    Returns
    -------
    Slide
        Close it (or use it as a context manager) when done.

    Raises
    ------
    SlideReadError
        ``path`` is missing, a folder, or not a slide OpenSlide can read.
    MissingResolutionError
        The slide has no usable microns per pixel and ``mpp`` was not given.
    """
    path = Path(path)
    if mpp is not None and (not math.isfinite(mpp) or mpp <= 0):
        raise ValueError(f"mpp must be a positive number of microns per pixel, got {mpp}")
    _check_path(path)
    try:
        handle = openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError as err:
        raise SlideReadError(
            f"{path} is not a slide OpenSlide can read ({SLIDE_FORMATS}); convert it "
            "to a tiled pyramidal TIFF or pass the right file"
        ) from err
    except openslide.OpenSlideError as err:
        raise SlideReadError(
            f"cannot open {path}: {err}; the file is corrupt or truncated: download "
            "or export it again"
        ) from err
    try:
        mpp_x, mpp_y, source = _resolution(
            path, handle.properties, mpp=mpp, mpp_from_objective=mpp_from_objective
        )
        dims = tuple((int(w), int(h)) for w, h in handle.level_dimensions)
        try:
            geometry = SlideGeometry(
                width_px=dims[0][0],
                height_px=dims[0][1],
                mpp_x=mpp_x,
                mpp_y=mpp_y,
                level_dimensions=dims,
            )
        except ValueError as err:
            raise MissingResolutionError(
                f"{path}: {err}; pass --mpp to give the level-0 microns per pixel"
            ) from err
    except BaseException:
        handle.close()
        raise
    cache = _shared_cache()
    if cache is not None:
        handle.set_cache(cache)
    logger.debug("opened %s: %s", path, geometry)
    return Slide(path=path, handle=handle, geometry=geometry, mpp_source=source)


def _check_path(path: Path) -> None:
    if not path.exists():
        raise SlideReadError(f"slide {path} does not exist; check the path")
    if path.is_dir():
        raise SlideReadError(
            f"{path} is a folder, not a slide file; pass the slide file itself "
            "(for MIRAX, the .mrxs file next to the folder)"
        )
    try:
        with path.open("rb"):
            pass
    except OSError as err:
        raise SlideReadError(
            f"cannot read {path}: {err.strerror}; check its permissions"
        ) from err


def _resolution(
    path: Path,
    properties: Mapping[str, str],
    *,
    mpp: float | None,
    mpp_from_objective: bool,
) -> tuple[float, float, str]:
    """Level-0 ``(mpp_x, mpp_y, source)`` from the user, metadata or objective."""
    if mpp is not None:
        meta = _positive(properties.get(openslide.PROPERTY_NAME_MPP_X))
        if meta is not None and abs(meta / mpp - 1) > 0.01:
            logger.info("%s: using --mpp %.4f instead of its metadata %.4f um/px",
                        path.name, mpp, meta)
        return mpp, mpp, "user"
    mpp_x = _positive(properties.get(openslide.PROPERTY_NAME_MPP_X))
    mpp_y = _positive(properties.get(openslide.PROPERTY_NAME_MPP_Y))
    if mpp_x is not None and mpp_y is not None:
        return mpp_x, mpp_y, "metadata"
    objective = _positive(properties.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER))
    if objective is not None and mpp_from_objective:
        assumed = 10.0 / objective
        logger.warning(
            "%s has no microns per pixel; assuming %.4f um/px from its %gx objective "
            "power (--mpp-from-objective). Scanners differ: pass --mpp if you know "
            "the real value", path.name, assumed, objective,
        )
        return assumed, assumed, "objective"
    hint = "pass --mpp with the level-0 microns per pixel (about 0.25 at 40x, 0.5 at 20x)"
    if objective is not None:
        hint += (
            f", or --mpp-from-objective to assume {10.0 / objective:.4g} um/px from its "
            f"{objective:g}x objective power"
        )
    raise MissingResolutionError(f"{path} has no microns-per-pixel metadata; {hint}")


def _positive(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def slide_fingerprint(path: Path) -> dict[str, Any]:
    """Identify a slide file cheaply: its size and the sha256 of its first MiB.

    Parameters
    ----------
    path
        The slide file.

    Returns
    -------
    dict
        ``{"size_bytes": int, "sha256_first_mib": str}``.

    Raises
    ------
    SlideReadError
        The file cannot be read.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(_FINGERPRINT_BYTES)
        size = path.stat().st_size
    except OSError as err:
        raise SlideReadError(f"cannot read {path}: {err.strerror}; check the path") from err
    return {"size_bytes": size, "sha256_first_mib": hashlib.sha256(head).hexdigest()}


def _shared_cache() -> openslide.OpenSlideCache | None:
    """The process-wide tile cache that every :class:`Slide` uses."""
    global _tile_cache
    with _cache_lock:
        if _tile_cache is None and hasattr(openslide, "OpenSlideCache"):
            _tile_cache = openslide.OpenSlideCache(TILE_CACHE_BYTES)
        return _tile_cache


_cache_lock = threading.Lock()
_tile_cache: openslide.OpenSlideCache | None = None
