"""Label-preserving augmentation of PCam patches (TensorFlow ops, batched).

Every geometric transform keeps the centre 32x32 in place, so the label stays true:
the 8 symmetries of the square, and optional free rotations about the centre with
reflection padding. Colour jitter is mild and optional.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["AugmentParams", "augment_batch"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AugmentParams:
    """What to augment; ``dihedral`` on and colour jitter mild by default."""

    dihedral: bool = True
    free_rotation: bool = False
    brightness: float = 0.05
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.02


def augment_batch(images: Any, params: AugmentParams, seed: Any) -> Any:
    """Augment ``float32[B, 96, 96, 3]`` RGB 0..255 with a stateless ``seed`` (2 ints).

    The same seed gives the same output, so a run is reproducible under ``--seed``.
    """
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, num=8)
    x = images
    if params.dihedral:
        x = dihedral_random(x, seeds[0])
    if params.free_rotation:
        x = _free_rotation(x, seeds[1])
    x = x / 255.0
    if params.brightness:
        x = tf.image.stateless_random_brightness(x, params.brightness, seeds[2])
    if params.contrast:
        x = tf.image.stateless_random_contrast(
            x, 1 - params.contrast, 1 + params.contrast, seeds[3]
        )
    if params.saturation:
        x = tf.image.stateless_random_saturation(
            x, 1 - params.saturation, 1 + params.saturation, seeds[4]
        )
    if params.hue:
        x = tf.image.stateless_random_hue(x, params.hue, seeds[5])
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0


def dihedral_random(images: Any, seed: Any) -> Any:
    """Apply one of the 8 symmetries of the square to each image of the batch."""
    import tensorflow as tf

    batch = tf.shape(images)[0]
    k = tf.random.stateless_uniform([batch], seed, 0, 8, dtype=tf.int32)
    flipped = tf.where((k >= 4)[:, None, None, None], images[:, :, ::-1, :], images)
    turns = k % 4
    out = flipped
    for t in (1, 2, 3):
        rotated = tf.image.rot90(flipped, t)
        out = tf.where((turns == t)[:, None, None, None], rotated, out)
    return out


def _free_rotation(images: Any, seed: Any) -> Any:
    """Rotate each image by a random angle about its centre, reflecting at the edges."""
    import tensorflow as tf

    batch = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    angles = tf.random.stateless_uniform([batch], seed, -math.pi, math.pi)
    cos, sin = tf.cos(angles), tf.sin(angles)
    centre = (size - 1) / 2
    # Projective transform rows [a0 a1 a2 b0 b1 b2 c0 c1] mapping output -> input.
    a2 = centre - cos * centre + sin * centre
    b2 = centre - sin * centre - cos * centre
    zeros = tf.zeros_like(cos)
    transforms = tf.stack([cos, -sin, a2, sin, cos, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
