"""Choose between patch classifiers on held-out PCam patches, with confidence intervals.

Scores every model on the same labelled set (default: PCam ``test-dev/``, patches
from other slides than training and validation) with and without dihedral TTA, and
reports each ROC AUC with its bootstrap 95% CI and its paired difference from the
first model (the same patches resampled for both, so the interval is that of the
difference)::

    python benchmarks/bench_models.py efficientnet-lite0 nasnet-mobile runs/lite1/best.keras \
        --data ../shared/data/pcam/test-dev --out benchmarks/results/bench_models

Models run as the pipeline runs them (``ClassifierSpec.load``: the int8 OpenVINO copy
on a CPU when one exists for the file, else Keras); ``--keras`` forces Keras fp32 for
all (new runs have no int8 copy yet). A difference whose interval holds 0 is not a
result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import markdown_table

from model.training.data import open_patch_set
from model.training.evaluate import auc_ci95, roc_auc, score_patch_set

N_RESAMPLES = 2000


def paired_auc_difference(
    labels: np.ndarray, a: np.ndarray, b: np.ndarray, *, seed: int = 0
) -> tuple[float, float, float]:
    """AUC(a) - AUC(b) on the same patches, with its paired bootstrap 95% CI."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    diffs = np.empty(N_RESAMPLES)
    for i in range(N_RESAMPLES):
        idx = np.concatenate(
            [rng.choice(pos, size=len(pos)), rng.choice(neg, size=len(neg))]
        )
        diffs[i] = roc_auc(labels[idx], a[idx]) - roc_auc(labels[idx], b[idx])
    low, high = np.percentile(diffs, [2.5, 97.5])
    return roc_auc(labels, a) - roc_auc(labels, b), float(low), float(high)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="bundled names or .keras files")
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data/pcam/test-dev")
    )
    parser.add_argument("--tta", nargs="+", default=["none", "dihedral"])
    parser.add_argument("--keras", action="store_true", help="Keras fp32 for all")
    parser.add_argument(
        "--ensemble", action="store_true", help="also the mean of the models' scores"
    )
    parser.add_argument("--out", type=Path, default=None, help="write OUT.json/.md")
    args = parser.parse_args()
    if args.keras:
        os.environ["WSI_SCORING_RUNTIME"] = "keras"
    from wsi.scoring import ClassifierSpec

    patches = open_patch_set(args.data)
    labels = np.asarray(patches.labels)
    rows: list[dict[str, Any]] = []
    scores: dict[tuple[str, str], np.ndarray] = {}
    names = list(args.models) + (["ensemble"] if args.ensemble else [])

    def record(
        name: str, tta: str, s: np.ndarray, runtime: str, seconds: float
    ) -> None:
        scores[(name, tta)] = s
        low, high = auc_ci95(labels, s)
        first = scores[(names[0], tta)]
        diff = None if name == names[0] else paired_auc_difference(labels, s, first)
        base = scores[(name, args.tta[0])]
        gain = None if tta == args.tta[0] else paired_auc_difference(labels, s, base)
        rows.append(
            {
                "model": name,
                "tta": tta,
                "runtime": runtime,
                "auc": roc_auc(labels, s),
                "auc_ci95": [low, high],
                "accuracy": float(np.mean((s >= 0.5) == (labels == 1))),
                "vs_first": diff,
                "vs_first_tta": gain,
                "patches_per_s": len(labels) / seconds,
            }
        )
        vs = (
            ""
            if diff is None
            else "  vs {}: {:+.4f} ({:+.4f}..{:+.4f})".format(names[0], *diff)
        )
        tg = (
            ""
            if gain is None
            else "  vs TTA {}: {:+.4f} ({:+.4f}..{:+.4f})".format(args.tta[0], *gain)
        )
        print(
            f"{name:36s} tta={tta:8s} {runtime:14s} AUC {rows[-1]['auc']:.4f} "
            f"({low:.4f}-{high:.4f}){vs}{tg}  {len(labels) / seconds:.0f} patches/s",
            flush=True,
        )

    for tta in args.tta:
        total = 0.0
        for model in args.models:
            classifier = ClassifierSpec(model_path=Path(model), tta=tta).load()
            start = time.perf_counter()
            s = score_patch_set(classifier, patches)
            seconds = time.perf_counter() - start
            total += seconds
            runtime = str(getattr(classifier, "runtime", "keras"))
            record(model, tta, s, runtime, seconds)
        if args.ensemble:
            mean = np.mean([scores[(m, tta)] for m in args.models], axis=0)
            record("ensemble", tta, mean, "mean of the models", total)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "data": str(args.data),
            "n": len(labels),
            "data_hash": patches.fingerprint(),
        }
        args.out.with_suffix(".json").write_text(
            json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n"
        )
        table = [
            {
                "model": r["model"],
                "TTA": r["tta"],
                "runtime": r["runtime"],
                "AUC (95% CI)": f"{r['auc']:.4f} ({r['auc_ci95'][0]:.4f}-{r['auc_ci95'][1]:.4f})",
                f"vs {args.models[0]} (paired 95% CI)": ""
                if r["vs_first"] is None
                else "{:+.4f} ({:+.4f}..{:+.4f})".format(*r["vs_first"]),
                f"vs TTA {args.tta[0]} (paired 95% CI)": ""
                if r["vs_first_tta"] is None
                else "{:+.4f} ({:+.4f}..{:+.4f})".format(*r["vs_first_tta"]),
                "accuracy": f"{r['accuracy']:.4f}",
                "patches/s": f"{r['patches_per_s']:.0f}",
            }
            for r in rows
        ]
        args.out.with_suffix(".md").write_text(
            f"`{' '.join(sys.argv)}` on {args.data} (n={len(labels)})\n\n"
            + markdown_table(table, list(table[0]))
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
