"""Patch classifiers: NASNetMobile, EfficientNet-Lite0/1/2, small CNN, logreg.

Every model takes ``float32[N, 96, 96, 3]`` RGB in 0..255 and returns ``float32[N, 1]``
probabilities; input scaling happens inside the model, so a saved model needs no
outside preprocessing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Final

from wsi.geometry import PATCH_PX

__all__ = [
    "ARCHITECTURES",
    "PRETRAINED_SHIPPED",
    "build_model",
    "cached_imagenet_weights",
    "preprocessing_for",
]

logger = logging.getLogger(__name__)

#: Architectures whose ImageNet weights ship with the package (used unless told not to).
PRETRAINED_SHIPPED: Final = (
    "efficientnet-lite0",
    "efficientnet-lite1",
    "efficientnet-lite2",
)
ARCHITECTURES: Final = ("nasnet-mobile", *PRETRAINED_SHIPPED, "small-cnn", "logreg")
#: Keras's NASNet uses 0.9997: a ~3,300-step average that lags far behind the weights
#: when training from scratch for a few thousand steps. 0.99 tracks them.
DEFAULT_BN_MOMENTUM: Final = 0.99
PREPROCESSING: Final = "rgb uint8 0..255 -> x / 127.5 - 1 (inside the model)"
PREPROCESSING_LITE0: Final = "rgb uint8 0..255 -> (x - 127) / 128 (inside the model)"
#: File names of the NASNetMobile no-top ImageNet weights in the Keras cache
#: (Keras 3, then tf.keras 2).
IMAGENET_CACHE_NAMES: Final = ("nasnet_mobile_no_top.h5", "NASNet-mobile-no-top.h5")


def cached_imagenet_weights() -> Path | None:
    """The NASNetMobile no-top ImageNet weights already in the Keras cache, or None.

    Looks in ``$KERAS_HOME/models`` (default ``~/.keras/models``) and in
    ``/tmp/.keras/models`` (where Keras caches when the home is read-only). Nothing
    is downloaded.
    """
    homes = [
        Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")),
        Path("/tmp/.keras"),
    ]
    for home in homes:
        for name in IMAGENET_CACHE_NAMES:
            path = home / "models" / name
            if path.is_file():
                return path
    return None


def build_model(
    arch: str = "nasnet-mobile",
    *,
    imagenet_weights: Path | None = None,
    pretrained: bool = True,
    dropout: float | None = None,
    bn_momentum: float = DEFAULT_BN_MOMENTUM,
    seed: int = 0,
    internal_px: int | None = None,
) -> Any:
    """Build an uncompiled Keras model.

    Parameters
    ----------
    arch
        One of ``ARCHITECTURES``.
    imagenet_weights
        Local ImageNet weights: NASNetMobile's ``include_top=False`` ``.h5``, or for
        EfficientNet-Lite a converted ``.npz`` (default: the one shipped in
        ``model/weights``). Nothing is ever downloaded.
    pretrained
        EfficientNet-Lite only: start from ImageNet weights (False: random).
    dropout
        Dropout rate before the sigmoid unit (None: 0.5, or 0.3 for
        EfficientNet-Lite).
    bn_momentum
        Moving-average momentum of every batch-norm layer.
    seed
        Seed for weight initialisation.
    internal_px
        EfficientNet-Lite only: resample the 96 x 96 patch (bilinear) to this side
        inside the model before the trunk (None: as it is). ImageNet features are
        tuned to objects larger than PCam's cells; the model still takes the same
        patch, and its weights have the same shapes at any side.
    """
    import keras

    check_internal_px(arch, internal_px)
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((PATCH_PX, PATCH_PX, 3), name="rgb")
    if arch in PRETRAINED_SHIPPED:
        from model.training.efficientnet_lite import build_lite

        x = inputs
        if internal_px is not None and internal_px != PATCH_PX:
            x = keras.layers.Resizing(
                internal_px, internal_px, interpolation="bilinear", name="upsample"
            )(x)
        features = build_lite(x, arch)
        features = keras.layers.GlobalAveragePooling2D(name="gap")(features)
        return _finish(
            inputs,
            features,
            arch=arch,
            dropout=0.3 if dropout is None else dropout,
            bn_momentum=bn_momentum,
            imagenet=(arch, imagenet_weights) if pretrained else None,
        )
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inputs)
    if arch == "nasnet-mobile":
        features = _nasnet_trunk(x, imagenet_weights)
    elif arch == "small-cnn":
        features = _small_cnn(x)
    elif arch == "logreg":
        features = keras.layers.Flatten(name="pixels")(x)
    else:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
    if arch != "logreg":
        features = _pooled_head(features)
    return _finish(
        inputs,
        features,
        arch=arch,
        dropout=(0.5 if dropout is None else dropout) if arch != "logreg" else 0.0,
        bn_momentum=bn_momentum,
        imagenet=None,
    )


def check_internal_px(arch: str, internal_px: int | None) -> None:
    """Refuse an ``internal_px`` that ``build_model`` cannot build."""
    if internal_px is None:
        return
    if arch not in PRETRAINED_SHIPPED:
        raise ValueError(
            f"`internal_px` applies to {', '.join(PRETRAINED_SHIPPED)} only, not {arch}"
        )
    if internal_px < PATCH_PX:
        raise ValueError(
            f"`internal_px` must be at least the patch's {PATCH_PX} px, got {internal_px}"
        )


def _finish(
    inputs: Any,
    features: Any,
    *,
    arch: str,
    dropout: float,
    bn_momentum: float,
    imagenet: tuple[str, Path | None] | None,
) -> Any:
    """Dropout, the sigmoid unit, batch-norm momentum and ImageNet weights.

    ``imagenet`` is (EfficientNet-Lite variant, a converted ``.npz`` or None for
    the shipped or installed weights), or None for random weights.
    """
    import keras

    if dropout > 0:
        features = keras.layers.Dropout(dropout, name="head_dropout")(features)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="prob", dtype="float32")(
        features
    )
    model = keras.Model(inputs, outputs, name=arch.replace("-", "_"))
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum
    if imagenet is not None:
        from model.training.efficientnet_lite import (
            imagenet_weights,
            set_imagenet_weights,
        )

        weights, source = imagenet_weights(*imagenet)
        n = set_imagenet_weights(model, weights)
        logger.info(
            "%s trunk initialised from ImageNet weights %s (%d layers)",
            arch,
            source,
            n,
        )
    elif arch in PRETRAINED_SHIPPED:
        logger.warning("%s trunk starts from random weights (`pretrained=False`)", arch)
    return model


def _nasnet_trunk(x: Any, imagenet_weights: Path | None) -> Any:
    import keras

    trunk = keras.applications.NASNetMobile(
        input_shape=(PATCH_PX, PATCH_PX, 3), include_top=False, weights=None
    )
    if imagenet_weights is not None:
        path = Path(imagenet_weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: ImageNet weights not found; pass the NASNetMobile "
                "no-top .h5 file or leave `imagenet_weights` out to start random"
            )
        trunk.load_weights(path)
        logger.info("NASNetMobile trunk initialised from %s", path)
    else:
        logger.warning(
            "NASNetMobile trunk starts from random weights (no ImageNet file)"
        )
    return trunk(x)


def _small_cnn(x: Any) -> Any:
    import keras

    for i, channels in enumerate((32, 32, 64, 64, 128, 128, 256, 256)):
        x = keras.layers.Conv2D(
            channels, 3, padding="same", use_bias=False, name=f"conv{i}"
        )(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i}")(x)
        if i % 2 == 1:
            x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    return x


def _pooled_head(x: Any) -> Any:
    """Global average + global max + the flattened feature map, concatenated."""
    import keras

    return keras.layers.Concatenate(name="pooled")(
        [
            keras.layers.GlobalAveragePooling2D(name="gap")(x),
            keras.layers.GlobalMaxPooling2D(name="gmp")(x),
            keras.layers.Flatten(name="flat")(x),
        ]
    )


def preprocessing_for(arch: str) -> str:
    """The input scaling a model of ``arch`` applies inside itself (for its card)."""
    return PREPROCESSING_LITE0 if arch in PRETRAINED_SHIPPED else PREPROCESSING
