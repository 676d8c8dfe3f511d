"""Fine-tune an EfficientNet-Lite that resamples the 96x96 patch to N px inside the model.

    python research/scripts/train_internal.py ../shared/data/pcam/train \
        --valid ../shared/data/pcam/valid --out runs/lite0-up160 --px 160 --epochs 8

The recipe of the bundled Lite0 (cosine from 3e-4, dihedral + colour + HED 0.05 jitter,
stopped on ``valid/``) with ``research/internal_px.py``'s builder; resumes after a kill.
"""

from __future__ import annotations

import sys
from pathlib import Path as _Path

sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
from pathlib import Path

from internal_px import lite_builder  # research/internal_px.py

from model.training.augment import AugmentParams
from model.training.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train_data", type=Path)
    parser.add_argument("--valid", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--px", type=int, required=True, help="side inside the model")
    parser.add_argument("--arch", default="efficientnet-lite0")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--hed", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = TrainConfig(
        train_data=args.train_data,
        valid_data=args.valid,
        out_dir=args.out,
        arch=args.arch,
        epochs=args.epochs,
        learning_rate=args.lr,
        schedule="cosine",
        seed=args.seed,
        augment=AugmentParams(hed=args.hed),
    )
    result = train(config, build=lite_builder(args.px))
    print(result)


if __name__ == "__main__":
    main()
