"""The architectures: shapes, scaling inside the model, NASNet's head and BN, Lite0 init."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf


@pytest.mark.parametrize("arch", ["logreg", "small-cnn"])
def test_small_models_map_patches_to_one_probability(arch: str) -> None:
    from model.training.network import build_model

    model = build_model(arch, seed=0)
    assert tuple(model.input_shape) == (None, 96, 96, 3)
    assert tuple(model.output_shape) == (None, 1)
    x = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3)).astype(np.float32)
    probs = np.asarray(model(x, training=False))
    assert np.all((probs > 0) & (probs < 1))
    assert model.get_layer("scale") is not None  # 0..255 -> [-1, 1] inside the model


def test_same_seed_same_initial_weights() -> None:
    from model.training.network import build_model

    a, b = build_model("small-cnn", seed=3), build_model("small-cnn", seed=3)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_unknown_arch() -> None:
    from model.training.network import build_model

    with pytest.raises(ValueError, match="arch must be one of"):
        build_model("resnet")


def test_cached_imagenet_weights_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from model.training.network import cached_imagenet_weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    found = cached_imagenet_weights()
    assert found is None or found.parent == Path("/tmp/.keras/models")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "nasnet_mobile_no_top.h5").write_bytes(b"")
    assert cached_imagenet_weights() == tmp_path / "models" / "nasnet_mobile_no_top.h5"


@pytest.mark.slow
def test_nasnet_mobile_trunk_and_pooled_head(tmp_path: Path) -> None:
    import keras

    from model.training.network import DEFAULT_BN_MOMENTUM, build_model

    with pytest.raises(FileNotFoundError, match="ImageNet weights not found"):
        build_model("nasnet-mobile", imagenet_weights=tmp_path / "missing.h5")
    model = build_model("nasnet-mobile", seed=0)
    assert tuple(model.output_shape) == (None, 1)
    trunk_out = model.get_layer("pooled").input
    shapes = sorted(tuple(t.shape) for t in trunk_out)
    assert shapes == [(None, 1056), (None, 1056), (None, 3 * 3 * 1056)]
    momenta = {
        layer.momentum
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    }
    assert momenta == {DEFAULT_BN_MOMENTUM}
    assert 4_000_000 < model.count_params() < 5_000_000


def test_imagenet_weights_file_initialises_the_trunk(tmp_path: Path) -> None:
    """A Keras-format ``nasnet_mobile_no_top.h5`` (legacy HDF5, as Keras ships it)."""
    import h5py
    import keras
    import numpy as np
    from keras.src.legacy.saving import legacy_h5_format

    from model.training.network import build_model

    keras.utils.set_random_seed(7)
    source = keras.applications.NASNetMobile(
        input_shape=(96, 96, 3), include_top=False, weights=None
    )
    path = tmp_path / "nasnet_mobile_no_top.h5"
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, source)
    model = build_model("nasnet-mobile", imagenet_weights=path, seed=0)
    trunk = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    loaded = trunk.get_weights()
    expected = source.get_weights()
    assert len(loaded) == len(expected)
    for got, want in zip(loaded, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    random = build_model("nasnet-mobile", seed=0)
    random_trunk = next(
        layer for layer in random.layers if isinstance(layer, keras.Model)
    )
    assert not np.array_equal(random_trunk.get_weights()[0], expected[0])


def test_efficientnet_lite0_starts_from_the_shipped_imagenet_weights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from model.training.efficientnet_lite import load_imagenet_npz
    from model.training.network import build_model

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("building a model must not reach the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    model = build_model("efficientnet-lite0", seed=0)
    assert tuple(model.output_shape) == (None, 1)
    assert model.get_layer("head_dropout").rate == pytest.approx(0.3)
    shipped = load_imagenet_npz()
    for name in ("stem_conv", "block7_dwconv", "head_bn"):
        for ours, theirs in zip(
            model.get_layer(name).get_weights(), shipped[name], strict=True
        ):
            np.testing.assert_array_equal(ours, theirs)
    random = build_model("efficientnet-lite0", pretrained=False, seed=0)
    assert not np.allclose(
        random.get_layer("stem_conv").get_weights()[0], shipped["stem_conv"][0]
    )
    x = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3)).astype(np.float32)
    probs = np.asarray(model(x, training=False))
    assert np.all((probs > 0) & (probs < 1))


def test_efficientnet_lite0_missing_weights_file_names_the_fix(tmp_path: Path) -> None:
    from model.training.network import build_model

    with pytest.raises(FileNotFoundError, match="pretrained=False"):
        build_model("efficientnet-lite0", imagenet_weights=tmp_path / "none.npz")
