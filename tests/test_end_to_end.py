"""The shipped demo slide and the real SVS fixtures through the whole pipeline,
with the bundled model: what ``make demo`` shows a user."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from wsi.pipeline import RunConfig, run
from wsi.store.layout import Arrays, SlideOutputs

ROOT = Path(__file__).parent.parent
DEMO = ROOT / "demo" / "demo_slide.tif"
FIXTURES = Path(__file__).parent / "fixtures" / "slides"

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def classifier() -> Any:
    from model.predict import load_classifier

    return load_classifier()


def test_demo_lesion_lights_up(classifier: Any, tmp_path: Path) -> None:
    report = run(RunConfig(slides=(DEMO,), out_dir=tmp_path), classifier=classifier)
    assert report.ok, report.failures
    outputs = SlideOutputs.for_slide(tmp_path, DEMO)
    heatmap = np.asarray(zarr.open_group(str(outputs.store))[Arrays.HEATMAP][:])
    with (DEMO.parent / "demo_slide.cells.csv").open() as handle:
        cells = [
            (int(r["row"]), int(r["col"]), int(r["label"]))
            for r in csv.DictReader(handle)
        ]
    tumour = [heatmap[r, c] for r, c, label in cells if label == 1]
    normal = [heatmap[r, c] for r, c, label in cells if label == 0]
    assert np.isfinite(tumour).all()
    from sklearn.metrics import roc_auc_score

    scores = np.nan_to_num(np.concatenate([tumour, normal]), nan=0.0)
    labels = np.r_[np.ones(len(tumour)), np.zeros(len(normal))]
    assert roc_auc_score(labels, scores) > 0.8
    assert np.nanmean(tumour) > np.nanmean(normal) + 0.2
    summary = json.loads(outputs.summary_json.read_text())
    assert summary["max_probability"] > 0.9
    assert summary["tumor_area_um2"] > 0


@pytest.mark.parametrize(
    ("name", "mpp"),
    [("cmu-1-small-region.svs", None), ("tcga-cr-7395-01a-01-ts1.svs", 0.499)],
)
def test_real_svs_slides_run_end_to_end(
    classifier: Any, name: str, mpp: float | None, tmp_path: Path
) -> None:
    slide = FIXTURES / name
    report = run(
        RunConfig(slides=(slide,), out_dir=tmp_path, mpp=mpp), classifier=classifier
    )
    assert report.ok, report.failures
    outputs = SlideOutputs.for_slide(tmp_path, slide)
    summary = json.loads(outputs.summary_json.read_text())
    assert summary["n_patches"] > 20
    assert summary["effective_mpp"] == pytest.approx(0.972)
    scores = np.asarray(zarr.open_group(str(outputs.store))[Arrays.SCORES][:])
    assert np.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    for path in (
        outputs.overlay_png,
        outputs.geojson,
        outputs.asap_xml,
        outputs.detections_csv,
        outputs.heatmap_tif,
        outputs.tissue_png,
    ):
        assert path.exists(), path
