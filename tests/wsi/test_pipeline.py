"""The whole pipeline on generated slides with a known tumour, and batch behaviour."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from shapely.geometry import Point, shape

from tests.fakes import NORMAL_RGB, TUMOUR_RGB, ColourClassifier
from wsi.errors import BusyError
from wsi.formats.export import PolygonParams
from wsi.pipeline import RunConfig, run
from wsi.scoring import ScoringParams
from wsi.store.layout import Arrays, SlideOutputs
from wsi.synthetic import write_pyramid_tiff
from wsi.tiles.tiler import TilingParams, tile_slide
from wsi.tiles.tissue import TissueParams

MPP = 0.243
SIZE_PX = 3072
TUMOUR_CENTRE = (2000, 1200)  # level-0 (x, y)
TUMOUR_RADIUS = 450


def _slide(path: Path) -> Path:
    rgb = np.full((SIZE_PX, SIZE_PX, 3), 245, np.uint8)
    yy, xx = np.mgrid[:SIZE_PX, :SIZE_PX]
    rgb[(yy - 1536) ** 2 / 1300**2 + (xx - 1536) ** 2 / 1200**2 < 1] = NORMAL_RGB
    cx, cy = TUMOUR_CENTRE
    rgb[(yy - cy) ** 2 + (xx - cx) ** 2 < TUMOUR_RADIUS**2] = TUMOUR_RGB
    return write_pyramid_tiff(path, rgb, mpp=MPP, downsamples=(1, 4, 16))


@pytest.fixture(scope="module")
def tumour_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _slide(tmp_path_factory.mktemp("slides") / "tumour.tif")


def _config(slides: tuple[Path, ...], out: Path, **kw: object) -> RunConfig:
    kw.setdefault("tiling", TilingParams(chunk_patches=64))
    return RunConfig(
        slides=slides,
        out_dir=out,
        scoring=ScoringParams(batch_size=64),
        **kw,
    )  # type: ignore[arg-type]


def test_pipeline_finds_the_tumour(tumour_slide: Path, tmp_path: Path) -> None:
    # A 220-um lesion: exact cell polygons (the default smoothing, tuned for the
    # Camelyon16 Dice, drops lesions this small from the polygons; docs/DETECTION.md).
    exact = PolygonParams(smooth_sigma_um=0, min_area_um2=0, max_hole_um2=0)
    report = run(
        _config((tumour_slide,), tmp_path, polygons=exact),
        classifier=ColourClassifier(),
    )
    assert report.ok, report.failures
    outputs = SlideOutputs.for_slide(tmp_path, tumour_slide)
    for path in (
        outputs.heatmap_png,
        outputs.overlay_png,
        outputs.heatmap_tif,
        outputs.geojson,
        outputs.asap_xml,
        outputs.detections_csv,
        outputs.summary_json,
    ):
        assert path.exists(), path
    summary = json.loads(outputs.summary_json.read_text())
    assert summary["max_probability"] == pytest.approx(1.0)
    tumour_area = np.pi * (TUMOUR_RADIUS * MPP) ** 2
    assert summary["tumor_area_um2"] == pytest.approx(tumour_area, rel=0.25)

    features = json.loads(outputs.geojson.read_text())["features"]
    assert len(features) == 1
    polygon = shape(features[0]["geometry"])
    assert polygon.is_valid
    assert polygon.contains(Point(TUMOUR_CENTRE))
    assert polygon.centroid.distance(Point(TUMOUR_CENTRE)) < 96 * 4 / 2

    rows = [line.split(",") for line in outputs.detections_csv.read_text().split()]
    x, y = (int(v) for v in rows[0][1:3])
    assert Point(x, y).distance(Point(TUMOUR_CENTRE)) < TUMOUR_RADIUS

    heatmap = np.asarray(zarr.open_group(str(outputs.store))[Arrays.HEATMAP][:])
    assert np.isnan(heatmap[0, 0])  # background corner: no tissue patch
    assert np.nanmax(heatmap) == pytest.approx(1.0)


def test_rerun_skips_and_overwrite_redoes(tumour_slide: Path, tmp_path: Path) -> None:
    run(_config((tumour_slide,), tmp_path), classifier=ColourClassifier())
    again = run(_config((tumour_slide,), tmp_path), classifier=ColourClassifier())
    assert again.results[0].skipped
    redone = run(
        _config((tumour_slide,), tmp_path, overwrite=True),
        classifier=ColourClassifier(),
    )
    assert not redone.results[0].skipped
    changed = run(
        _config((tumour_slide,), tmp_path, polygons=PolygonParams(threshold=0.9)),
        classifier=ColourClassifier(),
    )
    assert not changed.results[0].skipped


def test_batch_goes_on_after_a_bad_slide(tumour_slide: Path, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-slide.svs"
    bad.write_bytes(b"this is not a slide")
    report = run(
        _config((bad, tumour_slide), tmp_path / "out"), classifier=ColourClassifier()
    )
    assert [r.slide for r in report.results] == [tumour_slide]
    assert len(report.failures) == 1
    failure = report.failures[0]
    assert failure.slide == bad
    assert "not-a-slide.svs" in failure.message
    run_json = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run_json["failures"][0]["stage"] == "tile"


def _hold_lock(store: Path) -> subprocess.Popen[str]:
    """Another process holding ``store``'s lock until killed."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from wsi.store.locking import store_lock\n"
        "with store_lock(Path(sys.argv[1])):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(store)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_slide_being_written_elsewhere_is_left_alone(
    tumour_slide: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.tif"
    shutil.copy(tumour_slide, other)
    out = tmp_path / "out"
    busy = SlideOutputs.for_slide(out, tumour_slide)
    holder = _hold_lock(busy.store)
    try:
        report = run(_config((tumour_slide, other), out), classifier=ColourClassifier())
        with pytest.raises(BusyError, match="another process is writing"):
            tile_slide(
                tumour_slide,
                busy.store,
                tiling=TilingParams(),
                tissue=TissueParams(),
            )
    finally:
        holder.kill()
        holder.wait()
    assert [r.slide for r in report.results] == [other]
    (failure,) = report.failures
    assert failure.slide == tumour_slide
    assert str(busy.store) in failure.message
    assert not busy.store.exists()  # nothing was written beside the other process
    # The holder was killed: the OS released its lock and the slide runs now.
    again = run(_config((tumour_slide,), out), classifier=ColourClassifier())
    assert again.ok, again.failures


def test_stitch_uses_the_settings_of_the_model_that_scored(
    tumour_slide: Path, tmp_path: Path
) -> None:
    """`stitch` re-exports with the card settings of the model recorded in the store."""
    from click.testing import CliRunner

    from model.card import ModelCard, write_card
    from wsi.cli import cli
    from wsi.stages import scored_model
    from wsi.store.layout import Attr
    from wsi.store.slide_store import open_store

    out = tmp_path / "out"
    report = run(_config((tumour_slide,), out), classifier=ColourClassifier())
    assert report.ok
    outputs = report.results[0].outputs
    assert scored_model(outputs) is None  # a classifier passed in: no model file
    # As if a model with tuned settings had scored: its card says "no candidates
    # below 0.99".
    model = tmp_path / "tuned.keras"
    model.write_bytes(b"only the card is read")
    write_card(
        model,
        ModelCard(
            architecture="logreg",
            settings={"detection": {"min_probability": 0.99}},
        ),
    )
    root = open_store(outputs.store, writable=True)
    root.attrs[Attr.SCORING] = dict(root.attrs[Attr.SCORING]) | {"model": str(model)}
    assert scored_model(outputs) == str(model)
    before = outputs.detections_csv.read_text().splitlines()
    assert len(before) == 1  # the tumour, at 0.77
    result = CliRunner().invoke(cli, ["stitch", str(outputs.folder)])
    assert result.exit_code == 0, result.output
    assert outputs.detections_csv.read_text().splitlines() == []
    # summary.json follows the exports (issue 30: it used to keep the run's)
    summary = json.loads(outputs.summary_json.read_text())
    assert summary["n_detections"] == 0
    assert summary["settings"]["detection"]["min_probability"] == 0.99
    assert "settings_hash" not in summary  # the next run redoes its own export
    # A flag still wins over the model's settings.
    result = CliRunner().invoke(
        cli, ["stitch", str(outputs.folder), "--min-detection-probability", "0.5"]
    )
    assert result.exit_code == 0, result.output
    assert outputs.detections_csv.read_text().splitlines() == before
    # Running the pipeline again redoes the export with its own settings (scores kept).
    again = run(_config((tumour_slide,), out), classifier=ColourClassifier())
    assert again.ok
    assert outputs.detections_csv.read_text().splitlines() == before
    assert "settings_hash" in json.loads(outputs.summary_json.read_text())


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_issue_30_a_damaged_scores_chunk_is_rescored_not_reused(
    tumour_slide: Path,
    tmp_path: Path,
    damage: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A missing or truncated scores chunk gives the clean run's results on rerun."""
    from wsi.cli import main

    out = tmp_path / "out"
    clean = run(_config((tumour_slide,), out), classifier=ColourClassifier())
    outputs = clean.results[0].outputs
    scores = zarr.open_group(str(outputs.store), mode="r")[Arrays.SCORES][:]
    detections = outputs.detections_csv.read_text()
    chunk_file = outputs.store / Arrays.SCORES / "c" / "0"
    assert chunk_file.is_file()
    if damage == "delete":
        chunk_file.unlink()
    else:
        chunk_file.write_bytes(chunk_file.read_bytes()[:7])
        # stitch names the damaged array instead of dying with a codec error
        with pytest.raises(SystemExit) as exit_info:
            main(["stitch", str(outputs.folder)])
        err = capsys.readouterr().err
        assert exit_info.value.code == 1
        assert len(err.strip().splitlines()) == 1, err
        assert "scores chunk is damaged" in err
        assert str(outputs.store) in err
    again = run(_config((tumour_slide,), out), classifier=ColourClassifier())
    assert again.ok
    assert not again.results[0].skipped  # not "already done"
    rescored = zarr.open_group(str(outputs.store), mode="r")[Arrays.SCORES][:]
    np.testing.assert_array_equal(rescored, scores)
    assert outputs.detections_csv.read_text() == detections


def test_issue_30_run_json_merges_runs_on_one_folder(
    tumour_slide: Path, tmp_path: Path
) -> None:
    """Two runs over one --out: run.json keeps both slides; busy is not a failure."""
    from wsi.pipeline import Failure, RunReport
    from wsi.run_record import write_run_json

    other = tmp_path / "other.tif"
    shutil.copy(tumour_slide, other)
    out = tmp_path / "out"
    first = run(_config((tumour_slide,), out), classifier=ColourClassifier())
    second = run(_config((other,), out), classifier=ColourClassifier())
    assert first.ok
    assert second.ok
    recorded = json.loads((out / "run.json").read_text())
    assert sorted(Path(r["slide"]).name for r in recorded["results"]) == [
        "other.tif",
        "tumour.tif",
    ]
    # A third process found tumour.tif locked (busy) after the first finished it.
    busy = RunReport(
        failures=[Failure(slide=tumour_slide, stage="setup", message="busy", busy=True)]
    )
    write_run_json(_config((tumour_slide,), out), busy, seconds=0.0)
    recorded = json.loads((out / "run.json").read_text())
    assert len(recorded["results"]) == 2
    assert recorded["failures"] == []
    # A real failure of a slide replaces its old result.
    failed = RunReport(
        failures=[Failure(slide=other, stage="tile", message="cannot read")]
    )
    write_run_json(_config((other,), out), failed, seconds=0.0)
    recorded = json.loads((out / "run.json").read_text())
    assert [Path(r["slide"]).name for r in recorded["results"]] == ["tumour.tif"]
    assert [Path(f["slide"]).name for f in recorded["failures"]] == ["other.tif"]


def test_issue_30_concurrent_json_writers_do_not_collide(tmp_path: Path) -> None:
    """Each writer has its own temporary file: none fails, none is left behind."""
    from concurrent.futures import ThreadPoolExecutor

    from wsi.store.atomic import write_json_atomic

    target = tmp_path / "run.json"

    def write(i: int) -> None:
        write_json_atomic(target, {"writer": i, "padding": "x" * 20000})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(64)))
    assert json.loads(target.read_text())["writer"] in range(64)
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_issue_30_an_unwritable_run_json_does_not_hide_the_slides(
    tumour_slide: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full at the end: the slides' results stay and run.json's error joins them."""
    import errno

    import wsi.run_record
    from wsi.errors import OutputError

    real = wsi.run_record.write_json_atomic

    def full_disk(path: Path, data: dict[str, object]) -> None:
        if path.name == "run.json":
            raise OutputError(f"{path}: cannot write ({errno.errorcode[errno.ENOSPC]})")
        real(path, data)

    monkeypatch.setattr(wsi.run_record, "write_json_atomic", full_disk)
    report = run(
        _config((tumour_slide,), tmp_path / "out"), classifier=ColourClassifier()
    )
    assert len(report.results) == 1  # the slide itself finished
    assert [f.stage for f in report.failures] == ["report"]
    assert "run.json" in report.failures[0].message
    assert report.run_json is None


def test_issue_30_whole_slides_run_on_the_cluster(
    tumour_slide: Path, tmp_path: Path
) -> None:
    """With a scheduler, slides are tasks on the workers: same results as locally,
    a broken slide is a one-line failure, the others go on, run.json is written."""
    from distributed import LocalCluster

    slides = []
    for stem in ("one", "two"):
        slides.append(tmp_path / f"{stem}.tif")
        shutil.copy(tumour_slide, slides[-1])
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a slide")
    local = run(
        _config(tuple(slides), tmp_path / "local"), classifier=ColourClassifier()
    )
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        config = RunConfig(
            slides=(slides[0], broken, slides[1]),
            out_dir=tmp_path / "cluster",
            scoring=ScoringParams(batch_size=64, scheduler=cluster.scheduler_address),
            tiling=TilingParams(chunk_patches=64),
        )
        remote = run(config, classifier=ColourClassifier())
    assert [r.slide.name for r in remote.results] == ["one.tif", "two.tif"]
    assert [f.slide.name for f in remote.failures] == ["broken.tif"]
    assert "broken.tif" in remote.failures[0].message
    for a, b in zip(local.results, remote.results, strict=True):
        assert a.slide_probability == b.slide_probability
        assert (
            a.outputs.detections_csv.read_text() == b.outputs.detections_csv.read_text()
        )
    recorded = json.loads((tmp_path / "cluster" / "run.json").read_text())
    assert len(recorded["results"]) == 2
    assert len(recorded["failures"]) == 1


def test_issue_30_a_damaged_heatmap_is_stitched_again(
    tumour_slide: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    clean = run(_config((tumour_slide,), out), classifier=ColourClassifier())
    outputs = clean.results[0].outputs
    heatmap = zarr.open_group(str(outputs.store), mode="r")[Arrays.HEATMAP][...]
    for chunk in (outputs.store / Arrays.HEATMAP / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"\x00garbage")
    again = run(_config((tumour_slide,), out), classifier=ColourClassifier())
    assert not again.results[0].skipped
    np.testing.assert_array_equal(
        zarr.open_group(str(outputs.store), mode="r")[Arrays.HEATMAP][...], heatmap
    )


@pytest.mark.parametrize("layout", ["auto", "patches"])
@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_issue_30_damaged_tiles_under_lost_scores_are_tiled_again(
    tumour_slide: Path,
    tmp_path: Path,
    damage: str,
    layout: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scores to redo over damaged patch chunks: the slide is re-tiled, not scored
    on black or undecodable patches; the results are the clean run's."""
    out = tmp_path / "out"
    tiling = TilingParams(chunk_patches=64, patch_layout=layout)  # type: ignore[arg-type]
    clean = run(
        _config((tumour_slide,), out, tiling=tiling), classifier=ColourClassifier()
    )
    outputs = clean.results[0].outputs
    scores = zarr.open_group(str(outputs.store), mode="r")[Arrays.SCORES][:]
    detections = outputs.detections_csv.read_text()
    pixels = next(
        outputs.store / name
        for name in (Arrays.PATCHES, Arrays.CELLS, Arrays.SOURCE_TILES)
        if (outputs.store / name).is_dir()
    )
    chunk_files = [p for p in (pixels / "c").rglob("*") if p.is_file()]
    assert chunk_files
    for chunk_file in chunk_files:
        if damage == "delete":
            chunk_file.unlink()
        else:
            chunk_file.write_bytes(chunk_file.read_bytes()[:5])
    (outputs.store / Arrays.SCORES / "c" / "0").unlink()
    # A new process has no decoded tiles cached (this one still has the old ones).
    import wsi.slide._tiffread

    monkeypatch.setattr(
        wsi.slide._tiffread, "_CACHE", wsi.slide._tiffread._TileCache(1 << 26)
    )
    again = run(
        _config((tumour_slide,), out, tiling=tiling), classifier=ColourClassifier()
    )
    assert again.ok
    rescored = zarr.open_group(str(outputs.store), mode="r")[Arrays.SCORES][:]
    np.testing.assert_array_equal(rescored, scores)
    assert outputs.detections_csv.read_text() == detections


@pytest.mark.parametrize("name", [Arrays.GRID, Arrays.COORDS])
def test_issue_30_a_damaged_patch_grid_is_tiled_again(
    tumour_slide: Path, tmp_path: Path, name: str
) -> None:
    """The grid places the scores: a missing chunk of it redoes the slide."""
    out = tmp_path / "out"
    clean = run(_config((tumour_slide,), out), classifier=ColourClassifier())
    outputs = clean.results[0].outputs
    heatmap = zarr.open_group(str(outputs.store), mode="r")[Arrays.HEATMAP][...]
    detections = outputs.detections_csv.read_text()
    for chunk in (outputs.store / name / "c").rglob("*"):
        if chunk.is_file():
            chunk.unlink()
    again = run(_config((tumour_slide,), out), classifier=ColourClassifier())
    assert again.ok
    assert not again.results[0].skipped
    np.testing.assert_array_equal(
        zarr.open_group(str(outputs.store), mode="r")[Arrays.HEATMAP][...], heatmap
    )
    assert outputs.detections_csv.read_text() == detections


def test_summary_gives_the_node_class_and_lesion_diameters(
    tumour_slide: Path, tmp_path: Path
) -> None:
    """summary.json: the node's class from its longest lesion, each lesion's size."""
    from wsi.regions.lesion_class import size_class

    report = run(
        _config((tumour_slide,), tmp_path / "out"), classifier=ColourClassifier()
    )
    outputs = report.results[0].outputs
    summary = json.loads(outputs.summary_json.read_text())
    lesions = summary["lesions"]
    assert len(lesions) == 1
    assert summary["largest_diameter_mm"] == lesions[0]["diameter_mm"]
    assert summary["node_class"] == lesions[0]["class"]
    assert summary["node_class"] == size_class(lesions[0]["diameter_mm"]).value
    # The tumour disc is 2 x 450 px x 0.243 um = 219 um across; the staging view
    # measures it on 93 um cells, within half a cell of the truth.
    true_mm = 2 * TUMOUR_RADIUS * MPP / 1000
    assert abs(summary["largest_diameter_mm"] - true_mm) < 0.0467
    x, y = lesions[0]["x_l0"], lesions[0]["y_l0"]
    assert Point(x, y).distance(Point(TUMOUR_CENTRE)) < TUMOUR_RADIUS
    # The GeoJSON's regions carry their own longest diameter for QuPath.
    features = json.loads(outputs.geojson.read_text())["features"]
    assert all(f["properties"]["measurements"]["Max diameter mm"] > 0 for f in features)
