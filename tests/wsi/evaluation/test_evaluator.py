"""evaluate(): reports, labels from a reference, mask truth, and bad inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from shapely.geometry import box, mapping

from wsi.errors import EvaluationError
from wsi.evaluation import EvalConfig, evaluate

SIZE = (8192, 6144)  # level 0, 0.243 um/px: a 256 x 192 evaluation grid
LESION = box(2048, 2048, 4096, 3072)  # 498 x 249 um
TRUTH_XML = """<?xml version="1.0"?>
<ASAP_Annotations><Annotations>
<Annotation Name="A" Type="Polygon" PartOfGroup="_0"><Coordinates>
<Coordinate Order="0" X="2048" Y="2048"/><Coordinate Order="1" X="4096" Y="2048"/>
<Coordinate Order="2" X="4096" Y="3072"/><Coordinate Order="3" X="2048" Y="3072"/>
</Coordinates></Annotation></Annotations></ASAP_Annotations>
"""


def _slide(
    out: Path,
    stem: str,
    detections: str,
    *,
    probability: float | None = 0.5,
    predicted: list[object] | None = None,
) -> None:
    """Write the outputs of one slide as docs/OUTPUTS.md specifies them."""
    folder = out / stem
    folder.mkdir(parents=True)
    (folder / "detections.csv").write_text(detections)
    if probability is not None:
        summary = {
            "slide_probability": probability,
            "slide_mpp": 0.243,
            "slide_size_l0_px": list(SIZE),
        }
        (folder / "summary.json").write_text(json.dumps(summary))
    if predicted is not None:
        features = [
            {
                "type": "Feature",
                "geometry": mapping(g),
                "properties": {"objectType": "annotation"},
            }
            for g in predicted
        ]
        (folder / "tumor.geojson").write_text(
            json.dumps({"type": "FeatureCollection", "features": features})
        )


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, Path]:
    """Two tumour slides, two normal ones; truth as ASAP XML."""
    out, truth = tmp_path / "out", tmp_path / "truth"
    truth.mkdir()
    for stem in ("Tumor_001", "Tumor_002"):
        (truth / f"{stem}.xml").write_text(TRUTH_XML)
    _slide(out, "Tumor_001", "0.9,3000,2500\n0.3,7000,5000\n", probability=0.95,
           predicted=[box(2048, 2048, 3072, 3072)])  # fmt: skip
    _slide(out, "Tumor_002", "0.2,3000,2500\n", probability=0.4, predicted=[])
    _slide(out, "Normal_001", "0.6,1000,1000\n", probability=0.6, predicted=[])
    _slide(out, "Normal_002", "", probability=0.1)
    return out, truth


def test_reports_and_metrics(run: tuple[Path, Path], tmp_path: Path) -> None:
    out, truth = run
    report = evaluate(
        EvalConfig(out_dir=out, annotations=truth, eval_out=tmp_path / "ev")
    )
    assert report.ok
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    for key in (
        "froc",
        "sensitivity_at",
        "slide_auc",
        "slide_auc_ci",
        "dice",
        "n_slides",
        "n_lesions",
    ):
        assert key in metrics
    assert metrics["n_slides"] == 4
    assert metrics["n_lesions"] == 2
    assert list(metrics["sensitivity_at"]) == ["0.25", "0.5", "1", "2", "4", "8"]
    # FPs 0.3 (Tumor_001), 0.6 (Normal_001) over 4 slides; hits 0.9 and 0.2 of 2.
    # Thresholds 0.2 0.3 0.6 0.9: FP/slide .5 .5 .25 0, sensitivity 1 .5 .5 .5
    expected = {"0.25": 0.5, "0.5": 1.0, "1": 1.0, "2": 1.0, "4": 1.0, "8": 1.0}
    assert metrics["sensitivity_at"] == expected
    assert metrics["froc"] == pytest.approx(5.5 / 6)
    # slide AUC: tumour 0.95, 0.4 against normal 0.6, 0.1 -> 3 of 4 pairs
    assert metrics["slide_auc"] == 0.75
    low, high = metrics["slide_auc_ci"]
    assert 0 <= low <= 0.75 <= high <= 1
    # Dice: half the lesion predicted on Tumor_001 (2/3), nothing on Tumor_002 (0)
    assert metrics["dice"] == pytest.approx((2 / 3 + 0) / 2)
    assert (tmp_path / "ev" / "froc.png").stat().st_size > 1000
    assert (tmp_path / "ev" / "roc.png").stat().st_size > 1000
    rows = list(csv.DictReader((tmp_path / "ev" / "slides.csv").open()))
    assert [r["slide"] for r in rows] == [
        "Normal_001",
        "Normal_002",
        "Tumor_001",
        "Tumor_002",
    ]
    assert rows[2]["label"] == "tumor"
    assert rows[2]["n_lesions_detected"] == "1"
    assert rows[2]["n_false_positives"] == "1"
    assert float(rows[2]["dice"]) == pytest.approx(2 / 3)
    assert rows[1]["notes"].startswith("detections.csv is empty")
    assert rows[0]["dice"] == ""


def test_default_report_folder_and_slide_folder_as_out(run: tuple[Path, Path]) -> None:
    out, truth = run
    report = evaluate(
        EvalConfig(out_dir=out / "Tumor_001", annotations=truth / "Tumor_001.xml")
    )
    assert [s.stem for s in report.slides] == ["Tumor_001"]
    assert (
        report.files["metrics_json"]
        == out / "Tumor_001" / "evaluation" / "metrics.json"
    )
    assert report.slide_auc is None  # one class only
    assert "roc_png" not in report.files


def test_bad_inputs_are_reported_and_the_others_go_on(
    run: tuple[Path, Path], tmp_path: Path
) -> None:
    out, truth = run
    (truth / "Tumor_099.xml").write_text(TRUTH_XML)  # matches no slide
    (truth / "Tumor_003.xml").write_text("<svg/>")  # not ASAP
    _slide(out, "Tumor_003", "0.5,10,10\n")
    _slide(out, "Tumor_004", "0.5,10,not-a-number\n")
    report = evaluate(
        EvalConfig(out_dir=out, annotations=truth, eval_out=tmp_path / "ev")
    )
    assert not report.ok
    failures = {f.slide: f.message for f in report.failures}
    assert set(failures) == {"Tumor_099.xml", "Tumor_003", "Tumor_004"}
    assert "Tumor_099.xml matches no slide in the outputs" in failures["Tumor_099.xml"]
    assert "is not ASAP XML" in failures["Tumor_003"]
    assert (
        "line 1: '0.5,10,not-a-number' is not 'probability,X,Y'"
        in failures["Tumor_004"]
    )
    assert all("\n" not in m for m in failures.values())
    assert len(report.slides) == 4  # the four good slides are evaluated
    assert report.froc is not None
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert len(metrics["failures"]) == 3


def test_reference_labels_and_a_slide_without_either(
    run: tuple[Path, Path], tmp_path: Path
) -> None:
    out, truth = run
    reference = tmp_path / "reference.csv"
    reference.write_text(
        "Tumor_001,Tumor,IDC,Macro\nNormal_001,Normal,,\nNormal_002,Tumor,ILC,Micro\n"
    )
    report = evaluate(EvalConfig(out_dir=out, annotations=truth, reference=reference))
    by_stem = {s.stem: s for s in report.slides}
    # Tumor_002 has an annotation: labelled by it. Normal_002 says Tumor without
    # lesion outlines: in the slide AUC, not in the FROC.
    assert by_stem["Normal_002"].is_tumor
    assert not by_stem["Normal_002"].in_froc
    assert any("no lesion annotation" in n for n in by_stem["Normal_002"].notes)
    assert report.ok
    reference.write_text("Tumor_001,Tumor,IDC,Macro\nTumor_002,Tumor,,\n")
    report = evaluate(EvalConfig(out_dir=out, annotations=truth, reference=reference))
    failures = {f.slide: f.message for f in report.failures}
    assert set(failures) == {"Normal_001", "Normal_002"}
    assert failures["Normal_001"].startswith(
        f"Normal_001: no annotation in {truth} and no entry in {reference}"
    )
    assert [s.stem for s in report.slides] == ["Tumor_001", "Tumor_002"]


def test_reference_normal_with_tumour_annotation_is_an_error(
    run: tuple[Path, Path], tmp_path: Path
) -> None:
    out, truth = run
    reference = tmp_path / "reference.csv"
    reference.write_text(
        "Tumor_001,Normal,,\nTumor_002,Tumor,,\nNormal_001,Normal,,\nNormal_002,Normal,,\n"
    )
    report = evaluate(EvalConfig(out_dir=out, annotations=truth, reference=reference))
    assert [f.slide for f in report.failures] == ["Tumor_001"]
    assert "the reference says Normal" in report.failures[0].message


def test_excluded_slides_stay_out_of_the_froc(tmp_path: Path) -> None:
    out, truth = tmp_path / "out", tmp_path / "truth"
    truth.mkdir()
    for stem in ("Test_001", "Test_049"):
        (truth / f"{stem}.xml").write_text(TRUTH_XML)
    _slide(out, "Test_001", "0.9,3000,2500\n")
    _slide(out, "Test_049", "0.8,7000,5000\n")  # misses its lesion
    default = evaluate(EvalConfig(out_dir=out, annotations=truth, plots=False))
    assert default.froc is not None
    assert default.froc.froc == 1.0
    assert default.n_lesions == 1
    included = evaluate(
        EvalConfig(out_dir=out, annotations=truth, plots=False, include_excluded=True)
    )
    assert included.n_lesions == 2
    assert included.froc is not None
    assert included.froc.froc == 0.5


def test_mask_tiff_truth_gives_the_same_lesions(tmp_path: Path) -> None:
    out, truth = tmp_path / "out", tmp_path / "truth"
    truth.mkdir()
    level0 = np.zeros(SIZE[::-1], np.uint8)
    level0[2048:3072, 2048:4096] = 255
    with tifffile.TiffWriter(truth / "Tumor_001_Mask.tif") as tif:
        tif.write(level0, tile=(256, 256))
        for k in (2, 4, 8, 16, 32):
            tif.write(
                level0[k // 2 :: k, k // 2 :: k].copy(), tile=(16, 16), subfiletype=1
            )
    _slide(
        out,
        "Tumor_001",
        "0.9,3000,2500\n0.3,7000,5000\n",
        predicted=[box(2048, 2048, 3072, 3072)],
    )
    (out / "Tumor_001" / "summary.json").unlink()  # size from the mask, mpp assumed
    report = evaluate(EvalConfig(out_dir=out, annotations=truth, plots=False))
    (slide,) = report.slides
    assert (slide.n_lesions, slide.n_detected, slide.n_false_positives) == (1, 1, 1)
    assert slide.dice == pytest.approx(2 / 3)
    assert slide.truth_area_um2 == pytest.approx(2048 * 1024 * 0.243**2)
    assert slide.slide_probability is None
    assert any("assumed 0.243" in note for note in slide.notes)


def test_missing_inputs_are_evaluation_errors(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="is not a folder"):
        evaluate(EvalConfig(out_dir=tmp_path / "none", annotations=tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluationError, match="holds no slide outputs"):
        evaluate(EvalConfig(out_dir=tmp_path / "empty", annotations=tmp_path))


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="itc_major_axis_um must be a positive number"):
        EvalConfig(out_dir=tmp_path, annotations=tmp_path, itc_major_axis_um=0)
    with pytest.raises(ValueError, match="confidence"):
        EvalConfig(out_dir=tmp_path, annotations=tmp_path, confidence=1.0)
