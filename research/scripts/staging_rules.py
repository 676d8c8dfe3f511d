"""Staging rules on stored heatmaps: counting thresholds, size from a lesion's core.

    python research/scripts/staging_rules.py --evalset /work/stagingset --set tune \
        --runs /work/stagingset/runs/lite0-160-tune

The product's rule (`wsi.regions.lesion_class`): lesions are 8-connected cells >=
``c``, a lesion counts with >= ``n`` cells >= ``p``, and its diameter spans all its
cells. Here the diameter may span only its cells >= ``s`` (its core; the most
confident cell alone when none is), so a doubtful neighbour of a small lesion does
not add a cell's width. Each rule's node accuracy and kappa, and the paired
difference in node accuracy against ``--baseline`` (the product's rule) with a
bootstrap 95% interval over patients (``--versus RUNS``: against another model's
heatmaps at the baseline rule); the oracle row is staged with the baseline; for the truly negative nodes, the counted (false) lesions per 10,000
cells, with an interval over nodes (tools/make_normal_nodes.py builds
normal nodes of a real node's size). Choose on ``tune`` only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial.distance import cdist

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_detection import load_heatmaps, oracle_maps

from wsi.evaluation.staging import staging_report, truth_diameters
from wsi.regions.lesion_class import (
    NodeClass,
    size_class,
    window_gap_um,
)
from wsi.staging.pn_stage import read_stage_labels
from wsi.staging.stage_run import NodeResult

EIGHT = np.ones((3, 3), bool)


def largest(heatmap, grid, c, p, n, s):
    """(class, diameter mm) of a node under the rule; (NEGATIVE, None) without one."""
    values = np.nan_to_num(heatmap, nan=0.0)
    labels, count = ndimage.label(values >= c, structure=EIGHT)
    cell_um = grid.cell_size_l0 * grid.geometry.mpp
    best = None
    counted = 0
    for label in range(1, count + 1):
        inside = labels == label
        if int((inside & (values >= p)).sum()) < n:
            continue
        counted += 1
        core = inside & (values >= s)
        if not core.any():
            core = inside & (values == values[inside].max())
        rr, cc = np.nonzero(core)
        xy = np.column_stack([cc, rr]) * cell_um
        d = (cdist(xy, xy).max() + window_gap_um(grid)) / 1000
        best = d if best is None else max(best, d)
    if best is None:
        return NodeClass.NEGATIVE, None, 0
    return size_class(best), best, counted


def stage(maps, rule):
    """Each node's ``(class, diameter mm, counted lesions)`` under the rule."""
    return {m.stem: largest(m.heatmap, m.grid, *rule) for m in maps}


def results(maps, staged):
    return {
        m.stem: NodeResult(
            stem=m.stem,
            file_name=f"{m.stem}.tif",
            node_class=staged[m.stem][0],
            largest_diameter_mm=staged[m.stem][1],
            mpp=m.grid.geometry.mpp,
        )
        for m in maps
    }


def false_lesions(maps, staged, labels):
    """Counted lesions per 10,000 cells of the truly negative nodes, with a
    bootstrap 95% interval over those nodes."""
    counts = [
        (staged[m.stem][2], int(np.isfinite(m.heatmap).sum()))
        for m in maps
        if labels.nodes[m.stem] is NodeClass.NEGATIVE
    ]
    if not counts:
        return "-"
    c = np.asarray(counts, np.float64)
    draws = np.random.default_rng(0).integers(len(c), size=(2000, len(c)))
    sums = c[draws].sum(axis=1)
    low, high = np.percentile(1e4 * sums[:, 0] / sums[:, 1], [2.5, 97.5])
    return f"{1e4 * c[:, 0].sum() / c[:, 1].sum():.3f} ({low:.3f}-{high:.3f})"


def per_patient_right(res, labels):
    out = {}
    for stem, truth in labels.nodes.items():
        patient = labels.node_patient[stem]
        out.setdefault(patient, []).append(int(res[stem].node_class == truth))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evalset", type=Path, required=True)
    parser.add_argument("--set", default="tune")
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--rules", nargs="*", help="c,p,n,s rules (default: a sweep)")
    parser.add_argument(
        "--versus", type=Path, help="compare with these runs' heatmaps at the baseline"
    )
    parser.add_argument(
        "--baseline",
        default="0.5,0.9,3,0.5",
        help="c,p,n,s of the rule compared against [the product's, at stride 96; "
        "the first product rule was 0.5,0.95,2,0.5]",
    )
    args = parser.parse_args()
    folder = args.evalset / args.set
    stems = sorted(p.stem for p in (folder / "slides").glob("*.tif"))
    maps = load_heatmaps(args.runs, stems)
    labels_path = folder / "stage_labels.csv"
    labels = read_stage_labels(labels_path)
    truth = truth_diameters(
        folder / "annotations", {m.stem: m.grid.geometry.mpp for m in maps}
    )
    c0, p0, n0, s0 = (float(v) for v in args.baseline.split(","))
    default = (c0, p0, int(n0), s0)
    if args.rules:
        rules = [tuple(float(v) for v in r.split(",")) for r in args.rules]
        rules = [(c, p, int(n), s) for c, p, n, s in rules]
    else:
        rules = [
            (c, p, n, s)
            for c in (0.3, 0.5, 0.7)
            for p in (0.9, 0.95, 0.98)
            for n in (1, 2, 3)
            for s in (c, 0.9)
            if s >= c
        ]
    base_maps = load_heatmaps(args.versus, stems) if args.versus else maps
    base = per_patient_right(results(base_maps, stage(base_maps, default)), labels)
    patients = sorted(base)
    rng = np.random.default_rng(0)
    draws = rng.integers(len(patients), size=(2000, len(patients)))
    print(
        "| rule c, p, n, s | node accuracy | kappa | micro diam err | "
        "vs baseline (95% CI) | false lesions per 10k normal cells (95% CI) |"
    )
    print("|---|---|---|---|---|---|")
    oracle = oracle_maps(maps, folder)
    rows = [("oracle", oracle, default)]
    rows += [(r, maps, r) for r in [default, *[r for r in rules if r != default]]]
    for name, staged_maps, rule in rows:
        staged = stage(staged_maps, rule)
        res = results(staged_maps, staged)
        rep = staging_report(res, labels_path, truth_diameters_mm=truth)
        right = per_patient_right(res, labels)
        diff = np.array(
            [sum(right[p]) - sum(base[p]) for p in patients], np.float64
        ) / len(labels.nodes)
        boot = np.percentile(diff[draws].sum(axis=1), [2.5, 97.5])
        micro = rep.micro_diameter_mae_mm
        print(
            f"| {name} | {rep.node_accuracy:.2f} | {rep.kappa:.3f} | "
            f"{'-' if micro is None else f'{micro:.3f}'} | {diff.sum():+.2f} "
            f"({boot[0]:+.2f}..{boot[1]:+.2f}) | "
            f"{false_lesions(staged_maps, staged, labels)} |"
        )


if __name__ == "__main__":
    main()
