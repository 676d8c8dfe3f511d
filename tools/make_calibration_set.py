"""Write the calibration patches of the int8 fast model (``model/calibration/``).

Picks ``--n`` PCam training patches (half of each class, a fixed seed) and stores
their JPEG files byte for byte in one ``.npz``: ``jpeg`` (all bytes, uint8),
``offsets`` (int64, ``n + 1``), ``labels`` (uint8) and ``names``. The fast-model
export (:mod:`model.export_fast`) calibrates on them and checks the exported model
against Keras on them; they are PCam training patches (CC0), never validation ones.
Run from the repository root::

    python tools/make_calibration_set.py ../shared/data/pcam/train
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "model" / "calibration" / "pcam-train.npz"


def main(argv: list[str] | None = None) -> None:
    """Sample the patches and write the ``.npz``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path, help="PCam class folders 0/ and 1/")
    parser.add_argument("--n", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    paths: list[Path] = []
    labels: list[int] = []
    for label in (0, 1):
        files = sorted((args.train / str(label)).glob("*.jpg"))
        paths += [files[i] for i in sorted(rng.choice(len(files), args.n // 2, False))]
        labels += [label] * (args.n // 2)
    order = rng.permutation(len(paths))  # classes mixed in every calibration batch
    blobs = [paths[i].read_bytes() for i in order]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        args.out,
        jpeg=np.frombuffer(b"".join(blobs), dtype=np.uint8),
        offsets=offsets,
        labels=np.asarray([labels[i] for i in order], dtype=np.uint8),
        names=np.asarray([paths[i].name for i in order]),
    )
    print(f"wrote {args.out}: {len(blobs)} patches, {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
