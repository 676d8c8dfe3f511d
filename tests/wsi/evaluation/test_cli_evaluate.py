"""``wsi-heatmap evaluate``: wiring, the terminal table, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from shapely.geometry import box, mapping

from wsi.cli import cli, main

TRUTH = """<?xml version="1.0"?>
<ASAP_Annotations><Annotations>
<Annotation Name="A" Type="Polygon" PartOfGroup="Tumor"><Coordinates>
<Coordinate Order="0" X="2048" Y="2048"/><Coordinate Order="1" X="4096" Y="2048"/>
<Coordinate Order="2" X="4096" Y="3072"/><Coordinate Order="3" X="2048" Y="3072"/>
</Coordinates></Annotation></Annotations></ASAP_Annotations>
"""


def _outputs(out: Path, stem: str, detections: str, probability: float) -> None:
    folder = out / stem
    folder.mkdir(parents=True)
    (folder / "detections.csv").write_text(detections)
    (folder / "summary.json").write_text(
        json.dumps(
            {
                "slide_probability": probability,
                "slide_mpp": 0.243,
                "slide_size_l0_px": [8192, 6144],
            }
        )
    )
    feature = {
        "type": "Feature",
        "geometry": mapping(box(2048, 2048, 4096, 3072)),
        "properties": {},
    }
    (folder / "tumor.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": [feature]})
    )


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, Path]:
    out, truth = tmp_path / "out", tmp_path / "truth"
    truth.mkdir()
    (truth / "Tumor_001.xml").write_text(TRUTH)
    _outputs(out, "Tumor_001", "0.9,3000,2500\n0.2,7000,5000\n", 0.9)
    _outputs(out, "Normal_001", "0.4,1000,1000\n", 0.3)
    return out, truth


def test_evaluate_prints_a_table_and_writes_reports(
    run: tuple[Path, Path], tmp_path: Path
) -> None:
    out, truth = run
    ev = tmp_path / "ev"
    result = CliRunner().invoke(
        cli, ["evaluate", str(out), "--annotations", str(truth), "--eval-out", str(ev)]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines[0].split() == [
        "slide",
        "label",
        "slide",
        "prob",
        "lesions",
        "hit",
        "ITC",
        "FP",
        "Dice",
    ]
    assert lines[1].split() == ["Normal_001", "normal", "0.300", "-", "0", "1", "-"]
    assert lines[2].split() == [
        "Tumor_001",
        "tumour",
        "0.900",
        "1/1",
        "0",
        "1",
        "1.000",
    ]
    assert any(line.startswith("FROC 1.000 (1 lesion(s), 2 slide(s)") for line in lines)
    assert any(
        "95% CI 1.000-1.000" in line for line in lines if line.startswith("FROC")
    )
    assert "slide AUC 1.000 (95% CI 1.000-1.000)" in result.output
    assert f"reports: {ev}" in result.output
    assert sorted(p.name for p in ev.iterdir()) == [
        "froc.png",
        "metrics.json",
        "roc.png",
        "slides.csv",
    ]


def test_a_failed_slide_exits_1_and_the_others_are_reported(
    run: tuple[Path, Path],
) -> None:
    out, truth = run
    (truth / "Tumor_777.xml").write_text(TRUTH)
    result = CliRunner().invoke(
        cli, ["evaluate", str(out), "--annotations", str(truth)]
    )
    assert result.exit_code == 1
    assert "Tumor_001" in result.output
    assert "error: Tumor_777.xml: annotation" in result.output
    assert (out / "evaluation" / "metrics.json").is_file()


def test_include_excluded_and_reference_options_reach_the_config(
    run: tuple[Path, Path], tmp_path: Path
) -> None:
    out, truth = run
    reference = tmp_path / "reference.csv"
    reference.write_text("Tumor_001,Tumor,IDC,Macro\nNormal_001,Normal,,\n")
    result = CliRunner().invoke(
        cli,
        [
            "evaluate",
            str(out),
            "--annotations",
            str(truth),
            "--reference",
            str(reference),
            "--include-excluded",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert metrics["settings"]["excluded_slides"] == []
    assert metrics["reference"] == str(reference)


def test_unusable_outputs_are_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(tmp_path / "empty"), "--annotations", str(tmp_path)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: {tmp_path / 'empty'} holds no slide outputs")


def test_missing_annotations_is_a_usage_error(
    run: tuple[Path, Path], tmp_path: Path
) -> None:
    out, _ = run
    result = CliRunner().invoke(
        cli, ["evaluate", str(out), "--annotations", str(tmp_path / "x")]
    )
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_help_lists_evaluate_and_its_options() -> None:
    assert "evaluate" in CliRunner().invoke(cli, ["--help"]).output
    result = CliRunner().invoke(cli, ["evaluate", "--help"])
    assert result.exit_code == 0
    for option in ("--annotations", "--reference", "--eval-out", "--include-excluded"):
        assert option in result.output
