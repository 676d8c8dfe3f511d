"""Ground truth: annotation readers, slide labels, and matching files to slides by stem.

Tumour annotations come as ASAP / Camelyon16 XML (`wsi.formats.asap.read_asap_xml`), QuPath
GeoJSON (`wsi.formats.geojson.read_geojson`), NCRF-style JSON (``{"positive": [{"name",
"vertices"}], "negative": [...]}``, level-0 px, negatives are holes) or Camelyon16
``*_Mask.tif`` rasters (read by `wsi.evaluation.masks.read_mask_tiff` once the
evaluation grid is known). Slide labels may also come from a Camelyon16
``reference.csv`` (``Test_001,Tumor,IDC,Macro``).

An annotation file belongs to the slide whose output folder has its stem: the file
name without its extension (``Tumor_001.xml``), without a ``_Mask`` suffix
(``Tumor_001_Mask.tif``) or, failing both, the part before its first dot
(``demo_slide.truth.xml``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import shapely
from shapely.geometry import MultiPolygon, Polygon

from wsi.errors import AnnotationError, EvaluationError
from wsi.formats.asap import read_asap_xml, subtract_holes
from wsi.formats.geojson import read_geojson

__all__ = [
    "ANNOTATION_SUFFIXES",
    "TruthKind",
    "annotation_keys",
    "find_annotations",
    "match_annotations",
    "read_ncrf_json",
    "read_reference_csv",
    "read_vector_truth",
    "truth_kind",
]

logger = logging.getLogger(__name__)

TruthKind = Literal["asap-xml", "geojson", "ncrf-json", "mask-tiff"]

#: File suffixes read as annotations (compared lower-case).
ANNOTATION_SUFFIXES = frozenset({".xml", ".geojson", ".json", ".tif", ".tiff"})
_MASK_SUFFIXES = ("_Mask", "_mask", "_MASK")


def truth_kind(path: Path) -> TruthKind:
    """The format of an annotation file, from its suffix (and, for ``.json``, its keys).

    Raises
    ------
    AnnotationError
        The suffix is not one of `ANNOTATION_SUFFIXES`, or a ``.json`` file cannot be
        read.

    Examples
    --------
    >>> truth_kind(Path("Tumor_001.xml")), truth_kind(Path("Tumor_001_Mask.tif"))
    ('asap-xml', 'mask-tiff')
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".xml":
        return "asap-xml"
    if suffix == ".geojson":
        return "geojson"
    if suffix in (".tif", ".tiff"):
        return "mask-tiff"
    if suffix == ".json":
        data = _load_json(path)
        return (
            "ncrf-json" if isinstance(data, dict) and "positive" in data else "geojson"
        )
    raise AnnotationError(
        f"{path}: unknown annotation format {suffix!r}; use ASAP .xml, QuPath "
        f".geojson, NCRF .json or a Camelyon16 *_Mask.tif"
    )


def read_vector_truth(path: Path) -> list[Polygon]:
    """Read the tumour polygons of a vector annotation (XML, GeoJSON, NCRF JSON).

    Parameters
    ----------
    path
        An ASAP XML, QuPath GeoJSON or NCRF JSON file.

    Returns
    -------
    list of Polygon
        Valid polygons in level-0 pixels, holes applied (MultiPolygons split).

    Raises
    ------
    AnnotationError
        The file cannot be read, is not of its suffix's format, or is a mask.
    """
    kind = truth_kind(path)
    if kind == "asap-xml":
        return read_asap_xml(path)
    if kind == "ncrf-json":
        return read_ncrf_json(path)
    if kind == "geojson":
        return _split(read_geojson(path))
    raise AnnotationError(f"{path} is a raster mask, not a vector annotation")


def read_ncrf_json(path: Path) -> list[Polygon]:
    """Read an NCRF-style JSON annotation: positive polygons minus negative holes.

    ``{"positive": [{"name": "_0", "vertices": [[x, y], ...]}, ...], "negative":
    [...]}`` in level-0 pixels, as baidu-research/NCRF converts the Camelyon16 XMLs
    (positive: groups ``_0``/``_1``; negative: ``_2``). A negative polygon is
    subtracted from every positive polygon it overlaps, except positives lying wholly
    inside it (islands), like `wsi.formats.asap.read_asap_xml` does with exclusion groups.

    Raises
    ------
    AnnotationError
        The file is not JSON of that shape.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "Tumor_000.json"
    ...     _ = path.write_text(json.dumps({
    ...         "positive": [{"name": "_0", "vertices": [[0, 0], [10, 0], [10, 10], [0, 10]]}],
    ...         "negative": [{"name": "_2", "vertices": [[2, 2], [4, 2], [4, 4], [2, 4]]}]}))
    ...     [p.area for p in read_ncrf_json(path)]
    [96.0]
    """
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("positive"), list):
        raise AnnotationError(
            f"{path} is not NCRF JSON: expected an object with a 'positive' list of "
            f"{{'name', 'vertices'}} polygons"
        )
    positive = _ncrf_polygons(data["positive"], path)
    negative = _ncrf_polygons(data.get("negative") or [], path)
    return subtract_holes(positive, negative)


def read_reference_csv(path: Path) -> dict[str, bool]:
    """Read a Camelyon16 ``reference.csv``: slide stem -> True for a tumour slide.

    Lines are ``Test_001,Tumor,IDC,Macro`` or ``Test_003,Normal,...`` (extra columns
    ignored); a header line is skipped, blank lines too.

    Raises
    ------
    EvaluationError
        The file cannot be read or a line's label is neither ``Tumor`` nor ``Normal``.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except OSError as err:
        raise EvaluationError(
            f"cannot read the reference {path}: {err.strerror or err}; pass a "
            f"Camelyon16 reference.csv (Test_001,Tumor,...) as `reference`"
        ) from err
    labels: dict[str, bool] = {}
    for number, line in enumerate(lines, start=1):
        fields = [field.strip() for field in line.split(",")]
        if not fields[0]:
            continue
        label = fields[1].lower() if len(fields) > 1 else ""
        if label not in ("tumor", "tumour", "normal"):
            if number == 1:
                continue  # a header
            raise EvaluationError(
                f"{path} line {number}: {line!r} is not 'SLIDE,Tumor|Normal,...'; "
                f"fix the line or pass a Camelyon16 reference.csv"
            )
        labels[Path(fields[0]).stem] = label != "normal"
    return labels


def find_annotations(path: Path) -> list[Path]:
    """The annotation files at ``path``: the file itself, or a folder's annotations.

    A folder's files with a suffix in `ANNOTATION_SUFFIXES` are taken, in name order
    (not recursively; hidden files skipped).

    Raises
    ------
    EvaluationError
        ``path`` does not exist, or a folder holds no annotation files.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise EvaluationError(
            f"annotations {path} not found; pass an annotation file or a folder of "
            f"them as `annotations`"
        )
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix.lower() in ANNOTATION_SUFFIXES
    )
    if not files:
        raise EvaluationError(
            f"{path} holds no annotations (.xml, .geojson, .json, *_Mask.tif); pass "
            f"the folder of truth files as `annotations`"
        )
    return files


def annotation_keys(path: Path) -> list[str]:
    """Slide stems an annotation file may belong to, most specific first.

    Examples
    --------
    >>> annotation_keys(Path("Tumor_001_Mask.tif"))
    ['Tumor_001_Mask', 'Tumor_001']
    >>> annotation_keys(Path("demo_slide.truth.xml"))
    ['demo_slide.truth', 'demo_slide']
    """
    stem = Path(path).stem
    keys = [stem]
    for suffix in _MASK_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            keys.append(stem[: -len(suffix)])
    keys.append(stem.split(".")[0])
    return list(dict.fromkeys(key for key in keys if key))


def match_annotations(
    files: Iterable[Path], slide_stems: Sequence[str]
) -> tuple[dict[str, Path], list[tuple[Path, str]]]:
    """Match annotation files to slides by stem (see `annotation_keys`).

    Parameters
    ----------
    files
        Annotation files, from `find_annotations`.
    slide_stems
        The stems of the slides' output folders.

    Returns
    -------
    matched : dict
        Slide stem -> its annotation file. When a slide has several, a vector file is
        preferred to a mask, then the first by name.
    unmatched : list of (Path, str)
        Files that match no slide, each with a one-line message.

    Examples
    --------
    >>> matched, unmatched = match_annotations(
    ...     [Path("a/Tumor_001.xml"), Path("a/Tumor_009.xml")], ["Tumor_001", "Normal_001"])
    >>> matched
    {'Tumor_001': PosixPath('a/Tumor_001.xml')}
    >>> unmatched[0][1].split(";")[0]
    'annotation a/Tumor_009.xml matches no slide in the outputs (Normal_001, Tumor_001)'
    """
    stems = set(slide_stems)
    matched: dict[str, Path] = {}
    unmatched: list[tuple[Path, str]] = []
    for file in files:
        key = next((k for k in annotation_keys(file) if k in stems), None)
        if key is None:
            listed = ", ".join(sorted(stems)[:5]) + (", ..." if len(stems) > 5 else "")
            unmatched.append(
                (
                    file,
                    f"annotation {file} matches no slide in the outputs ({listed}); "
                    f"name it after its slide (<stem>.xml, <stem>_Mask.tif) or run "
                    f"wsi-heatmap on that slide",
                )
            )
            continue
        previous = matched.get(key)
        if previous is None or (_is_mask(previous) and not _is_mask(file)):
            if previous is not None:
                logger.warning("%s: using %s, not %s", key, file, previous)
            matched[key] = file
        else:
            logger.warning("%s: using %s, not %s", key, previous, file)
    return matched, unmatched


def _is_mask(path: Path) -> bool:
    return Path(path).suffix.lower() in (".tif", ".tiff")


def _load_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise AnnotationError(
            f"cannot read annotations {path}: {err}; expected QuPath GeoJSON or NCRF "
            f"JSON"
        ) from err


def _ncrf_polygons(items: list[Any], path: Path) -> list[Polygon]:
    polygons: list[Polygon] = []
    for item in items:
        vertices = item.get("vertices") if isinstance(item, dict) else None
        try:
            points = [(float(x), float(y)) for x, y in vertices or []]
        except (TypeError, ValueError) as err:
            raise AnnotationError(
                f"{path}: polygon {item.get('name') if isinstance(item, dict) else '?'}"
                f" has vertices that are not [x, y] numbers ({err})"
            ) from err
        if len(set(points)) < 3:
            continue
        polygon = Polygon(points)
        polygons.extend(
            [polygon] if polygon.is_valid else _split([shapely.make_valid(polygon)])
        )
    return polygons


def _split(geoms: Iterable[shapely.Geometry]) -> list[Polygon]:
    """The non-empty Polygons of (Multi)Polygons and geometry collections."""
    result: list[Polygon] = []
    for geom in geoms:
        if isinstance(geom, Polygon):
            if not geom.is_empty:
                result.append(geom)
        elif isinstance(geom, MultiPolygon) or hasattr(geom, "geoms"):
            result.extend(_split(geom.geoms))
    return result
