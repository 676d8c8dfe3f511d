"""Normal lymph nodes at a real node's size, to count false lesions per node.

    nice -n 5 .venv/bin/python tools/make_normal_nodes.py --out /work/largenodes --nodes 20
    nice -n 5 .venv/bin/python tools/make_normal_nodes.py --out /work/largenodes \
        --set heldout --nodes 10
    python benchmarks/bench_staging.py --evalset /work/largenodes --set tune

The development patients' nodes (tools/make_staging_set.py) are 3-7 mm across, a few
hundred patches; a real lymph node's section is often 10-15 mm (a 15 mm square of
tissue is about 17,000 patches). A staging rule's false lesions grow with the number
of cells, so this builds nodes of
``--side-mm`` (an oval of about 58% of the square) from normal PCam patches only:
``OUT/SET/slides/patient_P_node_N.tif`` and a ``stage_labels.csv`` where every
patient is pN0. Patches: the ``--set`` half of ``test-dev/`` (the halves of
tools/make_staging_set.py; ``--patches valid``: the same half of ``valid/``), never
``train/``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_eval_slides import split_halves, usable_patches
from make_staging_set import build_node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--patches", choices=["test-dev", "valid"], default="test-dev")
    parser.add_argument("--nodes", type=int, default=10, help="a multiple of 5")
    parser.add_argument("--side-mm", type=float, default=14.0)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--set",
        choices=["tune", "heldout"],
        default="tune",
        help="which half of the patches (tools/make_staging_set.py's halves)",
    )
    parser.add_argument("--quality", type=int, default=85)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    split = args.data / "pcam" / args.patches
    half = 0 if args.set == "tune" else 1
    normals = split_halves(usable_patches(split, 0, drop_pale=False), args.seed)[half]
    rng = np.random.default_rng(args.seed + half)
    out = args.out / args.set
    (out / "slides").mkdir(parents=True, exist_ok=True)
    labels = [("patient", "stage")]
    for p in range(args.nodes // 5):
        labels.append((f"patient_{p:03d}.zip", "pN0"))
        for n in range(5):
            stem = f"patient_{p:03d}_node_{n}"
            build_node(
                out,
                stem,
                node_class="negative",
                pools={},
                patches={0: normals, 1: []},
                rng=rng,
                quality=args.quality,
                min_side_mm=args.side_mm,
            )
            labels.append((f"{stem}.tif", "negative"))
    with (out / "stage_labels.csv").open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(labels)


if __name__ == "__main__":
    main()
