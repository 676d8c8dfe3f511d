"""The ground-truth layer of the viewer: annotation files matched to slides by stem.

``wsi-heatmap view OUT --annotations PATH`` draws a truth outline beside the
prediction. ``PATH`` is a folder of truth files named after the slides
(``Tumor_001.xml`` for ``Tumor_001.tif``, as Camelyon16 ships them) or one file. The
readers and the matching rules are those of ``wsi-heatmap evaluate``
(`wsi.evaluation.truth`): ASAP / Camelyon XML, QuPath GeoJSON and NCRF JSON; a single
file whose name matches no slide is used for the only slide of the output folder.
This module is the viewer's one import of them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shapely.geometry import Polygon, mapping

from wsi.errors import WsiError
from wsi.evaluation.truth import find_annotations, match_annotations, read_vector_truth

__all__ = ["find_truth_file", "read_truth_polygons", "truth_feature_collection"]

logger = logging.getLogger(__name__)


def read_truth_polygons(path: Path) -> list[Polygon]:
    """Read the tumour polygons of a truth file (level-0 pixels, holes applied).

    Raises
    ------
    AnnotationError
        If the file cannot be read, or is a raster mask (not drawn by the viewer).
    """
    return read_vector_truth(Path(path))


def find_truth_file(
    annotations: Path, stem: str, *, all_stems: Sequence[str] = ()
) -> Path | None:
    """The truth file of slide ``stem`` under ``annotations``, or None.

    Parameters
    ----------
    annotations
        A folder of truth files named after the slides, or one file.
    stem
        The slide's stem.
    all_stems
        Every slide of the output folder (a file may match any of them).
    """
    stems = list(dict.fromkeys([*all_stems, stem]))
    try:
        files = find_annotations(Path(annotations))
    except WsiError as err:  # missing, or a folder without annotations
        logger.debug("%s", err)
        return None
    matched, unmatched = match_annotations(files, stems)
    if stem in matched:
        return matched[stem]
    if Path(annotations).is_file() and unmatched and list(all_stems) == [stem]:
        return Path(annotations)  # one file, one slide
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
