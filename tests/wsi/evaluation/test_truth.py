"""Annotation readers, slide labels and matching truth files to slides by stem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import shapely
from shapely.geometry import Polygon

from wsi.errors import AnnotationError, EvaluationError
from wsi.evaluation.truth import (
    annotation_keys,
    find_annotations,
    match_annotations,
    read_ncrf_json,
    read_reference_csv,
    read_vector_truth,
    truth_kind,
)

ANNOTATIONS = Path(__file__).parents[2] / "fixtures" / "annotations"


def _ncrf_file(tmp_path: Path, slide: str) -> Path:
    """Write one lesion of the fixture as an NCRF JSON file, as NCRF publishes them."""
    lesions = json.loads((ANNOTATIONS / "ncrf_lesions.json").read_text())["lesions"]
    lesion = next(item for item in lesions if item["slide"] == slide)
    path = tmp_path / f"{slide}.json"
    path.write_text(
        json.dumps({"positive": lesion["positive"], "negative": lesion["negative"]})
    )
    return path


def test_ncrf_json_applies_the_exclusion_holes(tmp_path: Path) -> None:
    path = _ncrf_file(tmp_path, "Tumor_014")
    polygons = read_ncrf_json(path)
    raw = json.loads(path.read_text())
    outline = shapely.make_valid(Polygon(raw["positive"][0]["vertices"]))
    holes = [shapely.make_valid(Polygon(n["vertices"])) for n in raw["negative"]]
    assert len(holes) == 6
    assert all(p.is_valid for p in polygons)
    area = sum(p.area for p in polygons)
    expected = outline.difference(shapely.union_all(holes)).area
    assert area == pytest.approx(expected)
    assert area < outline.area
    assert truth_kind(path) == "ncrf-json"


def test_asap_xml_and_geojson_read_as_polygons(tmp_path: Path) -> None:
    xml = read_vector_truth(ANNOTATIONS / "patient_004_node_4.xml")
    assert len(xml) == 3
    geojson = tmp_path / "Tumor_001.geojson"
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "MultiPolygon",
         "coordinates": [[[[0, 0], [10, 0], [10, 10], [0, 0]]],
                         [[[20, 20], [30, 20], [30, 30], [20, 20]]]]}}]}))  # fmt: skip
    assert [p.area for p in read_vector_truth(geojson)] == [50.0, 50.0]


def test_xml_that_is_not_asap_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "Tumor_001.xml"
    path.write_text("<?xml version='1.0'?><svg><path d='M0 0'/></svg>")
    with pytest.raises(AnnotationError) as err:
        read_vector_truth(path)
    assert str(err.value) == (
        f"{path} is not ASAP XML: its root element is <svg>, expected <ASAP_Annotations>"
    )


def test_unknown_annotation_format(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=r"Tumor_001.png: unknown annotation"):
        truth_kind(tmp_path / "Tumor_001.png")


def test_annotation_keys_and_matching_by_stem(tmp_path: Path) -> None:
    assert annotation_keys(Path("Tumor_001.xml")) == ["Tumor_001"]
    assert annotation_keys(Path("Test_001_Mask.tif"))[-1] == "Test_001"
    files = [
        tmp_path / "Tumor_001.xml",
        tmp_path / "Tumor_001_Mask.tif",
        tmp_path / "Tumor_002_Mask.tif",
        tmp_path / "demo_slide.truth.xml",
        tmp_path / "Tumor_099.xml",
    ]
    matched, unmatched = match_annotations(
        files, ["Tumor_001", "Tumor_002", "demo_slide", "Normal_001"]
    )
    assert matched == {
        "Tumor_001": tmp_path / "Tumor_001.xml",  # a vector file wins over a mask
        "Tumor_002": tmp_path / "Tumor_002_Mask.tif",
        "demo_slide": tmp_path / "demo_slide.truth.xml",
    }
    assert [file.name for file, _ in unmatched] == ["Tumor_099.xml"]
    message = unmatched[0][1]
    assert "Tumor_099.xml matches no slide in the outputs" in message
    assert "name it after its slide" in message


def test_find_annotations_in_a_folder(tmp_path: Path) -> None:
    shutil.copy(ANNOTATIONS / "patient_004_node_4.xml", tmp_path)
    (tmp_path / "README.md").write_text("notes")
    (tmp_path / ".hidden.xml").write_text("")
    assert find_annotations(tmp_path) == [tmp_path / "patient_004_node_4.xml"]
    assert find_annotations(tmp_path / "patient_004_node_4.xml") == [
        tmp_path / "patient_004_node_4.xml"
    ]
    with pytest.raises(EvaluationError, match="missing not found"):
        find_annotations(tmp_path / "missing")
    (tmp_path / "patient_004_node_4.xml").unlink()
    with pytest.raises(EvaluationError, match="holds no annotations"):
        find_annotations(tmp_path)


def test_reference_csv(tmp_path: Path) -> None:
    path = tmp_path / "reference.csv"
    path.write_text(
        "image,type,subtype,size\nTest_001,Tumor,IDC,Macro\n\nTest_003,Normal,DCIS,None\n"
    )
    assert read_reference_csv(path) == {"Test_001": True, "Test_003": False}
    path.write_text("Test_001,Tumor,IDC,Macro\nTest_002,Maybe,,\n")
    with pytest.raises(
        EvaluationError, match=r"reference.csv line 2: 'Test_002,Maybe,,'"
    ):
        read_reference_csv(path)
    with pytest.raises(EvaluationError, match="cannot read the reference"):
        read_reference_csv(tmp_path / "nope.csv")
