"""NASNetMobile resampling the patch inside the model (``internal_px``, ``--internal-px``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf


def test_upsampled_nasnet_takes_the_same_patch_and_the_96px_weights(
    tmp_path: Path,
) -> None:
    import keras

    from model.network import build_model

    plain = build_model("nasnet-mobile", seed=0)
    up = build_model("nasnet-mobile", seed=1, internal_px=128)
    assert tuple(up.input_shape) == (None, 96, 96, 3)  # PCam geometry unchanged
    assert tuple(up.output_shape) == (None, 1)
    assert tuple(up.get_layer("upsample").output.shape) == (None, 128, 128, 3)
    # The trunk's 4x4 map is pooled back to the 3x3 the pooled head has at 96 px.
    assert tuple(up.get_layer("pool_to_patch_map").output.shape)[1:3] == (3, 3)
    assert [w.shape for w in up.get_weights()] == [w.shape for w in plain.get_weights()]

    up.set_weights(plain.get_weights())  # what --init-from does
    x = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3)).astype(np.float32)
    p_plain = np.asarray(plain(x, training=False))
    p_up = np.asarray(up(x, training=False))
    assert np.all((p_up > 0) & (p_up < 1))
    assert not np.allclose(p_up, p_plain)  # the trunk really sees 128 px

    path = tmp_path / "up.keras"
    up.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), p_up, atol=1e-6)


def test_internal_px_is_refused_where_it_does_not_apply(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from model.network import build_model
    from model.train import TrainConfig
    from wsi.cli import cli

    with pytest.raises(ValueError, match="nasnet-mobile only"):
        build_model("small-cnn", internal_px=128)
    with pytest.raises(ValueError, match="at least the patch size 96"):
        build_model("nasnet-mobile", internal_px=64)
    with pytest.raises(ValueError, match="inside nasnet-mobile only"):
        TrainConfig(
            train_data=tmp_path,
            valid_data=None,
            out_dir=tmp_path,
            arch="logreg",
            internal_px=128,
        )
    result = CliRunner().invoke(
        cli,
        ["train", str(tmp_path), "--out", str(tmp_path / "run"), "--internal-px", "64"],
    )
    assert result.exit_code == 2
    assert "--internal-px" in result.output
