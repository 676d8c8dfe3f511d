"""The fast scoring runtime against plain Keras: validation AUC and patches/s.

Scores every PCam validation patch (``--pcam``, 3,000 here) with the bundled model
as plain Keras fp32 (``model.predict.load_classifier``) and as the scorer loads it
(``wsi.scoring.ClassifierSpec``: OpenVINO int8 when installed, exported and checked
at first use into ``WSI_CACHE_DIR``), without TTA and with dihedral TTA, in one
process, alternating the runtimes batch by batch so that a changing load hits both.
Reports AUC, the largest and mean absolute difference of the probabilities, and
patches per second of wall time and of CPU time (the process's, all threads) for
each. Run from the repository root::

    python benchmarks/bench_runtime.py --pcam ../shared/data/pcam/valid --json F
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
import numpy.typing as npt
from _report import markdown_table  # benchmarks/ is on sys.path when run

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

COLUMNS = (
    "runtime",
    "TTA",
    "valid AUC",
    "AUC - Keras",
    "max |p - Keras|",
    "mean |p - Keras|",
    "patches/s (wall)",
    "patches/s (CPU s)",
    "x Keras (wall)",
    "x Keras (CPU)",
)


def _read(
    pcam: Path, limit: int
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    from PIL import Image

    images, labels = [], []
    for label in (0, 1):
        files = sorted((pcam / str(label)).glob("*.jpg"))
        for path in files[: limit // 2 if limit else None]:
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB")))
            labels.append(label)
    return np.stack(images), np.asarray(labels, np.uint8)


def main(argv: list[str] | None = None) -> None:
    """Score, compare and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pcam", type=Path, default=ROOT.parent / "shared/data/pcam/valid"
    )
    parser.add_argument("--limit", type=int, default=0, help="patches (0: all)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--tta", nargs="+", default=["none", "dihedral"])
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--model", type=Path, default=None, help="bundled model name or .keras path"
    )
    args = parser.parse_args(argv)
    from sklearn.metrics import roc_auc_score

    from model.predict import load_classifier
    from wsi.scoring import ClassifierSpec

    images, labels = _read(args.pcam, args.limit)
    order = np.random.default_rng(0).permutation(len(images))
    images, labels = images[order], labels[order]
    rows, record = [], {"n": len(images), "runs": {}}
    for tta in args.tta:
        models = {
            "keras": load_classifier(args.model, tta=tta, batch_size=args.batch_size),
            "fast": ClassifierSpec(
                model_path=args.model, tta=tta, batch_size=args.batch_size
            ).load(),
        }
        names = {
            "keras": "keras-fp32",
            "fast": getattr(models["fast"], "runtime", "keras"),
        }
        for model in models.values():
            model(images[: args.batch_size])  # warm-up (tracing, compilation)
        probs = {k: np.empty(len(images), np.float32) for k in models}
        wall = dict.fromkeys(models, 0.0)
        cpu = dict.fromkeys(models, 0.0)
        step = args.batch_size
        for start in range(0, len(images), step):
            batch = images[start : start + step]
            for key, model in models.items():
                t, c = time.perf_counter(), time.process_time()
                probs[key][start : start + len(batch)] = model(batch)
                wall[key] += time.perf_counter() - t
                cpu[key] += time.process_time() - c
        base_auc = float(roc_auc_score(labels, probs["keras"]))
        for key in models:
            auc = float(roc_auc_score(labels, probs[key]))
            diff = np.abs(probs[key].astype(np.float64) - probs["keras"])
            run: dict[str, Any] = {
                "auc": auc,
                "max_abs_diff": float(diff.max()),
                "mean_abs_diff": float(diff.mean()),
                "wall_s": wall[key],
                "cpu_s": cpu[key],
            }
            record["runs"][f"{names[key]}/{tta}"] = run
            rows.append(
                {
                    "runtime": names[key],
                    "TTA": tta,
                    "valid AUC": f"{auc:.4f}",
                    "AUC - Keras": f"{auc - base_auc:+.4f}",
                    "max |p - Keras|": f"{run['max_abs_diff']:.4f}",
                    "mean |p - Keras|": f"{run['mean_abs_diff']:.4f}",
                    "patches/s (wall)": f"{len(images) / wall[key]:.0f}",
                    "patches/s (CPU s)": f"{len(images) / cpu[key]:.0f}",
                    "x Keras (wall)": f"{wall['keras'] / wall[key]:.2f}",
                    "x Keras (CPU)": f"{cpu['keras'] / cpu[key]:.2f}",
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
    table = markdown_table(rows, COLUMNS)
    print(table)
    print(f"\n{len(images)} patches; load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
