"""Hard-negative mining: a training folder with the model's hardest normals repeated.

    python research/scripts/hard_negatives.py ../shared/data/pcam/train /work/hardneg \
        --min-probability 0.5 --copies 4

Scores every normal patch of TRAIN (``0/``) with a model (default: the bundled one, as
the pipeline scores), writes their scores to ``OUT/normal_scores.csv`` and builds
``OUT/train/{0,1}``: symbolic links to every patch of TRAIN plus ``--copies`` more links
to each normal scoring >= ``--min-probability``. ``wsi-heatmap train OUT/train
--init-from ...`` then fine-tunes on it (research/HELD-OUT.md, staging: the ITC
nodes are lost to hard normals as confident as a lone tumour cell). Only TRAIN is read:
never give it test-dev/.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from model.registry import DEFAULT_MODEL
from model.training.data import open_patch_set
from model.training.evaluate import score_patch_set
from wsi.scoring import ClassifierSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--min-probability", type=float, default=0.5)
    parser.add_argument("--copies", type=int, default=4)
    args = parser.parse_args()
    if "test" in args.train.name:
        raise SystemExit(f"{args.train}: mine the training split only")
    train = args.train.resolve()
    patches = open_patch_set(train)
    normal = patches.label_array == 0
    classifier = ClassifierSpec(model_path=Path(args.model)).load()
    scores = score_patch_set(classifier, patches)
    args.out.mkdir(parents=True, exist_ok=True)
    sources = list(patches.sources)  # type: ignore[attr-defined]
    with (args.out / "normal_scores.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "probability"])
        for i in np.flatnonzero(normal):
            writer.writerow([sources[i], f"{scores[i]:.6f}"])
    folder = args.out / "train"
    hard = 0
    for i, rel in enumerate(sources):
        target = train / rel
        link = folder / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(target)
        if normal[i] and scores[i] >= args.min_probability:
            hard += 1
            for k in range(args.copies):
                extra = link.with_name(f"{link.stem}_hn{k}{link.suffix}")
                if not extra.exists():
                    extra.symlink_to(target)
    for t in (0.5, 0.9, 0.95, 0.99):
        print(
            f">= {t}: {int((scores[normal] >= t).sum())} of {int(normal.sum())} normals"
        )
    print(f"{hard} hard normals x {args.copies} extra copies -> {folder}")


if __name__ == "__main__":
    main()
