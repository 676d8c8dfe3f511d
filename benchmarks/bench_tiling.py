"""Tiling throughput and peak memory on generated Camelyon-like slides.

Writes Camelyon-like pyramidal TIFFs (0.243 um/px, 512 px JPEG tiles, Camelyon16's
pyramid of downsamples 1, 2, 4, ... 64; two textured lymph-node sections covering
about two thirds of the slide: :class:`wsi.synthetic.SyntheticTissue`) of the given
sizes (``WIDTHxHEIGHT`` level-0 px), then for each size and stride compares, each in a
fresh process:

- ``tile_slide``: :func:`wsi.tiles.tiler.tile_slide` (PCam's 0.972 um/px, 256 patches
  per chunk), storing decoded pixels uncompressed and with zstd level 1: tissue
  mask, band reads through dask, pixels written to the zarr store (at stride 96
  whole patches, ``--patch-layout patches``; at strides that divide 96, the cell
  layout that stores each pixel once; also, at those strides, the whole overlapping
  patches that stores wrote before the cell layout);
- at stride 96, ``tile_slide`` with the ``source-jpeg`` layout (the default there
  when the read level is JPEG tiles at exactly 0.972 um/px): the tissue mask, then
  the slide's own JPEG tiles under the patches copied as they are;
- ``wsi-heatmap tile``, the whole command (default layout; at stride 96 also
  ``--patch-layout patches``);
- ``read``: every patch read back as scoring reads it (``open_tile_store`` then
  ``TileStore.read_patches`` per chunk, one thread, a fresh process): a copy from
  a ``patches`` store, decoding and cutting from a ``source-jpeg`` one;
- ``loop``: the same patches (the store's ``coords``) read one by one with
  ``OpenSlide.read_region((x, y), level, (w, w))`` from the level the tiler reads
  (``w``: a patch's span there, 96 px where the level is at 0.972 um/px, as level 2
  of a Camelyon16 slide), nothing written;
- ``loop + write``: the same loop writing the patches into an uncompressed zarr
  array with the same chunks, i.e. ``tile_slide``'s output minus the mask.

Runs are interleaved and repeated; the table shows the fastest run of each (the
machine may be shared), its CPU time (all threads) and its peak resident memory.
Run from the repository root::

    python benchmarks/bench_tiling.py --sizes 20000x20000 100000x20000 \\
        --strides 96 32 --repeat 3 --work /tmp/wsi-bench --out table.md

Slides are generated once and kept in ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _report import markdown_table  # benchmarks/ is on sys.path when run

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Level 0 of a Camelyon16 slide, um/px, and its pyramid's downsamples.
MPP = 0.243
DOWNSAMPLES = (1, 2, 4, 8, 16, 32, 64)

COLUMNS = (
    "slide (level 0)",
    "stride",
    "method",
    "workers",
    "patches",
    "wall s",
    "CPU s",
    "patches/s",
    "MP/s",
    "peak RSS MB",
    "speed-up",
    "store MB",
)
METHODS = {
    "loop": "per-patch read_region loop (read only)",
    "loop-write": "per-patch loop + zarr write",
    "tile": "tile_slide stage, decoded pixels, codec none (the store's `seconds`)",
    "tile-zstd": "tile_slide stage, decoded pixels, codec zstd-1",
    "tile-patches": "tile_slide stage, whole overlapping patches, zstd-1 (before cells)",
    "tile-source-jpeg": "tile_slide stage, layout source-jpeg (the slide's JPEG tiles)",
    "command": "`wsi-heatmap tile` whole command (default layout; start-up, imports)",
    "command-patches": "`wsi-heatmap tile --patch-layout patches` whole command",
    "decode": "JPEG-decode bound: the tiles under the patches, decoded once",
    "read": "patch read (read_patches per chunk, 1 thread), decoded-pixel store",
    "read-source-jpeg": "patch read (read_patches per chunk, 1 thread), source-jpeg "
    "store: decode + cut",
}
#: Stores read back after a tiling run, and how.
READS = {"tile": "read", "tile-source-jpeg": "read-source-jpeg"}


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height or width)


def _slide(work: Path, size: tuple[int, int]) -> Path:
    """Generate the slide once; later runs reuse it."""
    from wsi.synthetic import SyntheticTissue, write_pyramid_tiff_tiles

    path = work / f"camelyon-like-{size[0]}x{size[1]}.tif"
    if not path.exists():
        started = time.perf_counter()
        tissue = SyntheticTissue.lymph_node(size, mpp=MPP, seed=0)
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


def _slide_size(path: Path) -> tuple[int, int]:
    import openslide

    with openslide.OpenSlide(str(path)) as slide:
        width, height = slide.dimensions
    return int(width), int(height)


def _usage() -> dict[str, float]:
    """CPU seconds and peak resident MB of this process.

    The peak is Linux's ``VmHWM``: ``ru_maxrss`` survives ``exec``, so a child would
    report the parent's peak (e.g. after it generated a slide) when that is larger.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_kb = float(usage.ru_maxrss)
    try:
        status = Path("/proc/self/status").read_text()
        peak_kb = float(
            next(ln for ln in status.splitlines() if ln.startswith("VmHWM")).split()[1]
        )
    except (OSError, StopIteration):
        pass
    return {"cpu": usage.ru_utime + usage.ru_stime, "peak_mb": peak_kb / 1024}


def _child_tile(
    args: argparse.Namespace, *, codec: str, layout: str = "auto"
) -> dict[str, Any]:
    """Tile the slide into ``args.store``; ``seconds`` is what the store records."""
    import dask.threaded  # noqa: F401 - imported by tile_slide on first use; not timed
    import zarr

    from wsi.tiles.tiler import TilingParams, tile_slide
    from wsi.tiles.tissue import TissueParams

    store = Path(args.store)
    shutil.rmtree(store, ignore_errors=True)
    before = _usage()
    result = tile_slide(
        Path(args.slide),
        store,
        tiling=TilingParams(
            workers=args.workers,
            stride_px=args.stride,
            patch_codec=codec,  # type: ignore[arg-type]
            patch_layout=layout,  # type: ignore[arg-type]
        ),
        tissue=TissueParams(),
    )
    after = _usage()
    recorded = zarr.open_group(store, mode="r").attrs["tiling"]["seconds"]
    return {
        "patches": result.n_patches,
        "seconds": float(recorded),
        "cpu": after["cpu"] - before["cpu"],
        "peak_mb": after["peak_mb"],
        "store_mb": sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        / 1e6,
    }


def _layout(method: str, stride: int) -> str:
    """The ``--patch-layout`` of a tiling method at ``stride``.

    ``tile`` and ``tile-zstd`` store decoded pixels: whole patches at stride 96
    (where ``auto`` would keep the JPEG tiles), cells below where they apply.
    """
    if method in ("tile-patches", "command-patches"):
        return "patches"
    if method == "tile-source-jpeg":
        return "source-jpeg"
    if method == "command":
        return "auto"
    return "patches" if stride >= 96 else "auto"


def _store_for(store: Path, method: str) -> Path:
    """Where ``method`` writes (or reads) its store: source-JPEG stores apart."""
    if "source-jpeg" in method:
        return store.with_name(f"{store.stem}-source-jpeg.zarr")
    return store


def _child_read(args: argparse.Namespace) -> dict[str, Any]:
    """Read every patch back, chunk by chunk, as scoring does (one thread)."""
    from wsi.store.slide_store import open_tile_store

    store = Path(args.store)
    tiles = open_tile_store(store)
    n, chunk = tiles.n_patches, tiles.chunk_patches
    before, started = _usage(), time.perf_counter()
    read = 0
    for start in range(0, n, chunk):
        read += len(open_tile_store(store).read_patches(start, start + chunk))
    seconds, after = time.perf_counter() - started, _usage()
    return {
        "patches": read,
        "seconds": seconds,
        "cpu": after["cpu"] - before["cpu"],
        "peak_mb": after["peak_mb"],
    }


def _child_command(args: argparse.Namespace, *, layout: str) -> dict[str, Any]:
    """``wsi-heatmap tile SLIDE --out DIR`` in a fresh interpreter, wall time."""
    import zarr

    out = Path(args.store).with_suffix(".cmd")
    shutil.rmtree(out, ignore_errors=True)
    exe = Path(sys.executable).with_name("wsi-heatmap")
    argv = [
        str(exe),
        "tile",
        args.slide,
        "--out",
        str(out),
        "--stride",
        str(args.stride),
        "--patch-layout",
        layout,
    ]
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    stores = list(out.glob("*/*.zarr"))
    n = int(zarr.open_group(stores[0], mode="r").attrs["tiling"]["n_patches"])
    store_mb = sum(f.stat().st_size for f in stores[0].rglob("*") if f.is_file()) / 1e6
    shutil.rmtree(out, ignore_errors=True)
    return {
        "patches": n,
        "seconds": seconds,
        "cpu": child.ru_utime + child.ru_stime,
        "peak_mb": child.ru_maxrss / 1024,
        "store_mb": store_mb,
    }


def _child_decode(args: argparse.Namespace) -> dict[str, Any]:
    """Decode, once each, the read level's tiles that the store's patches touch.

    One thread; the bound for ``w`` workers is ``seconds / w``.
    """
    import numpy as np
    import openslide
    import tifffile
    import zarr

    group = zarr.open_group(args.store, mode="r")
    read = group.attrs["tiling"]["read"]
    level, level_ds = int(read["level"]), float(read["level_downsample"])
    span = 96 * float(read["downsample"]) / level_ds  # patch size in level px
    coords = np.asarray(group["coords"][:], dtype=np.float64) / level_ds
    width, height = openslide.OpenSlide(args.slide).level_dimensions[level]
    with tifffile.TiffFile(args.slide) as tif:
        page = next(p for p in tif.pages if tuple(p.shape[:2]) == (height, width))
        tw, th = page.tilewidth, page.tilelength
        across = -(-width // tw)
        tiles: set[int] = set()
        for x, y in coords.tolist():
            for ty in range(int(y) // th, int(min(y + span, height) - 1) // th + 1):
                for tx in range(int(x) // tw, int(min(x + span, width) - 1) // tw + 1):
                    tiles.add(ty * across + tx)
        fh = tif.filehandle
        blobs = []
        for index in sorted(tiles):
            fh.seek(page.dataoffsets[index])
            blobs.append((index, fh.read(page.databytecounts[index])))
        before, started = _usage(), time.perf_counter()
        for index, data in blobs:
            page.decode(data, index, jpegtables=page.jpegtables)
        seconds, after = time.perf_counter() - started, _usage()
    return {
        "patches": len(coords),
        "seconds": seconds,
        "cpu": after["cpu"] - before["cpu"],
        "peak_mb": after["peak_mb"],
        "tiles": len(tiles),
        "megapixels": len(tiles) * tw * th / 1e6,
    }


def _child_loop(args: argparse.Namespace, *, write: bool) -> dict[str, Any]:
    """Read the store's patches one ``read_region`` at a time (and write them)."""
    import numpy as np
    import openslide
    import zarr

    group = zarr.open_group(args.store, mode="r")
    read = group.attrs["tiling"]["read"]
    level = int(read["level"])
    span = round(96 * float(read["downsample"]) / float(read["level_downsample"]))
    coords = np.asarray(group["coords"][:])
    out = Path(args.store).with_suffix(".loop.zarr")
    shutil.rmtree(out, ignore_errors=True)
    chunk = 256
    patches = zarr.create_array(
        out,
        shape=(len(coords), span, span, 3),
        chunks=(chunk, span, span, 3),
        dtype="uint8",
        compressors=None,
        fill_value=0,
        config={"write_empty_chunks": True},
    )  # as tile_slide's default store at stride 96
    before, started = _usage(), time.perf_counter()
    slide = openslide.OpenSlide(args.slide)
    buffer = np.empty((chunk, span, span, 3), np.uint8)
    for i, (x, y) in enumerate(coords.tolist()):
        region = slide.read_region((x, y), level, (span, span))
        buffer[i % chunk] = np.asarray(region)[..., :3]
        if write and (i % chunk == chunk - 1 or i == len(coords) - 1):
            start = i - i % chunk
            patches[start : i + 1] = buffer[: i + 1 - start]
    seconds, after = time.perf_counter() - started, _usage()
    shutil.rmtree(out, ignore_errors=True)
    return {
        "patches": len(coords),
        "seconds": seconds,
        "cpu": after["cpu"] - before["cpu"],
        "peak_mb": after["peak_mb"],
        "level": level,
    }


def _tile_methods(stride: int) -> tuple[str, ...]:
    """The tiler's runs: at overlapping strides, also the whole-patch layout; at
    stride 96, also the source-JPEG layout."""
    if stride < 96:
        return ("tile", "tile-zstd", "tile-patches", "command")
    return ("tile", "tile-zstd", "tile-source-jpeg", "command", "command-patches")


def _run_child(
    method: str, slide: Path, store: Path, *, workers: int, stride: int
) -> dict[str, Any]:
    argv = [
        sys.executable,
        __file__,
        "--child",
        method,
        "--slide",
        str(slide),
        "--store",
        str(store),
        "--workers",
        str(workers),
        "--stride",
        str(stride),
    ]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, cwd=ROOT)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _row(
    size: tuple[int, int],
    stride: int,
    method: str,
    workers: int,
    run: dict[str, Any],
    base_rate: float,
) -> dict[str, str]:
    rate = run["patches"] / run["seconds"]
    return {
        "slide (level 0)": f"{size[0] // 1000}k x {size[1] // 1000}k",
        "stride": str(stride),
        "method": METHODS[method],
        "workers": str(workers),
        "patches": str(run["patches"]),
        "wall s": f"{run['seconds']:.2f}",
        "CPU s": f"{run['cpu']:.2f}",
        "patches/s": f"{rate:.0f}",
        "MP/s": f"{rate * 96 * 96 / 1e6:.1f}",
        "peak RSS MB": f"{run['peak_mb']:.0f}",
        "speed-up": f"{rate / base_rate:.2f}x",
        "store MB": f"{run['store_mb']:.0f}" if "store_mb" in run else "",
    }


def _table(rows: list[dict[str, str]]) -> str:
    return markdown_table(rows, COLUMNS)


def _bench(
    slide: Path, size: tuple[int, int], stride: int, args: argparse.Namespace
) -> list[dict[str, str]]:
    store = args.work / f"{slide.stem}-{stride}.zarr"
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for _ in range(args.repeat):  # interleaved, so that load changes hit every method
        for workers in args.workers:
            for method in _tile_methods(stride):
                runs.setdefault((method, workers), []).append(
                    _run_child(
                        method,
                        slide,
                        _store_for(store, method),
                        workers=workers,
                        stride=stride,
                    )
                )
                if method in READS and workers == args.workers[0]:
                    read = READS[method]
                    runs.setdefault((read, 1), []).append(
                        _run_child(
                            read,
                            slide,
                            _store_for(store, method),
                            workers=1,
                            stride=stride,
                        )
                    )
        for method in ("loop", "loop-write", "decode"):
            runs.setdefault((method, 1), []).append(
                _run_child(method, slide, store, workers=1, stride=stride)
            )
    _save_runs(args, slide, stride, runs)
    best = {key: min(found, key=lambda r: r["seconds"]) for key, found in runs.items()}
    base = best[("loop", 1)]["patches"] / best[("loop", 1)]["seconds"]
    for method in {*_tile_methods(stride), *READS.values()}:
        shutil.rmtree(_store_for(store, method), ignore_errors=True)
    reads = [(READS[m], 1) for m in _tile_methods(stride) if m in READS]
    order = [("loop", 1), ("loop-write", 1), ("decode", 1)] + [
        (m, w) for w in args.workers for m in _tile_methods(stride)
    ]
    return [_row(size, stride, m, w, best[(m, w)], base) for m, w in order + reads]


def _save_runs(
    args: argparse.Namespace,
    slide: Path,
    stride: int,
    runs: dict[tuple[str, int], list[dict[str, Any]]],
) -> None:
    """Every run (not only the fastest) as JSON beside ``--out``, when given."""
    if not args.out:
        return
    path = args.out.with_name(f"{args.out.stem}-{slide.stem}-{stride}.runs.json")
    path.write_text(
        json.dumps(
            [
                {"method": m, "workers": w, "runs": found}
                for (m, w), found in runs.items()
            ],
            indent=1,
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    """Benchmark every size and stride; print the table and optionally save it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=_size, nargs="+", default=[(20_000, 20_000), (100_000, 20_000)]
    )
    parser.add_argument("--strides", type=int, nargs="+", default=[96, 32])
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/wsi-bench"))
    parser.add_argument(
        "--slides",
        type=Path,
        nargs="+",
        help="benchmark these slides instead of generating --sizes",
    )
    parser.add_argument("--out", type=Path, help="Also write the table here.")
    parser.add_argument("--child", choices=sorted(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--slide", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--stride", type=int, default=96, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.workers = args.workers[0]
        if args.child.startswith("tile"):
            result = _child_tile(
                args,
                codec="zstd" if args.child in ("tile-zstd", "tile-patches") else "none",
                layout=_layout(args.child, args.stride),
            )
        elif args.child.startswith("command"):
            result = _child_command(args, layout=_layout(args.child, args.stride))
        elif args.child == "decode":
            result = _child_decode(args)
        elif args.child.startswith("read"):
            result = _child_read(args)
        else:
            result = _child_loop(args, write=args.child == "loop-write")
        print(json.dumps(result))
        return

    args.work.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    todo = (
        [(p, _slide_size(p)) for p in args.slides]
        if args.slides
        else [(_slide(args.work, size), size) for size in args.sizes]
    )
    for slide, size in todo:
        for stride in args.strides:
            new = _bench(slide, size, stride, args)
            print(_table(new), file=sys.stderr, flush=True)
            rows += new
    table = _table(rows)
    print(table)
    print(f"\n{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the end")
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
