"""Cross-fitted teachers: each patch's target comes from a teacher that never saw it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.training.augment import AugmentParams
from model.training.data import ArrayPatchSet, fold_ids, open_patch_set, without_fold
from wsi.errors import ModelLoadError

NO_COLOUR = AugmentParams(brightness=0, contrast=0, saturation=0, hue=0)


def test_each_fold_holds_an_even_share_of_each_class(pcam_dir: Path) -> None:
    patches = open_patch_set(pcam_dir)
    folds = fold_ids(len(patches), 2)
    for label in (0, 1):
        members = folds[patches.labels == label]
        assert np.bincount(members).tolist() == [6, 6]
    kept = without_fold(patches, folds=2, holdout=1)
    assert len(kept) == 12
    assert set(folds[kept.indices].tolist()) == {0}
    with pytest.raises(ValueError, match="holdout fold must lie in"):
        without_fold(patches, folds=2, holdout=2)


@pytest.mark.tf
def test_each_patchs_group_survives_shuffling_and_augmentation() -> None:
    from model.training.dataset import make_dataset

    # Patch i is a flat image of value 10 * i: any symmetry leaves it so.
    n = 12
    images = np.stack([np.full((96, 96, 3), 10 * i, np.uint8) for i in range(n)])
    patches = ArrayPatchSet(name="flat", images=images, label_array=np.arange(n) % 2)
    groups = fold_ids(n, 3)
    ds = make_dataset(
        patches, batch_size=4, training=True, augment=NO_COLOUR, groups=groups
    )
    seen = set()
    for views, labels, batch_groups in ds.take(6):
        index = np.rint(views.numpy()[:, 0, 0, 0] / 10).astype(int)
        assert batch_groups.numpy().tolist() == groups[index].tolist()
        assert labels.numpy().tolist() == (index % 2).tolist()
        seen.update(index.tolist())
    assert seen == set(range(n))
    with pytest.raises(ValueError, match="one integer per patch"):
        make_dataset(patches, batch_size=4, training=False, groups=groups[:5])


def _constant_teacher(p: float) -> Any:
    """A model that scores every image ``p``."""
    import keras

    inputs = keras.Input((96, 96, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    logit = np.log(p / (1 - p))
    model.layers[-1].set_weights(
        [np.zeros((3, 1), np.float32), np.array([logit], np.float32)]
    )
    return model


@pytest.mark.tf
def test_each_view_is_scored_by_the_teacher_of_its_fold(pcam_dir: Path) -> None:
    import tensorflow as tf

    from model.training.dataset import make_dataset
    from model.training.distill import HARD_LABEL, TARGET, distillation_targets

    patches = open_patch_set(pcam_dir)
    teachers = [_constant_teacher(0.2), _constant_teacher(0.8)]
    ds = make_dataset(
        patches,
        batch_size=8,
        training=True,
        augment=NO_COLOUR,
        groups=fold_ids(len(patches), 2),
    )
    for views, labels, folds in ds.take(3):
        batch = tf.data.Dataset.from_tensors((views, labels, folds))
        ((out_views, targets),) = distillation_targets(
            batch, None, label_weight=0.5, fold_teachers=teachers
        )
        teacher_score = np.where(folds.numpy() == 0, 0.2, 0.8)
        expected = 0.5 * labels.numpy() + 0.5 * teacher_score
        np.testing.assert_allclose(targets.numpy()[:, TARGET], expected, atol=1e-5)
        np.testing.assert_array_equal(targets.numpy()[:, HARD_LABEL], labels.numpy())
        np.testing.assert_array_equal(out_views.numpy(), views.numpy())
    with pytest.raises(ValueError, match="fold_teachers replace the teacher"):
        distillation_targets(ds, teachers[0], label_weight=0.1, fold_teachers=teachers)


def _fold_teacher(pcam_dir: Path, out: Path, holdout: int, **kwargs: Any) -> Path:
    from model.training.train import TrainConfig, train

    train(
        TrainConfig(
            train_data=pcam_dir,
            valid_data=pcam_dir,
            out_dir=out,
            arch="logreg",
            epochs=1,
            batch_size=4,
            steps_per_epoch=2,
            folds=2,
            holdout_fold=holdout,
            augment=NO_COLOUR,
            **kwargs,
        )
    )
    return out / "best.keras"


@pytest.mark.tf
def test_a_student_trains_on_cross_fitted_teachers(
    pcam_dir: Path, tiny_model: Path, tmp_path: Path
) -> None:
    from model.training.train import TrainConfig, train

    t0 = _fold_teacher(pcam_dir, tmp_path / "t0", 0)
    t1 = _fold_teacher(pcam_dir, tmp_path / "t1", 1)
    teacher_recipe = json.loads((tmp_path / "t0" / "config.json").read_text())
    assert (teacher_recipe["folds"], teacher_recipe["holdout_fold"]) == (2, 0)
    assert teacher_recipe["n_train"] == 12
    student: dict[str, Any] = {
        "train_data": pcam_dir,
        "valid_data": pcam_dir,
        "arch": "logreg",
        "epochs": 1,
        "batch_size": 8,
        "steps_per_epoch": 2,
        "label_weight": 0.1,
        "augment": AugmentParams(shift=4),
    }
    train(TrainConfig(out_dir=tmp_path / "s", fold_teachers=(t1, t0), **student))
    recipe = json.loads((tmp_path / "s" / "config.json").read_text())
    assert recipe["fold_teachers"] == [str(t1), str(t0)]
    assert (tmp_path / "s" / "best.keras").is_file()

    with pytest.raises(ModelLoadError, match="as another fold teacher does"):
        train(TrainConfig(out_dir=tmp_path / "x", fold_teachers=(t0, t0), **student))
    with pytest.raises(ModelLoadError, match="was not trained with a fold held out"):
        train(
            TrainConfig(
                out_dir=tmp_path / "y", fold_teachers=(t0, tiny_model), **student
            )
        )
    other = _fold_teacher(pcam_dir, tmp_path / "t-other", 1, limit_train=16)
    with pytest.raises(ModelLoadError, match="was trained on another training set"):
        train(TrainConfig(out_dir=tmp_path / "z", fold_teachers=(t0, other), **student))


def test_fold_options_are_validated(tmp_path: Path) -> None:
    from model.training.train import TrainConfig

    base = {"train_data": tmp_path, "valid_data": None, "out_dir": tmp_path}
    teachers = (tmp_path / "a.keras", tmp_path / "b.keras")
    with pytest.raises(ValueError, match=r"holdout_fold must lie in \[0, 2\)"):
        TrainConfig(**base, folds=2, holdout_fold=2)
    for bad in (
        {"teacher": tmp_path / "t.keras"},
        {"folds": 2, "holdout_fold": 0},
    ):
        with pytest.raises(ValueError, match="replace the teacher"):
            TrainConfig(**base, fold_teachers=teachers, **bad)
    with pytest.raises(ValueError, match="at least 2"):
        TrainConfig(**base, fold_teachers=teachers[:1])
    config = TrainConfig(**base, fold_teachers=teachers, augment=AugmentParams(shift=8))
    assert config.augment.shift == 8


@pytest.mark.tf
def test_cli_trains_a_fold_teacher_and_refuses_bad_fold_options(
    pcam_dir: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from wsi.cli import cli

    out = tmp_path / "teacher"
    args = ["train", str(pcam_dir), "--valid", str(pcam_dir), "--out", str(out)]
    args += ["--arch", "logreg", "--epochs", "1", "--batch-size", "4"]
    result = CliRunner().invoke(cli, [*args, "--folds", "2", "--holdout-fold", "1"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert (config["folds"], config["holdout_fold"], config["n_train"]) == (2, 1, 12)
    teacher = str(out / "best.keras")
    for bad, message in (
        (["--folds", "2"], "go together"),
        (["--folds", "2", "--holdout-fold", "2"], "is not a fold of --folds 2"),
        (["--fold-teacher", teacher], "give one per fold"),
        (["--fold-teacher", teacher] * 2 + ["--teacher", teacher], "not both"),
    ):
        refused = CliRunner().invoke(cli, [*args, *bad])
        assert refused.exit_code == 2, bad
        assert message in refused.output, refused.output
