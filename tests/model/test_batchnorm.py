"""BatchNorm statistics recomputed for averaged weights (model.batchnorm)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")


def _dense_bn_model() -> object:
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="hidden")(inputs)
    normed = keras.layers.BatchNormalization(momentum=0.9, name="bn")(hidden)
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(normed))


def test_recalibration_gives_the_mean_of_the_batch_statistics() -> None:
    from model.training.batchnorm import recalibrate_batchnorm

    model = _dense_bn_model()
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.full(3, 50.0))
    bn.moving_variance.assign(np.full(3, 1e-4))
    weights = [w.copy() for w in model.get_weights() if w.shape != (3,)]
    x = np.random.default_rng(0).integers(0, 256, (128, 4)).astype(np.uint8)
    recalibrate_batchnorm(model, x, batch_size=32)

    hidden = keras.Model(model.input, model.get_layer("hidden").output)
    h = np.asarray(hidden(x.astype(np.float32))).reshape(4, 32, 3)
    np.testing.assert_allclose(bn.moving_mean.numpy(), h.mean(axis=(0, 1)), rtol=1e-4)
    np.testing.assert_allclose(
        bn.moving_variance.numpy(), h.var(axis=1).mean(axis=0), rtol=1e-3
    )
    assert bn.momentum == 0.9
    kept = [w for w in model.get_weights() if w.shape != (3,)]
    for before, after in zip(weights, kept, strict=True):
        np.testing.assert_array_equal(before, after)


def _train(tmp_path: Path, pcam_dir: Path, name: str, *extra: str) -> Path:
    from click.testing import CliRunner

    from wsi.cli import cli

    out = tmp_path / name
    args = ["train", str(pcam_dir), "--valid", str(pcam_dir), "--out", str(out)]
    # 24 fixture patches in batches of 8: three steps per epoch.
    args += ["--arch", "small-cnn", "--epochs", "2", "--batch-size", "8"]
    args += ["--lr", "0.01", "--ema", "0.9", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out


def test_saved_averaged_weights_carry_statistics_recomputed_for_them(
    tmp_path: Path, pcam_dir: Path
) -> None:
    from model.predict import load_classifier
    from model.training.batchnorm import batchnorm_layers, recalibrate_batchnorm
    from tests.model.conftest import read_fixture_patches

    recalibrated = _train(tmp_path, pcam_dir, "recalibrated")
    raw = _train(tmp_path, pcam_dir, "raw", "--bn-recalibration", "0")
    config = json.loads((recalibrated / "config.json").read_text())
    assert config["bn_recalibration"] > 0
    assert json.loads((raw / "config.json").read_text())["bn_recalibration"] == 0

    def stats(path: Path) -> tuple[object, list[np.ndarray]]:
        model = load_classifier(path / "best.keras").model
        layers = batchnorm_layers(model)
        return model, [np.array(layer.moving_mean.numpy()) for layer in layers]

    model, saved = stats(recalibrated)
    # The run recomputed them on every fixture patch (fewer than asked), in order.
    patches, _ = read_fixture_patches()
    recalibrate_batchnorm(model, patches)
    again = [np.array(layer.moving_mean.numpy()) for layer in batchnorm_layers(model)]
    for a, b in zip(saved, again, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)

    raw_model, raw_saved = stats(raw)
    recalibrate_batchnorm(raw_model, patches)
    raw_again = [np.array(x.moving_mean.numpy()) for x in batchnorm_layers(raw_model)]
    assert (
        max(
            float(np.abs(a - b).max())
            for a, b in zip(raw_saved, raw_again, strict=True)
        )
        > 1e-2
    )
