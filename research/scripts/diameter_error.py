"""Largest-lesion diameter error on development slides (issue 31).

Compares each slide's ``summary.json`` ``largest_diameter_mm`` with the longest
diameter of its truth outlines, and the size class both give (negative / ITC / micro /
macro, Camelyon17's limits)::

    wsi-heatmap stitch RUNS/*             # summaries with diameters
    python research/scripts/diameter_error.py RUNS [EVALSET/heldout]
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from wsi.evaluation.truth import read_vector_truth
from wsi.regions.lesion_size import max_diameter_um

L0_MPP = 0.243


def size_class(diameter_mm: float) -> str:
    """Camelyon17's classes by the largest diameter (0: no region)."""
    if diameter_mm == 0:
        return "negative"
    if diameter_mm <= 0.2:
        return "itc"
    return "micro" if diameter_mm <= 2.0 else "macro"


def main() -> None:
    runs = Path(sys.argv[1])
    evalset = Path(sys.argv[2] if len(sys.argv) > 2 else "/work/evalset-td/heldout")
    with (evalset / "reference.csv").open() as handle:
        labels = {row[0]: row[1] for row in csv.reader(handle)}
    pairs = []
    for stem, label in sorted(labels.items()):
        summary = json.loads((runs / stem / "summary.json").read_text())
        predicted = summary.get("largest_diameter_mm") or 0.0
        true = 0.0
        if label == "Tumor":
            outlines = read_vector_truth(evalset / "annotations" / f"{stem}.xml")
            true = max(max_diameter_um(p, mpp=L0_MPP) for p in outlines) / 1000
        pairs.append((true, predicted))
    errors = [abs(t - p) for t, p in pairs if t > 0]
    micro = [abs(t - p) for t, p in pairs if 0.2 < t <= 2.0]
    print(f"tumour slides {len(errors)}: mean |error| {np.mean(errors):.3f} mm")
    print(
        f"largest lesion 0.2-2 mm: n={len(micro)}, mean |error| {np.mean(micro):.3f} mm"
    )
    agree = sum(size_class(t) == size_class(p) for t, p in pairs)
    print(f"size class agreement: {agree} / {len(pairs)}")
    print(Counter((size_class(t), size_class(p)) for t, p in pairs))


if __name__ == "__main__":
    main()
