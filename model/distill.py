"""Distillation targets: the teacher scores exactly the view the student trains on.

Following Beyer et al. (2022), "Knowledge distillation: a good teacher is patient and
consistent", the teacher sees the same augmented (and optionally mixed-up) image as
the student, so every one of the many distinct views carries a target of its own.

Soft targets make Keras's training AUC and accuracy meaningless (they compare the
predictions with targets that are neither 0 nor 1). So in these runs every batch
carries ``float32[B, 2]`` labels: column ``TARGET`` is what the loss trains on,
column ``HARD_LABEL`` the true 0/1 label that ``auc`` and ``accuracy`` are computed
against, in training and validation alike (``paired_labels`` pairs the validation
labels with themselves). Only ``model.fit`` sees the pairs: a saved model loads
without the loss and metrics (``compile=False``), so it needs no custom objects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import keras

__all__ = [
    "HARD_LABEL",
    "TARGET",
    "HardLabelAUC",
    "HardLabelAccuracy",
    "dihedral_mean",
    "distillation_targets",
    "fold_teacher_scores",
    "load_fold_teachers",
    "load_teacher",
    "mix_batch",
    "paired_labels",
    "target_crossentropy",
]

logger = logging.getLogger(__name__)

#: Column of the ``[B, 2]`` labels that the loss trains on (the soft target).
TARGET: Final = 0
#: Column of the ``[B, 2]`` labels that the metrics use (the true 0/1 label).
HARD_LABEL: Final = 1


def load_teacher(path: Path) -> Any:
    """Load a saved classifier (checked, safe mode) as a frozen Keras model."""
    from model.predict import load_classifier

    teacher = load_classifier(Path(path))
    teacher.model.trainable = False
    logger.info(
        "teacher: %s (%s, validation AUC %s)",
        path,
        teacher.card.architecture,
        teacher.card.val_auc,
    )
    return teacher.model


def load_fold_teachers(paths: Sequence[Path], *, source_hash: str) -> list[Any]:
    """Load cross-fitted teachers as frozen Keras models, in the order of their folds.

    Teacher ``i`` of the result was trained without fold ``i`` of the same training
    set (``wsi-heatmap train --folds K --holdout-fold i``, ``model.data.fold_ids``),
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
        A teacher was not trained with ``--holdout-fold``, on another set, with
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
                "teacher with --folds K --holdout-fold I"
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


def mix_batch(
    images: Any, labels: Any, alpha: float, seed: Any
) -> tuple[Any, Any, Any]:
    """Mixup: blend each image (and label) with another of the same batch.

    ``lam ~ Beta(alpha, alpha)`` per image, drawn from two stateless gamma samples;
    the partner is a stateless random permutation of the batch.

    Returns
    -------
    tuple
        The mixed images, the mixed labels ``lam * y + (1 - lam) * y_partner``, and
        the hard label of each view: the label of the patch with the larger share
        (``y`` where ``lam >= 0.5``, else ``y_partner``).
    """
    import tensorflow as tf

    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, num=3)
    a = tf.random.stateless_gamma([batch], seeds[0], alpha)
    b = tf.random.stateless_gamma([batch], seeds[1], alpha)
    lam = a / (a + b)
    order = tf.argsort(tf.random.stateless_uniform([batch], seeds[2]))
    mixed = lam[:, None, None, None] * images + (1 - lam[:, None, None, None]) * (
        tf.gather(images, order)
    )
    partner = tf.gather(labels, order)
    hard = tf.where(lam >= 0.5, labels, partner)
    return mixed, lam * labels + (1 - lam) * partner, hard


def dihedral_mean(scorer: Any, images: Any) -> Any:
    """``scorer``'s mean probability over the 8 symmetries of each image, ``[B]``.

    The teacher's test-time augmentation (``model.tta``, mode ``dihedral``) as one
    batch of ``8 B`` views; every symmetry keeps the labelled centre 32x32 in place.
    """
    import tensorflow as tf

    turns = [tf.image.rot90(images, k) for k in range(4)]
    views = tf.concat([*turns, *(tf.transpose(t, [0, 2, 1, 3]) for t in turns)], 0)
    scored = tf.cast(tf.reshape(scorer(views, training=False), [8, -1]), tf.float32)
    return tf.reduce_mean(scored, axis=0)


def distillation_targets(
    dataset: Any,
    teacher: Any | None,
    *,
    label_weight: float,
    mixup: float = 0.0,
    seed: int = 0,
    start_batch: int = 0,
    features: bool = False,
    teacher_tta: bool = False,
    fold_teachers: Sequence[Any] = (),
) -> Any:
    """Map ``(views, labels)`` batches to ``(views', [targets, hard labels])``.

    Parameters
    ----------
    dataset
        Training batches ``(float32[B, 96, 96, 3] in 0..255, float32[B])``, already
        augmented.
    teacher
        A Keras model ``[B, 96, 96, 3] -> [B, 1]`` (None: labels only, for mixup
        without a teacher).
    label_weight
        Weight of the true (mixed) label in the target; the teacher gets the rest.
    mixup
        Beta parameter of mixup (0: off).
    seed, start_batch
        Seed of the mixing draws, and the batch index the stream starts at (so a
        resumed run mixes as an uninterrupted one would).
    features
        Append the teacher's normalised last feature map of each view to its labels
        (``model.feature_distill.teacher_targets``), for feature matching.
    teacher_tta
        Target the teacher's mean over the 8 symmetries of each view
        (``dihedral_mean``; 8 times the teacher's cost) instead of its score of the
        view alone. Not with ``features`` (a feature map is not symmetric).
    fold_teachers
        Cross-fitted teachers instead of ``teacher`` (``load_fold_teachers``): the
        batches are then ``(views, labels, folds)`` and each view's target comes
        from the teacher trained without its fold (``fold_teacher_scores``). Not
        with ``mixup`` (a mixed view holds patches of two folds), ``features`` or
        ``teacher_tta``.

    Returns
    -------
    tf.data.Dataset
        Batches of the views the student trains on and ``float32[B, 2]`` labels:
        column ``TARGET`` the target in [0, 1], column ``HARD_LABEL`` the true 0/1
        label of the patch (under mixup, of the patch with the larger share); with
        ``features``, the teacher's flattened features follow in further columns.
    """
    import tensorflow as tf

    if features and teacher_tta:
        raise ValueError("teacher_tta averages probabilities only; not with features")
    if fold_teachers and (teacher is not None or mixup or features or teacher_tta):
        raise ValueError(
            "fold_teachers replace the teacher; not with mixup, features or teacher_tta"
        )
    scorer = teacher
    if features:
        from model.feature_distill import teacher_targets

        scorer = teacher_targets(teacher)
    counter = tf.data.Dataset.counter(start=start_batch)

    def targets(xy: Any, i: Any) -> tuple[Any, Any]:
        images, labels, *folds = xy
        hard = labels
        if mixup > 0:
            key = tf.stack([tf.constant(seed + 7919, tf.int64), i])
            images, labels, hard = mix_batch(images, labels, mixup, key)
        target = labels
        extra = []
        if fold_teachers:
            soft = fold_teacher_scores(fold_teachers, images, folds[0])
            target = label_weight * labels + (1 - label_weight) * soft
        elif scorer is not None:
            if teacher_tta:
                soft = dihedral_mean(scorer, images)
            else:
                scored = scorer(images, training=False)
                if features:
                    scored, flat = scored
                    extra = [tf.cast(flat, tf.float32)]
                soft = tf.cast(tf.reshape(scored, [-1]), tf.float32)
            target = label_weight * labels + (1 - label_weight) * soft
        return images, tf.concat([tf.stack([target, hard], axis=-1), *extra], axis=-1)

    return tf.data.Dataset.zip((dataset, counter)).map(targets).prefetch(2)


def paired_labels(dataset: Any) -> Any:
    """Map ``(images, float32[B])`` batches to ``(images, float32[B, 2])``.

    Both columns hold the label, so validation batches fit the loss and metrics of
    a distillation run and mean what they meant without distillation.
    """
    import tensorflow as tf

    return dataset.map(lambda x, y: (x, tf.stack([y, y], axis=-1)))


@keras.saving.register_keras_serializable(package="wsi_heatmap")  # type: ignore[untyped-decorator]
def target_crossentropy(y_true: Any, y_pred: Any) -> Any:
    """Binary cross-entropy of ``y_pred`` ``[B, 1]`` against column ``TARGET``."""
    return keras.losses.binary_crossentropy(y_true[:, TARGET : TARGET + 1], y_pred)


class _OnHardLabels:
    """Mixin: a Keras metric fed column ``HARD_LABEL`` of ``[B, 2]`` labels."""

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """Accumulate the metric against the true 0/1 labels."""
        hard = y_true[:, HARD_LABEL : HARD_LABEL + 1]
        return super().update_state(hard, y_pred, sample_weight)  # type: ignore[misc]


@keras.saving.register_keras_serializable(package="wsi_heatmap")
class HardLabelAUC(_OnHardLabels, keras.metrics.AUC):  # type: ignore[misc]
    """``keras.metrics.AUC`` against column ``HARD_LABEL`` of ``[B, 2]`` labels."""


@keras.saving.register_keras_serializable(package="wsi_heatmap")
class HardLabelAccuracy(_OnHardLabels, keras.metrics.BinaryAccuracy):  # type: ignore[misc]
    """``keras.metrics.BinaryAccuracy`` against column ``HARD_LABEL``."""
