"""Research (none paid: runs kd8, kd11, kd13, kd14, kd16, research/TRAINING.md):
distillation variants that the bundled models do not use.

- **mixup** (Beta(a, a) blends of each batch with a shuffled copy of itself; the
  teacher scores the blend): ``train(config, targets=mixup_targets(teacher_path, ...))``.
- **teacher TTA** (each view's target is the teacher's mean over the 8 symmetries):
  ``train(config, targets=teacher_tta_targets(teacher_path, ...))``.
- **shifted views** (each view translated by up to N whole pixels, reflecting; the
  centre 32x32 then shows other cells than the labelled ones, so only the teacher's
  score of the shifted view is a target): ``train(config,
  targets=shifted_targets(teacher_path, label_weight=..., largest=4))``.
- **feature matching** (the student also learns the teacher's last feature map,
  ``research/feature_distill.py``):
  ``train(config, build=feature_matching_builder(teacher_path, weight),
  targets=feature_targets(teacher_path, ...))``.

Each hook maps the augmented training batches ``(views, labels)`` to
``(views', [B, 2 + k] labels)`` in ``model.training.distill``'s layout (target, true label,
extra columns), as ``model.training.train.train``'s ``targets`` hook expects.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from model.training.distill import load_teacher
from model.training.train import TrainConfig, build_network

__all__ = [
    "dihedral_mean",
    "feature_matching_builder",
    "feature_targets",
    "mix_batch",
    "mixup_targets",
    "shift_views",
    "shifted_targets",
    "teacher_tta_targets",
]

Targets = Callable[[Any, int], Any]


def _model(teacher: Any) -> Any:
    """A teacher given as a saved classifier's path, or as a Keras model already."""
    return load_teacher(Path(teacher)) if isinstance(teacher, str | Path) else teacher


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


def _mapped(dataset: Any, start_batch: int, fn: Callable[..., Any]) -> Any:
    """``dataset`` batches with their index (from ``start_batch``) through ``fn``."""
    import tensorflow as tf

    counter = tf.data.Dataset.counter(start=start_batch)
    return tf.data.Dataset.zip((dataset, counter)).map(fn).prefetch(2)


def mixup_targets(
    teacher: Any, *, label_weight: float, alpha: float, seed: int = 0
) -> Targets:
    """Mixed views; target ``w * mixed label + (1 - w) * teacher(mixed view)``.

    Without a teacher the target is the mixed label. The draws depend on the batch
    index, so a resumed run mixes as an uninterrupted one would.
    """
    import tensorflow as tf

    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    model = None if teacher is None else _model(teacher)

    def hook(dataset: Any, start_batch: int) -> Any:
        def targets(xy: Any, i: Any) -> tuple[Any, Any]:
            images, labels = xy[0], xy[1]
            key = tf.stack([tf.constant(seed + 7919, tf.int64), i])
            images, mixed, hard = mix_batch(images, labels, alpha, key)
            target = mixed
            if model is not None:
                soft = tf.cast(
                    tf.reshape(model(images, training=False), [-1]), tf.float32
                )
                target = label_weight * mixed + (1 - label_weight) * soft
            return images, tf.stack([target, hard], axis=-1)

        return _mapped(dataset, start_batch, targets)

    return hook


def teacher_tta_targets(teacher: Any, *, label_weight: float) -> Targets:
    """Target ``w * label + (1 - w) * mean of the teacher over the 8 symmetries``."""
    import tensorflow as tf

    model = _model(teacher)

    def hook(dataset: Any, start_batch: int) -> Any:
        def targets(xy: Any, i: Any) -> tuple[Any, Any]:
            images, labels = xy[0], xy[1]
            soft = dihedral_mean(model, images)
            target = label_weight * labels + (1 - label_weight) * soft
            return images, tf.stack([target, labels], axis=-1)

        return _mapped(dataset, start_batch, targets)

    return hook


def feature_targets(teacher: Any, *, label_weight: float) -> Targets:
    """Logit targets plus the teacher's normalised last feature map, flattened."""
    import tensorflow as tf
    from feature_distill import teacher_targets

    scorer = teacher_targets(_model(teacher))

    def hook(dataset: Any, start_batch: int) -> Any:
        def targets(xy: Any, i: Any) -> tuple[Any, Any]:
            images, labels = xy[0], xy[1]
            scored, flat = scorer(images, training=False)
            soft = tf.cast(tf.reshape(scored, [-1]), tf.float32)
            target = label_weight * labels + (1 - label_weight) * soft
            columns = [tf.stack([target, labels], axis=-1), tf.cast(flat, tf.float32)]
            return images, tf.concat(columns, axis=-1)

        return _mapped(dataset, start_batch, targets)

    return hook


def feature_matching_builder(
    teacher: Any, weight: float
) -> Callable[[TrainConfig], Any]:
    """A ``build`` hook: the run's network inside ``FeatureMatching`` (its projector
    maps the student's last feature map onto the teacher's, in training only)."""
    from feature_distill import FeatureMatching, feature_map

    if not weight > 0:
        raise ValueError(f"weight must be positive, got {weight}")
    shape = tuple(int(n) for n in feature_map(_model(teacher)).shape[1:])

    def build(config: TrainConfig) -> Any:
        return FeatureMatching(
            build_network(config), teacher_shape=shape, weight=weight
        )

    return build


def shift_views(images: Any, largest: int, seed: Any) -> Any:
    """Translate each image by whole pixels in ``[-largest, largest]``, reflecting."""
    import tensorflow as tf

    from model.training.augment import warp_images

    if not 0 <= largest < 48:
        raise ValueError(f"largest must be in [0, 48) px, got {largest}")
    batch = tf.shape(images)[0]
    offsets = tf.random.stateless_uniform(
        [batch, 2], seed, -largest, largest + 1, dtype=tf.int32
    )
    dx, dy = tf.unstack(tf.cast(offsets, tf.float32), axis=1)
    ones, zeros = tf.ones_like(dx), tf.zeros_like(dx)
    # Output (x, y) reads input (x + dx, y + dy): an exact shift with NEAREST.
    transforms = tf.stack([ones, zeros, dx, zeros, ones, dy, zeros, zeros], axis=1)
    return warp_images(images, transforms, "NEAREST")


def shifted_targets(
    teacher: Any, *, label_weight: float, largest: int, seed: int = 0
) -> Targets:
    """Shifted views; target ``w * label + (1 - w) * teacher(shifted view)``.

    The true label no longer holds for a shifted view, so keep ``label_weight``
    small. The draws depend on the batch index (a resumed run shifts as an
    uninterrupted one would).
    """
    import tensorflow as tf

    model = _model(teacher)

    def hook(dataset: Any, start_batch: int) -> Any:
        def targets(xy: Any, i: Any) -> tuple[Any, Any]:
            images, labels = xy[0], xy[1]
            key = tf.stack([tf.constant(seed + 104729, tf.int64), i])
            images = shift_views(images, largest, key)
            soft = tf.cast(tf.reshape(model(images, training=False), [-1]), tf.float32)
            target = label_weight * labels + (1 - label_weight) * soft
            return images, tf.stack([target, labels], axis=-1)

        return _mapped(dataset, start_batch, targets)

    return hook
