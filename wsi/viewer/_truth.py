"""The ground-truth layer of the viewer: annotation files matched to slides by stem.

``wsi-heatmap view OUT --annotations PATH`` draws a truth outline beside the
prediction. ``PATH`` is a folder of truth files named after the slides
(``tumor_001.xml`` for ``tumor_001.tif``, as Camelyon16 ships them) or one file (used
for the slide of the same stem, or for the only slide of the output folder). Formats,
by suffix: ASAP / Camelyon XML (``.xml``), QuPath GeoJSON (``.geojson``, or a ``.json``
that holds GeoJSON) and NCRF JSON (``.json`` with ``positive`` / ``negative`` vertex
lists).

`read_truth_polygons` is the one place that picks a reader, so that the viewer and
``wsi-heatmap evaluate`` can share one set of readers.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping

from wsi.errors import AnnotationError

__all__ = [
    "TRUTH_SUFFIXES",
    "find_truth_file",
    "read_ncrf_json",
    "read_truth_polygons",
    "truth_feature_collection",
]

logger = logging.getLogger(__name__)

#: Suffixes of truth files, in the order they are looked for in a folder.
TRUTH_SUFFIXES = (".xml", ".geojson", ".json")


def read_truth_polygons(path: Path) -> list[Polygon]:
    """Read the tumour polygons of a truth file (level-0 pixels, holes applied).

    Parameters
    ----------
    path
        An ASAP XML, GeoJSON or NCRF JSON file.

    Returns
    -------
    list of Polygon
        One polygon per outline part, in file order.

    Raises
    ------
    AnnotationError
        If the file cannot be read or is in none of these formats.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".xml":
        from wsi.asap import read_asap_xml

        return read_asap_xml(path)
    if suffix not in (".geojson", ".json"):
        raise AnnotationError(
            f"{path}: unknown annotation format {suffix!r}; use ASAP XML (.xml), "
            "QuPath GeoJSON (.geojson) or NCRF JSON (.json)"
        )
    data = _load_json(path)
    if isinstance(data, dict) and ("positive" in data or "negative" in data):
        return read_ncrf_json(path, data=data)
    from wsi.geojson import read_geojson

    polygons: list[Polygon] = []
    for geom in read_geojson(path):
        polygons.extend(geom.geoms if isinstance(geom, MultiPolygon) else [geom])
    return polygons


def read_ncrf_json(path: Path, *, data: Any = None) -> list[Polygon]:
    """Read NCRF's lesion JSON: ``positive`` outlines minus ``negative`` ones.

    The format (baidu-research/NCRF's conversion of Camelyon16 XML) is
    ``{"positive": [{"name": "_0", "vertices": [[x, y], ...]}, ...], "negative":
    [...]}`` in level-0 pixels; ``negative`` outlines are holes.

    Parameters
    ----------
    path
        The JSON file (named in errors).
    data
        Its parsed content, when already read.

    Raises
    ------
    AnnotationError
        If an outline has fewer than 3 vertices or is not a list of points.

    Examples
    --------
    >>> square = [[0, 0], [10, 0], [10, 10], [0, 10]]
    >>> hole = [[2, 2], [4, 2], [4, 4], [2, 4]]
    >>> [p.area for p in read_ncrf_json(Path("x.json"),
    ...     data={"positive": [{"vertices": square}], "negative": [{"vertices": hole}]})]
    [96.0]
    """
    if data is None:
        data = _load_json(path)
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: NCRF JSON must be an object with 'positive'")
    positive = _ncrf_polygons(path, data.get("positive", []))
    negative = _ncrf_polygons(path, data.get("negative", []))
    if not negative:
        return positive
    holes = shapely.union_all(negative)
    out: list[Polygon] = []
    for polygon in positive:
        cut = polygon.difference(holes)
        out.extend(
            p
            for p in getattr(cut, "geoms", [cut])
            if isinstance(p, Polygon) and not p.is_empty
        )
    return out


def _ncrf_polygons(path: Path, outlines: object) -> list[Polygon]:
    if not isinstance(outlines, list):
        raise AnnotationError(f"{path}: 'positive'/'negative' must be lists")
    polygons: list[Polygon] = []
    for number, outline in enumerate(outlines):
        vertices = outline.get("vertices") if isinstance(outline, dict) else None
        try:
            polygon = Polygon([(float(x), float(y)) for x, y in vertices or []])
        except (TypeError, ValueError) as err:
            raise AnnotationError(
                f"{path}: outline {number} is not a list of [x, y] vertices ({err})"
            ) from err
        if len(polygon.exterior.coords) < 4:
            raise AnnotationError(f"{path}: outline {number} has under 3 vertices")
        repaired = polygon if polygon.is_valid else shapely.make_valid(polygon)
        polygons.extend(
            p for p in getattr(repaired, "geoms", [repaired]) if isinstance(p, Polygon)
        )
    return polygons


def _load_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AnnotationError(
            f"cannot read annotations {path}: {err}; expected GeoJSON or NCRF JSON"
        ) from err


def find_truth_file(
    annotations: Path, stem: str, *, all_stems: Sequence[str] = ()
) -> Path | None:
    """The truth file of slide ``stem`` under ``annotations``, or None.

    Parameters
    ----------
    annotations
        A folder of ``<stem>.xml|.geojson|.json`` files, or one file.
    stem
        The slide's stem.
    all_stems
        Every slide of the output folder: a single file whose stem matches none of
        them belongs to the only slide, when there is one.
    """
    annotations = Path(annotations)
    if annotations.is_file():
        if annotations.stem == stem:
            return annotations
        if list(all_stems) == [stem]:
            return annotations
        return None
    if not annotations.is_dir():
        return None
    for suffix in TRUTH_SUFFIXES:
        candidate = annotations / f"{stem}{suffix}"
        try:
            if candidate.is_file():
                return candidate
        except OSError:  # a name too long for the file system
            return None
    folded = stem.casefold()
    try:
        names = os.listdir(annotations)
    except OSError:
        return None
    for name in sorted(names):
        path = annotations / name
        if path.suffix.lower() in TRUTH_SUFFIXES and path.stem.casefold() == folded:
            return path
    return None


def truth_feature_collection(
    polygons: Sequence[Polygon], *, source: Path
) -> dict[str, Any]:
    """The truth polygons as a GeoJSON FeatureCollection for the browser.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> fc = truth_feature_collection([box(0, 0, 2, 1)], source=Path("t.xml"))
    >>> fc["features"][0]["properties"]["area_l0_px2"], fc["source"]
    (2.0, 't.xml')
    """
    features = [
        {
            "type": "Feature",
            "geometry": mapping(polygon),
            "properties": {
                "name": f"Truth {number}",
                "area_l0_px2": round(float(polygon.area), 1),
            },
        }
        for number, polygon in enumerate(polygons, start=1)
    ]
    return {"type": "FeatureCollection", "source": source.name, "features": features}
