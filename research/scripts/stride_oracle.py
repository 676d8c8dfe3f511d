"""What a perfect heatmap would stage at stride 96 and at stride 32.

    python research/scripts/stride_oracle.py --evalset /work/stagingset --set heldout \
        --runs /work/stagingset/runs/lite0-160-heldout

For each node of a staging set (the grids of a finished run), the oracle heatmap is 1
on the cells whose PCam label window (the centre 32 x 32 px of the patch) meets a truth
outline, 0 elsewhere; it is staged with the product's rule on the run's stride-96 grid
and on a stride-32 grid of the same slide (windows side by side, no gap), there also
with three cells of 31 um. The node
accuracy, kappa and diameter error of each are the ceilings of the two strides: what
a classifier that is never wrong would reach. Stride 32 scores 9x the patches; on
these mosaics a real classifier at stride 32 cannot be judged (a shifted patch is
four PCam patches), so this bounds the design, it does not measure it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_detection import Heatmap, load_heatmaps, oracle_maps
from bench_staging import node_results

from wsi.evaluation.staging import staging_report, truth_diameters
from wsi.geometry import TileGrid
from wsi.regions.lesion_class import StagingParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evalset", type=Path, required=True)
    parser.add_argument("--set", default="heldout")
    parser.add_argument("--runs", type=Path, required=True)
    args = parser.parse_args()
    folder = args.evalset / args.set
    stems = sorted(p.stem for p in (folder / "slides").glob("*.tif"))
    maps = load_heatmaps(args.runs, stems)
    truth = truth_diameters(
        folder / "annotations", {m.stem: m.grid.geometry.mpp for m in maps}
    )
    labels = folder / "stage_labels.csv"
    default = StagingParams()
    # Stride 32: the product's rule (the same area, 27 cells), and three of its cells
    # (a ninth of the area: a rule whose false lesions there nobody has measured).
    cases = [
        (96, "the product's rule", default),
        (32, "the product's rule (the same area)", default),
        (32, "three cells (2,900 um2)", StagingParams(min_confident_area_um2=2_900.0)),
    ]
    for stride, name, params in cases:
        grids = [
            TileGrid(
                geometry=m.grid.geometry,
                mpp=m.grid.mpp,
                tile_px=m.grid.tile_px,
                stride_px=stride,
            )
            for m in maps
        ]
        blank = [
            Heatmap(m.stem, np.zeros(g.shape, np.float32), g)
            for m, g in zip(maps, grids, strict=True)
        ]
        oracle = oracle_maps(blank, folder)
        report = staging_report(
            node_results(oracle, params), labels, truth_diameters_mm=truth
        )
        ci = report.node_accuracy_ci
        print(
            f"stride {stride}, {name}: node accuracy {report.node_accuracy:.2f} "
            f"({ci[0]:.2f}-{ci[1]:.2f}), kappa {report.kappa:.3f}, diameter error "
            f"{report.diameter_mae_mm:.3f} mm (micro {report.micro_diameter_mae_mm:.3f}); "
            f"confusion {report.confusion}"
        )


if __name__ == "__main__":
    main()
