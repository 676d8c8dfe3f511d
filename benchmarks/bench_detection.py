"""Tune lesion detection, slide score and polygon cleaning with the Camelyon16 metrics.

Scores the slides of a development set once (the pipeline at its defaults, stores
kept under ``--runs``), then for each strategy re-runs only the export from the
stored heatmaps (candidates, slide score, polygons: pure functions, no overlay) into
its own output folder and evaluates it with `wsi.evaluation.evaluate`::

    nice -n 5 .venv/bin/python benchmarks/bench_detection.py --set tune \
        --model nasnet-mobile --stride-slides 4
    nice -n 5 .venv/bin/python benchmarks/bench_detection.py --set heldout \
        --model nasnet-mobile --defaults-only

Sweeps (each varies one output, the others at the current defaults):

- detection: ``detections.csv`` strategies -> FROC;
- slide: slide-score methods -> slide AUC;
- polygons: region cleaning -> Dice (and polygons per lesion).

``--stride-slides N`` also scores the first N slides (tumour first) at ``--stride
32`` and compares FROC, Dice and time with the stride-96 stores of the same slides.
Results: ``benchmarks/results/bench_detection-<model>-<set>.{json,md}`` and a block
of ``docs/DETECTION.md`` between ``<!-- bench:<model>:<set> -->`` markers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import markdown_table

from wsi.evaluation.evaluator import EvalConfig, evaluate
from wsi.evaluation.truth import read_vector_truth
from wsi.formats.export import (
    PolygonParams,
    detections,
    heatmap_regions,
    write_detections_csv,
    write_geojson,
)
from wsi.geometry import CENTER_PX, TileGrid
from wsi.pipeline import RunConfig, run, tuned_sections
from wsi.regions.detection import DetectionParams, lesion_candidates
from wsi.regions.slide_score import SlideScoreParams, slide_score
from wsi.scoring import ScoringParams
from wsi.store.layout import Attr, SlideOutputs
from wsi.store.slide_store import array, attrs_section, grid_from_attrs, open_store
from wsi.tiles.tiler import TilingParams

logger = logging.getLogger("bench_detection")
REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "DETECTION.md"


@dataclass(frozen=True)
class Strategy:
    """One export configuration; ``detection=None`` is the old region-per-line CSV."""

    name: str
    sweep: str
    detection: DetectionParams | None = field(default_factory=DetectionParams)
    slide: SlideScoreParams = field(default_factory=SlideScoreParams)
    polygons: PolygonParams = field(default_factory=PolygonParams)


@dataclass(frozen=True)
class Heatmap:
    """A stored slide heatmap."""

    stem: str
    heatmap: np.ndarray
    grid: TileGrid


def strategies(model: str) -> list[Strategy]:
    """The sweeps around the model's tuned settings (see the module notes)."""
    tuned = tuned_sections(model)
    d, s, p = tuned["detection"], tuned["slide_score"], tuned["polygons"]

    def mk(name: str, sweep: str, **sections: Any) -> Strategy:
        """A strategy at the tuned settings except the sections given."""
        return Strategy(
            name, sweep, **({"detection": d, "slide": s, "polygons": p} | sections)
        )

    old_poly = PolygonParams(
        threshold=0.5, smooth_sigma_um=0, min_area_um2=0, max_hole_um2=0
    )
    out = [
        Strategy(
            "old: one line per region >= 0.5, max cell, raw polygons",
            "baseline",
            detection=None,
            slide=SlideScoreParams(method="max_cell"),
            polygons=old_poly,
        ),
        Strategy("defaults (the model's tuned settings)", "defaults", d, s, p),
        Strategy("generic defaults (a model without tuned settings)", "defaults"),
    ]
    for sigma in (0, 25, 50, 75, 100, 150):
        for nms in (150, 300):
            out.append(
                mk(
                    f"peaks sigma {sigma} um, NMS {nms} um",
                    "detection",
                    detection=dataclasses.replace(
                        d, smooth_sigma_um=sigma, nms_radius_um=nms
                    ),
                )
            )
    out.append(
        mk("slide: max cell", "slide", slide=dataclasses.replace(s, method="max_cell"))
    )
    for sigma in (50, 100, 150):
        out.append(
            mk(
                f"slide: max smoothed, sigma {sigma} um",
                "slide",
                slide=dataclasses.replace(
                    s, method="max_smoothed", smooth_sigma_um=sigma
                ),
            )
        )
    for area in (5e4, 1e5, 2e5, 5e5):
        out.append(
            mk(
                f"slide: top-mean of {area:.0f} um2",
                "slide",
                slide=dataclasses.replace(s, method="top_mean", top_area_um2=area),
            )
        )
    for sigma, thr, scale in (
        (50, 0.5, 5e4),
        (100, 0.5, 5e4),
        (100, 0.5, 2e5),
        (50, 0.7, 2e4),
        (0, 0.9, 2e4),
    ):
        out.append(
            mk(
                f"slide: largest region >= {thr}, sigma {sigma} um, "
                f"scale {scale:.0f} um2",
                "slide",
                slide=dataclasses.replace(
                    s,
                    method="largest_region",
                    smooth_sigma_um=sigma,
                    region_threshold=thr,
                    region_scale_um2=scale,
                ),
            )
        )
    cell = 8707.0  # um2 of a stride-96 cell
    raw = dataclasses.replace(
        p, low_threshold=None, smooth_sigma_um=0, min_area_um2=0, max_hole_um2=0
    )
    for thr in (0.5, 0.7):
        out.append(
            mk(
                f"polygons: raw cells >= {thr}",
                "polygons",
                polygons=dataclasses.replace(raw, threshold=thr),
            )
        )
    for sigma in (75, 100, 150):
        for thr in (0.4, 0.5, 0.6):
            out.append(
                mk(
                    f"polygons: >= {thr}, sigma {sigma} um",
                    "polygons",
                    polygons=dataclasses.replace(
                        raw, threshold=thr, smooth_sigma_um=sigma
                    ),
                )
            )
    for thr, low, area in (
        (0.5, 0.3, 0),
        (0.5, 0.3, 4),
        (0.5, 0.4, 4),
        (0.5, None, 4),
    ):
        out.append(
            mk(
                f"polygons: {thr}/{low} hysteresis, sigma 100 um, min {area} cells, "
                "holes < 4 cells filled",
                "polygons",
                polygons=dataclasses.replace(
                    raw,
                    threshold=thr,
                    low_threshold=low,
                    smooth_sigma_um=100,
                    min_area_um2=area * cell,
                    max_hole_um2=4 * cell,
                ),
            )
        )
    return out


def tuned_as_strategy(model: str) -> dict[str, Any]:
    """The model's tuned sections as Strategy keyword arguments."""
    tuned = tuned_sections(model)
    return {
        "detection": tuned["detection"],
        "slide": tuned["slide_score"],
        "polygons": tuned["polygons"],
    }


def score_set(
    slides: Sequence[Path],
    out_dir: Path,
    *,
    model: str,
    stride: int,
    tta: str = "none",
) -> dict[str, float]:
    """Run the pipeline (tile, score, export at the defaults); seconds per slide."""
    config = RunConfig(
        slides=tuple(slides),
        out_dir=out_dir,
        tiling=TilingParams(stride_px=stride),
        scoring=ScoringParams(model_path=Path(model), tta=tta),  # type: ignore[arg-type]
    )
    report = run(config)
    if report.failures:
        raise SystemExit(f"scoring failed: {report.failures}")
    seconds = {}
    for result in report.results:
        summary = json.loads(result.outputs.summary_json.read_text())
        seconds[result.outputs.stem] = float(sum(summary["timings_s"].values()))
    return seconds


def load_heatmaps(out_dir: Path, stems: Sequence[str]) -> list[Heatmap]:
    """The stitched heatmaps of the stores under ``out_dir``."""
    maps = []
    for stem in stems:
        root = open_store(out_dir / stem / f"{stem}.zarr")
        grid = grid_from_attrs(attrs_section(root, Attr.TILING))
        maps.append(Heatmap(stem, np.asarray(array(root, "heatmap")[...]), grid))
    return maps


def export_strategy(maps: Sequence[Heatmap], strategy: Strategy, out_dir: Path) -> None:
    """Write detections.csv, tumor.geojson, summary.json of every slide."""
    for m in maps:
        outputs = SlideOutputs.for_slide(out_dir, Path(f"{m.stem}.tif"))
        outputs.folder.mkdir(parents=True, exist_ok=True)
        if strategy.detection is None:
            dets = detections(m.heatmap, grid=m.grid, params=strategy.polygons)
        else:
            dets = [
                c.as_row()
                for c in lesion_candidates(
                    m.heatmap, grid=m.grid, params=strategy.detection
                )
            ]
        write_detections_csv(dets, outputs.detections_csv)
        regions = heatmap_regions(m.heatmap, grid=m.grid, params=strategy.polygons)
        write_geojson(regions, outputs.geojson, slide_mpp=m.grid.geometry.mpp)
        score = slide_score(m.heatmap, grid=m.grid, params=strategy.slide)
        g = m.grid.geometry
        outputs.summary_json.write_text(
            json.dumps(
                {
                    "slide_probability": score.probability,
                    "max_probability": score.max_probability,
                    "slide_mpp": [g.mpp_x, g.mpp_y],
                    "slide_size_l0_px": [g.width_px, g.height_px],
                    "n_regions": len(regions),
                    "n_detections": len(dets),
                }
            )
        )


def evaluate_strategy(
    maps: Sequence[Heatmap], strategy: Strategy, work: Path, evalset: Path
) -> dict[str, Any]:
    """Export and evaluate one strategy; the metrics row."""
    folder = work / _slug(strategy.name)
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    export_strategy(maps, strategy, folder)
    export_s = time.perf_counter() - t0
    report = evaluate(
        EvalConfig(
            out_dir=folder,
            annotations=evalset / "annotations",
            reference=evalset / "reference.csv",
            eval_out=folder / "evaluation",
            n_bootstrap=1000,
            plots=False,
        )
    )
    if report.failures:
        logger.warning("%s: %s", strategy.name, report.failures)
    metrics = report.metrics()
    slides = sorted(report.slides, key=lambda e: e.stem)
    summaries = [
        json.loads((folder / m.stem / "summary.json").read_text()) for m in maps
    ]
    labels = _labels(evalset)
    normal = [s for m, s in zip(maps, summaries, strict=True) if not labels[m.stem]]
    tumour = [s for m, s in zip(maps, summaries, strict=True) if labels[m.stem]]
    return {
        "name": strategy.name,
        "sweep": strategy.sweep,
        "_slides": slides,
        "froc": metrics["froc"],
        "froc_ci": metrics["froc_ci"],
        "slide_auc_ci": metrics["slide_auc_ci"],
        "max_normal_slide_probability": max(
            (s["slide_probability"] for s in normal), default=None
        ),
        "sensitivity_at": metrics["sensitivity_at"],
        "slide_auc": metrics["slide_auc"],
        "dice": metrics["dice"],
        "n_lesions": metrics.get("n_lesions"),
        "candidates_per_normal_slide": _mean([s["n_detections"] for s in normal]),
        "polygons_per_normal_slide": _mean([s["n_regions"] for s in normal]),
        "polygons_per_tumour_slide": _mean([s["n_regions"] for s in tumour]),
        "export_s_per_slide": export_s / max(1, len(maps)),
        "params": {
            "detection": None
            if strategy.detection is None
            else asdict(strategy.detection),
            "slide_score": asdict(strategy.slide),
            "polygons": asdict(strategy.polygons),
        },
    }


def oracle_maps(maps: Sequence[Heatmap], evalset: Path) -> list[Heatmap]:
    """Heatmaps of the truth: 1 where the patch's PCam centre meets a lesion.

    A perfect classifier's heatmap (NaN where the real one has no patch): its
    polygons give the best Dice that cell-edge polygons at this stride can reach.
    """
    import shapely

    out = []
    for m in maps:
        path = evalset / "annotations" / f"{m.stem}.xml"
        truth = np.zeros(m.heatmap.shape, np.float32)
        if path.exists():
            lesions = shapely.union_all(read_vector_truth(path))
            rows, cols = m.heatmap.shape
            rr, cc = np.mgrid[:rows, :cols]
            xy = m.grid.heatmap_to_level0(
                np.column_stack([cc.ravel() + 0.5, rr.ravel() + 0.5])
            )
            half = CENTER_PX / 2 * m.grid.downsample
            boxes = shapely.box(
                xy[:, 0] - half, xy[:, 1] - half, xy[:, 0] + half, xy[:, 1] + half
            )
            truth = shapely.intersects(boxes, lesions).reshape(rows, cols)
        heatmap = np.where(np.isfinite(m.heatmap), truth.astype(np.float32), np.nan)
        out.append(Heatmap(m.stem, heatmap.astype(np.float32), m.grid))
    return out


def _labels(evalset: Path) -> dict[str, bool]:
    rows = (line.split(",") for line in (evalset / "reference.csv").read_text().split())
    return {row[0]: row[1] == "Tumor" for row in rows}


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _slug(name: str) -> str:
    keep = "".join(ch if ch.isalnum() else "-" for ch in name.lower())
    return "-".join(filter(None, keep.split("-")))[:80]


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def paired_difference(
    row: dict[str, Any], base: dict[str, Any], *, n_resamples: int = 1000
) -> dict[str, Any]:
    """FROC, slide AUC and Dice of ``row`` minus ``base``, with paired 95% CIs.

    The same bootstrap samples of slides (tumour and normal resampled separately)
    are scored under both strategies, so the interval is that of the difference,
    not of either score: a difference whose interval holds 0 is not a result.
    """
    from wsi.evaluation.froc import froc_curve
    from wsi.evaluation.slide_level import roc_auc

    a, b = row["_slides"], base["_slides"]
    assert [e.stem for e in a] == [e.stem for e in b]
    tumour = [i for i, e in enumerate(a) if e.is_tumor]
    normal = [i for i, e in enumerate(a) if not e.is_tumor]
    rng = np.random.default_rng(0)

    def metrics(evals: Sequence[Any], idx: np.ndarray) -> tuple[float, float, float]:
        chosen = [evals[i] for i in idx]
        froc = froc_curve([e.hits for e in chosen if e.in_froc]).froc
        labels = [e.is_tumor for e in chosen]
        auc = roc_auc(labels, [e.slide_probability or 0.0 for e in chosen])
        dice = float(np.mean([e.dice for e in chosen if e.dice is not None]))
        return froc, auc, dice

    diffs = []
    for _ in range(n_resamples):
        idx = np.concatenate(
            [
                rng.choice(tumour, size=len(tumour)),
                rng.choice(normal, size=len(normal)),
            ]
        )
        diffs.append(np.subtract(metrics(a, idx), metrics(b, idx)))
    low, high = np.percentile(np.array(diffs), [2.5, 97.5], axis=0)
    point = np.subtract(metrics(a, np.arange(len(a))), metrics(b, np.arange(len(b))))
    return {
        name: [float(point[k]), float(low[k]), float(high[k])]
        for k, name in enumerate(("froc", "slide_auc", "dice"))
    }


def _with_ci(value: Any, ci: Sequence[float] | None) -> str:
    if ci is None or value is None:
        return _fmt(value)
    return f"{_fmt(value)} ({_fmt(ci[0], 2)}-{_fmt(ci[1], 2)})"


def _vs(diff: dict[str, list[float]] | None) -> str:
    if not diff:
        return ""
    return "; ".join(
        f"{v[0]:+.3f} ({v[1]:+.2f}..{v[2]:+.2f})"
        for v in (diff["froc"], diff["slide_auc"], diff["dice"])
    )


def tables(rows: Sequence[dict[str, Any]]) -> str:
    """One Markdown table per sweep."""
    columns = [
        "strategy",
        "FROC (95% CI)",
        "sens. @1/4, 1/2, 1, 2, 4, 8 FP",
        "slide AUC (95% CI)",
        "top normal slide",
        "Dice",
        "vs defaults: FROC, AUC, Dice (paired 95% CI)",
        "candidates / normal slide",
        "polygons / tumour slide",
    ]
    lines = []
    for sweep in (
        "baseline",
        "defaults",
        "detection",
        "slide",
        "polygons",
        "oracle",
        "stride",
    ):
        chosen = [r for r in rows if r["sweep"] == sweep]
        if not chosen:
            continue
        body = [
            {
                "strategy": r["name"],
                "FROC (95% CI)": _with_ci(r["froc"], r.get("froc_ci")),
                "sens. @1/4, 1/2, 1, 2, 4, 8 FP": ", ".join(
                    _fmt(v, 2) for v in (r["sensitivity_at"] or {}).values()
                ),
                "slide AUC (95% CI)": _with_ci(r["slide_auc"], r.get("slide_auc_ci")),
                "top normal slide": _fmt(r.get("max_normal_slide_probability")),
                "Dice": _fmt(r["dice"]),
                "vs defaults: FROC, AUC, Dice (paired 95% CI)": _vs(
                    r.get("vs_defaults")
                ),
                "candidates / normal slide": _fmt(r["candidates_per_normal_slide"], 1),
                "polygons / tumour slide": _fmt(r["polygons_per_tumour_slide"], 1),
            }
            for r in chosen
        ]
        lines += [f"**{sweep}**", "", markdown_table(body, columns), ""]
    return "\n".join(lines)


def update_doc(block: str, key: str) -> None:
    """Replace (or append) the ``<!-- bench:KEY -->`` block of docs/DETECTION.md."""
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    text = DOC.read_text() if DOC.exists() else "# Lesion detection\n"
    new = f"{start}\n{block}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + new + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + new + "\n"
    DOC.write_text(text)


def stride_rows(
    evalset: Path,
    runs: Path,
    n: int,
    model: str,
    stride96: dict[str, float],
    work: Path,
) -> list[dict[str, Any]]:
    """Defaults at stride 32 vs 96 on the first ``n`` slides (tumour first)."""
    labels = _labels(evalset)
    stems = sorted(labels, key=lambda s: (not labels[s], s))[:n]
    slides = [evalset / "slides" / f"{s}.tif" for s in stems]
    s32 = runs.with_name(runs.name + "-stride32")
    seconds32 = score_set(slides, s32, model=model, stride=32)
    out = []
    for stride, folder, secs in ((96, runs, stride96), (32, s32, seconds32)):
        maps = load_heatmaps(folder, stems)
        default = DetectionParams()
        for name, det in (("defaults", default),):
            row = evaluate_strategy(
                maps,
                Strategy(f"stride {stride}, {name}", "stride", detection=det),
                work / f"stride{stride}",
                evalset,
            )
            row["seconds_per_slide"] = _mean([secs[s] for s in stems])
            row["name"] += (
                f" ({len(stems)} slides, {row['seconds_per_slide']:.0f} s per slide)"
            )
            out.append(row)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evalset", type=Path, default=Path("/work/evalset"))
    parser.add_argument("--set", default="tune", choices=["tune", "heldout"])
    parser.add_argument(
        "--model", default="nasnet-mobile", help="bundled model name or .keras path"
    )
    parser.add_argument(
        "--runs",
        type=Path,
        default=None,
        help="stride-96 stores (default EVALSET/runs/<model>/<set>;"
        " stride 32 and strategy outputs beside it)",
    )
    parser.add_argument(
        "--defaults-only",
        action="store_true",
        help="only the old baseline and the current defaults",
    )
    parser.add_argument(
        "--stride-slides",
        type=int,
        default=0,
        help="also compare stride 32 with 96 on this many slides",
    )
    parser.add_argument(
        "--tta",
        default="none",
        choices=["none", "flips", "dihedral"],
        help="score the slides with this test-time augmentation",
    )
    parser.add_argument("--no-doc", action="store_true", help="leave DETECTION.md")
    parser.add_argument(
        "--doc-key", default="", help="DETECTION.md block [<model>:<set>[:defaults]]"
    )
    parser.add_argument(
        "--match", default="", help="only strategies whose name contains this"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)

    evalset = args.evalset / args.set
    model_key = Path(args.model).stem + (
        "" if args.tta == "none" else f"-tta-{args.tta}"
    )
    runs = args.runs or args.evalset / "runs" / model_key / args.set
    slides = sorted((evalset / "slides").glob("*.tif"))
    t0 = time.perf_counter()
    seconds = score_set(slides, runs, model=args.model, stride=96, tta=args.tta)
    logger.info("scored %d slides in %.0f s", len(slides), time.perf_counter() - t0)
    maps = load_heatmaps(runs, [p.stem for p in slides])
    work = runs.with_name(runs.name + "-strategies")
    rows = []
    for strategy in strategies(args.model):
        if args.defaults_only and strategy.sweep not in ("baseline", "defaults"):
            continue
        if args.match not in strategy.name and strategy.sweep != "defaults":
            continue
        row = evaluate_strategy(maps, strategy, work, evalset)
        logger.info(
            "%-70s FROC %s AUC %s Dice %s",
            strategy.name,
            _fmt(row["froc"]),
            _fmt(row["slide_auc"]),
            _fmt(row["dice"]),
        )
        rows.append(row)
    oracle = evaluate_strategy(
        oracle_maps(maps, evalset),
        Strategy(
            "oracle: the true tumour cells as heatmap, defaults",
            "oracle",
            **tuned_as_strategy(args.model),
        ),
        work,
        evalset,
    )
    logger.info("oracle Dice %s", _fmt(oracle["dice"]))
    base = next(r for r in rows if r["sweep"] == "defaults")
    for row in rows:
        if row is not base and row["sweep"] not in ("oracle",):
            row["vs_defaults"] = paired_difference(row, base)
            logger.info(
                "%-70s vs defaults: FROC %+.3f (%+.3f..%+.3f) AUC %+.3f (%+.3f..%+.3f)"
                " Dice %+.3f (%+.3f..%+.3f)",
                row["name"],
                *row["vs_defaults"]["froc"],
                *row["vs_defaults"]["slide_auc"],
                *row["vs_defaults"]["dice"],
            )

    rows.append(oracle)
    if args.stride_slides:
        rows += stride_rows(
            evalset, runs, args.stride_slides, args.model, seconds, work
        )
    for sweep, metric in (
        ("detection", "froc"),
        ("slide", "slide_auc"),
        ("polygons", "dice"),
    ):
        candidates = [r for r in rows if r["sweep"] == sweep and r[metric] is not None]
        if candidates:
            best = max(candidates, key=lambda r: r[metric])
            logger.info(
                "best %s: %s (%s %.3f)", sweep, best["name"], metric, best[metric]
            )
    key = args.doc_key or f"{model_key}:{args.set}" + (
        ":defaults" if args.defaults_only else ""
    )
    for row in rows:
        row.pop("_slides", None)
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    stem = "bench_detection-" + key.replace(":", "-")
    (results / f"{stem}.json").write_text(
        json.dumps(
            {
                "model": args.model,
                "set": args.set,
                "n_slides": len(slides),
                "rows": rows,
            },
            indent=1,
        )
        + "\n"
    )
    md = (
        f"Model `{args.model}`, set `{args.set}` ({len(slides)} slides, "
        f"{rows[0]['n_lesions']} lesions in the FROC); "
        f"`benchmarks/bench_detection.py --evalset {args.evalset} --set {args.set} "
        f"--model {args.model}"
        f"{'' if args.tta == 'none' else ' --tta ' + args.tta}"
        f"{' --defaults-only' if args.defaults_only else ''}"
        f"{' --doc-key ' + args.doc_key if args.doc_key else ''}`.\n\n" + tables(rows)
    )
    (results / f"{stem}.md").write_text(md)
    if not args.no_doc:
        update_doc(md, key)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
