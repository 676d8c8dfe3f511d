"""ASAP / Camelyon XML: write tumour regions, read them back (and truth files).

The schema is the one ASAP writes and Camelyon16/17 distribute (for example Camelyon17's
``patient_004_node_4.xml``)::

    <?xml version="1.0"?>
    <ASAP_Annotations>
        <Annotations>
            <Annotation Name="Annotation 0" Type="Polygon" PartOfGroup="Tumor"
                        Color="#F4FA58">
                <Coordinates>
                    <Coordinate Order="0" X="12711.2998" Y="88778.1016" />
                    ...
        <AnnotationGroups>
            <Group Name="Tumor" PartOfGroup="None" Color="#FF0000">
                <Attributes />

Coordinates are level-0 pixels. ASAP polygons have no holes, so (as in Camelyon16,
whose group ``_2`` marks non-tumour areas inside tumour) every hole is written as its
own polygon in the group ``Exclusion``; a reader subtracts an exclusion polygon from the
tumour polygons that contain it. Each part of a MultiPolygon is its own ``Tumor``
annotation.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

from wsi.errors import AnnotationError
from wsi.regions.polygons import TumorRegion
from wsi.store.atomic import atomic_output

__all__ = [
    "EXCLUSION_GROUP",
    "EXCLUSION_GROUPS",
    "TUMOR_GROUP",
    "read_asap_xml",
    "regions_to_asap_xml",
    "subtract_holes",
    "write_asap_xml",
]

logger = logging.getLogger(__name__)

#: Group of the tumour polygons we write.
TUMOR_GROUP = "Tumor"
#: Group of the holes we write.
EXCLUSION_GROUP = "Exclusion"
#: Groups read as holes: ours and Camelyon16's ``_2`` (compared case-insensitively).
EXCLUSION_GROUPS = frozenset({"exclusion", "_2"})
_COLORS = {TUMOR_GROUP: ("#F4FA58", "#FF0000"), EXCLUSION_GROUP: ("#64FE2E", "#00FF00")}
_AREA_TYPES = frozenset({"polygon", "spline", "rectangle"})


def regions_to_asap_xml(regions: Sequence[TumorRegion]) -> str:
    """ASAP XML text of tumour regions (pure; see `write_asap_xml`).

    Examples
    --------
    >>> from shapely.geometry import box
    >>> region = TumorRegion(polygon=box(0, 0, 10.5, 20), max_probability=0.9,
    ...                      mean_probability=0.8, area_um2=1.0, n_cells=1,
    ...                      l0_peak_xy=(5, 10), max_diameter_um=5.6)
    >>> regions_to_asap_xml([region]).splitlines()[5].strip()
    '<Coordinate Order="0" X="10.5" Y="0" />'
    """
    root = ET.Element("ASAP_Annotations")
    annotations = ET.SubElement(root, "Annotations")
    count = 0
    for number, region in enumerate(regions, start=1):
        geom = region.polygon
        parts = geom.geoms if isinstance(geom, MultiPolygon) else [geom]
        for part in parts:
            rings = [(TUMOR_GROUP, part.exterior)]
            rings += [(EXCLUSION_GROUP, ring) for ring in part.interiors]
            for group, ring in rings:
                # Outlines carry the region's name (size class, diameter) for ASAP.
                label = f" {region.name(number)}" if group == TUMOR_GROUP else ""
                _annotation(
                    annotations, f"Annotation {count}{label}", group, ring.coords
                )
                count += 1
    groups = ET.SubElement(root, "AnnotationGroups")
    for name in (TUMOR_GROUP, EXCLUSION_GROUP):
        element = ET.SubElement(
            groups, "Group", Name=name, PartOfGroup="None", Color=_COLORS[name][1]
        )
        ET.SubElement(element, "Attributes")
    ET.indent(root, space="\t")
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_asap_xml(regions: Sequence[TumorRegion], path: Path) -> None:
    """Write tumour regions as ASAP XML: group ``Tumor``, holes in ``Exclusion``.

    Parameters
    ----------
    regions
        From `heatmap_regions`; polygons in level-0 pixels.
    path
        The ``.xml`` file (parent folders are created).

    Raises
    ------
    OutputError
        If the file cannot be written.
    """
    text = regions_to_asap_xml(regions)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    logger.info("wrote %s: %d regions", path, len(regions))


def read_asap_xml(path: Path) -> list[Polygon]:
    """Read the tumour polygons of an ASAP / Camelyon XML file, holes applied.

    Annotations in an exclusion group (`EXCLUSION_GROUPS`: ``Exclusion``, or
    Camelyon16's ``_2``) are holes: each is subtracted from every tumour polygon that
    contains part of it, except polygons lying wholly inside it (tumour islands in a
    hole). Every other group (``Tumor``, ``_0``, ``_1``, ``metastases`` ...) is tumour.
    Polygon, Spline (its control points) and Rectangle annotations are read; points
    and dots are skipped. Self-intersecting hand-drawn outlines are repaired with
    ``shapely.make_valid``.

    Parameters
    ----------
    path
        An ASAP XML file, e.g. ``tumor.xml`` or a Camelyon16/17 truth file.

    Returns
    -------
    list of Polygon
        Tumour polygons in level-0 pixels, in file order (a polygon that a repair or a
        hole splits gives several).

    Raises
    ------
    AnnotationError
        If the file cannot be read or is not ASAP XML.
    """
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise AnnotationError(
            f"cannot read annotations {path}: {err}; expected an ASAP XML file "
            f"(<ASAP_Annotations>) such as tumor.xml or a Camelyon16 truth file"
        ) from err
    if root.tag != "ASAP_Annotations":
        raise AnnotationError(
            f"{path} is not ASAP XML: its root element is <{root.tag}>, expected "
            f"<ASAP_Annotations>"
        )
    tumour: list[Polygon] = []
    holes: list[Polygon] = []
    for annotation in root.iter("Annotation"):
        kind = annotation.get("Type", "Polygon").lower()
        name = annotation.get("Name", "?")
        if kind not in _AREA_TYPES:
            logger.debug("%s: skipping %s annotation %r", path, kind, name)
            continue
        polygons = _annotation_polygons(annotation, path)
        group = annotation.get("PartOfGroup", "").strip().lower()
        (holes if group in EXCLUSION_GROUPS else tumour).extend(polygons)
    return subtract_holes(tumour, holes)


def _annotation(parent: ET.Element, name: str, group: str, coords: object) -> None:
    """Append one ``<Annotation>`` (the ring's closing point left out)."""
    element = ET.SubElement(
        parent,
        "Annotation",
        Name=name,
        Type="Polygon",
        PartOfGroup=group,
        Color=_COLORS[group][0],
    )
    coordinates = ET.SubElement(element, "Coordinates")
    xy = np.asarray(coords, dtype=np.float64)[:-1]
    for order, (x, y) in enumerate(xy):
        ET.SubElement(
            coordinates, "Coordinate", Order=str(order), X=_number(x), Y=_number(y)
        )


def _number(value: float) -> str:
    """At most 4 decimals, no trailing zeros, as ASAP writes them.

    >>> _number(12711.29984), _number(13357.0)
    ('12711.2998', '13357')
    """
    return np.format_float_positional(round(float(value), 4), precision=4, trim="-")


def _annotation_polygons(annotation: ET.Element, path: Path) -> list[Polygon]:
    """Return the valid polygon(s) of one annotation (none under 3 points)."""
    points: list[tuple[int, float, float]] = []
    for coordinate in annotation.iter("Coordinate"):
        try:
            points.append(
                (
                    int(float(coordinate.get("Order", len(points)))),
                    float(coordinate.get("X", "")),
                    float(coordinate.get("Y", "")),
                )
            )
        except ValueError as err:
            raise AnnotationError(
                f"{path}: annotation {annotation.get('Name')!r} has a coordinate "
                f"without numeric Order, X and Y ({err})"
            ) from err
    points.sort(key=lambda point: point[0])
    xy = [(x, y) for _, x, y in points]
    if len({*xy}) < 3:
        logger.debug(
            "%s: skipping %r with under 3 points", path, annotation.get("Name")
        )
        return []
    polygon = Polygon(xy)
    if polygon.is_valid:
        return [polygon]
    logger.debug(
        "%s: repairing %r (%s)",
        path,
        annotation.get("Name"),
        shapely.is_valid_reason(polygon),
    )
    return _polygons_of(shapely.make_valid(polygon))


def subtract_holes(tumour: list[Polygon], holes: list[Polygon]) -> list[Polygon]:
    """Subtract each hole from the tumour polygons it overlaps but does not contain.

    Shared by every reader of annotations with exclusion polygons (ASAP XML groups
    ``_2``/``Exclusion``, NCRF JSON ``negative``).
    """
    if not holes:
        return tumour
    tree = shapely.STRtree(holes)
    result: list[Polygon] = []
    for polygon in tumour:
        overlapping = [
            holes[i]
            for i in tree.query(polygon, predicate="intersects")
            if not polygon.within(holes[i])
        ]
        if overlapping:
            result.extend(
                _polygons_of(polygon.difference(shapely.union_all(overlapping)))
            )
        else:
            result.append(polygon)
    return result


def _polygons_of(geom: shapely.Geometry) -> list[Polygon]:
    """Return the non-empty polygons of a (Multi)Polygon or GeometryCollection."""
    if isinstance(geom, Polygon):
        return [geom] if not geom.is_empty else []
    return [part for g in getattr(geom, "geoms", []) for part in _polygons_of(g)]
