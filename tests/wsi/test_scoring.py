"""Scoring a tile store through dask: locally, resumed, and on a real LocalCluster."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import zarr

from tests.fakes import NORMAL_RGB, TUMOUR_RGB, ColourClassifier
from wsi.errors import ModelLoadError, WsiError
from wsi.scoring import ScoringParams, score_store
from wsi.store.layout import Arrays, Attr
from wsi.store.slide_store import open_tile_store
from wsi.synthetic import write_pyramid_tiff
from wsi.tiles.tiler import TilingParams, tile_slide
from wsi.tiles.tissue import TissueParams


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("scoring")
    rgb = np.full((3072, 3072, 3), 245, np.uint8)
    rgb[200:2900, 200:2900] = NORMAL_RGB
    rgb[800:1500, 800:1500] = TUMOUR_RGB
    slide = write_pyramid_tiff(tmp / "s.tif", rgb, mpp=0.243)
    result = tile_slide(
        slide,
        tmp / "s.zarr",
        tiling=TilingParams(chunk_patches=16),
        tissue=TissueParams(),
    )
    assert result.n_patches > 48
    return result.store


def _copy(store: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(store, dest)
    return dest


def _scores(store: Path) -> npt.NDArray[np.float32]:
    return np.asarray(zarr.open_group(str(store))[Arrays.SCORES][:])


def test_scores_match_the_classifier(store: Path, tmp_path: Path) -> None:
    copy = _copy(store, tmp_path / "s.zarr")
    result = score_store(copy, params=ScoringParams(), classifier=ColourClassifier())
    root = zarr.open_group(str(copy))
    tiles = open_tile_store(copy)
    patches = tiles.read_patches(0, tiles.n_patches)
    np.testing.assert_array_equal(_scores(copy), ColourClassifier()(patches))
    assert root.attrs[Attr.SCORING_COMPLETE] is True
    assert result.chunks_scored == result.n_chunks
    assert _scores(copy).max() == 1.0


def test_a_cell_store_scores_as_a_patch_store(tmp_path: Path) -> None:
    rgb = np.full((1536, 1536, 3), 245, np.uint8)
    rgb[100:1400, 100:1400] = NORMAL_RGB
    rgb[500:900, 500:900] = TUMOUR_RGB
    slide = write_pyramid_tiff(tmp_path / "s.tif", rgb, mpp=0.243)
    scores = {}
    for layout in ("cells", "patches"):
        store = tmp_path / f"{layout}.zarr"
        tile_slide(
            slide,
            store,
            tiling=TilingParams(chunk_patches=16, stride_px=32, patch_layout=layout),
            tissue=TissueParams(),
        )
        assert open_tile_store(store).layout == layout
        score_store(store, params=ScoringParams(), classifier=ColourClassifier())
        scores[layout] = _scores(store)
    assert len(scores["cells"]) > 32
    assert 0 < scores["cells"].mean() < 1
    np.testing.assert_array_equal(scores["cells"], scores["patches"])


@dataclass(frozen=True)
class _CountingClassifier(ColourClassifier):
    log: str = ""

    def __call__(self, patches: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        with open(self.log, "a") as handle:
            handle.write(f"{len(patches)}\n")
        return super().__call__(patches)


def test_resume_scores_only_unfinished_chunks(store: Path, tmp_path: Path) -> None:
    copy = _copy(store, tmp_path / "s.zarr")
    score_store(copy, params=ScoringParams(), classifier=ColourClassifier())
    root = zarr.open_group(str(copy), mode="r+")
    n_chunks = root[Arrays.SCORED].shape[0]
    root[Arrays.SCORED][1] = False  # as if killed before this chunk finished
    root.attrs[Attr.SCORING_COMPLETE] = False
    log = tmp_path / "calls.txt"
    result = score_store(
        copy, params=ScoringParams(), classifier=_CountingClassifier(log=str(log))
    )
    assert result.chunks_scored == 1 < n_chunks
    assert log.read_text().split() == ["16"]
    assert zarr.open_group(str(copy)).attrs[Attr.SCORING_COMPLETE] is True


def test_model_with_other_resolution_is_refused(store: Path, tmp_path: Path) -> None:
    copy = _copy(store, tmp_path / "s.zarr")
    with pytest.raises(ModelLoadError, match=r"0\.5 um/px"):
        score_store(copy, params=ScoringParams(), classifier=ColourClassifier(mpp=0.5))
    with pytest.raises(ModelLoadError, match="64 px"):
        score_store(
            copy, params=ScoringParams(), classifier=ColourClassifier(input_px=64)
        )


def test_unfinished_tiling_is_refused(store: Path, tmp_path: Path) -> None:
    copy = _copy(store, tmp_path / "s.zarr")
    zarr.open_group(str(copy), mode="r+").attrs[Attr.TILING_COMPLETE] = False
    with pytest.raises(WsiError, match="tile"):
        score_store(copy, params=ScoringParams(), classifier=ColourClassifier())


def test_distributed_run_equals_local_run(store: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    local = _copy(store, tmp_path / "local.zarr")
    remote = _copy(store, tmp_path / "remote.zarr")
    score_store(local, params=ScoringParams(), classifier=ColourClassifier())
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        score_store(
            remote,
            params=ScoringParams(scheduler=cluster.scheduler_address),
            classifier=ColourClassifier(),
        )
    np.testing.assert_array_equal(_scores(local), _scores(remote))


def test_unreachable_scheduler_is_one_clear_error(store: Path, tmp_path: Path) -> None:
    import dask

    copy = _copy(store, tmp_path / "s.zarr")
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "2s"}),
        pytest.raises(WsiError, match=r"dask scheduler at tcp://127\.0\.0\.1:9"),
    ):
        score_store(
            copy,
            params=ScoringParams(scheduler="tcp://127.0.0.1:9"),
            classifier=ColourClassifier(),
        )


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_issue_30_an_unreachable_scheduler_fails_before_any_slide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wsi.cli import main

    slide = Path(__file__).parents[1] / "fixtures" / "slides" / "small.svs"
    address = f"tcp://127.0.0.1:{_closed_port()}"
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                str(slide),
                str(slide),
                "--out",
                str(tmp_path / "out"),
                "--scheduler",
                address,
            ]
        )
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert f"cannot reach the dask scheduler at {address}" in err
    assert not (tmp_path / "out").exists()  # no slide was touched


def test_issue_30_a_lost_scheduler_is_one_line_per_slide(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Losing the scheduler mid-run is a WsiError (recorded per slide), not a crash."""
    from distributed.comm.core import CommClosedError

    from wsi import scoring
    from wsi.errors import WsiError

    class LostClient:
        def __enter__(self) -> LostClient:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def compute(self, tasks: list[object]) -> list[object]:
            raise CommClosedError("in <TCP (closed)>: Stream is closed")

    monkeypatch.setattr(scoring, "_connect", lambda address, **_: LostClient())
    params = scoring.ScoringParams(scheduler="tcp://127.0.0.1:1")
    with pytest.raises(
        WsiError, match="lost the dask scheduler or its workers"
    ) as info:
        scoring._run_tasks([object()], params=params, on_done=lambda n: None)
    assert "run the same command again to resume" in str(info.value)


def test_issue_30_one_runtime_per_slide_on_a_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The submitting machine decides the runtime; a worker without it refuses."""
    from model import fast_runtime
    from wsi.scoring import ClassifierSpec, cluster_runtime

    monkeypatch.delenv(fast_runtime.RUNTIME_ENV, raising=False)
    monkeypatch.setattr(fast_runtime, "openvino_available", lambda: True)
    assert cluster_runtime() == "openvino"
    monkeypatch.setenv(fast_runtime.RUNTIME_ENV, "keras")
    assert cluster_runtime() == "keras"
    monkeypatch.delenv(fast_runtime.RUNTIME_ENV)
    # A worker without OpenVINO, asked for the slide's OpenVINO runtime: an error
    # naming the fix, never a silent fall-back to Keras.
    monkeypatch.setattr(fast_runtime, "openvino_available", lambda: False)
    with pytest.raises(ModelLoadError, match="pip install openvino nncf"):
        ClassifierSpec(runtime="openvino").load()
