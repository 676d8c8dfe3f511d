"""Stain normalisation at inference: does it win back what a slide's stain shift costs?

Simulated slides: the 3,000 PCam validation patches split into 30 slides of 100, each
re-stained as a whole with one draw of the training augmentation's HED jitter
(``bench_stain.restain`` on the slide's patches laid end to end, so one draw per
slide, as one laboratory's stain shifts a whole slide). Two layouts:

- ``balanced``: every slide half tumour, like PCam and like the reference;
- ``skewed``: 10 slides 5% tumour, 10 half, 10 95% tumour, as real slides differ.

Each slide is then normalised as a whole to a reference fitted on 2,000 PCam
training patches, with torchstain's Reinhard (Lab mean and spread) or Macenko (stain
vectors) normaliser, and scored as the pipeline scores (``wsi.scoring
.ClassifierSpec``). AUC is over all 3,000 patches. Run from the repository root::

    python benchmarks/bench_stain_norm.py --json F

Needs ``pip install torchstain`` (MIT, numpy backend; not a dependency of the tool).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from _report import markdown_table  # benchmarks/ is on sys.path when run
from bench_stain import restain

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_SLIDES = 30
#: Normal / tumour patches per slide of the skewed layout, 10 slides each.
_SKEWED = ((95, 5), (50, 50), (5, 95))


def slide_groups(
    labels: npt.NDArray[np.int64], layout: str, rng: np.random.Generator
) -> list[npt.NDArray[np.int64]]:
    """Patch indices of each simulated slide (every patch in exactly one)."""
    if layout == "balanced":
        return list(np.array_split(rng.permutation(len(labels)), _SLIDES))
    normal = rng.permutation(np.flatnonzero(labels == 0))
    tumour = rng.permutation(np.flatnonzero(labels == 1))
    groups, i, j = [], 0, 0
    for n_normal, n_tumour in _SKEWED:
        for _ in range(_SLIDES // len(_SKEWED)):
            groups.append(
                np.concatenate([normal[i : i + n_normal], tumour[j : j + n_tumour]])
            )
            i, j = i + n_normal, j + n_tumour
    return groups


def mosaic(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``(N, h, w, 3)`` patches as one ``(N * h, w, 3)`` image."""
    return images.reshape(-1, *images.shape[2:])


def normalisers(reference: npt.NDArray[np.uint8]) -> dict[str, Any]:
    """Whole-image normalisers fitted to ``reference``: name -> image -> image."""
    from torchstain.numpy.normalizers.macenko import NumpyMacenkoNormalizer
    from torchstain.numpy.normalizers.reinhard import NumpyReinhardNormalizer

    reinhard = NumpyReinhardNormalizer()
    reinhard.fit(reference)
    macenko = NumpyMacenkoNormalizer()
    macenko.fit(reference)
    return {
        "none": lambda image: image,
        "reinhard": reinhard.normalize,
        "macenko": lambda image: macenko.normalize(image, stains=False)[0],
    }


def main(argv: list[str] | None = None) -> None:
    from sklearn.metrics import roc_auc_score

    from model.registry import resolve_model_path
    from model.training.data import open_patch_set
    from wsi.scoring import ClassifierSpec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pcam", type=Path, default=Path("../shared/data/pcam/valid"))
    parser.add_argument(
        "--reference", type=Path, default=Path("../shared/data/pcam/train")
    )
    parser.add_argument("--model", default="nasnet-mobile")
    parser.add_argument(
        "--strengths", nargs="+", type=float, default=[0.0, 0.1, 0.2, 0.3]
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    valid = open_patch_set(args.pcam)
    labels = np.asarray(valid.labels, dtype=np.int64)
    images = valid.read(np.arange(len(valid), dtype=np.int64))
    train = open_patch_set(args.reference)
    picked = np.sort(rng.choice(len(train), 2000, replace=False)).astype(np.int64)
    methods = normalisers(mosaic(train.read(picked)))
    classifier = ClassifierSpec(model_path=resolve_model_path(args.model)).load()
    record: dict[str, Any] = {
        "data": str(args.pcam),
        "model": args.model,
        "runtime": type(classifier).__name__,
        "seed": args.seed,
        "auc": {},
    }
    rows = []
    for layout in ("balanced", "skewed"):
        groups = slide_groups(labels, layout, rng)
        for strength in args.strengths:
            started = time.perf_counter()
            views = {name: np.empty_like(images) for name in methods}
            for k, group in enumerate(groups):
                patches = images[group]
                slide = restain(mosaic(patches)[None], strength, args.seed * 1000 + k)
                for name, method in methods.items():
                    views[name][group] = method(slide[0]).reshape(patches.shape)
            aucs = {
                name: float(roc_auc_score(labels, classifier(view)))
                for name, view in views.items()
            }
            record["auc"][f"{layout} {strength:g}"] = aucs
            row = {"slides": layout, "HED shift": f"{strength:g}"}
            row |= {name: f"{auc:.4f}" for name, auc in aucs.items()}
            rows.append(row)
            print(row, f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(markdown_table(rows, ("slides", "HED shift", *methods)))
    print(
        f"\n{len(labels)} patches of {args.pcam} in {_SLIDES} slides, "
        f"model {args.model} ({record['runtime']}), seed {args.seed}"
    )
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
