"""The tf.data pipeline: order, labels, determinism and resuming the stream."""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.training.data import ArrayPatchSet, open_patch_set

pytestmark = pytest.mark.tf


def _batches(ds: Any, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.asarray(x), np.asarray(y)) for x, y in islice(ds, n)]


@pytest.fixture(scope="module")
def coded() -> ArrayPatchSet:
    """40 flat patches whose grey level says their index and label."""
    labels = (np.arange(40) % 3 == 0).astype(np.uint8)
    levels = np.where(labels == 1, 200, 40) + np.arange(40)
    images = np.broadcast_to(levels[:, None, None, None], (40, 96, 96, 3)).astype(
        np.uint8
    )
    return ArrayPatchSet(name="coded", images=images, label_array=labels)


def test_evaluation_keeps_order_and_the_last_partial_batch(
    coded: ArrayPatchSet,
) -> None:
    from model.training.dataset import make_dataset

    batches = _batches(make_dataset(coded, batch_size=16, training=False), 10)
    assert [len(y) for _, y in batches] == [16, 16, 8]
    images = np.concatenate([x for x, _ in batches])
    assert images.dtype == np.float32
    np.testing.assert_array_equal(images[:, 0, 0, 0], coded.images[:, 0, 0, 0])
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), coded.labels)


def test_training_batches_keep_labels_through_augmentation(
    coded: ArrayPatchSet,
) -> None:
    from model.training.augment import AugmentParams
    from model.training.dataset import make_dataset

    ds = make_dataset(
        coded,
        batch_size=8,
        training=True,
        seed=4,
        augment=AugmentParams(free_rotation=True, hed=0.05),
    )
    for x, y in _batches(ds, 12):
        assert x.shape == (8, 96, 96, 3)
        means = x.mean(axis=(1, 2, 3))
        np.testing.assert_array_equal(means > 130, y == 1)


def test_shuffled_epochs_cover_the_set_and_differ(coded: ArrayPatchSet) -> None:
    from model.training.dataset import make_dataset

    ds = make_dataset(coded, batch_size=10, training=True, seed=0)
    seen = [np.asarray(x[:, 0, 0, 0]).astype(int) for x, _ in _batches(ds, 8)]
    epoch1, epoch2 = np.concatenate(seen[:4]), np.concatenate(seen[4:])
    assert sorted(epoch1) == sorted(epoch2) == sorted(coded.images[:, 0, 0, 0])
    assert epoch1.tolist() != epoch2.tolist()


def test_same_seed_same_stream_and_resume_skips_exactly(coded: ArrayPatchSet) -> None:
    from model.training.augment import AugmentParams
    from model.training.dataset import make_dataset

    def stream(seed: int, start: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
        return _batches(
            make_dataset(
                coded,
                batch_size=8,
                training=True,
                seed=seed,
                augment=AugmentParams(),
                start_batch=start,
            ),
            4,
        )

    full = stream(1) + _batches(
        make_dataset(
            coded,
            batch_size=8,
            training=True,
            seed=1,
            augment=AugmentParams(),
            start_batch=4,
        ),
        2,
    )
    again = stream(1)
    for (xa, ya), (xb, yb) in zip(full[:4], again, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    resumed = stream(1, start=2)
    for (xa, ya), (xb, yb) in zip(full[2:6], resumed, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(stream(2)[0][0], full[0][0])


def test_h5_is_streamed_through_the_pipeline(pcam_h5_dir: Path) -> None:
    from model.training.dataset import make_dataset

    data = open_patch_set(pcam_h5_dir, split="train")
    batches = _batches(make_dataset(data, batch_size=8, training=True), 3)
    assert all(x.shape == (8, 96, 96, 3) for x, _ in batches)


def test_too_small_for_one_batch(coded: ArrayPatchSet) -> None:
    from model.training.dataset import make_dataset

    with pytest.raises(ValueError, match="fewer than one batch of 64"):
        make_dataset(coded, batch_size=64, training=True)
