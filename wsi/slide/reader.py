"""Open a slide with OpenSlide and read pixels at a level or at a target resolution.

``open_slide(path)`` gives a :class:`Slide`: one OpenSlide handle, the slide's
:class:`~wsi.geometry.SlideGeometry` and its properties. Every OpenSlide error is
turned into a :class:`~wsi.errors.SlideReadError` that names the file and the fix.
Use one ``Slide`` per thread or process; all handles of a process share one cache
of decoded tiles (``TILE_CACHE_BYTES``).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Final

import numpy as np
import numpy.typing as npt
import openslide

from wsi.errors import MissingResolutionError, SlideReadError
from wsi.geometry import ReadPlan, SlideGeometry
from wsi.slide._resample import margin_px, resample
from wsi.slide._resolution import level0_mpp
from wsi.slide._slidefile import check_path, slide_fingerprint
from wsi.slide._tiffread import JpegTiles, TiffLevels, TileDecodeError

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
#: Decoded slide tiles OpenSlide keeps in memory, shared by every handle of the
#: process, so a tile that two bands (or two tasks) need is decoded once.
TILE_CACHE_BYTES: Final = 64 << 20

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
        Where the level-0 resolution came from: ``"metadata"``, ``"user"`` (the ``mpp`` setting)
        or ``"objective"`` (``mpp_from_objective``).
    """

    def __init__(
        self,
        *,
        path: Path,
        handle: openslide.OpenSlide,
        geometry: SlideGeometry,
        mpp_source: str,
        tiff: TiffLevels | None = None,
    ) -> None:
        self.path = path
        self.geometry = geometry
        self.mpp_source = mpp_source
        self.properties: Mapping[str, str] = dict(handle.properties)
        self._handle: openslide.OpenSlide | None = handle
        self._tiff = tiff
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
        if self._tiff is not None:
            self._tiff.close()
            self._tiff = None

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
        1. Level pixels come straight from the TIFF tiles for generic TIFF and Aperio
           slides (the same decoders as OpenSlide, the same pixels, without its
           compositing), else from OpenSlide, which interpolates when a read starts
           at a fractional level pixel (levels whose downsample is not an integer).
        2. Without resampling (``plan.is_direct``) target pixels are level pixels.
        3. Otherwise output pixel ``x`` covers level pixels ``[x * f, (x + 1) * f)``,
           ``f = plan.resample_factor``, and is the exact area average of the level
           over that fractional footprint (a box prefilter: anti-aliased), separably
           in x and y; an enlargement (``f < 1``) interpolates linearly. Footprints
           are measured from where the read really starts, so sub-pixel alignment is
           exact, and a pixel's value depends on that start, never on the size of
           the region read.
        """
        if width_px < 0 or height_px < 0:
            raise ValueError(
                f"width_px and height_px must not be negative, got {width_px}x{height_px}"
            )
        if plan.is_direct:
            return self._read_pixels(plan.level, x_px, y_px, width_px, height_px)[0]
        if width_px == 0 or height_px == 0:
            return np.full((height_px, width_px, 3), 255, dtype=np.uint8)
        f = plan.resample_factor
        margin = margin_px(f)
        # The level region under the output's footprint, with a margin.
        lx0 = math.floor(x_px * f) - margin
        ly0 = math.floor(y_px * f) - margin
        lx1 = math.ceil((x_px + width_px) * f) + margin
        ly1 = math.ceil((y_px + height_px) * f) + margin
        region, origin = self._read_pixels(plan.level, lx0, ly0, lx1 - lx0, ly1 - ly0)
        return resample(
            region,
            x_px=x_px,
            y_px=y_px,
            width_px=width_px,
            height_px=height_px,
            factor=f,
            origin_xy=origin,
        )

    def pixel_source(self, level: int) -> str:
        """``"tiff"`` when ``level``'s tiles are decoded directly, else ``"openslide"``."""
        return (
            "tiff" if self._tiff is not None and self._tiff.has(level) else "openslide"
        )

    def jpeg_tiles(self, level: int) -> JpegTiles | None:
        """Where ``level``'s JPEG tiles lie in the file, when they decode directly.

        None unless the level is a plain tiled TIFF page of JPEG tiles decoded by
        tifffile (``pixel_source(level) == "tiff"``): then its pixels are those
        tiles' own, which a ``source-jpeg`` tile store keeps as they are.
        """
        self._require_open()
        return None if self._tiff is None else self._tiff.jpeg_tiles(level)

    def _read_pixels(
        self, level: int, x: int, y: int, width: int, height: int
    ) -> tuple[RgbArray, tuple[float, float]]:
        """Pixels of ``level`` from level pixel ``(x, y)``, and where they start.

        Decoded directly when possible (exact level pixels). Otherwise OpenSlide reads
        level-0 ``round(x * ds)``, which it maps back to level pixel ``l0 / ds`` (a
        fractional start when ``ds`` is not an integer: it interpolates).
        """
        if self._tiff is not None and self._tiff.has(level):
            self._require_open()
            try:
                pixels = self._tiff.read(level, x=x, y=y, width=width, height=height)
            except TileDecodeError as err:
                raise SlideReadError(
                    f"cannot decode pixels of {self.path} ({err}); the file is corrupt "
                    "or truncated: download or export it again"
                ) from err
            return pixels, (float(x), float(y))
        ds = self._os_downsamples[level]
        l0x, l0y = round(x * ds), round(y * ds)
        pixels = self.read_level(level=level, l0_xy=(l0x, l0y), size=(width, height))
        return pixels, (l0x / ds, l0y / ds)

    def _require_open(self) -> openslide.OpenSlide:
        if self._handle is None:
            raise ValueError(
                f"{self.path.name} is closed; open it again with open_slide"
            )
        return self._handle


def _composite_on_white(rgba: npt.NDArray[np.uint8]) -> RgbArray:
    """``uint8[h, w, 4]`` straight-alpha RGBA to RGB over a white background."""
    rgb = np.ascontiguousarray(rgba[..., :3])
    clear = rgba[..., 3] != 255
    if clear.any():
        a = rgba[..., 3][clear].astype(np.uint16)[:, None]
        blended = rgb[clear].astype(np.uint16) * a + 255 * (255 - a)
        rgb[clear] = ((blended + 127) // 255).astype(np.uint8)
    return rgb


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
        raise ValueError(
            f"mpp must be a positive number of microns per pixel, got {mpp}"
        )
    check_path(path)
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
        mpp_x, mpp_y, source = level0_mpp(
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
                f"{path}: {err}; pass `mpp` to give the level-0 microns per pixel"
            ) from err
    except BaseException:
        handle.close()
        raise
    cache = _shared_cache()
    if cache is not None:
        handle.set_cache(cache)
    tiff = TiffLevels.open(
        path, vendor=handle.properties.get("openslide.vendor"), level_dimensions=dims
    )
    logger.debug("opened %s: %s", path, geometry)
    return Slide(
        path=path, handle=handle, geometry=geometry, mpp_source=source, tiff=tiff
    )


def _shared_cache() -> openslide.OpenSlideCache | None:
    """The process-wide tile cache that every :class:`Slide` uses."""
    global _tile_cache
    with _cache_lock:
        if _tile_cache is None and hasattr(openslide, "OpenSlideCache"):
            _tile_cache = openslide.OpenSlideCache(TILE_CACHE_BYTES)
        return _tile_cache


_cache_lock = threading.Lock()
_tile_cache: openslide.OpenSlideCache | None = None
