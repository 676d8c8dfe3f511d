"""Stain robustness: patch AUC on ``valid/`` under HED stain shifts of rising strength.

Each PCam validation patch is re-stained with the training augmentation's own HED
jitter (``model.training.augment``, Tellez et al.: haematoxylin, eosin and DAB concentrations
each scaled by ``U(1 - s, 1 + s)`` and shifted by ``U(-s, s)``), drawn per patch from a
fixed seed, so every model sees the same shifted patches. Strength 0 is the plain set;
the models were trained with ``s = 0.05``, so larger strengths are stains they did not
see. Each model is scored as the pipeline scores it (``wsi.scoring.ClassifierSpec``:
OpenVINO int8 on a CPU when installed). Run from the repository root::

    python benchmarks/bench_stain.py --pcam ../shared/data/pcam/valid --json F

A model is a bundled name or a ``.keras`` path (with its sidecar).
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

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_BATCH = 256


def restain(
    images: npt.NDArray[np.uint8], strength: float, seed: int
) -> npt.NDArray[np.uint8]:
    """``images`` with the training HED jitter of ``strength`` (0: unchanged)."""
    if strength == 0:
        return images
    from model.training.augment import AugmentParams, augment_batch

    params = AugmentParams(
        dihedral=False, brightness=0, contrast=0, saturation=0, hue=0, hed=strength
    )
    out = np.empty_like(images)
    for start in range(0, len(images), _BATCH):
        batch = images[start : start + _BATCH].astype(np.float32)
        shifted = augment_batch(batch, params, [seed, start])
        out[start : start + len(batch)] = np.rint(np.asarray(shifted)).astype(np.uint8)
    return out


def main(argv: list[str] | None = None) -> None:
    from sklearn.metrics import roc_auc_score

    from model.registry import resolve_model_path
    from model.training.data import open_patch_set
    from wsi.scoring import ClassifierSpec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pcam", type=Path, default=Path("../shared/data/pcam/valid"))
    parser.add_argument(
        "--models", nargs="+", default=["nasnet-mobile", "efficientnet-lite0"]
    )
    parser.add_argument(
        "--strengths", nargs="+", type=float, default=[0.0, 0.05, 0.1, 0.2, 0.3]
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="patches (0: all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    patches = open_patch_set(args.pcam, limit=args.limit or None)
    labels = patches.labels
    images = patches.read(np.arange(len(patches), dtype=np.int64))
    shifted = {s: restain(images, s, args.seed) for s in args.strengths}
    record: dict[str, Any] = {
        "data": str(args.pcam),
        "n": len(labels),
        "seed": args.seed,
        "auc": {},
    }
    rows = []
    for name in args.models:
        model_path = resolve_model_path(name)
        classifier = ClassifierSpec(model_path=model_path).load()
        runtime = type(classifier).__name__
        aucs = {}
        started = time.perf_counter()
        for strength, data in shifted.items():
            aucs[strength] = float(roc_auc_score(labels, classifier(data)))
        record["auc"][name] = {
            "runtime": runtime,
            **{str(s): a for s, a in aucs.items()},
        }
        row = {"model": name, "runtime": runtime}
        base = aucs[args.strengths[0]]
        for strength, auc in aucs.items():
            row[f"HED {strength:g}"] = f"{auc:.4f}" + (
                "" if strength == args.strengths[0] else f" ({auc - base:+.4f})"
            )
        rows.append(row)
        print(rows[-1], f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    columns = ("model", "runtime", *(f"HED {s:g}" for s in args.strengths))
    print(markdown_table(rows, columns))
    print(f"\n{len(labels)} patches of {args.pcam}, seed {args.seed}")
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
