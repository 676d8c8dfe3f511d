"""Weight averaging of same-architecture models (research/soup.py)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")


def _model(seed: int, hidden: int = 3) -> object:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(hidden)(inputs)
    x = keras.layers.BatchNormalization()(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def test_the_average_is_the_share_weighted_mean_of_each_weight() -> None:
    from soup import average_weights

    a, b = _model(1), _model(2)
    mixed = average_weights([a, b], [3, 1])
    for got, wa, wb in zip(mixed, a.get_weights(), b.get_weights(), strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, 0.75 * wa + 0.25 * wb, rtol=1e-6, atol=1e-7)
    equal = average_weights([a, b])
    np.testing.assert_allclose(equal[0], (a.get_weights()[0] + b.get_weights()[0]) / 2)


def test_a_model_averaged_with_itself_predicts_as_before() -> None:
    from soup import average_weights

    model = _model(3)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    before = np.asarray(model(x))
    model.set_weights(average_weights([model, model, model], [0.2, 0.5, 0.3]))
    np.testing.assert_allclose(np.asarray(model(x)), before, rtol=1e-5)


@pytest.mark.parametrize(
    ("mixing", "message"),
    [
        ([1.0], "2 models but 1 mixing"),
        ([1.0, -1.0], ">= 0"),
        ([0.0, 0.0], "not all 0"),
    ],
)
def test_bad_mixing_weights_are_refused(mixing: list[float], message: str) -> None:
    from soup import average_weights

    with pytest.raises(ValueError, match=message):
        average_weights([_model(1), _model(2)], mixing)


def test_models_of_another_architecture_are_refused() -> None:
    from soup import average_weights

    with pytest.raises(ValueError, match="model 1 has other weights"):
        average_weights([_model(1), _model(2, hidden=5)])
    with pytest.raises(ValueError, match="at least one"):
        average_weights([])


def test_keras_model_auc_scores_the_whole_set_in_order() -> None:
    from model.training.data import ArrayPatchSet
    from model.training.evaluate import keras_model_auc, roc_auc

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 96, 96, 3), dtype=np.uint8)
    labels = (images[:, 40:56, 40:56].mean(axis=(1, 2, 3)) > 127).astype(np.uint8)
    inputs = keras.Input((96, 96, 3))
    centre = keras.layers.Cropping2D(40)(inputs)
    mean = keras.layers.GlobalAveragePooling2D()(centre)
    model = keras.Model(inputs, keras.layers.Dense(1)(mean))
    model.layers[-1].set_weights([np.ones((3, 1)) / 3, np.zeros(1)])
    patches = ArrayPatchSet(name="random", images=images, label_array=labels)
    expected = roc_auc(labels, np.asarray(model(images.astype(np.float32))).ravel())
    assert keras_model_auc(model, patches, batch_size=7) == pytest.approx(expected)
    assert expected == 1.0
