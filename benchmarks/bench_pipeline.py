"""Scoring throughput of the whole pipeline against the bare model, end to end.

Writes a Camelyon-like pyramidal TIFF tile by tile (0.243 um/px level 0, 512 px JPEG
tiles, downsamples 1, 4, 16, 64; two textured lymph-node sections covering about two
thirds of the slide: :class:`wsi.synthetic.SyntheticTissue`), then, each in a fresh
process:

- ``pipeline``: loads the bundled classifier as scoring does
  (``wsi.scoring.ClassifierSpec``, with ``WSI_SCORING_RUNTIME`` set to each of
  ``--runtimes``: ``keras`` or ``openvino``, the int8 model exported at first use
  into ``WSI_CACHE_DIR``) and calls it once on a batch of zeros (tracing,
  compilation), then :func:`wsi.pipeline.run` on the slide: ``tile_slide``,
  ``score_store`` (dask, chunk by chunk, scores written back into the zarr store),
  stitching and exports; stage seconds come from the slide's ``summary.json``, and
  each stage's CPU seconds (all threads) and the peak RSS after it are recorded;
- ``bare``: plain Keras fp32 (``load_classifier``), loaded and warmed up the same
  way, timed on uint8 batches of ``--batch-size`` patches already in memory (the
  first ``--bare-patches`` patches of the pipeline's store, read before the clock
  starts): the rate the scoring stage is compared with.

"x bare Keras" is the pipeline's scoring rate (patches / seconds of the scoring
stage) over the bare Keras rate, in wall time and in CPU seconds (on a shared
machine the second says what the code costs, the first what the process got). Peak
memory is the largest resident set of the process (all its threads;
``ru_maxrss``); a sample of the process tree every 50 ms is kept in the JSON. With
``--repeat N`` the runs alternate and the fastest of each kind is shown. Several
``--size`` values show how memory and time scale with the slide.

Full run (22,284 tissue patches; on 2 CPU cores about 2 minutes to write the 1 GB
slide, kept in ``--work`` for later runs, then under 2 minutes per repeat)::

    python benchmarks/bench_pipeline.py

Smoke test (a 622-patch slide; about a minute, mostly TensorFlow loading twice)::

    python benchmarks/bench_pipeline.py --quick --out /tmp/bench-pipeline
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from _report import markdown_table  # benchmarks/ is on sys.path when run

from model.registry import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MPP = 0.243
DOWNSAMPLES = (1, 4, 16, 64)
FULL_SIZE = (98_304, 49_152)  # about 22k tissue patches at stride 96
QUICK_SIZE = (16_384, 8_192)  # about 600
COLUMNS = (
    "model",
    "slide (level 0)",
    "tissue patches",
    "runtime",
    "batch",
    "scoring threads",
    "bare Keras fp32 patches/s",
    "pipeline scoring patches/s",
    "x bare Keras",
    "x bare Keras (CPU s)",
    "model load + warm-up s",
    "tiling s",
    "scoring s",
    "stitch + export s",
    "end-to-end s",
    "peak RSS MB (pipeline)",
    "peak RSS MB (bare model)",
)


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height or width)


def _slide(work: Path, size: tuple[int, int], seed: int) -> Path:
    """Generate the slide once; later runs reuse it."""
    from wsi.synthetic import SyntheticTissue, write_pyramid_tiff_tiles

    path = work / f"lymph-node-{size[0]}x{size[1]}-s{seed}.tif"
    if not path.exists():
        started = time.perf_counter()
        tissue = SyntheticTissue.lymph_node(size, mpp=MPP, seed=seed)
        partial = path.with_suffix(".partial.tif")
        write_pyramid_tiff_tiles(
            partial, tissue, size_px=size, mpp=MPP, downsamples=DOWNSAMPLES
        )
        partial.rename(path)
        print(
            f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in "
            f"{time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
    return path


class _TreeMemory:
    """Peak resident memory of this process plus its live descendants, sampled.

    ``ru_maxrss`` gives this process's exact peak, but not that of the process tree:
    ``RUSAGE_CHILDREN`` reports a forked child's resident set before it ``exec``s,
    i.e. a copy of this process's (``git``, run for the provenance record, would
    double the figure). So the tree is sampled every ``interval_s`` and the peak is
    the larger of the sampled sum and this process's ``ru_maxrss``.
    """

    def __init__(self, interval_s: float = 0.05) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.sampled_peak_mb = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = self._process.memory_info().rss
            for child in self._process.children(recursive=True):
                with contextlib.suppress(psutil.Error):  # it ended meanwhile
                    total += child.memory_info().rss
            self.sampled_peak_mb = max(self.sampled_peak_mb, total / 2**20)
            self._stop.wait(self._interval_s)

    def peak_so_far(self) -> float:
        """The peak up to now, MB (``ru_maxrss`` or the sampled tree)."""
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return round(max(own, self.sampled_peak_mb), 1)

    def result(self) -> dict[str, float]:
        """Stop sampling; the peaks in MB (``peak_mb`` is the one reported)."""
        self._stop.set()
        self._thread.join()
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # A child forked for a moment (git, for the provenance record) is sampled
        # with a copy of this process's pages: the tree figure is kept for
        # reference, the reported peak is this process's own (no worker processes
        # run here: dask uses threads).
        return {
            "peak_mb": own,
            "peak_self_maxrss_mb": own,
            "peak_tree_sampled_mb": self.sampled_peak_mb,
        }


def _classifier(
    batch_size: int, *, keras: bool = False, model: str | None = None, tta: str = "none"
) -> tuple[Any, float]:
    """The model (None: the default bundled one), loaded and called once; the seconds.

    ``keras``: plain Keras fp32; else as scoring loads it (``ClassifierSpec``: the
    runtime ``WSI_SCORING_RUNTIME`` asks for, OpenVINO when installed).
    """
    import numpy as np

    from model.predict import load_classifier
    from wsi.scoring import ClassifierSpec

    started = time.perf_counter()
    path = None if model is None else Path(model)
    classifier = (
        load_classifier(path, batch_size=batch_size)
        if keras
        else ClassifierSpec(
            model_path=path,
            batch_size=batch_size,
            tta=tta,  # type: ignore[arg-type]
        ).load()
    )
    classifier(np.zeros((batch_size, 96, 96, 3), np.uint8))
    return classifier, time.perf_counter() - started


def _child_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    import wsi.pipeline
    from wsi.pipeline import RunConfig, run
    from wsi.scoring import ScoringParams
    from wsi.store.layout import SlideOutputs
    from wsi.tiles.tiler import TilingParams

    memory = _TreeMemory()
    started = time.perf_counter()
    classifier, load_s = _classifier(args.batch_size, model=args.model, tta=args.tta)
    stage_cpu: dict[str, float] = {}
    stage_peak_mb: dict[str, float] = {"model": memory.peak_so_far()}

    def watched(name: str, stage: Any) -> Any:
        """``stage``, also timed in CPU seconds (all threads), peak RSS after it."""

        def run_stage(*a: Any, **kw: Any) -> Any:
            cpu = time.process_time()
            try:
                return stage(*a, **kw)
            finally:
                stage_cpu[name] = time.process_time() - cpu
                stage_peak_mb[name] = memory.peak_so_far()

        return run_stage

    for name, attr in (
        ("tile", "tile_slide"),
        ("score", "score_store"),
        ("stitch", "stitch_slide"),
        ("export", "export_slide"),
    ):
        setattr(wsi.pipeline, attr, watched(name, getattr(wsi.pipeline, attr)))
    config = RunConfig(
        slides=(Path(args.slide),),
        out_dir=Path(args.run_dir),
        tiling=TilingParams(
            chunk_patches=args.chunk_patches, patch_layout=args.patch_layout
        ),
        scoring=ScoringParams(batch_size=args.batch_size, workers=args.workers),
        overwrite=True,
    )
    report = run(config, classifier=classifier)
    total_s = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"pipeline failed: {report.failures}")
    outputs = SlideOutputs.for_slide(Path(args.run_dir), Path(args.slide))
    summary = json.loads(outputs.summary_json.read_text())
    timings = summary["timings_s"]
    return {
        "patches": int(summary["n_patches"]),
        "store": str(outputs.store),
        "load_s": load_s,
        "tile_s": timings["tile"],
        "score_s": timings["score"],
        "stitch_s": timings["stitch"],
        "export_s": timings["export"],
        "total_s": total_s,
        "runtime": str(getattr(classifier, "runtime", "keras")),
        "tta": args.tta,
        "score_cpu_s": stage_cpu.get("score"),
        "stage_cpu_s": stage_cpu,
        "peak_mb_after": stage_peak_mb,
        "imported_tensorflow": "tensorflow" in sys.modules,
    } | memory.result()


def _child_bare(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from wsi.store.slide_store import open_tile_store

    memory = _TreeMemory()
    classifier, load_s = _classifier(args.batch_size, keras=True, model=args.model)
    tiles = open_tile_store(Path(args.store))
    patches = np.ascontiguousarray(tiles.read_patches(0, args.bare_patches))
    batches = [
        patches[i : i + args.batch_size]
        for i in range(0, len(patches), args.batch_size)
    ]
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        classifier(batch)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "patches": len(patches),
        "seconds": seconds,
        "cpu_s": cpu,
        "load_s": load_s,
    } | memory.result()


def _run_child(
    kind: str, args: argparse.Namespace, runtime: str = "keras", **extra: str
) -> dict[str, Any]:
    argv = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--batch-size",
        str(args.batch_size),
        "--chunk-patches",
        str(args.chunk_patches),
        "--patch-layout",
        args.patch_layout,
        "--bare-patches",
        str(args.bare_patches),
    ]
    for key, value in extra.items():
        argv += [f"--{key.replace('_', '-')}", value]
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2", "WSI_SCORING_RUNTIME": runtime}
    out = subprocess.run(
        argv, check=False, capture_output=True, text=True, cwd=ROOT, env=env
    )
    if out.returncode:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"{kind} run failed (exit {out.returncode})")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _row(
    model: str,
    size: tuple[int, int],
    workers: int,
    batch: int,
    pipe: dict[str, Any],
    bare: dict[str, Any],
) -> dict[str, str]:
    bare_rate = bare["patches"] / bare["seconds"]
    pipe_rate = pipe["patches"] / pipe["score_s"]
    return {
        "model": model,  # NAME[:TTA]
        "slide (level 0)": f"{size[0]} x {size[1]}",
        "tissue patches": str(pipe["patches"]),
        "runtime": pipe["runtime"],
        "batch": str(batch),
        "scoring threads": str(workers),
        "bare Keras fp32 patches/s": f"{bare_rate:.0f}",
        "pipeline scoring patches/s": f"{pipe_rate:.0f}",
        "x bare Keras": f"{pipe_rate / bare_rate:.2f}",
        "x bare Keras (CPU s)": (
            f"{(bare['cpu_s'] / bare['patches']) / (pipe['score_cpu_s'] / pipe['patches']):.2f}"
            if pipe.get("score_cpu_s") and bare.get("cpu_s")
            else ""
        ),
        "model load + warm-up s": f"{pipe['load_s']:.1f}",
        "tiling s": f"{pipe['tile_s']:.1f}",
        "scoring s": f"{pipe['score_s']:.1f}",
        "stitch + export s": f"{pipe['stitch_s'] + pipe['export_s']:.1f}",
        "end-to-end s": f"{pipe['total_s']:.1f}",
        "peak RSS MB (pipeline)": f"{pipe['peak_mb']:.0f}",
        "peak RSS MB (bare model)": f"{bare['peak_mb']:.0f}",
    }


def _table(rows: list[dict[str, str]]) -> str:
    return markdown_table(rows, COLUMNS)


def _machine(note: str | None) -> dict[str, Any]:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for package in ("numpy", "dask", "zarr", "tifffile", "tensorflow", "keras"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpus": cpus,
        "cpu_model": model,
        "python": platform.python_version(),
        "versions": versions,
        "platform": platform.platform(),
        "load_average_1min": os.getloadavg()[0],
        "note": note,
    }


def _bench_slide(
    slide: Path,
    size: tuple[int, int],
    workers: int,
    args: argparse.Namespace,
    min_patches: int,
    runs: list[dict[str, Any]],
) -> list[dict[str, str]]:
    """Pipeline runs (one per model and runtime) and bare Keras runs, interleaved."""
    keys = [(m, r) for m in args.models for r in args.runtimes]
    pipes: dict[tuple[str, str], list[dict[str, Any]]] = {k: [] for k in keys}
    bares: dict[str, list[dict[str, Any]]] = {m: [] for m in args.models}
    run_dir = args.work / f"run-{slide.stem}"
    for _ in range(args.repeat):  # interleaved, so that load changes hit all
        for model, runtime in keys:
            name, _, tta = model.partition(":")
            pipe = _run_child(
                "pipeline",
                args,
                runtime,
                slide=str(slide),
                run_dir=str(run_dir),
                workers=str(workers),
                model=name,
                tta=tta or "none",
            )
            if pipe["patches"] < min_patches:
                raise SystemExit(
                    f"{slide} has {pipe['patches']} tissue patches, "
                    f"fewer than --min-patches {min_patches}"
                )
            print(
                f"pipeline ({model}, {runtime}, {workers} threads): {pipe}",
                file=sys.stderr,
            )
            pipes[(model, runtime)].append(pipe)
            bare = _run_child("bare", args, store=pipe["store"], model=name)
            print(f"bare Keras ({model}): {bare}", file=sys.stderr, flush=True)
            bares[model].append(bare)
    runs.append(
        {
            "slide": str(slide),
            "workers": workers,
            "pipeline": {f"{m}/{r}": v for (m, r), v in pipes.items()},
            "bare": bares,
        }
    )
    return [
        _row(
            model,
            size,
            workers,
            args.batch_size,
            min(found, key=lambda r: r["score_s"]),
            max(bares[model], key=lambda r: r["patches"] / r["seconds"]),
        )
        for (model, _runtime), found in pipes.items()
    ]


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; print the table and write JSON and Markdown to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a {QUICK_SIZE[0]}x{QUICK_SIZE[1]} slide (smoke test)",
    )
    parser.add_argument(
        "--size",
        type=_size,
        nargs="+",
        help=f"level-0 WIDTHxHEIGHT px, one or more (default {FULL_SIZE[0]}x"
        f"{FULL_SIZE[1]})",
    )
    parser.add_argument(
        "--runtimes",
        nargs="+",
        choices=("keras", "openvino", "auto"),
        default=["keras", "openvino"],
        help="scoring runtimes of the pipeline runs (WSI_SCORING_RUNTIME); one row each",
    )
    parser.add_argument(
        "--min-patches",
        type=int,
        help="fail when the slide has fewer tissue patches "
        "(default 20000; 0 with --quick)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=[DEFAULT_MODEL],
        help="bundled names or .keras files, each optionally :TTA (e.g. "
        "efficientnet-lite0:dihedral); one row each, runs interleaved",
    )
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--tta", default="none", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--chunk-patches",
        type=int,
        default=256,
        help="patches per zarr chunk (TilingParams.chunk_patches)",
    )
    parser.add_argument(
        "--patch-layout",
        choices=("auto", "patches", "source-jpeg"),
        default="auto",
        help="store layout (TilingParams.patch_layout)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[2],
        help="scoring threads (ScoringParams.workers); one row each",
    )
    parser.add_argument(
        "--bare-patches",
        type=int,
        default=4096,
        help="patches the bare model scores (the store's first ones)",
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/wsi-bench-pipeline"),
        help="generated slides and pipeline outputs",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results",
        help="folder for bench_pipeline[-quick].json and .md",
    )
    parser.add_argument(
        "--note", help="free text stored with the results (machine state, say)"
    )
    parser.add_argument("--child", choices=("pipeline", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--slide", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.workers = args.workers[0]
        result = (
            _child_pipeline(args) if args.child == "pipeline" else _child_bare(args)
        )
        print(json.dumps(result))
        return

    sizes = args.size or [QUICK_SIZE if args.quick else FULL_SIZE]
    min_patches = args.min_patches
    if min_patches is None:
        min_patches = 0 if args.quick or args.size else 20_000
    args.work.mkdir(parents=True, exist_ok=True)
    machine = _machine(args.note)
    rows: list[dict[str, str]] = []
    runs: list[dict[str, Any]] = []
    slides = []
    for size in sizes:
        slide = _slide(args.work, size, args.seed)
        slides.append(
            {"path": str(slide), "size_px": size, "bytes": slide.stat().st_size}
        )
        for workers in args.workers:
            rows += _bench_slide(slide, size, workers, args, min_patches, runs)
    table = _table(rows)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "bench_pipeline-quick" if args.quick else "bench_pipeline"
    record = {
        "command": shlex.join(["python", *sys.argv]),
        "slides": slides,
        "mpp": MPP,
        "downsamples": DOWNSAMPLES,
        "runtimes": args.runtimes,
        "batch_size": args.batch_size,
        "chunk_patches": args.chunk_patches,
        "patch_layout": args.patch_layout,
        "bare_patches": args.bare_patches,
        "repeat": args.repeat,
        "machine": machine | {"load_average_1min_end": os.getloadavg()[0]},
        "rows": rows,
        "runs": runs,
    }
    (args.out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(table + "\n")
    print(
        f"\nwrote {args.out / stem}.json and .md; {machine['cpus']} CPUs, load "
        f"average {os.getloadavg()[0]:.1f} at the end",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
