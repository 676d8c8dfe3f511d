"""The best Dice a segmentation can reach on the development slides (issue 28).

The development slides (`tools/make_eval_slides.py`) are mosaics of 96 px PCam
patches: a cell holds a tumour patch when its centre 32 x 32 px meets a real lesion
outline, so the tumour *in the pixels* is a union of 93 um squares, while `evaluate`
scores Dice against the outlines. This script measures the Dice of that blocky tumour
(a pixel-perfect segmentation of the image) against the outlines::

    python research/scripts/dice_ceiling.py /work/evalset-td/heldout

Measured: held-out 0.818 mean per slide (pooled 0.890), tune 0.797 (0.878): a perfect
model at any stride cannot pass Dice 0.8 on these slides by much; the stride-96
polygon oracle of `bench_detection.py` gets 0.767.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import box

from wsi.evaluation.truth import read_vector_truth
from wsi.geometry import CENTER_PX, PATCH_PX

#: The slides' level 0 is PCam's scale x 4 (0.243 um/px).
L0_PER_PCAM_PX = 4


def main() -> None:
    evalset = Path(sys.argv[1])
    cell = PATCH_PX * L0_PER_PCAM_PX
    half = CENTER_PX * L0_PER_PCAM_PX / 2
    per_slide, inter_sum, area_sum = [], 0.0, 0.0
    for xml in sorted((evalset / "annotations").glob("*.xml")):
        truth = shapely.union_all(read_vector_truth(xml))
        minx, miny, maxx, maxy = truth.bounds
        cells = []
        for r in range(int(miny // cell) - 1, int(maxy // cell) + 2):
            for c in range(int(minx // cell) - 1, int(maxx // cell) + 2):
                cx, cy = c * cell + cell / 2, r * cell + cell / 2
                if truth.intersects(box(cx - half, cy - half, cx + half, cy + half)):
                    cells.append(
                        box(c * cell, r * cell, (c + 1) * cell, (r + 1) * cell)
                    )
        image = shapely.union_all(cells)
        inter = image.intersection(truth).area
        per_slide.append(2 * inter / (image.area + truth.area))
        inter_sum += inter
        area_sum += image.area + truth.area
    print(
        f"{evalset}: {len(per_slide)} tumour slides; Dice of the image's tumour "
        f"patches against the outlines: mean per slide {np.mean(per_slide):.3f}, "
        f"pooled {2 * inter_sum / area_sum:.3f}"
    )


if __name__ == "__main__":
    main()
