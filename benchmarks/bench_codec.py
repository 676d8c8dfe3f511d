"""Patch codecs on real PCam pixels: size against encode/decode time (one core).

Reads ``--n`` real PCam validation patches (JPEG files, decoded once), groups them
in chunks of 256 like the store, and for each codec measures, fastest of
``--repeat``, on one thread:

- the zarr codecs the store can use (``none``, ``zstd-1`` = the old default,
  ``blosc-lz4``): writing the chunks to a zarr v3 array on disk and reading them
  back (encode + write, read + decode);
- image codecs through imagecodecs, patch by patch in memory: lossless JPEG-XL
  (effort 1), lossless JPEG 2000, lossless WebP, and lossy JPEG at quality 95 and
  90 (libjpeg-turbo).

It reports the compression ratio, MB/s, and what that means for a slide of
100,000 patches (a large Camelyon16 slide at stride 96): GB on disk and seconds of
one core to encode and to decode. With ``--auc``, the lossy codecs' cost in
validation AUC: the Keras fp32 model scores all the patches as read and after a
JPEG round trip. Run from the repository root::

    python benchmarks/bench_codec.py --pcam ../shared/data/pcam/valid --auc
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from _report import markdown_table  # benchmarks/ is on sys.path when run

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHUNK = 256
SLIDE_PATCHES = 100_000
PATCH_BYTES = 96 * 96 * 3
COLUMNS = (
    "codec",
    "lossless",
    "ratio",
    "encode MB/s",
    "decode MB/s",
    "GB / 100k patches",
    "encode s / 100k",
    "decode s / 100k",
    "valid AUC (Keras)",
)

Patches = npt.NDArray[np.uint8]


def _read(pcam: Path, n: int) -> tuple[Patches, npt.NDArray[np.uint8]]:
    from PIL import Image

    files = [
        (p, label)
        for label in (0, 1)
        for p in sorted((pcam / str(label)).glob("*.jpg"))
    ]
    rng = np.random.default_rng(0)
    pick = sorted(rng.choice(len(files), min(n, len(files)), replace=False))
    images, labels = [], []
    for i in pick:
        with Image.open(files[i][0]) as image:
            images.append(np.asarray(image.convert("RGB")))
        labels.append(files[i][1])
    return np.stack(images), np.asarray(labels, np.uint8)


def _zarr_codec(name: str) -> Any:
    from zarr.codecs import BloscCodec, ZstdCodec

    return {
        "none": None,
        "zstd-1": ZstdCodec(level=1),
        "blosc-lz4": BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
    }[name]


def _bench_zarr(name: str, patches: Patches, repeat: int) -> dict[str, float]:
    import zarr

    best_w = best_r = float("inf")
    size = 0
    for _ in range(repeat):
        folder = Path(tempfile.mkdtemp(prefix="bench-codec-"))
        try:
            array = zarr.create_array(
                folder / "p.zarr",
                shape=patches.shape,
                chunks=(CHUNK, 96, 96, 3),
                dtype="uint8",
                compressors=_zarr_codec(name),
                fill_value=0,
                config={"write_empty_chunks": True},
            )
            t = time.perf_counter()
            for s in range(0, len(patches), CHUNK):
                array[s : s + CHUNK] = patches[s : s + CHUNK]
            best_w = min(best_w, time.perf_counter() - t)
            size = sum(
                f.stat().st_size
                for f in (folder / "p.zarr").rglob("c/**/*")
                if f.is_file()
            )
            t = time.perf_counter()
            for s in range(0, len(patches), CHUNK):
                np.asarray(array[s : s + CHUNK])
            best_r = min(best_r, time.perf_counter() - t)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return {"encode_s": best_w, "decode_s": best_r, "bytes": float(size)}


def _image_codecs() -> dict[
    str, tuple[Callable[[Patches], bytes], Callable[[bytes], Patches], bool]
]:
    import imagecodecs as ic

    return {
        "jpegxl-lossless": (
            lambda p: ic.jpegxl_encode(p, lossless=True, effort=1),
            ic.jpegxl_decode,
            True,
        ),
        "jpeg2k-lossless": (
            lambda p: ic.jpeg2k_encode(p, level=0, reversible=True),
            ic.jpeg2k_decode,
            True,
        ),
        "webp-lossless": (
            lambda p: ic.webp_encode(p, lossless=True, method=0),
            ic.webp_decode,
            True,
        ),
        "jpeg-95": (lambda p: ic.jpeg8_encode(p, level=95), ic.jpeg8_decode, False),
        "jpeg-90": (lambda p: ic.jpeg8_encode(p, level=90), ic.jpeg8_decode, False),
    }


def _bench_image(
    name: str, patches: Patches, repeat: int
) -> tuple[dict[str, float], Patches]:
    encode, decode, lossless = _image_codecs()[name]
    best_e = best_d = float("inf")
    blobs: list[bytes] = []
    out = np.empty_like(patches)
    for _ in range(repeat):
        t = time.perf_counter()
        blobs = [encode(p) for p in patches]
        best_e = min(best_e, time.perf_counter() - t)
        t = time.perf_counter()
        for i, blob in enumerate(blobs):
            out[i] = decode(blob)
        best_d = min(best_d, time.perf_counter() - t)
    if lossless and not np.array_equal(out, patches):
        raise RuntimeError(f"{name} is not lossless here")
    size = float(sum(len(b) for b in blobs))
    return {"encode_s": best_e, "decode_s": best_d, "bytes": size}, out


def _auc(scores: npt.NDArray[np.float32], labels: npt.NDArray[np.uint8]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def main(argv: list[str] | None = None) -> None:
    """Measure every codec; print the table (and ``--json``)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pcam", type=Path, default=ROOT.parent / "shared/data/pcam/valid"
    )
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--auc", action="store_true", help="score lossy round trips")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    patches, labels = _read(args.pcam, args.n)
    raw = float(patches.nbytes)
    rows: list[dict[str, str]] = []
    results: dict[str, Any] = {}
    decoded: dict[str, Patches] = {}
    for name in ("none", "zstd-1", "blosc-lz4", *_image_codecs()):
        if name in ("none", "zstd-1", "blosc-lz4"):
            found, lossless = _bench_zarr(name, patches, args.repeat), True
        else:
            found, decoded[name] = _bench_image(name, patches, args.repeat)
            lossless = _image_codecs()[name][2]
        per_slide = SLIDE_PATCHES / len(patches)
        results[name] = found | {"lossless": lossless}
        rows.append(
            {
                "codec": name,
                "lossless": "yes" if lossless else "no",
                "ratio": f"{raw / found['bytes']:.2f}",
                "encode MB/s": f"{raw / 1e6 / found['encode_s']:.0f}",
                "decode MB/s": f"{raw / 1e6 / found['decode_s']:.0f}",
                "GB / 100k patches": f"{found['bytes'] * per_slide / 1e9:.2f}",
                "encode s / 100k": f"{found['encode_s'] * per_slide:.1f}",
                "decode s / 100k": f"{found['decode_s'] * per_slide:.1f}",
                "valid AUC (Keras)": "",
            }
        )
        print(rows[-1], file=sys.stderr, flush=True)
    if args.auc:
        from model.predict import load_classifier

        classifier = load_classifier(None, batch_size=256)
        base = _auc(classifier(patches), labels)
        results["auc"] = {"as read": base}
        for row in rows:
            name = row["codec"]
            auc = (
                _auc(classifier(decoded[name]), labels)
                if name.startswith("jpeg-")
                else base
            )
            results["auc"][name] = auc
            row["valid AUC (Keras)"] = f"{auc:.4f} ({auc - base:+.4f})"
    table = markdown_table(rows, COLUMNS)
    print(table)
    print(
        f"\n{len(patches)} PCam valid patches; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
