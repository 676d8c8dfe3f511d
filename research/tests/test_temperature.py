"""Distillation at a temperature (research/temperature.py): softened logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from temperature import TemperedCrossentropy, tempered_crossentropy

from model.training.distill import HARD_LABEL, TARGET, target_crossentropy

pytestmark = pytest.mark.tf


def _labels(targets: list[float]) -> np.ndarray:
    """``[B, 2]`` distillation labels: the targets and a 0/1 label beside them."""
    out = np.zeros((len(targets), max(TARGET, HARD_LABEL) + 1), np.float32)
    out[:, TARGET] = targets
    out[:, HARD_LABEL] = np.round(targets)
    return out


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def _logit_gradient(temperature: float, target: float, prediction: float) -> float:
    """d loss / d (student logit) for one view."""
    import tensorflow as tf

    loss = TemperedCrossentropy(temperature)
    z = tf.Variable([[_logit(prediction)]], dtype=tf.float32)
    with tf.GradientTape() as tape:
        value = loss.call(tf.constant(_labels([target])), tf.sigmoid(z))
    return float(tape.gradient(value, z).numpy()[0, 0])


def test_at_temperature_one_it_is_the_plain_distillation_loss() -> None:
    rng = np.random.default_rng(0)
    targets = rng.uniform(0.001, 0.999, 64)
    predictions = rng.uniform(0.001, 0.999, (64, 1)).astype(np.float32)
    tempered = TemperedCrossentropy(1.0).call(_labels(list(targets)), predictions)
    plain = target_crossentropy(_labels(list(targets)), predictions)
    np.testing.assert_allclose(np.asarray(tempered), np.asarray(plain), rtol=1e-4)
    assert tempered_crossentropy(1.0) is target_crossentropy


def test_a_temperature_pulls_harder_where_the_teacher_is_sure() -> None:
    # Teacher 0.999, student 0.99: both "sure", but 2.3 apart in logits.
    plain = _logit_gradient(1.0, 0.999, 0.99)
    warm = _logit_gradient(4.0, 0.999, 0.99)
    # Both raise the student's score.
    assert plain < 0
    assert warm < 0
    assert abs(warm) > 10 * abs(plain)
    # Where the teacher is unsure the pull keeps its scale (T**2 scaling).
    assert _logit_gradient(4.0, 0.5, 0.6) == pytest.approx(
        _logit_gradient(1.0, 0.5, 0.6), rel=0.1
    )


def test_a_high_temperature_matches_logits() -> None:
    """As T grows the loss tends to (z_s - z_t)**2 / 8: gradient (z_s - z_t) / 4."""
    for target, prediction in [(0.999, 0.9), (0.02, 0.3), (0.7, 0.2)]:
        gap = _logit(prediction) - _logit(target)
        assert _logit_gradient(200.0, target, prediction) == pytest.approx(
            gap / 4, rel=0.01
        )


def test_the_loss_is_lowest_where_the_prediction_is_the_target() -> None:
    targets = [0.001, 0.2, 0.5, 0.97]
    best = np.asarray(
        TemperedCrossentropy(3.0).call(
            _labels(targets), np.array(targets, np.float32)[:, None]
        )
    )
    for shift in (-0.5, 0.5):
        moved = 1 / (
            1 + np.exp(-(np.log(np.divide(targets, 1 - np.array(targets))) + shift))
        )
        other = np.asarray(
            TemperedCrossentropy(3.0).call(
                _labels(targets), moved.astype(np.float32)[:, None]
            )
        )
        assert np.all(other > best)


def test_the_temperature_survives_serialisation() -> None:
    loss = TemperedCrossentropy(2.5)
    again = TemperedCrossentropy.from_config(loss.get_config())
    assert again.temperature == 2.5
    with pytest.raises(ValueError, match="temperature must be positive"):
        TemperedCrossentropy(0.0)


def test_a_distillation_run_at_a_temperature_through_the_hook(
    tiny_model: Path, pcam_dir: Path, tmp_path: Path
) -> None:
    """model.training.train.train(config, loss=...) trains a student at temperature 4."""
    from model.training.train import TrainConfig, train

    config = TrainConfig(
        train_data=pcam_dir,
        valid_data=pcam_dir,
        out_dir=tmp_path / "run",
        arch="logreg",
        epochs=1,
        batch_size=8,
        steps_per_epoch=2,
        teacher=tiny_model,
        label_weight=0.1,
    )
    result = train(config, loss=tempered_crossentropy(4.0))
    assert result.best_model.is_file()
