"""Recompute a saved model's BatchNorm statistics on training patches; compare on valid.

What ``train --ema`` now does at every epoch (``model.training.batchnorm``), applied after the
fact to a saved model: prints the validation AUC before and after, and with ``--out``
writes the recomputed model with its sidecar (the source's card, new sha256, the
validation AUC after), ready for ``python -m model.export_fast`` or ``eval-patches``::

    python tools/recalibrate_bn.py runs/kd5/best.keras --patches 2048 --out kd5-bn.keras
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from model.card import file_sha256, read_card, write_card
from model.predict import load_classifier
from model.training.batchnorm import recalibrate_batchnorm, recalibration_patches
from model.training.data import open_patch_set
from model.training.evaluate import keras_model_auc


def add_recalibration_arguments(parser: argparse.ArgumentParser) -> None:
    """The options this script shares with ``average_models.py``."""
    parser.add_argument("--train", type=Path, default=Path("../shared/data/pcam/train"))
    parser.add_argument("--valid", type=Path, default=Path("../shared/data/pcam/valid"))
    parser.add_argument("--patches", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    add_recalibration_arguments(parser)
    args = parser.parse_args()

    model = load_classifier(args.model, batch_size=64).model
    valid = open_patch_set(args.valid)
    before = keras_model_auc(model, valid)
    patches = recalibration_patches(
        open_patch_set(args.train), args.patches, seed=args.seed
    )
    recalibrate_batchnorm(model, patches)
    after = keras_model_auc(model, valid)
    print(
        f"{args.model}: validation AUC {before:.4f} -> {after:.4f} "
        f"({len(patches)} patches)"
    )
    if args.out is not None:
        model.save(args.out)
        card = dataclasses.replace(
            read_card(args.model), weights_sha256=file_sha256(args.out), val_auc=after
        )
        write_card(args.out, card)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
