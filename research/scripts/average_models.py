"""Average the weights of models fine-tuned from one start; recompute BatchNorm; measure.

A "model soup" (``research/soup.py``): the models must share an architecture (e.g. runs
started with ``--init-from`` the same file). Prints each model's validation AUC and
the soup's after its BatchNorm statistics are recomputed on training patches; with
``--out`` writes the soup with a sidecar (the first model's card, the mixture in
``recipe["averaged_from"]``, the new sha256 and validation AUC), ready for
``eval-patches --tta dihedral`` or ``export-model``::

    python research/scripts/average_models.py model/weights/pcam-nasnet-mobile.keras \\
        runs/s1/best.keras --mixing 1 1 --out soup.keras
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "research")]
from recalibrate_bn import add_recalibration_arguments  # tools/
from soup import average_weights  # research/

from model.card import file_sha256, read_card, write_card
from model.predict import load_classifier
from model.training.batchnorm import recalibrate_batchnorm, recalibration_patches
from model.training.data import open_patch_set
from model.training.evaluate import keras_model_auc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--mixing", type=float, nargs="+", help="default: equal")
    add_recalibration_arguments(parser)
    args = parser.parse_args()

    valid = open_patch_set(args.valid)
    models = [load_classifier(path, batch_size=64).model for path in args.models]
    for path, model in zip(args.models, models, strict=True):
        print(f"{path}: validation AUC {keras_model_auc(model, valid):.4f}")
    shares = args.mixing or [1.0] * len(models)
    soup = models[0]
    soup.set_weights(average_weights(models, shares))
    patches = recalibration_patches(
        open_patch_set(args.train), args.patches, seed=args.seed
    )
    recalibrate_batchnorm(soup, patches)
    auc = keras_model_auc(soup, valid)
    print(f"average (mixing {shares}): validation AUC {auc:.4f}")
    if args.out is not None:
        soup.save(args.out)
        first = read_card(args.models[0])
        recipe = first.recipe | {
            "averaged_from": [
                {"model": str(path), "sha256": file_sha256(path), "share": share}
                for path, share in zip(args.models, shares, strict=True)
            ],
            "bn_recalibration_patches": len(patches),
        }
        card = dataclasses.replace(
            first, weights_sha256=file_sha256(args.out), val_auc=auc, recipe=recipe
        )
        write_card(args.out, card)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
