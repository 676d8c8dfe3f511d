"""How well models score the training patches: memory against out-of-fold scores.

A teacher fine-tuned on the training set scores those very patches from memory, so its
distillation targets there are close to the true labels and carry little of what it
would say about a patch it has never seen. This prints the AUC against the true labels
on a fixed sample of training patches of each ``--model`` (no augmentation, no TTA)
and, given cross-fitted teachers (``research/cross_fit.py``, ``fold_teacher_hooks``),
of their out-of-fold scores: each patch scored by the teacher that never saw it (the
targets ``fold_student_hooks`` trains on).

    python research/scripts/train_targets_auc.py ../shared/data/pcam/train \\
        --model model/weights/pcam-efficientnet-lite0.keras \\
        --model model/weights/pcam-nasnet-mobile.keras \\
        --fold-teacher runs/t-fold0/best.keras --fold-teacher runs/t-fold1/best.keras
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # research/
from cross_fit import fold_ids, load_fold_teachers

from model.predict import load_classifier
from model.training.data import open_patch_set, sample_index
from model.training.evaluate import roc_auc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path, help="the training set (any layout)")
    parser.add_argument("--model", type=Path, action="append", default=[])
    parser.add_argument(
        "--fold-teacher",
        type=Path,
        action="append",
        default=[],
        help="cross-fitted teachers, one per fold (their recipes say which)",
    )
    parser.add_argument("--sample", type=int, default=2000, help="patches scored")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.model and not args.fold_teacher:
        parser.error("give --model or --fold-teacher")

    patches = open_patch_set(args.train)
    index = sample_index(len(patches), args.sample, seed=args.seed)
    n = len(index)
    images, labels = patches.read(index), patches.labels[index]
    print(f"{args.train}: {n} of {len(patches)} training patches (seed {args.seed})")
    for path in args.model:
        scores = load_classifier(path)(images)
        print(f"{path}: training AUC {roc_auc(labels, scores):.4f}")
    if args.fold_teacher:
        # Checked and put in fold order as `fold_student_hooks` does.
        teachers = load_fold_teachers(
            args.fold_teacher, source_hash=patches.fingerprint()
        )
        folds = fold_ids(len(patches), len(teachers))[index]
        oof = np.empty(n, np.float32)
        for fold, teacher in enumerate(teachers):
            scores = teacher.predict(images, batch_size=256, verbose=0).reshape(-1)
            mine = folds == fold
            oof[mine] = scores[mine]
            print(
                f"teacher without fold {fold}: training AUC on its own folds "
                f"{roc_auc(labels[~mine], scores[~mine]):.4f}, on the held-out fold "
                f"{roc_auc(labels[mine], scores[mine]):.4f}"
            )
        print(f"out-of-fold scores: training AUC {roc_auc(labels, oof):.4f}")


if __name__ == "__main__":
    main()
