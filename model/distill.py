"""Distillation targets: the teacher scores exactly the view the student trains on.

Following Beyer et al. (2022), "Knowledge distillation: a good teacher is patient and
consistent", the teacher sees the same augmented (and optionally mixed-up) image as
the student, so every one of the many distinct views carries a target of its own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

__all__ = ["distillation_targets", "load_teacher", "mix_batch"]

logger = logging.getLogger(__name__)


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


def mix_batch(images: Any, labels: Any, alpha: float, seed: Any) -> tuple[Any, Any]:
    """Mixup: blend each image (and label) with another of the same batch.

    ``lam ~ Beta(alpha, alpha)`` per image, drawn from two stateless gamma samples;
    the partner is a stateless random permutation of the batch.
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
    return mixed, lam * labels + (1 - lam) * tf.gather(labels, order)


def distillation_targets(
    dataset: Any,
    teacher: Any | None,
    *,
    label_weight: float,
    mixup: float = 0.0,
    seed: int = 0,
    start_batch: int = 0,
) -> Any:
    """Map ``(views, labels)`` batches to ``(views', targets)`` for distillation.

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

    Returns
    -------
    tf.data.Dataset
        Batches of the views the student trains on and their targets in [0, 1].
    """
    import tensorflow as tf

    counter = tf.data.Dataset.counter(start=start_batch)

    def targets(xy: Any, i: Any) -> tuple[Any, Any]:
        images, labels = xy
        if mixup > 0:
            key = tf.stack([tf.constant(seed + 7919, tf.int64), i])
            images, labels = mix_batch(images, labels, mixup, key)
        if teacher is None:
            return images, labels
        soft = tf.reshape(teacher(images, training=False), [-1])
        return images, label_weight * labels + (1 - label_weight) * tf.cast(
            soft, tf.float32
        )

    return tf.data.Dataset.zip((dataset, counter)).map(targets).prefetch(2)
