"""How closely students reproduce their teacher: logits compared patch by patch.

Distillation trains a student to be a function of the teacher; this measures how far
it got. On a fixed sample of patches (no augmentation, no TTA) it prints, for the
teacher and each student, the AUC against the true labels, and for each student the
correlation of its logits with the teacher's (Pearson and Spearman) and the mean
absolute logit gap, over all patches and over those the teacher is sure of
(|logit| > 3, probability below 0.047 or above 0.953). Run it on training patches
(what the student was fitted on) and on ``valid/`` (what it should generalise to):

    python research/scripts/teacher_agreement.py ../shared/data/pcam/valid \\
        --teacher model/weights/pcam-efficientnet-lite0.keras \\
        --student model/weights/pcam-nasnet-mobile.keras --student runs/kd19/best.keras
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.special import logit
from scipy.stats import pearsonr, spearmanr

from model.predict import load_classifier
from model.training.data import open_patch_set, sample_index
from model.training.evaluate import roc_auc

SURE_LOGIT = 3.0
"""The teacher is 'sure' of a patch where its logit lies beyond this, either sign."""


def _logits(scores: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    return logit(np.clip(scores.astype(np.float64), 1e-6, 1 - 1e-6))


def _agreement(
    student: npt.NDArray[np.float64], teacher: npt.NDArray[np.float64]
) -> str:
    pearson = pearsonr(student, teacher).statistic
    spearman = spearmanr(student, teacher).statistic
    gap = np.mean(np.abs(student - teacher))
    return f"Pearson {pearson:.3f}, Spearman {spearman:.3f}, mean |gap| {gap:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a patch set (any layout)")
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--student", type=Path, action="append", required=True)
    parser.add_argument("--sample", type=int, default=3000, help="patches scored")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    patches = open_patch_set(args.data)
    index = sample_index(len(patches), args.sample, seed=args.seed)
    n = len(index)
    images, labels = patches.read(index), patches.labels[index]
    print(f"{args.data}: {n} of {len(patches)} patches (seed {args.seed})")
    scores = load_classifier(args.teacher)(images)
    teacher = _logits(scores)
    sure = np.abs(teacher) > SURE_LOGIT
    print(
        f"teacher {args.teacher}: AUC {roc_auc(labels, scores):.4f}; "
        f"sure of {sure.mean():.1%} of the patches"
    )
    for path in args.student:
        scores = load_classifier(path)(images)
        student = _logits(scores)
        print(f"student {path}: AUC {roc_auc(labels, scores):.4f}")
        print(f"  all patches: {_agreement(student, teacher)}")
        print(f"  teacher sure: {_agreement(student[sure], teacher[sure])}")
        print(f"  teacher unsure: {_agreement(student[~sure], teacher[~sure])}")


if __name__ == "__main__":
    main()
