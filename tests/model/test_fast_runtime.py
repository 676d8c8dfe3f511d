"""The OpenVINO fast path: agrees with Keras, is cached by sha256, falls back to Keras."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from model import fast_runtime
from model.export_fast import (
    FP32_MAX_ABS_DIFF,
    INT8_MAX_ABS_DIFF,
    INT8_MEAN_ABS_DIFF,
    read_calibration,
)
from wsi.errors import ModelLoadError
from wsi.scoring import ClassifierSpec

Patches = tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]
needs_openvino = pytest.mark.skipif(
    not fast_runtime.openvino_available(), reason="OpenVINO/NNCF not installed"
)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WSI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("WSI_SCORING_RUNTIME", raising=False)
    monkeypatch.setattr(fast_runtime, "_gpu_present", lambda: False)
    return tmp_path / "cache"


def test_calibration_patches_are_shipped() -> None:
    patches = read_calibration()
    assert patches.shape == (320, 96, 96, 3)
    assert patches.dtype == np.uint8
    assert 40 < patches.mean() < 230  # decoded pixels, not zeros


def test_runtime_switch_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSI_SCORING_RUNTIME", "onnx")
    with pytest.raises(ModelLoadError, match="use auto, keras or openvino"):
        fast_runtime.requested_runtime()
    monkeypatch.setenv("WSI_SCORING_RUNTIME", "keras")
    assert fast_runtime.load_fast_classifier(None) is None
    assert fast_runtime.runtime_summary().startswith("keras (WSI_SCORING_RUNTIME")


def test_missing_runtime_falls_back_or_fails_when_required(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fast_runtime, "openvino_available", lambda: False)
    assert fast_runtime.load_fast_classifier(None) is None
    assert "not installed" in fast_runtime.runtime_summary()
    monkeypatch.setenv("WSI_SCORING_RUNTIME", "openvino")
    with pytest.raises(ModelLoadError, match="OpenVINO/NNCF are not installed"):
        fast_runtime.load_fast_classifier(None)


@pytest.mark.tf
def test_scoring_falls_back_to_keras_without_openvino(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    from model.predict import KerasPatchClassifier

    monkeypatch.setattr(fast_runtime, "openvino_available", lambda: False)
    loaded = ClassifierSpec(model_path=tiny_model).load()
    assert isinstance(loaded, KerasPatchClassifier)
    assert not cache.exists()


@pytest.mark.tf
@needs_openvino
def test_fast_path_agrees_with_keras_and_is_cached(
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_model: Path,
    fixture_patches: Patches,
) -> None:
    from model.predict import load_classifier

    images, _ = fixture_patches
    fast = ClassifierSpec(model_path=tiny_model).load()
    assert isinstance(fast, fast_runtime.OpenVinoPatchClassifier)
    assert fast.sha256 == load_classifier(tiny_model).sha256
    sidecar = json.loads((fast.fast_dir / "fast.json").read_text())
    assert sidecar["keras_sha256"] == fast.sha256
    assert fast.fast_dir.parent.parent == cache
    for tta in ("none", "dihedral"):
        keras = load_classifier(tiny_model, tta=tta)(images)
        got = fast_runtime.load_fast_classifier(tiny_model, tta=tta)
        assert got is not None
        probs = got(images)
        assert probs.shape == (24,)
        assert probs.dtype == np.float32
        diff = np.abs(probs - keras)
        limit = (
            (FP32_MAX_ABS_DIFF, FP32_MAX_ABS_DIFF)
            if got.precision == "fp32"
            else (INT8_MEAN_ABS_DIFF, INT8_MAX_ABS_DIFF)
        )
        assert diff.mean() <= limit[0], (tta, diff)
        assert diff.max() <= limit[1], (tta, diff)
    # Batches of any size (static full batches + a dynamic rest) give the same.
    small = fast_runtime.load_fast_classifier(tiny_model, batch_size=5)
    assert small is not None
    np.testing.assert_allclose(small(images), fast(images), atol=1e-5)
    # A second load uses the cache: no export.
    monkeypatch.setattr(fast_runtime, "_export", _no_export)
    assert fast_runtime.load_fast_classifier(tiny_model) is not None
    assert "openvino-" in fast_runtime.runtime_summary(tiny_model)
    # A shipped copy (model/weights/fast-models) is preferred to the cache.
    shipped_root = cache.parent / "weights"
    monkeypatch.setattr(fast_runtime, "WEIGHTS_DIR", shipped_root)
    shipped = fast_runtime.shipped_fast_model_dir(fast.sha256)
    shutil.copytree(fast.fast_dir, shipped)
    from_shipped = fast_runtime.load_fast_classifier(tiny_model, export=False)
    assert from_shipped is not None
    assert from_shipped.fast_dir == shipped
    # A changed model file is not used, shipped or cached.
    (shipped / "model.bin").write_bytes(b"\0" * 64)
    again = fast_runtime.load_fast_classifier(tiny_model, export=False)
    assert again is not None
    assert again.fast_dir == fast.fast_dir
    (fast.fast_dir / "model.bin").write_bytes(b"\0" * 64)
    assert fast_runtime.load_fast_classifier(tiny_model, export=False) is None


@pytest.mark.tf
@needs_openvino
def test_a_failed_export_leaves_scoring_on_keras(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    from model.predict import KerasPatchClassifier

    monkeypatch.setattr(fast_runtime, "_export", lambda *args: None)
    assert isinstance(
        ClassifierSpec(model_path=tiny_model).load(), KerasPatchClassifier
    )
    monkeypatch.setenv("WSI_SCORING_RUNTIME", "openvino")
    with pytest.raises(ModelLoadError, match="no checked OpenVINO model"):
        fast_runtime.load_fast_classifier(tiny_model)


def _no_export(*args: object) -> None:
    raise AssertionError("exported again although the cache was valid")


def test_export_is_given_an_absolute_model_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The export subprocess runs in the repository: a path relative to the caller's
    # folder would name another file there.
    import subprocess

    seen: list[list[str]] = []

    def fake_run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 1, "", "stopped by the test")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.chdir(tmp_path)
    fast_runtime._export(Path("m.keras"), tmp_path / "fast", "0" * 64)
    model_arg = Path(seen[0][seen[0].index("model.export_fast") + 1])
    assert model_arg == tmp_path / "m.keras"
