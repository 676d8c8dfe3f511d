"""benchmarks/bench_stain.py: the stain shift it applies, and its AUC table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pytest

pytestmark = pytest.mark.tf

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
Patches = tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # for its `_report` import
    spec = importlib.util.spec_from_file_location(
        "bench_stain", BENCHMARKS / "bench_stain.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_stain", module)
    spec.loader.exec_module(module)
    return module


def test_restain_is_seeded_per_patch_and_off_at_zero(
    bench: ModuleType, fixture_patches: Patches
) -> None:
    images, _ = fixture_patches
    assert bench.restain(images, 0.0, seed=0) is images
    shifted = bench.restain(images, 0.2, seed=0)
    assert shifted.shape == images.shape
    assert shifted.dtype == np.uint8
    np.testing.assert_array_equal(shifted, bench.restain(images, 0.2, seed=0))
    assert not np.array_equal(shifted, bench.restain(images, 0.2, seed=1))
    # Every patch gets its own stain: the mean colour moves differently per patch.
    change = shifted.astype(float).mean(axis=(1, 2)) - images.mean(axis=(1, 2))
    assert np.ptp(change, axis=0).min() > 1.0
    # A mild shift keeps the tissue: pixels move by a few levels, not a repaint.
    mild = bench.restain(images, 0.05, seed=0).astype(float)
    assert 0 < np.abs(mild - images).mean() < 20


def test_benchmark_writes_one_auc_per_model_and_strength(
    bench: ModuleType,
    pcam_dir: Path,
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sklearn.metrics import roc_auc_score

    monkeypatch.setenv("WSI_SCORING_RUNTIME", "keras")  # no export into the cache
    from model.training.data import open_patch_set
    from wsi.scoring import ClassifierSpec

    out = tmp_path / "stain.json"
    bench.main(
        [
            "--pcam",
            str(pcam_dir),
            "--models",
            str(tiny_model),
            "--strengths",
            "0",
            "0.1",
            "--json",
            str(out),
        ]
    )
    record = json.loads(out.read_text())
    assert record["n"] == 24
    aucs = record["auc"][str(tiny_model)]
    assert set(aucs) == {"runtime", "0.0", "0.1"}
    # Strength 0 is the plain set, scored as the pipeline scores it.
    patches = open_patch_set(pcam_dir)
    images = patches.read(np.arange(len(patches), dtype=np.int64))
    probs = ClassifierSpec(model_path=tiny_model).load()(images)
    assert aucs["0.0"] == pytest.approx(roc_auc_score(patches.labels, probs))
    assert 0.0 <= aucs["0.1"] <= 1.0
