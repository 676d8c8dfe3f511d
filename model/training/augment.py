"""Label-preserving augmentation of PCam patches (TensorFlow ops, batched).

Every geometric transform keeps the centre 32x32 in place, so the label stays true:
the 8 symmetries of the square, and optional free rotations about the centre with
reflection padding. Colour jitter (brightness, contrast, saturation, hue) and HED
stain jitter are mild, optional and drawn per image. (Translations, which do not keep
the label, are an experiment in research/distill_variants.py.)

Notes
-----
1. The 8 symmetries map the centre 32x32 square onto itself exactly.
2. A free rotation keeps the centre pixel and the disc of radius 16 px inside the
   centre square, but turns the square's corners outside it: a tumour cell in a
   corner of the centre cell can leave it. PCam labels a patch by *any* tumour pixel
   in the centre, so this is a small label noise; keep ``free_rotation`` off when it
   matters.
3. HED jitter follows Tellez et al. (2018): optical density ``-ln(rgb)`` is split
   into haematoxylin, eosin and DAB concentrations with the Ruifrok-Johnston matrix
   (as in ``skimage.color.rgb2hed``), each scaled by ``U(1 - s, 1 + s)`` and shifted
   by ``U(-s, s)``, and recombined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["AugmentParams", "augment_batch", "dihedral_random", "warp_images"]

#: Ruifrok-Johnston stain vectors (rows: H, E, DAB), as in ``skimage.color``.
RGB_FROM_HED: Final = (
    (0.65, 0.70, 0.29),
    (0.07, 0.99, 0.11),
    (0.27, 0.57, 0.78),
)
#: Lowest intensity (0..1) before taking the optical density.
_MIN_INTENSITY: Final = 1e-3


@dataclass(frozen=True, slots=True, kw_only=True)
class AugmentParams:
    """What to augment; ``dihedral`` on and colour jitter mild by default.

    Parameters
    ----------
    dihedral
        Apply one of the 8 rotations/flips of the square to each patch.
    free_rotation
        Also rotate by a uniform angle about the centre, reflecting at the edges.
    brightness
        Largest shift of intensity, as a fraction of full scale (0 = off).
    contrast, saturation
        Largest relative change (factor drawn from ``U(1 - v, 1 + v)``; 0 = off).
    hue
        Largest hue rotation, as a fraction of the colour circle (0 = off).
    hed
        Strength ``s`` of the HED stain jitter (0 = off; 0.05 is mild).
    """

    dihedral: bool = True
    free_rotation: bool = False
    brightness: float = 0.05
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.02
    hed: float = 0.0

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation", "hed"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")


def augment_batch(images: Any, params: AugmentParams, seed: Any) -> Any:
    """Augment ``float32[B, 96, 96, 3]`` RGB 0..255 with a stateless ``seed`` (2 ints).

    The same seed gives the same output, so a run is reproducible under ``--seed``.
    Every random draw is per image.
    """
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=8)
    x = tf.convert_to_tensor(images, tf.float32)
    batch = tf.shape(x)[0]
    if params.dihedral:
        x = dihedral_random(x, seeds[0])
    if params.free_rotation:
        x = _free_rotation(x, seeds[1])
    colour = (
        params.brightness,
        params.contrast,
        params.saturation,
        params.hue,
        params.hed,
    )
    if not any(colour):
        return x
    x = x / 255.0

    def factor(width: float, seed_: Any, shape: Any) -> Any:
        return tf.random.stateless_uniform(shape, seed_, 1 - width, 1 + width)

    if params.hed:
        x = _hed_jitter(x, params.hed, seeds[6])
    if params.brightness:
        delta = tf.random.stateless_uniform(
            [batch, 1, 1, 1], seeds[2], -params.brightness, params.brightness
        )
        x = x + delta
    if params.contrast:
        mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        x = mean + (x - mean) * factor(params.contrast, seeds[3], [batch, 1, 1, 1])
    if params.saturation:
        grey = _luma(x)
        x = grey + (x - grey) * factor(params.saturation, seeds[4], [batch, 1, 1, 1])
    if params.hue:
        x = _rotate_hue(
            x,
            tf.random.stateless_uniform([batch], seeds[5], -params.hue, params.hue)
            * (2 * math.pi),
        )
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
    return warp_images(images, transforms, "BILINEAR")


def warp_images(images: Any, transforms: Any, interpolation: str) -> Any:
    """Warp each image by its projective transform (output -> input), reflecting."""
    import tensorflow as tf

    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation=interpolation,
        fill_mode="REFLECT",
    )


def _luma(x: Any) -> Any:
    """Per-pixel luma ``float32[B, H, W, 1]`` of RGB in 0..1 (ITU-R BT.601)."""
    import tensorflow as tf

    weights = tf.constant([0.299, 0.587, 0.114], tf.float32)
    return tf.reduce_sum(x * weights, axis=-1, keepdims=True)


def _rotate_hue(x: Any, angles: Any) -> Any:
    """Rotate the chroma of each image by ``angles[b]`` radians in YIQ space."""
    import tensorflow as tf

    to_yiq = tf.constant(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
        tf.float32,
    )
    from_yiq = tf.linalg.inv(to_yiq)
    cos, sin = tf.cos(angles), tf.sin(angles)
    one, zero = tf.ones_like(cos), tf.zeros_like(cos)
    rotation = tf.reshape(
        tf.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], axis=1),
        [-1, 3, 3],
    )
    # Per image: rgb' = from_yiq @ R_b @ to_yiq @ rgb.
    matrix = tf.einsum("ij,bjk,kl->bil", from_yiq, rotation, to_yiq)
    return tf.einsum("bhwc,brc->bhwr", x, matrix)


def _hed_jitter(x: Any, strength: float, seed: Any) -> Any:
    """Scale and shift haematoxylin, eosin and DAB concentrations per image."""
    import tensorflow as tf

    rgb_from_hed = tf.constant(RGB_FROM_HED, tf.float32)
    rgb_from_hed = rgb_from_hed / tf.norm(rgb_from_hed, axis=1, keepdims=True)
    hed_from_rgb = tf.linalg.inv(rgb_from_hed)
    batch = tf.shape(x)[0]
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    alpha = tf.random.stateless_uniform(
        [batch, 1, 1, 3], seeds[0], 1 - strength, 1 + strength
    )
    beta = tf.random.stateless_uniform([batch, 1, 1, 3], seeds[1], -strength, strength)
    density = -tf.math.log(tf.clip_by_value(x, _MIN_INTENSITY, 1.0))
    stains = tf.einsum("bhwc,cs->bhws", density, hed_from_rgb)
    stains = stains * alpha + beta
    density = tf.einsum("bhws,sc->bhwc", stains, rgb_from_hed)
    return tf.exp(-tf.maximum(density, 0.0))
