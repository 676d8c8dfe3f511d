"""Augmentation keeps labels and the centre 32x32 cell, and is deterministic per seed."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

pytestmark = pytest.mark.tf

CENTRE = slice(32, 64)


def _augment(
    images: npt.NDArray[np.float32],
    *,
    seed: tuple[int, int] = (0, 1),
    dihedral: bool = True,
    free_rotation: bool = False,
    colour: bool = True,
    hed: float = 0.0,
) -> npt.NDArray[np.float32]:
    import tensorflow as tf

    from model.training.augment import AugmentParams, augment_batch

    jitter = {} if colour else NO_COLOUR
    params = AugmentParams(
        dihedral=dihedral, free_rotation=free_rotation, hed=hed, **jitter
    )
    out = augment_batch(tf.constant(images), params, tf.constant(seed, tf.int64))
    return np.asarray(out)


NO_COLOUR: dict[str, float] = {
    "brightness": 0.0,
    "contrast": 0.0,
    "saturation": 0.0,
    "hue": 0.0,
}


@pytest.fixture(scope="module")
def batch() -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (64, 96, 96, 3)).astype(np.float32)


def test_dihedral_keeps_the_centre_cell_and_uses_all_8(
    batch: npt.NDArray[np.float32],
) -> None:
    out = _augment(batch, colour=False)
    seen = set()
    for before, after in zip(batch, out, strict=True):
        # The centre cell of the output is one of the 8 symmetries of the input's.
        cell = before[CENTRE, CENTRE]
        candidates = [np.rot90(c, k) for c in (cell, cell[:, ::-1]) for k in range(4)]
        matches = [
            i
            for i, c in enumerate(candidates)
            if np.array_equal(c, after[CENTRE, CENTRE])
        ]
        assert len(matches) == 1
        seen.add(matches[0])
        # ... and the whole patch went through the same symmetry.
        whole = [np.rot90(c, k) for c in (before, before[:, ::-1]) for k in range(4)]
        assert np.array_equal(whole[matches[0]], after)
    assert seen == set(range(8))


def test_free_rotation_keeps_the_centre_disc() -> None:
    yy, xx = np.mgrid[:96, :96] - 47.5
    radius = np.hypot(yy, xx)
    marker = np.where(radius < 12, 255.0, 0.0)[None, :, :, None].repeat(3, axis=3)
    images = np.repeat(marker, 16, axis=0).astype(np.float32)
    out = _augment(images, free_rotation=True, dihedral=False, colour=False)
    assert np.all(out[:, radius < 10] > 250)  # the disc stays where it was
    assert np.all(out[:, radius > 14] < 5)  # nothing spreads outside the centre cell
    inside = np.zeros((96, 96), bool)
    inside[CENTRE, CENTRE] = True
    assert np.all(out[:, ~inside] < 5)


def test_free_rotation_reflects_at_the_edges() -> None:
    images = np.full((4, 96, 96, 3), 200.0, np.float32)
    out = _augment(images, free_rotation=True, dihedral=False, colour=False)
    np.testing.assert_allclose(out, 200.0, atol=1e-3)  # no black corners


def test_same_seed_same_output_other_seed_differs(
    batch: npt.NDArray[np.float32],
) -> None:
    a = _augment(batch[:8], seed=(3, 7), free_rotation=True, hed=0.05)
    b = _augment(batch[:8], seed=(3, 7), free_rotation=True, hed=0.05)
    c = _augment(batch[:8], seed=(3, 8), free_rotation=True, hed=0.05)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_colour_jitter_is_mild_per_image_and_in_range(
    batch: npt.NDArray[np.float32],
) -> None:
    flat = np.repeat(
        np.linspace(40, 220, 96 * 96 * 3, dtype=np.float32).reshape(1, 96, 96, 3),
        32,
        axis=0,
    )
    out = _augment(flat, dihedral=False, hed=0.05)
    assert out.min() >= 0
    assert out.max() <= 255
    shifts = (out - flat).mean(axis=(1, 2, 3))
    assert np.abs(shifts).max() < 40  # mild
    assert np.unique(np.round(shifts, 3)).size > 16  # drawn per image, not per batch


def test_hed_jitter_at_zero_strength_is_identity() -> None:
    import tensorflow as tf

    from model.training.augment import _hed_jitter

    x = np.random.default_rng(2).uniform(0.01, 1, (2, 8, 8, 3)).astype(np.float32)
    out = np.asarray(_hed_jitter(tf.constant(x), 0.0, tf.constant([1, 2], tf.int64)))
    np.testing.assert_allclose(out, x, atol=1e-4)


def test_bad_params() -> None:
    from model.training.augment import AugmentParams

    with pytest.raises(ValueError, match="brightness must be in"):
        AugmentParams(brightness=2.0)
    with pytest.raises(ValueError, match="hue must be in"):
        AugmentParams(hue=0.7)
