"""Patches per second of the bundled classifier on a GPU (or on the CPU, said so).

One command, no slide needed::

    python benchmarks/bench_gpu.py                      # real PCam pixels, in memory
    python benchmarks/bench_gpu.py --store OUT/S/S.zarr # a tile store's patches

Keras runs the model on the first GPU TensorFlow sees, in large batches
(``--batch-size``, 1024 by default on a GPU), fed by a ``tf.data`` pipeline that reads
and decodes the next batches on host threads and copies them to the device while the
current batch runs (``prefetch_to_device``), so decoding and host-to-device copies
overlap with inference. ``--precision mixed_float16`` runs the convolutions in half
precision (Tensor Cores); the outputs are checked against float32 on the first batch.
The patches are the shipped calibration patches (real PCam training pixels, tiled
up to ``--patches``) or, with ``--store``, the ``patches`` array of a tile store,
read chunk by chunk in the pipeline's threads. Without a GPU the same code runs on
the CPU with a smaller default batch, and the report says ``device: CPU``.
Several GPUs: run one dask worker per GPU (``CUDA_VISIBLE_DEVICES``) and
``wsi-heatmap --scheduler``; this script measures one device.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _source(args: argparse.Namespace) -> tuple[Any, int, str]:
    """A ``tf.data.Dataset`` of uint8 batches, its patch count and a description."""
    import tensorflow as tf

    if args.store:
        from wsi.store.slide_store import open_tile_store

        tiles = open_tile_store(Path(args.store))
        n = min(args.patches, tiles.n_patches) if args.patches else tiles.n_patches
        chunk = tiles.chunk_patches
        group = tiles.open()

        def chunks() -> Any:  # whatever the store's layout (patches or cells)
            for start in range(0, n, chunk):
                yield tiles.read_patches(start, min(start + chunk, n), group=group)

        spec = tf.TensorSpec([None, 96, 96, 3], tf.uint8)
        data = tf.data.Dataset.from_generator(chunks, output_signature=spec).unbatch()
        return data.batch(args.batch_size), n, f"tile store {args.store}"
    from model.export_fast import read_calibration

    base = read_calibration()
    reps = -(-args.patches // len(base))
    pixels = np.concatenate([base] * reps)[: args.patches]
    data = tf.data.Dataset.from_tensor_slices(pixels).batch(args.batch_size)
    return data, len(pixels), "real PCam patches in memory"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print one JSON line and a sentence."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--patches", type=int, default=0, help="default 32768 GPU, 2048 CPU"
    )
    parser.add_argument(
        "--batch-size", type=int, default=0, help="default 1024 GPU, 256 CPU"
    )
    parser.add_argument(
        "--precision", choices=("float32", "mixed_float16"), default="float32"
    )
    parser.add_argument("--store", type=Path, help="score this tile store's patches")
    parser.add_argument("--model", type=Path, help="a .keras file (default: bundled)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from model.predict import load_classifier

    gpus = tf.config.list_logical_devices("GPU")
    device = gpus[0].name if gpus else "/CPU:0"
    args.batch_size = args.batch_size or (1024 if gpus else 256)
    args.patches = args.patches or (32768 if gpus else 2048)
    reference = load_classifier(args.model)
    if args.precision != "float32":
        keras.mixed_precision.set_global_policy(args.precision)
    model = keras.saving.load_model(reference.path, compile=False, safe_mode=True)

    @tf.function(reduce_retracing=True)
    def forward(images: Any) -> Any:
        return tf.reshape(tf.cast(model(tf.cast(images, tf.float32)), tf.float32), [-1])

    data, n, what = _source(args)
    if gpus:
        data = data.apply(tf.data.experimental.prefetch_to_device(device, 2))
    else:
        data = data.prefetch(2)
    with tf.device(device):
        first = next(iter(data))
        started = time.perf_counter()
        probs = np.asarray(forward(first))
        warm_s = time.perf_counter() - started
        diff = float(np.abs(probs - reference(np.asarray(first))).max())
        done, started = 0, time.perf_counter()
        for batch in data:
            out = forward(batch)
            done += int(batch.shape[0])
        np.asarray(out)  # wait for the device
        seconds = time.perf_counter() - started
    result = {
        "device": "GPU " + device if gpus else "CPU (no GPU visible: not a GPU figure)",
        "gpu_names": [g.name for g in tf.config.list_physical_devices("GPU")],
        "patches": done,
        "source": what,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "patches_per_s": round(done / seconds, 1),
        "seconds": round(seconds, 2),
        "first_batch_s": round(warm_s, 2),
        "max_abs_diff_vs_float32_keras": round(diff, 5),
        "tensorflow": tf.__version__,
        "cpus": len(os.sched_getaffinity(0)),
    }
    print(json.dumps(result))
    print(
        f"{result['device']}: {result['patches_per_s']:.0f} patches/s "
        f"({done} of {n} patches, batch {args.batch_size}, {args.precision})",
        file=sys.stderr,
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
