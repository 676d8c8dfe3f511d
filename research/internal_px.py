"""Research (did not pay: run up128, research/TRAINING.md): NASNetMobile that resamples
each 96x96 patch to N x N inside the model before its trunk.

The model still takes the same 96x96 patch (the PCam geometry is unchanged); the
trunk's last map is average-pooled back to its 96-px size, so every weight keeps its
shape and weights move to and from the 96-px models. Train it through the training
hook: ``model.training.train.train(config, build=nasnet_builder(128))``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from model.training.network import DEFAULT_BN_MOMENTUM, _finish, _pooled_head
from wsi.geometry import PATCH_PX

__all__ = ["build_nasnet_internal", "nasnet_builder"]


def nasnet_builder(internal_px: int) -> Callable[[Any], Any]:
    """A ``build`` hook for ``model.training.train.train``: NASNet at ``internal_px`` inside."""

    def build(config: Any) -> Any:
        return build_nasnet_internal(
            internal_px,
            imagenet_weights=config.imagenet_weights,
            seed=config.seed,
            dropout=config.dropout,
        )

    return build


def build_nasnet_internal(
    internal_px: int,
    *,
    imagenet_weights: Path | None = None,
    seed: int = 0,
    dropout: float | None = None,
) -> Any:
    """The NASNetMobile classifier with the patch resampled to ``internal_px``."""
    import keras

    if internal_px < PATCH_PX:
        raise ValueError(f"internal_px must be at least {PATCH_PX}, got {internal_px}")
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((PATCH_PX, PATCH_PX, 3), name="rgb")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inputs)
    x = keras.layers.Resizing(
        internal_px, internal_px, interpolation="bilinear", name="upsample"
    )(x)
    trunk = keras.applications.NASNetMobile(
        input_shape=(internal_px, internal_px, 3), include_top=False, weights=None
    )
    if imagenet_weights is not None:
        trunk.load_weights(Path(imagenet_weights))
    features = trunk(x)
    side = _nasnet_map_side(PATCH_PX)
    pool = int(features.shape[1]) - side + 1
    features = keras.layers.AveragePooling2D(
        pool, strides=1, padding="valid", name="pool_to_patch_map"
    )(features)
    return _finish(
        inputs,
        _pooled_head(features),
        arch="nasnet-mobile",
        dropout=0.5 if dropout is None else dropout,
        bn_momentum=DEFAULT_BN_MOMENTUM,
        imagenet=None,
    )


def _nasnet_map_side(px: int) -> int:
    """Side of NASNetMobile's last feature map for a px x px input (3 at 96 px)."""
    side = (px - 3) // 2 + 1  # the stem's valid 3x3 convolution, stride 2
    for _ in range(4):  # two stem reductions, two reduction cells: "same", stride 2
        side = -(-side // 2)
    return side
