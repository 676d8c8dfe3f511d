"""Distillation: the teacher scores the very view the student trains on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.augment import AugmentParams
from model.data import open_patch_set
from model.dataset import make_dataset
from model.distill import distillation_targets

pytestmark = pytest.mark.tf


def _brightness_teacher() -> Any:
    """A fixed model whose output depends on every pixel: sigmoid(mean / 64 - 2)."""
    import keras

    inputs = keras.Input((96, 96, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, out)
    model.layers[-1].set_weights(
        [np.full((3, 1), 1 / 192, np.float32), np.array([-2.0], np.float32)]
    )
    return model


def _batches(pcam_dir: Path, **kwargs: Any) -> Any:
    patches = open_patch_set(pcam_dir, split="train")
    return make_dataset(
        patches,
        batch_size=8,
        training=True,
        augment=AugmentParams(hed=0.05),
        seed=3,
        **kwargs,
    )


def test_targets_are_the_teachers_scores_of_the_augmented_view(pcam_dir: Path) -> None:
    teacher = _brightness_teacher()
    raw = make_dataset(
        open_patch_set(pcam_dir, split="train"),
        batch_size=8,
        training=True,
        augment=None,
        seed=3,
    )
    raw_views, labels = next(iter(raw))
    ds = distillation_targets(_batches(pcam_dir), teacher, label_weight=0.25)
    views, targets = next(iter(ds))
    expected = teacher(views, training=False).numpy()[:, 0]
    label_part = (targets.numpy() - 0.75 * expected) / 0.25
    np.testing.assert_allclose(label_part, labels.numpy(), atol=1e-4)
    # The views are augmented (not the stored pixels), so scoring the stored pixels
    # would have given other targets.
    assert not np.allclose(views.numpy(), raw_views.numpy())
    on_raw = teacher(raw_views, training=False).numpy()[:, 0]
    assert np.abs(on_raw - expected).max() > 1e-3


def test_mixup_mixes_views_and_labels_alike(pcam_dir: Path) -> None:
    ds = distillation_targets(
        _batches(pcam_dir), None, label_weight=1.0, mixup=0.4, seed=1
    )
    views, targets = next(iter(ds))
    t = targets.numpy()
    assert ((t > 0.01) & (t < 0.99)).any()  # mixed labels
    assert views.numpy().min() >= 0
    assert views.numpy().max() <= 255
    again = next(
        iter(
            distillation_targets(
                _batches(pcam_dir), None, label_weight=1.0, mixup=0.4, seed=1
            )
        )
    )
    np.testing.assert_array_equal(again[1].numpy(), t)  # deterministic under the seed


def test_student_loss_falls_when_trained_on_teacher_targets(
    tiny_model: Path, pcam_dir: Path, tmp_path: Path
) -> None:
    from model.train import TrainConfig, train

    out = tmp_path / "student"
    train(
        TrainConfig(
            train_data=pcam_dir,
            valid_data=pcam_dir,
            out_dir=out,
            arch="logreg",
            epochs=4,
            batch_size=8,
            steps_per_epoch=3,
            learning_rate=3e-4,
            teacher=tiny_model,
            label_weight=0.0,
            mixup=0.2,
            augment=AugmentParams(brightness=0, contrast=0, saturation=0, hue=0),
        )
    )
    losses = [
        float(line.split(",")[3])
        for line in (out / "log.csv").read_text().splitlines()[1:]
    ]
    assert len(losses) == 4
    assert losses[-1] < losses[0]
    recipe = json.loads((out / "config.json").read_text())
    assert recipe["teacher"] == str(tiny_model)
    assert recipe["mixup"] == 0.2
