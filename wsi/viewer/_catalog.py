"""What the viewer shows: the slides of an output folder and the files written for each.

Everything here reads files named by `wsi.store.layout.SlideOutputs`; a file that is missing
or unreadable gives ``None`` (and a log line), so the viewer shows what is there.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wsi.errors import WsiError
from wsi.heatmap.colormap import LEGEND_BACKGROUND_RGB, TINT_FLOOR, TINT_OPACITY, tint
from wsi.store.layout import Arrays, Attr, SlideOutputs

__all__ = [
    "HeatmapLayer",
    "SlideEntry",
    "by_probability",
    "colorbar_css",
    "find_slide",
    "find_slides",
    "heatmap_legend",
    "read_heatmap",
    "read_regions",
    "render_heatmap_rgba",
]

logger = logging.getLogger(__name__)

#: Longest side of the heatmap image served to the browser, in pixels.
MAX_OVERLAY_PX = 2048
#: Longest file name (bytes) on the file systems outputs live on (ext4, APFS, NTFS).
_NAME_MAX_BYTES = 255
#: Most pixels per heatmap cell in that image (nearest neighbour, keeps cells crisp).
MAX_CELL_PX = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class SlideEntry:
    """One slide of the output folder.

    Parameters
    ----------
    outputs
        Where its files are (they need not all exist).
    slide_path
        The slide file, or None when neither the config nor the outputs name one.
    summary
        ``summary.json``, or None when missing or unreadable.
    """

    outputs: SlideOutputs
    slide_path: Path | None
    summary: Mapping[str, Any] | None

    @property
    def stem(self) -> str:
        """The slide's file stem (its folder name under the output folder)."""
        return self.outputs.stem

    def overview(self) -> dict[str, Any]:
        """JSON-able facts for the slide list: scores, area, which files exist."""
        summary = self.summary or {}
        area_um2 = _number(summary.get("tumor_area_um2"))
        outputs = self.outputs
        return {
            "stem": self.stem,
            "slide_probability": slide_probability(summary),
            "max_probability": _number(summary.get("max_probability")),
            "tumor_area_um2": area_um2,
            "tumor_area_mm2": None if area_um2 is None else area_um2 / 1e6,
            "n_regions": summary.get("n_regions"),
            "node_class": summary.get("node_class"),
            "largest_diameter_mm": _number(summary.get("largest_diameter_mm")),
            "n_patches": summary.get("n_patches"),
            "slide_path": None if self.slide_path is None else str(self.slide_path),
            "slide_found": self.slide_path is not None and self.slide_path.is_file(),
            "has_summary": self.summary is not None,
            "has_heatmap": (outputs.store / Arrays.HEATMAP).is_dir(),
            "has_regions": outputs.geojson.is_file(),
            "has_overlay": outputs.overlay_png.is_file(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class HeatmapLayer:
    """A slide's heatmap and where its cells lie on the slide.

    Cell ``(i, j)`` covers level-0 ``x`` in ``[ox + j*c, ox + (j+1)*c)`` and ``y`` in
    ``[oy + i*c, oy + (i+1)*c)`` with ``(ox, oy) = origin_l0_px``, ``c = cell_l0_px``
    (the ``heatmap`` attributes `wsi.store.heatmap_section.heatmap_attrs` writes).
    """

    values: npt.NDArray[np.float32]
    origin_l0_px: tuple[float, float]
    cell_l0_px: float

    def value_at(
        self, x_l0: float, y_l0: float
    ) -> tuple[int, int, float | None] | None:
        """``(row, col, probability)`` of the cell under a level-0 point, or None.

        The probability is None where the cell has no tissue patch (NaN).

        Examples
        --------
        >>> layer = HeatmapLayer(values=np.array([[0.5, np.nan]], np.float32),
        ...                      origin_l0_px=(10.0, 10.0), cell_l0_px=100.0)
        >>> layer.value_at(15, 20), layer.value_at(150, 20), layer.value_at(5, 20)
        ((0, 0, 0.5), (0, 1, None), None)
        """
        col = int(np.floor((x_l0 - self.origin_l0_px[0]) / self.cell_l0_px))
        row = int(np.floor((y_l0 - self.origin_l0_px[1]) / self.cell_l0_px))
        rows, cols = self.values.shape
        if not (0 <= row < rows and 0 <= col < cols):
            return None
        value = float(self.values[row, col])
        return row, col, (value if np.isfinite(value) else None)

    def geometry(self) -> dict[str, Any]:
        """JSON-able geometry: shape, origin and cell size in level-0 pixels."""
        rows, cols = self.values.shape
        return {
            "shape": [rows, cols],
            "origin_l0_px": list(self.origin_l0_px),
            "cell_size_l0_px": self.cell_l0_px,
            "size_l0_px": [cols * self.cell_l0_px, rows * self.cell_l0_px],
        }


def find_slides(
    out_dir: Path,
    *,
    slides: Mapping[str, Path] | None = None,
    slide_dirs: Sequence[Path] = (),
) -> dict[str, SlideEntry]:
    """List the slides of an output folder, by stem, in stem order.

    A slide is a subfolder holding ``summary.json`` or a zarr store, plus every stem
    of ``slides`` (shown without results until the pipeline writes them).

    Parameters
    ----------
    out_dir
        The folder given to ``wsi-heatmap --out``.
    slides
        Stem to slide file; overrides the path the outputs record.
    slide_dirs
        Folders searched, by file name, for a slide whose recorded path is gone (an
        output folder copied from another machine).
    """
    folder = Path(out_dir)
    stems = set(slides or {})
    stems.update(c.name for c in (folder.iterdir() if folder.is_dir() else ()))
    entries = {}
    for stem in sorted(stems):
        entry = find_slide(out_dir, stem, slides=slides, slide_dirs=slide_dirs)
        if entry is not None:
            entries[stem] = entry
    return entries


def find_slide(
    out_dir: Path,
    stem: str,
    *,
    slides: Mapping[str, Path] | None = None,
    slide_dirs: Sequence[Path] = (),
) -> SlideEntry | None:
    """Return one slide of an output folder (see `find_slides`), or None."""
    if not stem or stem.startswith(".") or "/" in stem or "\\" in stem:
        return None
    if len(os.fsencode(stem + ".zarr")) > _NAME_MAX_BYTES or "\0" in stem:
        return None  # no file system holds such a folder: not a slide of ours
    outputs = SlideOutputs(Path(out_dir) / stem)
    listed = slides is not None and stem in slides
    if not (listed or outputs.summary_json.is_file() or outputs.store.is_dir()):
        return None
    summary = _read_json(outputs.summary_json)
    path = (
        Path(slides[stem])
        if slides is not None and listed
        else _recorded_slide_path(outputs, summary, slide_dirs)
    )
    return SlideEntry(outputs=outputs, slide_path=path, summary=summary)


def slide_probability(summary: Mapping[str, Any] | None) -> float | None:
    """The slide probability of a ``summary.json`` (the model's slide score).

    Summaries written before the slide score existed have only the highest cell,
    ``max_probability``, which was their slide probability.

    Examples
    --------
    >>> slide_probability({"slide_probability": 0.3, "max_probability": 0.99})
    0.3
    >>> slide_probability({"max_probability": 0.99}), slide_probability(None)
    (0.99, None)
    """
    summary = summary or {}
    found = _number(summary.get("slide_probability"))
    return _number(summary.get("max_probability")) if found is None else found


def by_probability(entries: Mapping[str, SlideEntry]) -> list[SlideEntry]:
    """Slides by slide probability, highest first; those without one last, by stem.

    Examples
    --------
    >>> def entry(stem, p):
    ...     summary = None if p is None else {"slide_probability": p}
    ...     return SlideEntry(outputs=SlideOutputs(Path(stem)), slide_path=None,
    ...                       summary=summary)
    >>> found = {s: entry(s, p) for s, p in [("a", 0.2), ("b", None), ("c", 0.9)]}
    >>> [e.stem for e in by_probability(found)]
    ['c', 'a', 'b']
    """

    def key(entry: SlideEntry) -> tuple[bool, float, str]:
        probability = slide_probability(entry.summary)
        return (probability is None, -(probability or 0.0), entry.stem)

    return sorted(entries.values(), key=key)


def _recorded_slide_path(
    outputs: SlideOutputs, summary: Mapping[str, Any] | None, slide_dirs: Sequence[Path]
) -> Path | None:
    """Find the slide path that ``summary.json`` or the store's tiling attrs record.

    Both hold it as ``{"slide": {"path": ...}}``; a relative path is taken from the
    output folder.
    """
    recorded = _path_in((summary or {}).get("slide"))
    if recorded is None:
        metadata = _read_json(outputs.store / "zarr.json") or {}  # zarr v3 group
        tiling = metadata.get("attributes", {}).get(Attr.TILING, {})
        recorded = _path_in(
            tiling.get("slide") if isinstance(tiling, Mapping) else None
        )
    if recorded is None:
        return None
    path = Path(recorded)
    if not path.is_absolute():
        path = outputs.folder.parent / path
    if not path.is_file():
        for folder in slide_dirs:
            candidate = Path(folder) / path.name
            if candidate.is_file():
                return candidate
    return path


def _path_in(value: object) -> str | None:
    """Return ``value["path"]`` (or ``value`` itself when it is a string)."""
    if isinstance(value, Mapping):
        value = value.get("path")
    return value if isinstance(value, str) and value else None


def read_heatmap(outputs: SlideOutputs) -> HeatmapLayer | None:
    """Read a slide's heatmap and its geometry from the store (None if not stitched)."""
    if not (outputs.store / Arrays.HEATMAP).is_dir():
        return None
    from wsi.store.slide_store import open_store

    try:
        group: Any = open_store(outputs.store)
        attrs = dict(group.attrs.get(Attr.HEATMAP) or {})
        values = np.asarray(group[Arrays.HEATMAP][...], dtype=np.float32)
        origin = tuple(float(v) for v in attrs["origin_l0_px"])
        cell = float(attrs["cell_size_l0_px"])
    except (WsiError, OSError, KeyError, TypeError, ValueError, RuntimeError) as err:
        # RuntimeError: a chunk that fails to decompress (a damaged store)
        logger.warning(
            "%s: cannot read the heatmap (%s); showing the slide without it",
            outputs.store,
            err,
        )
        return None
    if values.ndim != 2 or len(origin) != 2 or cell <= 0:
        logger.warning(
            "%s: heatmap shape %s or geometry %s makes no sense",
            outputs.store,
            values.shape,
            attrs,
        )
        return None
    return HeatmapLayer(
        values=values, origin_l0_px=(origin[0], origin[1]), cell_l0_px=cell
    )


def heatmap_mtime_ns(outputs: SlideOutputs) -> int:
    """When the heatmap array was last written (0 if never), to key caches."""
    try:
        return os.stat(outputs.store / Arrays.HEATMAP / "zarr.json").st_mtime_ns
    except OSError:
        return 0


def render_heatmap_rgba(
    values: npt.NDArray[np.floating], *, min_probability: float = 0.0
) -> npt.NDArray[np.uint8]:
    """Colour a heatmap for the browser: the overlay's tint, transparent below a floor.

    Colours and opacities are those of `wsi.heatmap.colormap.tint` (no tint below
    `TINT_FLOOR`), with the opacity divided by ``TINT_OPACITY[1]`` (255 at
    probability 1): the page's opacity slider, at its start (`heatmap_legend`), then
    gives the look of ``overlay.png``. Each cell becomes a square of ``k`` pixels
    (nearest neighbour), ``k`` as large as `MAX_CELL_PX` allows under
    `MAX_OVERLAY_PX`, so the browser's smoothing blurs only a thin edge of each cell.

    Parameters
    ----------
    values
        ``float[rows, cols]`` probabilities, NaN where no tissue patch.
    min_probability
        Cells below this are transparent too (a floor above `TINT_FLOOR`; one below
        changes nothing).

    Returns
    -------
    numpy.ndarray
        ``uint8[rows * k, cols * k, 4]`` RGBA.

    Examples
    --------
    >>> values = np.array([[0.1, 0.6, 1.0, np.nan]])
    >>> rgba = render_heatmap_rgba(values, min_probability=0.5)
    >>> rgba.shape, rgba[0, ::16, 3].tolist()
    ((16, 64, 4), [0, 181, 255, 0])
    """
    if not 0.0 <= min_probability <= 1.0:
        raise ValueError(
            f"min_probability must be within [0, 1], got {min_probability}"
        )
    probabilities = np.asarray(values, dtype=np.float32)
    rgb, opacity = tint(probabilities, floor=min_probability)
    rgba = np.empty((*probabilities.shape, 4), dtype=np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = np.rint(opacity * (255 / TINT_OPACITY[1]))
    k = max(1, min(MAX_CELL_PX, MAX_OVERLAY_PX // max(1, *probabilities.shape)))
    return np.repeat(np.repeat(rgba, k, axis=0), k, axis=1)


def colorbar_css(stops: int = 9) -> str:
    """Build a CSS ``linear-gradient`` of the tint, transparent below `TINT_FLOOR`.

    The alpha of each stop is that of `render_heatmap_rgba` (the page scales it with
    its opacity slider); draw it over `LEGEND_BACKGROUND_RGB`.

    Examples
    --------
    >>> colorbar_css(2)  # doctest: +NORMALIZE_WHITESPACE
    'linear-gradient(to right, transparent 0%, transparent 20%,
     rgba(254, 202, 102, 0.417) 20%, rgba(196, 5, 36, 1) 100%)'
    """
    values = np.linspace(TINT_FLOOR, 1.0, stops)
    rgb, opacity = tint(values)
    alpha = opacity / TINT_OPACITY[1]
    floor = f"{100 * TINT_FLOOR:g}%"
    parts = ["transparent 0%", f"transparent {floor}"] + [
        f"rgba({r}, {g}, {b}, {a:.3g}) {100 * p:g}%"
        for (r, g, b), a, p in zip(rgb.tolist(), alpha.tolist(), values, strict=True)
    ]
    return "linear-gradient(to right, " + ", ".join(parts) + ")"


def heatmap_legend() -> dict[str, Any]:
    """What the slide page needs to draw the heatmap's controls and colour bar.

    Keys: ``gradient`` (`colorbar_css`), ``background`` (CSS colour of
    `LEGEND_BACKGROUND_RGB`, behind the gradient), ``ticks`` (labels and positions
    in % at 0, `TINT_FLOOR`, 0.5 and 1), ``caption``, ``floor_percent`` (the
    minimum slider's start and lowest value) and ``opacity_percent`` (the opacity
    slider's start, at which the tiles look like ``overlay.png``).

    Examples
    --------
    >>> legend = heatmap_legend()
    >>> legend["ticks"], legend["floor_percent"], legend["opacity_percent"]
    ([('0', 0.0), ('0.2', 20.0), ('0.5', 50.0), ('1', 100.0)], 20, 60)
    """
    from wsi.heatmap.overlay import legend_labels

    return {
        "gradient": colorbar_css(),
        "background": "rgb({}, {}, {})".format(*LEGEND_BACKGROUND_RGB),
        "ticks": [(f"{p:g}", 100.0 * p) for p in (0.0, TINT_FLOOR, 0.5, 1.0)],
        "caption": legend_labels()["ramp"],
        "floor_percent": round(100 * TINT_FLOOR),
        "opacity_percent": round(100 * TINT_OPACITY[1]),
    }


def read_regions(outputs: SlideOutputs) -> dict[str, Any] | None:
    """``tumor.geojson`` if it is a GeoJSON FeatureCollection, else None."""
    data = _read_json(outputs.geojson)
    if data is None:
        return None
    if data.get("type") != "FeatureCollection" or not isinstance(
        data.get("features"), list
    ):
        logger.warning(
            "%s: not a GeoJSON FeatureCollection; not shown", outputs.geojson
        )
        return None
    return data


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        logger.warning("%s: cannot read (%s); ignored", path, err)
        return None
    return data if isinstance(data, dict) else None


def _number(value: object) -> float | None:
    return (
        float(value) if isinstance(value, (int, float)) and np.isfinite(value) else None
    )
