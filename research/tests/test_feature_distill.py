"""Feature matching (research/): the student learns the teacher's last feature map too."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.training.augment import AugmentParams

pytestmark = pytest.mark.tf

_QUIET = AugmentParams(brightness=0, contrast=0, saturation=0, hue=0)


@pytest.fixture(scope="module")
def cnn_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random small-cnn saved with its sidecar: a teacher with a 6x6x256 map."""
    from model.card import ModelCard, write_card
    from model.training.network import build_model, preprocessing_for

    path = tmp_path_factory.mktemp("teacher") / "teacher.keras"
    build_model("small-cnn", seed=5).save(path)
    write_card(
        path,
        ModelCard(
            architecture="small-cnn", preprocessing=preprocessing_for("small-cnn")
        ),
    )
    return path


def _hooks(teacher: Path, weight: float = 1.0) -> dict[str, Any]:
    """The train() hooks of feature matching with ``teacher``."""
    from distill_variants import feature_matching_builder, feature_targets

    return {
        "build": feature_matching_builder(teacher, weight),
        "targets": feature_targets(teacher, label_weight=0.1),
    }


def _config(out: Path, pcam_dir: Path, teacher: Path, **kwargs: Any) -> Any:
    from model.training.train import TrainConfig

    settings: dict[str, Any] = {
        "train_data": pcam_dir,
        "valid_data": pcam_dir,
        "out_dir": out,
        "arch": "small-cnn",
        "epochs": 3,
        "batch_size": 8,
        "steps_per_epoch": 3,
        "learning_rate": 1e-3,
        "teacher": teacher,
        "label_weight": 0.1,
        "augment": _QUIET,
    }
    settings.update(kwargs)
    return TrainConfig(**settings)


def test_teacher_targets_append_the_normalised_feature_map(
    cnn_teacher: Path, fixture_patches: tuple[np.ndarray, np.ndarray]
) -> None:
    import keras
    from feature_distill import feature_map, teacher_targets

    from model.training.distill import load_teacher

    teacher = load_teacher(cnn_teacher)
    images = fixture_patches[0][:4].astype(np.float32)
    prob, flat = teacher_targets(teacher)(images, training=False)
    np.testing.assert_allclose(
        prob.numpy(), teacher(images, training=False).numpy(), atol=1e-6
    )
    assert flat.shape == (4, 6 * 6 * 256)
    raw = np.asarray(keras.Model(teacher.input, feature_map(teacher))(images))
    raw = raw.reshape(4, 36, 256)
    per_position = flat.numpy().reshape(4, 36, 256)
    np.testing.assert_allclose(per_position.mean(axis=-1), 0, atol=1e-4)
    # Unit variance, up to the small constant that keeps flat positions finite ...
    expected_std = raw.std(axis=-1) / np.sqrt(raw.var(axis=-1) + 1e-3)
    np.testing.assert_allclose(per_position.std(axis=-1), expected_std, atol=1e-3)
    # ... and the same pattern over the channels as the raw map.
    i, j = np.unravel_index(np.argmax(raw.std(axis=-1)), raw.shape[:2])
    assert np.corrcoef(raw[i, j], per_position[i, j])[0, 1] > 0.999


def test_feature_targets_travel_after_the_two_label_columns(
    cnn_teacher: Path, pcam_dir: Path
) -> None:
    from distill_variants import feature_targets
    from feature_distill import FEATURE_COLUMNS, teacher_targets

    from model.training.data import open_patch_set
    from model.training.dataset import make_dataset
    from model.training.distill import HARD_LABEL, TARGET, load_teacher

    teacher = load_teacher(cnn_teacher)
    batches = make_dataset(
        open_patch_set(pcam_dir, split="train"),
        batch_size=8,
        training=True,
        augment=AugmentParams(hed=0.05),
        seed=3,
    )
    views, labels = next(iter(feature_targets(teacher, label_weight=0.2)(batches, 0)))
    assert labels.shape == (8, FEATURE_COLUMNS + 6 * 6 * 256)
    hard = labels.numpy()[:, HARD_LABEL]
    assert set(np.unique(hard)) <= {0.0, 1.0}
    # The first two columns are plain distillation's: target and true label ...
    prob, expected = teacher_targets(teacher)(views, training=False)
    np.testing.assert_allclose(
        labels.numpy()[:, TARGET], 0.2 * hard + 0.8 * prob.numpy()[:, 0], atol=1e-5
    )
    # ... then come the teacher's features of those very (augmented) views.
    np.testing.assert_allclose(
        labels.numpy()[:, FEATURE_COLUMNS:], expected.numpy(), atol=1e-5
    )


def test_feature_loss_falls_and_the_saved_model_is_the_plain_student(
    cnn_teacher: Path, pcam_dir: Path, tmp_path: Path
) -> None:
    from model.predict import load_classifier
    from model.training.train import train

    out = tmp_path / "student"
    result = train(_config(out, pcam_dir, cnn_teacher, epochs=4), **_hooks(cnn_teacher))
    with (out / "log.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    matched = [float(r["feature_loss"]) for r in rows]
    assert matched[-1] < 0.8 * matched[0], matched
    assert "val_feature_loss" not in rows[0]
    # The total training loss includes the feature term; validation's does not.
    assert all(float(r["loss"]) > float(r["feature_loss"]) for r in rows)
    loaded = load_classifier(result.best_model)
    assert loaded.card.architecture == "small-cnn"
    assert loaded.model.name == "small_cnn"
    assert len(loaded.model.outputs) == 1
    assert loaded.model.output.shape[1:] == (1,)
    assert not any("projector" in w.path for w in loaded.model.weights)
    config = json.loads((out / "config.json").read_text())
    assert config["teacher"] == str(cnn_teacher)


def test_feature_matching_resumes_from_its_backup(
    cnn_teacher: Path, pcam_dir: Path, tmp_path: Path
) -> None:
    import keras

    from model.training.callbacks import resume_epoch
    from model.training.train import train

    class Killed(Exception):
        pass

    class KillInSecondEpoch(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if self.epoch == 1 and batch == 2:
                raise Killed

    out = tmp_path / "resumed"
    config = _config(out, pcam_dir, cnn_teacher, checkpoint_steps=2)
    with pytest.raises(Killed):
        train(config, callbacks=[KillInSecondEpoch()], **_hooks(cnn_teacher))
    assert resume_epoch(out / "backup") == 1
    result = train(config, **_hooks(cnn_teacher))
    assert result.epochs_run == 2  # epochs 2 and 3 only
    with (out / "log.csv").open(newline="") as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == [0, 1, 2]
    assert result.best_model.is_file()


def test_feature_matching_is_refused_where_it_cannot_work(
    cnn_teacher: Path,
    pcam_dir: Path,
    tmp_path: Path,
    card_saver: Callable[..., Path],
) -> None:
    import keras
    from feature_distill import FeatureMatching

    from model.training.network import build_model
    from model.training.train import train

    with pytest.raises(ValueError, match="weight must be positive"):
        _hooks(cnn_teacher, weight=-1.0)
    with pytest.raises(ValueError, match="no 'gap' pooling layer"):
        train(
            _config(tmp_path / "c", pcam_dir, cnn_teacher, arch="logreg"),
            **_hooks(cnn_teacher),
        )
    with pytest.raises(ValueError, match="the same grid"):
        FeatureMatching(
            build_model("small-cnn"), teacher_shape=(3, 3, 1280), weight=1.0
        )
    # A teacher without a feature map (a plain Keras model, no 'gap' layer).
    inputs = keras.Input((96, 96, 3))
    flat = keras.layers.Flatten()(keras.layers.AveragePooling2D(8)(inputs))
    plain = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(flat))
    no_map = card_saver(plain, tmp_path / "plain.keras", architecture="test")
    with pytest.raises(ValueError, match="no 'gap' pooling layer"):
        _hooks(no_map)
