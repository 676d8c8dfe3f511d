"""Validation AUC of each model and of the mean of their probabilities (an ensemble).

Scores ``valid/`` once per model (with test-time augmentation), then prints the AUC of
every combination of two or more models averaged. Issue 9's question: do several
NASNet students, fine-tuned from one another, gain by averaging their predictions?

    python research/scripts/ensemble_auc.py \\
        model/weights/pcam-nasnet-mobile.keras runs/s1/best.keras runs/kd17/best.keras
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from model.predict import load_classifier
from model.training.data import open_patch_set
from model.training.evaluate import roc_auc, score_patch_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "models", nargs="+", type=Path, help=".keras files with sidecars"
    )
    parser.add_argument("--valid", type=Path, default=Path("../shared/data/pcam/valid"))
    parser.add_argument(
        "--tta", choices=["none", "flips", "dihedral"], default="dihedral"
    )
    args = parser.parse_args()
    if len(args.models) < 2:
        parser.error("give at least two models to average")

    valid = open_patch_set(args.valid)
    labels = valid.labels
    scores: dict[str, np.ndarray] = {}
    for path in args.models:
        start = time.monotonic()
        scores[str(path)] = score_patch_set(load_classifier(path, tta=args.tta), valid)
        auc = roc_auc(labels, scores[str(path)])
        print(
            f"{path}: AUC {auc:.4f} (tta {args.tta}, {time.monotonic() - start:.0f} s)"
        )
    for size in range(2, len(scores) + 1):
        for combo in itertools.combinations(scores, size):
            mean = np.mean([scores[name] for name in combo], axis=0)
            print(f"mean of {' + '.join(combo)}: AUC {roc_auc(labels, mean):.4f}")


if __name__ == "__main__":
    main()
