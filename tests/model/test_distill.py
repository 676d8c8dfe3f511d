"""Distillation: the teacher scores the very view the student trains on."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.training.augment import AugmentParams
from model.training.data import open_patch_set
from model.training.dataset import make_dataset
from model.training.distill import HARD_LABEL, TARGET, distillation_targets

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


def _log_rows(run: Path) -> list[dict[str, str]]:
    with (run / "log.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


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
    assert targets.shape == (8, 2)
    expected = teacher(views, training=False).numpy()[:, 0]
    label_part = (targets.numpy()[:, TARGET] - 0.75 * expected) / 0.25
    np.testing.assert_allclose(label_part, labels.numpy(), atol=1e-4)
    np.testing.assert_array_equal(targets.numpy()[:, HARD_LABEL], labels.numpy())
    # The views are augmented (not the stored pixels), so scoring the stored pixels
    # would have given other targets.
    assert not np.allclose(views.numpy(), raw_views.numpy())
    on_raw = teacher(raw_views, training=False).numpy()[:, 0]
    assert np.abs(on_raw - expected).max() > 1e-3


def test_student_loss_falls_when_trained_on_teacher_targets(
    tiny_model: Path, pcam_dir: Path, tmp_path: Path
) -> None:
    from model.predict import load_classifier
    from model.training.train import TrainConfig, train

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
            augment=AugmentParams(brightness=0, contrast=0, saturation=0, hue=0),
        )
    )
    losses = [float(row["loss"]) for row in _log_rows(out)]
    assert len(losses) == 4
    assert losses[-1] < losses[0]
    recipe = json.loads((out / "config.json").read_text())
    assert recipe["teacher"] == str(tiny_model)
    # The student is a plain classifier: it loads in safe mode without the loss.
    student = load_classifier(out / "best.keras")
    assert student(np.zeros((2, 96, 96, 3), np.uint8)).shape == (2,)


def test_training_metrics_of_a_distillation_run_use_the_true_labels(
    tiny_model: Path,
    pcam_dir: Path,
    fixture_patches: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
) -> None:
    """Soft targets train the student; ``auc``/``accuracy`` still use 0/1 labels."""
    import keras

    from model.predict import load_classifier
    from model.training.train import TrainConfig, train

    # The student starts as the teacher, trains on its scores only (label weight 0),
    # sees the stored pixels (no augmentation) and all 24 patches in its one step.
    # Against the soft targets the accuracy would be 0 (no score is exactly 0 or 1).
    out = tmp_path / "student"
    train(
        TrainConfig(
            train_data=pcam_dir,
            valid_data=pcam_dir,
            out_dir=out,
            arch="logreg",
            epochs=1,
            batch_size=24,
            learning_rate=1e-6,
            init_from=tiny_model,
            teacher=tiny_model,
            label_weight=0.0,
            augment=AugmentParams(
                dihedral=False, brightness=0, contrast=0, saturation=0, hue=0
            ),
        )
    )
    images, labels = fixture_patches
    scores = load_classifier(tiny_model)(images)
    expected_accuracy = float(np.mean((scores > 0.5) == labels))
    auc = keras.metrics.AUC(num_thresholds=1000)
    auc.update_state(labels, scores)
    (row,) = _log_rows(out)
    assert 0 < expected_accuracy <= 1
    assert float(row["accuracy"]) == pytest.approx(expected_accuracy, abs=1e-6)
    assert float(row["auc"]) == pytest.approx(float(auc.result()), abs=1e-4)
    # Validation keeps hard labels and its names; the best model loads in safe mode
    # without custom objects.
    assert 0 <= float(row["val_accuracy"]) <= 1
    assert float(row["val_auc"]) > 0.5
    student = load_classifier(out / "best.keras")
    assert student(images).shape == (24,)
