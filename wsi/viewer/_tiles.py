"""Deep Zoom tiles of slides: one OpenSlide handle per slide, shared by all requests."""

from __future__ import annotations

import io
import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsi.errors import SlideReadError
from wsi.heatmap._png import save_png

__all__ = ["DeepZoomSlide", "SlideCache"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeepZoomSlide:
    """An open slide and its Deep Zoom pyramid.

    The pyramid is built with ``limit_bounds=False``: image coordinates are the slide's
    level-0 pixels, the frame of the heatmap and the polygons.
    """

    slide: Any  # openslide.OpenSlide
    deepzoom: Any  # openslide.deepzoom.DeepZoomGenerator
    tile_quality: int

    @property
    def mpp(self) -> float | None:
        """Level-0 microns per pixel (mean of x and y); None if the slide has none."""
        import openslide

        try:
            x = float(self.slide.properties[openslide.PROPERTY_NAME_MPP_X])
            y = float(self.slide.properties[openslide.PROPERTY_NAME_MPP_Y])
        except (KeyError, ValueError):
            return None
        return (x + y) / 2

    def metadata(self) -> dict[str, Any]:
        """JSON-able facts about the slide: format, size, levels, scale, images.

        ``objective_power`` is what the scanner recorded (None when absent);
        ``associated_images`` names the label, macro and thumbnail images it holds.
        """
        import openslide

        props = self.slide.properties

        def number(name: str) -> float | None:
            try:
                value = float(props[name])
            except (KeyError, ValueError):
                return None
            return value if math.isfinite(value) else None

        return {
            "vendor": props.get(openslide.PROPERTY_NAME_VENDOR),
            "size_l0_px": list(self.slide.dimensions),
            "levels": self.slide.level_count,
            "level_downsamples": [round(d, 4) for d in self.slide.level_downsamples],
            "mpp": self.mpp,
            "objective_power": number(openslide.PROPERTY_NAME_OBJECTIVE_POWER),
            "associated_images": sorted(self.slide.associated_images),
        }

    def associated_png(self, name: str, *, max_px: int = 640) -> bytes:
        """A label/macro/thumbnail image as PNG, at most ``max_px`` a side.

        Raises
        ------
        KeyError
            If the slide has no image of that name.
        """
        image = self.slide.associated_images[name].convert("RGB")
        image.thumbnail((max_px, max_px))
        buffer = io.BytesIO()
        save_png(image, buffer)
        return buffer.getvalue()

    def dzi(self) -> str:
        """Return the Deep Zoom descriptor (XML) for JPEG tiles."""
        xml: str = self.deepzoom.get_dzi("jpeg")
        return xml

    def tile_jpeg(self, level: int, col: int, row: int) -> bytes:
        """One tile as JPEG bytes.

        Raises
        ------
        ValueError
            If the level or the tile address is outside the pyramid.
        """
        tile = self.deepzoom.get_tile(level, (col, row))
        buffer = io.BytesIO()
        tile.convert("RGB").save(buffer, "JPEG", quality=self.tile_quality)
        return buffer.getvalue()


class SlideCache:
    """Opens each slide once and keeps the ``max_open`` most recently used open.

    Thread-safe: OpenSlide handles may be read from several request threads.
    """

    def __init__(
        self, *, max_open: int, tile_px: int, overlap_px: int, tile_quality: int
    ) -> None:
        self._max_open = max_open
        self._tile_px = tile_px
        self._overlap_px = overlap_px
        self._tile_quality = tile_quality
        self._lock = threading.Lock()
        self._open: OrderedDict[tuple[Path, int], DeepZoomSlide] = OrderedDict()

    def get(self, path: Path) -> DeepZoomSlide:
        """Return the open slide at ``path`` (opened again if the file changed).

        Raises
        ------
        SlideReadError
            If the file is missing or OpenSlide cannot read it.
        """
        try:
            key = (Path(path).resolve(), Path(path).stat().st_mtime_ns)
        except OSError as err:
            raise SlideReadError(
                f"{path}: slide not found ({err.strerror}); run the viewer where the "
                "slide is, or pass its path"
            ) from err
        with self._lock:
            if key in self._open:
                self._open.move_to_end(key)
                return self._open[key]
            entry = self._open_slide(key[0])
            self._open[key] = entry
            while len(self._open) > self._max_open:
                # Not closed here: a request thread may still read it; OpenSlide
                # closes the handle when the last reference goes.
                self._open.popitem(last=False)
            return entry

    def _open_slide(self, path: Path) -> DeepZoomSlide:
        import openslide
        from openslide.deepzoom import DeepZoomGenerator

        try:
            slide = openslide.OpenSlide(path)
        except (openslide.OpenSlideError, OSError) as err:
            raise SlideReadError(
                f"{path}: OpenSlide cannot read this slide ({err})"
            ) from err
        logger.info(
            "opened %s (%dx%d px, %d levels)",
            path,
            *slide.dimensions,
            slide.level_count,
        )
        deepzoom = DeepZoomGenerator(
            slide, tile_size=self._tile_px, overlap=self._overlap_px, limit_bounds=False
        )
        return DeepZoomSlide(
            slide=slide, deepzoom=deepzoom, tile_quality=self._tile_quality
        )

    def clear(self) -> None:
        """Forget every open slide (each closes when no request uses it any more)."""
        with self._lock:
            self._open.clear()
