"""Lesion size classes, pN stages and their CSV files (Camelyon17)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import cohen_kappa_score

from tests.wsi.heatmap_cases import make_grid
from wsi.cli import cli, main
from wsi.errors import WsiError
from wsi.evaluation.staging import quadratic_kappa, staging_report
from wsi.regions.lesion_class import (
    NodeClass,
    StagingParams,
    node_class,
    size_class,
    staging_lesions,
)
from wsi.staging.pn_stage import (
    PatientStage,
    PnStage,
    group_patients,
    patient_stage,
    read_patient_csv,
    read_stage_labels,
    write_stages_csv,
)
from wsi.staging.stage_run import read_node_results, stage_run

N, ITC, MI, MA = NodeClass.NEGATIVE, NodeClass.ITC, NodeClass.MICRO, NodeClass.MACRO
#: make_grid's cells: 96 px at 0.972 um/px = 93.3 um; label windows 62.2 um apart.
CELL_UM = 96 * 0.972
GAP_UM = (96 - 32) * 0.972


def _grid(rows: int = 60, cols: int = 60):  # type: ignore[no-untyped-def]
    return make_grid(stride_px=96, mpp=0.243, rows=rows, cols=cols)


def _heatmap(grid, cells: list[tuple[int, int]], value: float = 0.99) -> np.ndarray:  # type: ignore[no-untyped-def]
    heatmap = np.full(grid.shape, 0.05, np.float32)
    for r, c in cells:
        heatmap[r, c] = value
    return heatmap


# --- size classes -------------------------------------------------------------


def test_class_limits_are_camelyon17s() -> None:
    assert size_class(0.19) is ITC
    assert size_class(0.2) is ITC
    assert size_class(0.21) is MI
    assert size_class(2.0) is MI
    assert size_class(2.1) is MA
    with pytest.raises(ValueError, match="diameter_mm"):
        size_class(float("nan"))


def test_a_line_of_cells_measures_its_length_plus_the_window_gap() -> None:
    """Cells 0.19 mm and 0.21 mm apart fall either side of the ITC limit."""
    grid = _grid()
    every = StagingParams(min_confident_area_um2=0)  # the measure, whatever counts
    two = staging_lesions(_heatmap(grid, [(10, 10), (10, 11)]), grid=grid, params=every)
    assert len(two) == 1
    assert two[0].diameter_mm * 1000 == pytest.approx(CELL_UM + GAP_UM, abs=0.01)
    assert two[0].size_class is ITC  # 155 um
    three = staging_lesions(_heatmap(grid, [(10, c) for c in (10, 11, 12)]), grid=grid)
    assert three[0].diameter_mm * 1000 == pytest.approx(2 * CELL_UM + GAP_UM, abs=0.01)
    assert three[0].size_class is MI  # 249 um
    assert three[0].n_cells == 3
    # Its position is its centre, the middle cell's centre (the overlay's circle).
    x, y = grid.heatmap_to_level0([[11.5, 10.5]])[0]
    assert three[0].l0_xy == (round(x), round(y))


def test_a_large_region_with_a_hole_is_a_macro_metastasis() -> None:
    """A 2.1 mm ring of cells: the hole does not shorten the longest diameter."""
    grid = _grid()
    rr, cc = np.mgrid[: grid.shape[0], : grid.shape[1]]
    radius = (2100 - GAP_UM) / 2 / CELL_UM  # in cells, so that the estimate is 2.1 mm
    distance = np.hypot(rr - 30, cc - 30)
    ring = (distance <= radius + 0.01) & (distance >= radius / 2)
    heatmap = np.where(ring, 0.99, 0.05).astype(np.float32)
    lesions = staging_lesions(heatmap, grid=grid)
    assert len(lesions) == 1
    assert lesions[0].size_class is MA
    assert lesions[0].diameter_mm == pytest.approx(2.1, abs=0.1)
    assert node_class(lesions) is MA


def test_a_lesion_needs_three_confident_cells_by_default() -> None:
    """Hard-normal cells are as confident as a lone tumour cell, and a normal node of
    real size holds pairs of them side by side by chance: a lesion needs three."""
    grid = _grid()
    heatmap = _heatmap(grid, [(5, 5), (20, 20), (40, 7)], value=0.999)
    heatmap[20, 21] = 0.97  # a confident pair
    assert staging_lesions(heatmap, grid=grid) == []
    assert node_class([]) is N
    one = StagingParams(min_confident_area_um2=0)
    assert len(staging_lesions(heatmap, grid=grid, params=one)) == 3
    # Three confident cells are a lesion, with its doubtful neighbour (>= 0.5);
    # cells of NaN (no patch) never are.
    heatmap[5, 6], heatmap[6, 6], heatmap[6, 7] = 0.97, 0.92, 0.6
    heatmap[30:, :] = np.nan
    lesions = staging_lesions(heatmap, grid=grid)
    assert [les.n_cells for les in lesions] == [4]
    assert lesions[0].max_probability == pytest.approx(0.999)
    heatmap[6, 6] = 0.89  # two confident cells left
    assert staging_lesions(heatmap, grid=grid) == []


def test_the_confident_area_means_the_same_at_stride_32() -> None:
    """Three cells of 31 um are a ninth of three cells of 93 um: not a lesion."""
    grid = make_grid(stride_px=32, mpp=0.243, rows=60, cols=60)
    heatmap = _heatmap(grid, [(10, c) for c in (10, 11, 12)])
    assert staging_lesions(heatmap, grid=grid) == []
    heatmap[10:16, 10:15] = 0.99  # 30 cells, 29,000 um^2 (three 96 px cells' worth)
    lesions = staging_lesions(heatmap, grid=grid)
    assert [les.n_cells for les in lesions] == [30]
    # At stride 32 the label windows touch: the diameter is the centres' span.
    span = np.hypot(4, 5) * 32 * 0.972
    assert lesions[0].diameter_mm * 1000 == pytest.approx(span, abs=0.01)


def test_staging_params_are_checked() -> None:
    with pytest.raises(ValueError, match="cell_threshold"):
        StagingParams(cell_threshold=0.9, min_probability=0.5)
    for bad in (-1.0, float("nan"), True):
        with pytest.raises(ValueError, match="min_confident_area_um2"):
            StagingParams(min_confident_area_um2=bad)


# --- pN rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("classes", "stage"),
    [
        ([N, N, N, N, N], "pN0"),
        ([ITC, N, N, N, N], "pN0(i+)"),
        ([ITC, ITC, ITC, ITC, ITC], "pN0(i+)"),  # ITC-only nodes are not positive nodes
        ([MI, ITC, N, N, N], "pN1mi"),
        ([MI, MI, MI, MI, MI], "pN1mi"),  # no macro: micro only, however many
        ([MA, N, N, N, N], "pN1"),
        ([MA, MI, MI, ITC, ITC], "pN1"),  # 3 positive nodes (the ITCs do not count)
        ([MA, MI, MI, MI, N], "pN2"),  # 4 positive nodes with a macro
        ([MA, MA, MA, MA, MA], "pN2"),
    ],
)
def test_pn_rules(classes: list[NodeClass], stage: str) -> None:
    assert patient_stage(classes).value == stage


def test_a_patient_with_a_failed_node_is_not_staged() -> None:
    patient = PatientStage.of("patient_1", [("a.tif", MA), ("b.tif", None)])
    assert patient.stage is None
    assert any("no result for b.tif" in note for note in patient.notes)
    assert not any("of 5 nodes" in note for note in patient.notes)  # not staged at all
    staged = PatientStage.of("patient_2", [("a.tif", MA), ("b.tif", NodeClass.MICRO)])
    assert staged.notes == ("staged on 2 of 5 nodes",)


# --- grouping and CSV files -----------------------------------------------------


def test_camelyon17_names_group_without_a_csv() -> None:
    stems = [
        "patient_004_node_4",
        "patient_004_node_0",
        "Tumor_001",
        "patient_010_node_2",
    ]
    groups, left_out = group_patients(stems)
    assert groups == {
        "patient_004": ["patient_004_node_0", "patient_004_node_4"],
        "patient_010": ["patient_010_node_2"],
    }
    assert left_out == ["Tumor_001"]


def test_patient_csv_maps_slides_and_rejects_bad_input(tmp_path: Path) -> None:
    csv_path = tmp_path / "patients.csv"
    csv_path.write_text("slide,patient\na.tif,P1\nb,P1\nc.svs,P2\n")
    assert read_patient_csv(csv_path) == {"a": "P1", "b": "P1", "c": "P2"}
    groups, left_out = group_patients(["a", "b", "c", "d"], read_patient_csv(csv_path))
    assert groups == {"P1": ["a", "b"], "P2": ["c"]}
    assert left_out == ["d"]
    # An unknown slide in the CSV, and a patient with six nodes, are errors.
    with pytest.raises(WsiError, match="without a result folder: c"):
        group_patients(["a", "b"], read_patient_csv(csv_path))
    six = {f"s{i}": "P1" for i in range(6)}
    with pytest.raises(WsiError, match="patient P1 has 6 nodes"):
        group_patients(list(six), six)
    csv_path.write_text("a.tif,P1,extra\n")
    with pytest.raises(WsiError, match=r"patients.csv:1: expected 'slide,patient'"):
        read_patient_csv(csv_path)


def test_stages_csv_round_trips_in_camelyon17s_layout(tmp_path: Path) -> None:
    patients = [
        PatientStage.of(
            "patient_000",
            [
                (f"patient_000_node_{i}.tif", c)
                for i, c in enumerate([MA, MI, ITC, N, N])
            ],
        ),
        PatientStage.of("patient_001", [("patient_001_node_0.tif", None)]),
    ]
    path = tmp_path / "stages.csv"
    write_stages_csv(path, patients)
    lines = path.read_text().splitlines()
    assert lines[:3] == [
        "patient,stage",
        "patient_000.zip,pN1",
        "patient_000_node_0.tif,macro",
    ]
    assert lines[-2:] == ["patient_001.zip,", "patient_001_node_0.tif,"]
    labels = read_stage_labels(path)
    assert labels.patients == {"patient_000": PnStage.PN1}  # unstaged: left out
    assert labels.nodes["patient_000_node_2"] is ITC
    assert labels.node_patient["patient_001_node_0"] == "patient_001"
    path.write_text("patient,stage\npatient_0.zip,pN3\n")
    with pytest.raises(WsiError, match="unknown stage 'pN3'"):
        read_stage_labels(path)


def test_quadratic_kappa_matches_a_hand_worked_case_and_sklearn() -> None:
    """Truth pN0, pN0(i+), pN2; predicted pN0, pN1mi, pN2 (ranks 0,1,4 vs 0,2,4).

    Weights (i-j)^2/16; observed disagreement 1/16 * 1/3; expected from the
    marginals (truth 0,1,4 and predicted 0,2,4, each 1/3) sum_ij w_ij / 9 =
    (0+4+16 + 1+1+9 + 16+4+0)/16/9 = 51/144; kappa = 1 - (1/48)/(51/144) = 0.9412.
    """
    truth = [PnStage.PN0, PnStage.PN0_ITC, PnStage.PN2]
    predicted = [PnStage.PN0, PnStage.PN1MI, PnStage.PN2]
    assert quadratic_kappa(truth, predicted) == pytest.approx(1 - (1 / 48) / (51 / 144))
    assert quadratic_kappa(truth, predicted) == pytest.approx(
        cohen_kappa_score([0, 1, 4], [0, 2, 4], labels=range(5), weights="quadratic")
    )


# --- a run folder: stage and evaluate ---------------------------------------------


def _finished(out: Path, stem: str, cls: NodeClass, diameter: float | None) -> None:
    folder = out / stem
    folder.mkdir(parents=True)
    summary = {
        "slide": {"path": f"/slides/{stem}.tif", "stem": stem},
        "node_class": cls.value,
        "largest_diameter_mm": diameter,
        "slide_mpp": [0.243, 0.243],
    }
    (folder / "summary.json").write_text(json.dumps(summary))


def _run_folder(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    for i, (cls, d) in enumerate(
        [(MA, 2.5), (MI, 0.5), (MI, 0.4), (MI, 0.3), (N, None)]
    ):
        _finished(out, f"patient_000_node_{i}", cls, d)
    for i, cls in enumerate([ITC, N, N]):
        _finished(out, f"patient_001_node_{i}", cls, 0.1 if cls is ITC else None)
    return out


def test_stage_command_writes_stages_csv(tmp_path: Path) -> None:
    out = _run_folder(tmp_path)
    result = CliRunner().invoke(cli, ["stage", str(out)])
    assert result.exit_code == 0, result.output
    assert "patient_000: pN2" in result.output
    assert "patient_001: pN0(i+)" in result.output
    assert "staged on 3 of 5 nodes" in result.output
    labels = read_stage_labels(out / "stages.csv")
    assert labels.patients == {
        "patient_000": PnStage.PN2,
        "patient_001": PnStage.PN0_ITC,
    }


def test_a_failed_slide_leaves_its_patient_unstaged(tmp_path: Path) -> None:
    out = _run_folder(tmp_path)
    failures = [{"slide": "/slides/patient_001_node_3.tif", "message": "unreadable"}]
    (out / "run.json").write_text(json.dumps({"results": [], "failures": failures}))
    result = CliRunner().invoke(cli, ["stage", str(out)])
    assert result.exit_code == 1
    assert "patient_001: not staged" in result.output
    assert "patient_000: pN2" in result.output  # the other patients go on
    assert "patient_001.zip,\n" in (out / "stages.csv").read_text()
    staged = stage_run(out)
    assert staged.nodes["patient_001_node_3"].problem == "failed: unreadable"


def test_stage_refuses_folders_without_patients(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    _finished(out, "Tumor_001", MI, 0.5)
    with pytest.raises(WsiError, match="give `patients_csv`"):
        stage_run(out)
    csv_path = tmp_path / "p.csv"
    csv_path.write_text("Tumor_001.tif,patient_9\nTumor_002.tif,patient_9\n")
    for extra in ([], ["--patients", str(csv_path)]):
        with pytest.raises(SystemExit) as exit_info:
            main(["stage", str(out), *extra])
        assert exit_info.value.code == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert err[0].startswith("error: ")
    assert "Tumor_002" in err[0]
    assert "fix the CSV" in err[0]
    assert not (out / "stages.csv").exists()


def test_staging_report_scores_nodes_patients_and_diameters(tmp_path: Path) -> None:
    out = _run_folder(tmp_path)
    labels = tmp_path / "stage_labels.csv"
    truth_nodes = [MA, MI, MI, N, N]  # node 3's micro-metastasis was called micro...
    rows = ["patient,stage", "patient_000.zip,pN1"]
    rows += [f"patient_000_node_{i}.tif,{c.value}" for i, c in enumerate(truth_nodes)]
    rows += ["patient_001.zip,pN0", "patient_001_node_0.tif,negative"]
    rows += ["patient_001_node_1.tif,negative", "patient_001_node_2.tif,negative"]
    labels.write_text("\n".join(rows) + "\n")
    report = staging_report(
        read_node_results(out), labels, truth_diameters_mm={"patient_000_node_1": 0.7}
    )
    # Wrong: patient_000_node_3 (negative called micro), patient_001_node_0 (ITC).
    assert report.node_accuracy == pytest.approx(6 / 8)
    # Patients are resampled whole: 4 of 5 right alone, 2 of 3 alone, 6 of 8 mixed.
    assert report.node_accuracy_ci == pytest.approx((2 / 3, 4 / 5))
    assert report.confusion[0] == [3, 1, 1, 0]
    assert report.patients == [
        ("patient_000", "pN1", "pN2"),
        ("patient_001", "pN0", "pN0(i+)"),
    ]
    assert report.kappa == pytest.approx(
        quadratic_kappa([PnStage.PN1, PnStage.PN0], [PnStage.PN2, PnStage.PN0_ITC])
    )
    assert report.micro_diameter_mae_mm == pytest.approx(0.2)


def test_evaluate_command_prints_the_staging_scores(tmp_path: Path) -> None:
    out = _run_folder(tmp_path)
    labels = tmp_path / "stage_labels.csv"
    rows = ["patient,stage", "patient_000.zip,pN2"]
    rows += [
        f"patient_000_node_{i}.tif,{c}"
        for i, c in enumerate(["macro", "micro", "micro", "micro", "negative"])
    ]
    rows += ["patient_001.zip,pN0", "patient_001_node_0.tif,negative"]
    rows += ["patient_001_node_1.tif,negative", "patient_001_node_2.tif,negative"]
    labels.write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(
        cli,
        [
            "evaluate",
            str(out),
            "--stages",
            str(labels),
            "--eval-out",
            str(tmp_path / "ev"),
        ],
    )
    assert result.exit_code == 0, result.output
    # 7 of 8 nodes right; patients resampled whole: 5/5 or 2/3 alone, 7/8 mixed.
    assert "node accuracy 0.875, 95% CI 0.67-1.00 (8 of 8 nodes" in result.output
    assert "patient_001: truth pN0, predicted pN0(i+)  <-" in result.output
    report = json.loads((tmp_path / "ev" / "staging.json").read_text())
    assert report["node_accuracy_ci"] == pytest.approx([2 / 3, 1.0])
