"""One tf.data pipeline for every patch set: shuffle, read, augment, batch, prefetch."""

from __future__ import annotations

from typing import Any

import numpy as np

from model.augment import AugmentParams, augment_batch
from model.data import PatchSet
from wsi.geometry import PATCH_PX

__all__ = ["make_dataset"]


def make_dataset(
    patches: PatchSet,
    *,
    batch_size: int,
    training: bool,
    augment: AugmentParams | None = None,
    seed: int = 0,
) -> Any:
    """A ``tf.data.Dataset`` of ``(float32[B, 96, 96, 3] in 0..255, float32[B])``.

    Training data repeats forever, reshuffled each pass, and is augmented (so give
    ``fit`` a ``steps_per_epoch``); evaluation data keeps its
    order and is never augmented. Reads go through ``patches.read`` one batch at a
    time, so an on-disk set is streamed, never loaded whole.
    """
    import tensorflow as tf

    n = len(patches)
    labels = patches.labels.astype(np.float32)

    def read(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64)
        return patches.read(idx).astype(np.float32), labels[idx]

    def load(indices: Any) -> tuple[Any, Any]:
        images, y = tf.numpy_function(read, [indices], (tf.float32, tf.float32))
        images.set_shape([None, PATCH_PX, PATCH_PX, 3])
        y.set_shape([None])
        return images, y

    ds = tf.data.Dataset.range(n)
    if training:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=training).map(load)
    if training and augment is not None:
        params = augment
        counter = tf.data.Dataset.counter()
        ds = tf.data.Dataset.zip((ds, counter)).map(
            lambda xy, i: (augment_batch(xy[0], params, tf.stack([seed, i])), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.prefetch(tf.data.AUTOTUNE)
