"""One tf.data pipeline for every patch set: shuffle, read, augment, batch, prefetch."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from model.training.augment import AugmentParams, augment_batch
from model.training.data import PatchSet
from wsi.geometry import PATCH_PX

__all__ = ["make_dataset"]


def make_dataset(
    patches: PatchSet,
    *,
    batch_size: int,
    training: bool,
    augment: AugmentParams | None = None,
    seed: int = 0,
    start_batch: int = 0,
    groups: npt.ArrayLike | None = None,
) -> Any:
    """A ``tf.data.Dataset`` of ``(float32[B, 96, 96, 3] in 0..255, float32[B])``.

    Parameters
    ----------
    patches
        The labelled set. Reads go through ``patches.read`` one batch at a time, in
        parallel, so an on-disk set is streamed, never loaded whole.
    batch_size
        Patches per batch (the global batch under a distribution strategy).
    training
        Training data repeats forever, reshuffled each pass, and is augmented (give
        ``fit`` a ``steps_per_epoch``); evaluation data keeps its order, has a
        smaller last batch and is never augmented.
    augment
        What to augment (training only); None for no augmentation.
    seed
        Seed of the shuffling and of every augmentation draw: the same seed gives
        the same stream of batches.
    start_batch
        Skip this many training batches first (cheaply, before any patch is read),
        so a resumed run sees the batches an uninterrupted run would have seen.
    groups
        One integer per patch (e.g. its fold, ``model.training.data.fold_ids``): each batch
        then carries a third element, ``int64[B]``, the group of each patch.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    n = len(patches)
    if n == 0:
        raise ValueError(f"{patches.name}: the patch set is empty")
    if training and n < batch_size:
        raise ValueError(
            f"{patches.name}: {n} patches, fewer than one batch of {batch_size}; "
            "lower the batch size or add data"
        )
    labels = patches.labels.astype(np.float32)
    group_of = None if groups is None else np.asarray(groups, dtype=np.int64)
    if group_of is not None and group_of.shape != (n,):
        raise ValueError(
            f"groups must hold one integer per patch ({n}), got shape {group_of.shape}"
        )

    def read(indices: npt.NDArray[np.int64]) -> tuple[npt.NDArray[Any], ...]:
        idx = np.asarray(indices, dtype=np.int64)
        if group_of is None:
            return patches.read(idx), labels[idx]
        return patches.read(idx), labels[idx], group_of[idx]

    def load(indices: Any) -> tuple[Any, ...]:
        types = (tf.uint8, tf.float32) + (() if group_of is None else (tf.int64,))
        images, y, *rest = tf.numpy_function(read, [indices], types, stateful=False)
        images = tf.ensure_shape(images, [None, PATCH_PX, PATCH_PX, 3])
        extra = tuple(tf.ensure_shape(g, [None]) for g in rest)
        return (tf.cast(images, tf.float32), tf.ensure_shape(y, [None]), *extra)

    ds = tf.data.Dataset.range(n)
    if training:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=training)
    if training and start_batch:
        ds = ds.skip(start_batch)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if training and augment is not None:
        params = augment
        counter = tf.data.Dataset.counter(start=start_batch if training else 0)
        ds = tf.data.Dataset.zip((ds, counter)).map(
            lambda xy, i: (
                augment_batch(
                    xy[0], params, tf.stack([tf.constant(seed, tf.int64), i])
                ),
                *xy[1:],
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return ds.prefetch(tf.data.AUTOTUNE)
