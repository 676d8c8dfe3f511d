"""Cross-fitted teachers (research/): each patch's target comes from a teacher that
never saw it, trained through ``model.training.train.train``'s hooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cross_fit import (
    fold_ids,
    fold_student_hooks,
    fold_teacher_hooks,
    fold_teacher_scores,
    without_fold,
)

from model.training.augment import AugmentParams
from model.training.data import ArrayPatchSet, open_patch_set
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
    from model.training.dataset import make_dataset

    patches = open_patch_set(pcam_dir)
    teachers = [_constant_teacher(0.2), _constant_teacher(0.8)]
    ds = make_dataset(
        patches,
        batch_size=8,
        training=True,
        augment=NO_COLOUR,
        groups=fold_ids(len(patches), 2),
    )
    for views, _, folds in ds.take(3):
        scores = fold_teacher_scores(teachers, views, folds).numpy()
        expected = np.where(folds.numpy() == 0, 0.2, 0.8)
        np.testing.assert_allclose(scores, expected, atol=1e-5)


def _fold_teacher(pcam_dir: Path, out: Path, holdout: int, **kwargs: Any) -> Path:
    from model.training.train import TrainConfig, train

    config = TrainConfig(
        train_data=pcam_dir,
        valid_data=pcam_dir,
        out_dir=out,
        arch="logreg",
        epochs=1,
        batch_size=4,
        steps_per_epoch=2,
        augment=NO_COLOUR,
        **kwargs,
    )
    train(config, **fold_teacher_hooks(config, folds=2, holdout=holdout))
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
        "augment": NO_COLOUR,
    }
    config = TrainConfig(out_dir=tmp_path / "s", **student)
    train(config, **fold_student_hooks(config, (t1, t0)))
    recipe = json.loads((tmp_path / "s" / "config.json").read_text())
    assert recipe["fold_teachers"] == [str(t1), str(t0)]
    assert (tmp_path / "s" / "best.keras").is_file()

    with pytest.raises(ModelLoadError, match="as another fold teacher does"):
        fold_student_hooks(config, (t0, t0))
    with pytest.raises(ModelLoadError, match="was not trained with a fold held out"):
        fold_student_hooks(config, (t0, tiny_model))
    other = _fold_teacher(pcam_dir, tmp_path / "t-other", 1, limit_train=16)
    with pytest.raises(ModelLoadError, match="was trained on another training set"):
        fold_student_hooks(config, (t0, other))


def test_fold_options_are_validated(tmp_path: Path, pcam_dir: Path) -> None:
    from model.training.train import TrainConfig

    config = TrainConfig(train_data=pcam_dir, valid_data=None, out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"holdout fold must lie in \[0, 2\)"):
        fold_teacher_hooks(config, folds=2, holdout=2)
    with pytest.raises(ValueError, match="folds must be at least 2"):
        fold_teacher_hooks(config, folds=1, holdout=0)
    teachers = (tmp_path / "a.keras", tmp_path / "b.keras")
    with_teacher = TrainConfig(
        train_data=pcam_dir, valid_data=None, out_dir=tmp_path, teacher=teachers[0]
    )
    with pytest.raises(ValueError, match="replace the teacher"):
        fold_student_hooks(with_teacher, teachers)
    with pytest.raises(ValueError, match="at least 2"):
        fold_student_hooks(config, teachers[:1])
