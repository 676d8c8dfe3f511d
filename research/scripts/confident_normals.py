"""How often normal PCam patches reach the confidence of a lone tumour cell.

    python research/scripts/confident_normals.py ../shared/data/pcam/test-dev ../shared/data/pcam/valid

For each set: the fraction of normal and of tumour patches whose probability (the
bundled default model, as the pipeline scores) reaches 0.95 ... 0.999. A staging rule
that counts one confident cell as an ITC calls about ``fraction x patches`` false cells
in a normal node (a real one has thousands of patches; docs/STAGING.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from model.registry import DEFAULT_MODEL
from model.training.data import open_patch_set
from model.training.evaluate import score_patch_set
from wsi.scoring import ClassifierSpec

THRESHOLDS = (0.95, 0.98, 0.99, 0.995, 0.999)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args()
    classifier = ClassifierSpec(model_path=Path(args.model)).load()
    for folder in args.sets:
        patches = open_patch_set(folder)
        p = score_patch_set(classifier, patches)
        y = patches.label_array
        for t in THRESHOLDS:
            normal = int((p[y == 0] >= t).sum())
            print(
                f"{folder.name}: >= {t}: normal {normal} of {(y == 0).sum()} "
                f"({normal / (y == 0).sum():.4f}), tumour {(p[y == 1] >= t).mean():.3f}"
            )


if __name__ == "__main__":
    main()
