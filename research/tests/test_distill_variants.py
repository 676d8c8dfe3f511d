"""Distillation variants (research/): mixup and the teacher's test-time augmentation,
trained through ``model.training.train.train(config, targets=...)``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from distill_variants import (
    mixup_targets,
    shift_views,
    shifted_targets,
    teacher_tta_targets,
)

from model.training.augment import AugmentParams
from model.training.data import open_patch_set
from model.training.dataset import make_dataset
from model.training.distill import HARD_LABEL, TARGET

pytestmark = pytest.mark.tf


def _batches(pcam_dir: Path) -> Any:
    return make_dataset(
        open_patch_set(pcam_dir, split="train"),
        batch_size=8,
        training=True,
        augment=AugmentParams(hed=0.05),
        seed=3,
    )


def test_mixup_mixes_views_and_labels_alike(pcam_dir: Path) -> None:
    hook = mixup_targets(None, label_weight=1.0, alpha=0.4, seed=1)
    views, targets = next(iter(hook(_batches(pcam_dir), 0)))
    t, hard = targets.numpy()[:, TARGET], targets.numpy()[:, HARD_LABEL]
    assert ((t > 0.01) & (t < 0.99)).any()  # mixed labels
    # The hard label is the label of the patch with the larger share of the view.
    assert set(np.unique(hard)) <= {0.0, 1.0}
    assert np.abs(t - hard).max() <= 0.5
    assert views.numpy().min() >= 0
    assert views.numpy().max() <= 255
    again = next(iter(hook(_batches(pcam_dir), 0)))
    np.testing.assert_array_equal(again[1].numpy()[:, TARGET], t)  # seeded
    later = next(iter(hook(_batches(pcam_dir), 5)))  # a resumed run's draws differ
    assert not np.array_equal(later[1].numpy()[:, TARGET], t)
    with pytest.raises(ValueError, match="alpha must be positive"):
        mixup_targets(None, label_weight=1.0, alpha=0.0)


def test_a_student_trains_on_mixed_teacher_targets(
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
            augment=AugmentParams(brightness=0, contrast=0, saturation=0, hue=0),
        ),
        targets=mixup_targets(tiny_model, label_weight=0.0, alpha=0.2),
    )
    with (out / "log.csv").open(newline="") as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert len(losses) == 4
    assert losses[-1] < losses[0]
    assert json.loads((out / "config.json").read_text())["teacher"] is None
    student = load_classifier(out / "best.keras")
    assert student(np.zeros((2, 96, 96, 3), np.uint8)).shape == (2,)


def _asymmetric_teacher() -> Any:
    """A fixed random model that scores a patch and its mirror image differently."""
    import keras

    inputs = keras.Input((96, 96, 3))
    x = keras.layers.Flatten()(keras.layers.AveragePooling2D(16)(inputs))
    out = keras.layers.Dense(
        1,
        activation="sigmoid",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=2),
        bias_initializer=keras.initializers.Constant(-1.0),
    )(x)
    return keras.Model(inputs, out)


def test_teacher_tta_targets_are_the_teachers_dihedral_mean(pcam_dir: Path) -> None:
    from model.tta import combine, tta_views

    teacher = _asymmetric_teacher()
    hook = teacher_tta_targets(teacher, label_weight=0.25)
    views, targets = next(iter(hook(_batches(pcam_dir), 0)))
    x = views.numpy()
    single = teacher(x, training=False).numpy()[:, 0]
    by_view = [
        teacher(v.copy(), training=False).numpy()[:, 0]
        for v in tta_views(x, "dihedral")
    ]
    mean = combine(by_view)
    assert np.abs(single - mean).max() > 1e-3  # the symmetries do change the score
    hard = targets.numpy()[:, HARD_LABEL]
    np.testing.assert_allclose(
        targets.numpy()[:, TARGET], 0.25 * hard + 0.75 * mean, atol=1e-5
    )


@pytest.fixture
def batch() -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (64, 96, 96, 3)).astype(np.float32)


def _shifted(
    images: npt.NDArray[np.float32], largest: int, seed: tuple[int, int] = (0, 1)
) -> npt.NDArray[np.float32]:
    import tensorflow as tf

    return np.asarray(
        shift_views(tf.constant(images), largest, tf.constant(seed, tf.int64))
    )


def test_shift_translates_by_whole_pixels_reflecting_at_the_edges(
    batch: npt.NDArray[np.float32],
) -> None:
    largest = 8
    out = _shifted(batch, largest)
    padded = np.pad(
        batch, ((0, 0), (largest, largest), (largest, largest), (0, 0)), "symmetric"
    )
    offsets = set()
    for before, after in zip(padded, out, strict=True):
        found = [
            (dy, dx)
            for dy in range(-largest, largest + 1)
            for dx in range(-largest, largest + 1)
            if np.array_equal(
                before[
                    largest + dy : largest + dy + 96, largest + dx : largest + dx + 96
                ],
                after,
            )
        ]
        assert len(found) == 1  # an exact copy of the patch moved by whole pixels
        offsets.add(found[0])
    assert len(offsets) > 32  # drawn per image
    assert max(abs(d) for offset in offsets for d in offset) == largest


def test_shift_zero_is_identity(batch: npt.NDArray[np.float32]) -> None:
    np.testing.assert_array_equal(_shifted(batch[:4], 0), batch[:4])


def test_shifted_targets_score_the_shifted_view(pcam_dir: Path) -> None:
    teacher = _asymmetric_teacher()
    hook = shifted_targets(teacher, label_weight=0.0, largest=8)
    raw_views, _ = next(iter(_batches(pcam_dir)))
    views, targets = next(iter(hook(_batches(pcam_dir), 0)))
    assert not np.array_equal(views.numpy(), raw_views.numpy())  # shifted
    np.testing.assert_allclose(
        targets.numpy()[:, TARGET],
        teacher(views, training=False).numpy()[:, 0],
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="largest must be in"):
        shift_views(raw_views, 48, np.array([0, 1], np.int64))
