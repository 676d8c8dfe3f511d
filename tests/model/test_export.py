"""Exporting a run's best model as the bundled model: float16 rounding, AUC check."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from wsi.errors import ModelLoadError

pytestmark = pytest.mark.tf

Patches = tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]


def test_export_with_float16_keeps_auc(
    tiny_run: Path, pcam_dir: Path, tmp_path: Path, fixture_patches: Patches
) -> None:
    from model.predict import load_classifier
    from model.training.export_bundle import export_bundle

    out = tmp_path / "weights" / "pcam-nasnet-mobile.keras"
    result = export_bundle(tiny_run, out=out, float16=True, check_data=pcam_dir)
    assert result.path == out
    assert out.is_file()
    assert result.auc_exported == pytest.approx(result.auc_source, abs=1e-3)
    assert result.max_abs_prob_diff is not None
    assert result.max_abs_prob_diff < 1e-2
    assert result.size_bytes < 0.8 * result.source_size_bytes  # rounded + deflated
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["weights_sha256"] == result.sha256
    assert sidecar["export"]["float16_rounded"] is True
    assert sidecar["export"]["check_n"] == 24
    assert sidecar["architecture"] == "logreg"
    assert sidecar["val_auc"] > 0
    weights = load_classifier(out).model.get_weights()
    assert all(
        np.array_equal(w, w.astype(np.float16).astype(np.float32)) for w in weights
    )
    images, _ = fixture_patches
    np.testing.assert_allclose(
        load_classifier(out)(images),
        load_classifier(tiny_run / "best.keras")(images),
        atol=1e-2,
    )


def test_export_refuses_a_changed_auc_and_cleans_up(
    tiny_run: Path, pcam_dir: Path, tmp_path: Path
) -> None:
    from model.training.export_bundle import export_bundle

    out = tmp_path / "model.keras"
    with pytest.raises(ModelLoadError, match="exceeds -1"):
        export_bundle(
            tiny_run, out=out, float16=True, check_data=pcam_dir, max_auc_change=-1
        )
    assert not out.exists()
    assert not out.with_suffix(".json").exists()
    with pytest.raises(ValueError, match="float16=True needs check_data"):
        export_bundle(tiny_run, out=out, float16=True)
    with pytest.raises(ModelLoadError, match="no such model file"):
        export_bundle(tmp_path / "missing-run", out=out)


def test_export_command_asks_for_check_data_with_float16(
    tiny_run: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from wsi.cli import cli

    out = tmp_path / "model.keras"
    result = CliRunner().invoke(
        cli, ["export-model", str(tiny_run), "--out", str(out), "--float16"]
    )
    assert result.exit_code == 2
    assert "--float16 needs --check-data" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_mixed_precision_model_is_exported_as_float32(
    tmp_path: Path, card_saver: Callable[..., Path], fixture_patches: Patches
) -> None:
    import keras

    from model.predict import load_classifier
    from model.training.export_bundle import export_bundle
    from model.training.network import build_model

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = build_model("small-cnn", seed=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    source = card_saver(mixed, tmp_path / "best.keras", architecture="small-cnn")
    result = export_bundle(source, out=tmp_path / "export" / "model.keras")
    exported = load_classifier(result.path).model
    assert {layer.dtype_policy.name for layer in exported._flatten_layers()} == {
        "float32"
    }
    images, _ = fixture_patches
    np.testing.assert_allclose(
        load_classifier(result.path)(images[:4]),
        load_classifier(source)(images[:4]),
        atol=2e-3,
    )
