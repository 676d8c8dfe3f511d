"""Cell-level agreement of a finished demo run with the demo slide's truth.

Usage: python research/scripts/demo_cell_auc.py demo-out   (after ``make demo``)
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import zarr
from sklearn.metrics import roc_auc_score

from wsi.store.layout import Arrays, SlideOutputs

ROOT = Path(__file__).resolve().parent.parent


def main(out_dir: Path) -> None:
    outputs = SlideOutputs.for_slide(out_dir, ROOT / "demo" / "demo_slide.tif")
    heatmap = np.asarray(zarr.open_group(str(outputs.store))[Arrays.HEATMAP][:])
    with (ROOT / "demo" / "demo_slide.cells.csv").open() as handle:
        rows = [
            (int(r["row"]), int(r["col"]), int(r["label"]))
            for r in csv.DictReader(handle)
        ]
    labels = np.array([label for _, _, label in rows])
    scores = np.nan_to_num(np.array([heatmap[r, c] for r, c, _ in rows]), nan=0.0)
    print(
        f"cells: {len(rows)} ({labels.sum()} tumour); cell AUC {roc_auc_score(labels, scores):.3f}; "
        f"mean probability tumour {scores[labels == 1].mean():.3f}, "
        f"normal {scores[labels == 0].mean():.3f}; "
        f"sensitivity at 0.5 {(scores[labels == 1] >= 0.5).mean():.3f}, "
        f"specificity {(scores[labels == 0] < 0.5).mean():.3f}"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-out"))
