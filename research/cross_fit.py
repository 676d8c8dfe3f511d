"""Research (did not pay: runs t-fold0, t-fold1 and kd18, research/TRAINING.md):
cross-fitted teachers. Each patch's distillation target comes from a teacher that was
trained without the patch's fold, so the target carries what the teacher learnt, not
what it memorised.

Train the teachers and the student through the training hooks::

    from model.training.train import TrainConfig, train
    from cross_fit import fold_student_hooks, fold_teacher_hooks

    for i in range(K):   # a teacher without fold i
        config = TrainConfig(train_data=DATA, valid_data=VALID, out_dir=f"t{i}", ...)
        train(config, **fold_teacher_hooks(config, folds=K, holdout=i))
    student = TrainConfig(train_data=DATA, valid_data=VALID, out_dir="s", ...)
    train(student, **fold_student_hooks(student, [f"t{i}/best.keras" ...]))
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from model.training.data import IndexedPatchSet, PatchSet, open_patch_set
from model.training.train import TrainConfig

__all__ = [
    "fold_ids",
    "fold_student_hooks",
    "fold_teacher_hooks",
    "fold_teacher_scores",
    "load_fold_teachers",
    "without_fold",
]

logger = logging.getLogger(__name__)


def fold_ids(n: int, folds: int) -> npt.NDArray[np.int64]:
    """The fold of each of ``n`` patches: position modulo ``folds``.

    The one rule for cross-fitting (``fold_teacher_hooks``
    and the out-of-fold teachers of ``fold_student_hooks``). In the class-folder layout
    the patches are sorted by class, so every fold holds a ``1 / folds`` share of
    each class.

    Examples
    --------
    >>> fold_ids(5, 2).tolist()
    [0, 1, 0, 1, 0]
    """
    if folds < 1:
        raise ValueError(f"folds must be at least 1, got {folds}")
    return np.arange(n, dtype=np.int64) % folds


def without_fold(patches: PatchSet, *, folds: int, holdout: int) -> IndexedPatchSet:
    """Every patch of ``patches`` except those of fold ``holdout`` (``fold_ids``)."""
    if not 0 <= holdout < folds:
        raise ValueError(f"holdout fold must lie in [0, {folds}), got {holdout}")
    keep = np.flatnonzero(fold_ids(len(patches), folds) != holdout)
    return IndexedPatchSet(
        patches, keep, name=f"{patches.name}[without fold {holdout} of {folds}]"
    )


def load_fold_teachers(paths: Sequence[Path], *, source_hash: str) -> list[Any]:
    """Load cross-fitted teachers as frozen Keras models, in the order of their folds.

    Teacher ``i`` of the result was trained without fold ``i`` of the same training
    set (``fold_teacher_hooks``, ``fold_ids``),
    so it scores fold ``i``'s patches as it would patches it has never seen: its
    targets there carry what it learnt, not what it memorised.

    Parameters
    ----------
    paths
        The ``K`` teachers' ``.keras`` files, in any order.
    source_hash
        Fingerprint of the whole training set the student trains on; each
        teacher's recipe must name the same set (``fold_source_hash``).

    Raises
    ------
    ModelLoadError
        A teacher was not trained with a fold held out, on another set, with
        another number of folds, or two hold out the same fold.
    """
    from model.predict import load_classifier
    from wsi.errors import ModelLoadError

    found: dict[int, Any] = {}
    for path in paths:
        teacher = load_classifier(Path(path))
        recipe = teacher.card.recipe
        fold, folds = recipe.get("holdout_fold"), recipe.get("folds")
        if fold is None:
            raise ModelLoadError(
                f"{path}: was not trained with a fold held out; train each fold "
                "teacher with fold_teacher_hooks"
            )
        if folds != len(paths):
            raise ModelLoadError(
                f"{path}: was trained with {folds} folds, but {len(paths)} fold "
                "teachers were given; give one teacher per fold"
            )
        if recipe.get("fold_source_hash") != source_hash:
            raise ModelLoadError(
                f"{path}: was trained on another training set (fingerprint "
                f"{recipe.get('fold_source_hash')}, this one {source_hash}); its "
                "held-out fold is not this set's"
            )
        if fold in found:
            raise ModelLoadError(
                f"{path}: holds out fold {fold}, as another fold teacher does; give "
                "one teacher per fold"
            )
        teacher.model.trainable = False
        found[int(fold)] = teacher.model
        logger.info(
            "fold teacher %d/%d: %s (validation AUC %s)",
            fold,
            folds,
            path,
            teacher.card.val_auc,
        )
    return [found[i] for i in range(len(paths))]


def fold_teacher_scores(teachers: Sequence[Any], images: Any, folds: Any) -> Any:
    """Each view scored by the teacher that never saw its patch, ``float32[B]``.

    ``teachers[i]`` was trained without fold ``i``; ``folds`` is ``int64[B]``. Every
    teacher scores the whole batch (K forward passes) and each view keeps the score
    of its own fold's teacher.
    """
    import tensorflow as tf

    scores = tf.stack(
        [
            tf.cast(tf.reshape(teacher(images, training=False), [-1]), tf.float32)
            for teacher in teachers
        ],
        axis=-1,
    )
    return tf.gather(scores, folds, axis=1, batch_dims=1)


def _source_hash(config: TrainConfig) -> str:
    """Fingerprint of the whole training set a run opens (before a fold is held out)."""
    return open_patch_set(
        config.train_data, split="train", limit=config.limit_train
    ).fingerprint()


def fold_teacher_hooks(
    config: TrainConfig, *, folds: int, holdout: int
) -> dict[str, Any]:
    """``train`` hooks of a teacher trained without fold ``holdout`` of ``folds``."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    if not 0 <= holdout < folds:
        raise ValueError(f"holdout fold must lie in [0, {folds}), got {holdout}")
    return {
        "patches": lambda patches: without_fold(patches, folds=folds, holdout=holdout),
        "extra_recipe": {
            "folds": folds,
            "holdout_fold": holdout,
            "fold_source_hash": _source_hash(config),
        },
    }


def fold_student_hooks(config: TrainConfig, teachers: Sequence[Path]) -> dict[str, Any]:
    """``train`` hooks of a student whose targets come from the cross-fitted
    ``teachers`` (one per fold, each trained through ``fold_teacher_hooks``)."""
    import tensorflow as tf

    if config.teacher is not None:
        raise ValueError("fold teachers replace the teacher; give one or the other")
    if len(teachers) < 2:
        raise ValueError("give one fold teacher per fold (at least 2)")
    models = load_fold_teachers(list(teachers), source_hash=_source_hash(config))
    weight = config.label_weight

    def groups(train_set: PatchSet, source: PatchSet) -> npt.NDArray[np.int64]:
        found = fold_ids(len(source), len(models))
        if train_set is source:
            return found
        if not (isinstance(train_set, IndexedPatchSet) and train_set.base is source):
            raise TypeError(f"{train_set.name} is not a part of {source.name}")
        return found[train_set.indices]

    def targets(dataset: Any, start_batch: int) -> Any:
        def target(images: Any, labels: Any, folds: Any) -> tuple[Any, Any]:
            soft = fold_teacher_scores(models, images, folds)
            mixed = weight * labels + (1 - weight) * soft
            return images, tf.stack([mixed, labels], axis=-1)

        return dataset.map(target).prefetch(2)

    return {
        "groups": groups,
        "targets": targets,
        "extra_recipe": {"fold_teachers": [str(path) for path in teachers]},
    }
