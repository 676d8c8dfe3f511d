"""Distillation targets: the teacher scores exactly the view the student trains on.

Following Beyer et al. (2022), "Knowledge distillation: a good teacher is patient and
consistent", the teacher sees the same augmented image as the student, so every one of the many distinct views carries a target of its own.

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
from pathlib import Path
from typing import Any, Final

import keras

__all__ = [
    "HARD_LABEL",
    "TARGET",
    "HardLabelAUC",
    "HardLabelAccuracy",
    "distillation_targets",
    "load_teacher",
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


def distillation_targets(
    dataset: Any,
    teacher: Any,
    *,
    label_weight: float,
) -> Any:
    """Map ``(views, labels)`` batches to ``(views', [targets, hard labels])``.

    Parameters
    ----------
    dataset
        Training batches ``(float32[B, 96, 96, 3] in 0..255, float32[B])``, already
        augmented.
    teacher
        A Keras model ``[B, 96, 96, 3] -> [B, 1]``.
    label_weight
        Weight of the true label in the target; the teacher gets the rest.

    Returns
    -------
    tf.data.Dataset
        Batches of the views the student trains on and ``float32[B, 2]`` labels:
        column ``TARGET`` the target in [0, 1], column ``HARD_LABEL`` the true 0/1
        label of the patch. (Experiments in research/ map the batches their own way
        through ``model.training.train.train(config, targets=...)``.)
    """
    import tensorflow as tf

    def targets(images: Any, labels: Any) -> tuple[Any, Any]:
        soft = tf.cast(tf.reshape(teacher(images, training=False), [-1]), tf.float32)
        target = label_weight * labels + (1 - label_weight) * soft
        return images, tf.stack([target, labels], axis=-1)

    return dataset.map(targets).prefetch(2)


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
