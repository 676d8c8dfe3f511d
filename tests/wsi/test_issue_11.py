"""Issue 11, first-run items: reruns that change little, and failures that leave nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fakes import NORMAL_RGB, TUMOUR_RGB, ColourClassifier
from wsi.errors import ModelLoadError
from wsi.formats.export import PolygonParams
from wsi.pipeline import RunConfig, run
from wsi.scoring import ClassifierSpec, ScoringParams
from wsi.synthetic import write_pyramid_tiff
from wsi.tiles.tiler import TilingParams
from wsi.tiles.tissue import TissueParams


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rgb = np.full((1536, 1536, 3), 245, np.uint8)
    rgb[300:1200, 300:1200] = NORMAL_RGB
    rgb[600:900, 600:900] = TUMOUR_RGB
    path = tmp_path_factory.mktemp("slides") / "small_tumour.tif"
    return write_pyramid_tiff(path, rgb, mpp=0.243, downsamples=(1, 4, 16))


def _config(slide: Path, out: Path, **kw: Any) -> RunConfig:
    return RunConfig(
        slides=(slide,),
        out_dir=out,
        scoring=ScoringParams(batch_size=64),
        tiling=TilingParams(chunk_patches=64),
        **kw,
    )


def test_a_new_threshold_neither_loads_the_model_nor_rescores(
    slide: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scored by a stand-in with the bundled model's identity, then rerun with the
    # bundled model (classifier=None) and another threshold: loading it would fail.
    bundled_sha = ScoringParams().spec().identity()[2]
    stand_in = dataclasses.replace(ColourClassifier(), sha256=bundled_sha)
    first = run(_config(slide, tmp_path), classifier=stand_in)
    assert first.ok, first.failures

    def no_loading(self: ClassifierSpec) -> None:
        raise ModelLoadError("the model was loaded")

    monkeypatch.setattr(ClassifierSpec, "load", no_loading)
    again = run(_config(slide, tmp_path, polygons=PolygonParams(threshold=0.9)))
    assert again.ok, again.failures
    (result,) = again.results
    assert not result.skipped
    assert result.max_probability == first.results[0].max_probability
    # Another TTA needs the model again: refused here by the patched loader.
    other = _config(slide, tmp_path, polygons=PolygonParams(threshold=0.9))
    other = dataclasses.replace(
        other, scoring=ScoringParams(batch_size=64, tta="flips")
    )
    (failure,) = run(other).failures
    assert "the model was loaded" in failure.message


def test_changed_tiling_is_named_in_options(slide: Path, tmp_path: Path) -> None:
    assert run(_config(slide, tmp_path), classifier=ColourClassifier()).ok
    changed = dataclasses.replace(
        _config(slide, tmp_path),
        tiling=TilingParams(chunk_patches=64, stride_px=32),
        tissue=TissueParams(min_saturation=0.05),
    )
    report = run(changed, classifier=ColourClassifier())
    (failure,) = report.failures
    # The library names settings; the command line spells them as flags.
    assert "`tiling.stride_px` 96 -> 32" in failure.message
    assert "`tissue.min_saturation` 0.07 -> 0.05" in failure.message
    assert "`overwrite`" in failure.message
    from wsi.cli.flags import spell_flags

    spelt = spell_flags(failure.message)
    assert "--stride 96 -> 32; --min-saturation 0.07 -> 0.05" in spelt
    assert "--overwrite" in spelt
    for internal in ("band_rows", "max_cols", "max_gap_cols", "stride_px"):
        assert internal not in spelt  # the store's internal keys are never shown


def test_a_failed_slide_leaves_no_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = run(_config(tmp_path / "missing.svs", out), classifier=ColourClassifier())
    assert not report.ok
    assert not (out / "missing").exists()
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]
