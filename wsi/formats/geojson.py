"""Tumour regions as a QuPath-importable GeoJSON FeatureCollection (level-0 pixels).

Each region is one Feature, shaped as QuPath (0.4 and later) writes annotations::

    {"type": "Feature", "id": "<uuid>", "geometry": {"type": "Polygon", ...},
     "properties": {"objectType": "annotation", "name": "Tumor 1",
                    "classification": {"name": "Tumor", "color": [200, 0, 0]},
                    "measurements": {"Max probability": 0.97, ...}}}

Coordinates are slide level-0 pixels (QuPath's own frame: origin at the top-left of the
full-resolution image, no y flip), rounded to 1/100 px; exteriors are counter-clockwise
and holes clockwise in those numbers (RFC 7946's right-hand rule). Ids are UUIDs derived
from the geometry, so the same heatmap gives the same file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon, shape

from wsi.errors import AnnotationError
from wsi.heatmap.colormap import TUMOR_RGB
from wsi.regions.polygons import TumorRegion
from wsi.store.atomic import atomic_output

__all__ = ["TUMOR_CLASS", "read_geojson", "regions_to_geojson", "write_geojson"]

logger = logging.getLogger(__name__)

#: The QuPath classification (and ASAP group) of exported regions.
TUMOR_CLASS = "Tumor"
_GRID_L0 = 0.01
_ID_NAMESPACE = uuid.UUID("5b0f5d0e-7c1a-4d7e-9a56-6d1f0e3c2a41")


def regions_to_geojson(
    regions: Sequence[TumorRegion], *, slide_mpp: float
) -> dict[str, Any]:
    """Build the FeatureCollection of tumour regions (pure; see `write_geojson`).

    Parameters
    ----------
    regions
        From `heatmap_regions`; polygons in level-0 pixels.
    slide_mpp
        Level-0 microns per pixel, for the perimeter measurement.

    Returns
    -------
    dict
        A GeoJSON FeatureCollection; measurements are ``Max probability``,
        ``Mean probability``, ``Area µm^2``, ``Perimeter µm``, ``Max diameter mm``
        (the longest distance across the region, `wsi.regions.lesion_size`) and
        ``Heatmap cells``.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> region = TumorRegion(polygon=box(0, 0, 100, 50), max_probability=0.9,
    ...                      mean_probability=0.7, area_um2=295.25, n_cells=2,
    ...                      l0_peak_xy=(25, 25), max_diameter_um=27.2)
    >>> feature = regions_to_geojson([region], slide_mpp=0.243)["features"][0]
    >>> feature["geometry"]["coordinates"]
    [[[0.0, 0.0], [100.0, 0.0], [100.0, 50.0], [0.0, 50.0], [0.0, 0.0]]]
    >>> feature["properties"]["classification"]
    {'name': 'Tumor', 'color': [200, 0, 0]}
    """
    if not slide_mpp > 0:
        raise ValueError(f"slide_mpp must be positive, got {slide_mpp}")
    features = []
    for number, region in enumerate(regions, start=1):
        geom = _export_geometry(region.polygon)
        digest = hashlib.sha256(shapely.to_wkb(geom)).hexdigest()
        features.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid5(_ID_NAMESPACE, digest)),
                "geometry": json.loads(shapely.to_geojson(geom)),
                "properties": {
                    "objectType": "annotation",
                    "name": region.name(number),
                    "classification": {"name": TUMOR_CLASS, "color": list(TUMOR_RGB)},
                    "measurements": {
                        "Max probability": round(region.max_probability, 6),
                        "Mean probability": round(region.mean_probability, 6),
                        "Area µm^2": round(region.area_um2, 3),
                        "Perimeter µm": round(geom.length * slide_mpp, 3),
                        "Max diameter mm": round(region.max_diameter_um / 1000, 4),
                        "Heatmap cells": region.n_cells,
                    },
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def write_geojson(
    regions: Sequence[TumorRegion], path: Path, *, slide_mpp: float
) -> None:
    """Write tumour regions as a QuPath FeatureCollection, one Feature per line.

    Parameters
    ----------
    regions
        From `heatmap_regions`.
    path
        The ``.geojson`` file (parent folders are created).
    slide_mpp
        Level-0 microns per pixel.

    Raises
    ------
    OutputError
        If the file cannot be written.
    """
    collection = regions_to_geojson(regions, slide_mpp=slide_mpp)
    lines = [
        json.dumps(feature, ensure_ascii=False, separators=(",", ":"))
        for feature in collection["features"]
    ]
    text = '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n"
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    logger.info("wrote %s: %d regions", path, len(lines))


def read_geojson(path: Path) -> list[Polygon | MultiPolygon]:
    """Read the (Multi)Polygons of a GeoJSON FeatureCollection or list of Features.

    Accepts what `write_geojson` and QuPath write (a FeatureCollection, a list of
    Features, or one Feature); other geometry types are skipped.

    Raises
    ------
    AnnotationError
        If the file cannot be read or is not GeoJSON.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise AnnotationError(
            f"cannot read GeoJSON {path}: {err}; expected a FeatureCollection such as "
            f"tumor.geojson or a QuPath export"
        ) from err
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features", [])
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    elif isinstance(data, list):
        features = data
    else:
        raise AnnotationError(
            f"{path} is not a GeoJSON FeatureCollection or Feature list; export "
            f"annotations from QuPath with 'Export as GeoJSON'"
        )
    geometries: list[Polygon | MultiPolygon] = []
    for feature in features:
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        if not geometry or geometry.get("type") not in ("Polygon", "MultiPolygon"):
            continue
        try:
            geom = shape(geometry)
        except (ValueError, TypeError, shapely.errors.ShapelyError) as err:
            raise AnnotationError(f"{path}: bad geometry in a feature: {err}") from err
        if isinstance(geom, Polygon | MultiPolygon):
            geometries.append(geom)
    return geometries


def _export_geometry(geom: Polygon | MultiPolygon) -> Polygon | MultiPolygon:
    """Round to 1/100 px (staying valid) and orient rings by the right-hand rule."""
    rounded = shapely.set_precision(geom, _GRID_L0)
    if not isinstance(rounded, Polygon | MultiPolygon) or rounded.is_empty:
        rounded = geom
    oriented: Polygon | MultiPolygon = shapely.orient_polygons(rounded)
    return oriented
