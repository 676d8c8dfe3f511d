"""NASNetMobile resampling the patch inside the model (research/internal_px.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf


def test_upsampled_nasnet_takes_the_same_patch_and_the_96px_weights(
    tmp_path: Path,
) -> None:
    import keras
    from internal_px import build_nasnet_internal

    from model.training.network import build_model

    plain = build_model("nasnet-mobile", seed=0)
    up = build_nasnet_internal(128, seed=1)
    assert tuple(up.input_shape) == (None, 96, 96, 3)  # PCam geometry unchanged
    assert tuple(up.output_shape) == (None, 1)
    assert tuple(up.get_layer("upsample").output.shape) == (None, 128, 128, 3)
    assert tuple(up.get_layer("pool_to_patch_map").output.shape)[1:3] == (3, 3)
    assert [w.shape for w in up.get_weights()] == [w.shape for w in plain.get_weights()]
    up.set_weights(plain.get_weights())  # what --init-from does
    x = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3)).astype(np.float32)
    p_up = np.asarray(up(x, training=False))
    assert not np.allclose(p_up, np.asarray(plain(x, training=False)))
    path = tmp_path / "up.keras"
    up.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), p_up, atol=1e-6)


def test_the_training_hook_trains_it(tmp_path: Path) -> None:
    """model.training.train.train(config, build=...) runs an experiment's network."""
    from internal_px import nasnet_builder

    from model.training.train import TrainConfig, train
    from tests.model.conftest import PCAM_DIR

    config = TrainConfig(
        train_data=PCAM_DIR,
        valid_data=PCAM_DIR,
        out_dir=tmp_path / "run",
        arch="nasnet-mobile",
        epochs=1,
        batch_size=4,
        steps_per_epoch=1,
    )
    result = train(config, build=nasnet_builder(112))
    assert result.best_model.is_file()
