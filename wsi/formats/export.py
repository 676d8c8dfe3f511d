"""Exports of a heatmap: tumour polygons (GeoJSON, ASAP XML) and Camelyon16 detections.

The public names of `wsi.regions.polygons`, `wsi.formats.geojson` and `wsi.formats.asap` are re-exported here;
this module adds the Camelyon16 lesion-level CSV. Formats are described in
``docs/OUTPUTS.md``.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from wsi.errors import AnnotationError
from wsi.formats.asap import read_asap_xml, regions_to_asap_xml, write_asap_xml
from wsi.formats.geojson import read_geojson, regions_to_geojson, write_geojson
from wsi.regions.polygons import PolygonParams, TumorRegion, detections, heatmap_regions
from wsi.store.atomic import atomic_output

__all__ = [
    "PolygonParams",
    "TumorRegion",
    "detections",
    "detections_to_csv",
    "heatmap_regions",
    "read_asap_xml",
    "read_detections_csv",
    "read_geojson",
    "regions_to_asap_xml",
    "regions_to_geojson",
    "write_asap_xml",
    "write_detections_csv",
    "write_geojson",
]

logger = logging.getLogger(__name__)


def detections_to_csv(dets: Sequence[tuple[float, int, int]]) -> str:
    """Camelyon16 lesion-level CSV text: one ``probability,X,Y`` line per candidate.

    No header (the official ``Evaluation_FROC.py`` parses every line); X and Y are
    integer level-0 pixels; probabilities have 6 decimals.

    Raises
    ------
    ValueError
        If a probability is not in ``[0, 1]`` or a coordinate is not a whole number
        >= 0.

    Examples
    --------
    >>> print(detections_to_csv([(0.875, 704, 576), (0.5, 10, 20)]), end="")
    0.875000,704,576
    0.500000,10,20
    """
    lines = []
    for probability, x, y in dets:
        if not (math.isfinite(probability) and 0.0 <= probability <= 1.0):
            raise ValueError(
                f"detection probability must be in [0, 1], got {probability}"
            )
        if int(x) != x or int(y) != y or x < 0 or y < 0:
            raise ValueError(
                f"detection X, Y must be whole level-0 pixels >= 0, got {x}, {y}"
            )
        lines.append(f"{probability:.6f},{int(x)},{int(y)}\n")
    return "".join(lines)


def write_detections_csv(dets: Sequence[tuple[float, int, int]], path: Path) -> None:
    """Write Camelyon16 lesion candidates (see `detections_to_csv`) to ``path``.

    Raises
    ------
    OutputError
        If the file cannot be written.
    """
    text = detections_to_csv(dets)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="ascii")
    logger.info("wrote %s: %d detections", path, len(dets))


def read_detections_csv(path: Path) -> list[tuple[float, int, int]]:
    """Read a Camelyon16 ``probability,X,Y`` file (blank lines and a header skipped).

    Raises
    ------
    AnnotationError
        If the file cannot be read or a line is not ``probability,X,Y``.
    """
    try:
        with Path(path).open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as err:
        raise AnnotationError(f"cannot read detections {path}: {err}") from err
    dets = []
    for number, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip():
            continue
        try:
            dets.append((float(row[0]), int(row[1]), int(row[2])))
        except (ValueError, IndexError) as err:
            if number == 1 and not row[0].strip()[:1].isdigit():
                continue  # a header line
            raise AnnotationError(
                f"{path}, line {number}: expected 'probability,X,Y' with integer X and "
                f"Y, got {','.join(row)!r}"
            ) from err
    return dets
