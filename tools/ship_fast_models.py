"""Export the OpenVINO int8 model of every bundled ``.keras`` model into
``model/weights/fast-models/<sha256>-openvino/`` so that a new install scores at full
speed from its first slide (otherwise each model is exported once, at first use, into
the cache). The export is the one scoring does (``model.export_fast``: NNCF calibration
on the shipped PCam patches, checked against Keras); loading checks these files'
sha256 and probe outputs like cached ones. Stale folders (of models no longer shipped)
are removed.

    python tools/ship_fast_models.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from model.card import read_card
from model.fast_runtime import shipped_fast_model_dir
from model.registry import BUNDLED_MODELS, WEIGHTS_DIR


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    keep = set()
    for name, file in BUNDLED_MODELS.items():
        keras = WEIGHTS_DIR / file
        target = shipped_fast_model_dir(read_card(keras).weights_sha256)
        keep.add(target.name)
        if (target / "fast.json").is_file():
            print(f"{name}: {target} is there")
            continue
        argv = [
            sys.executable,
            "-m",
            "model.export_fast",
            # Relative to the repository, so the sidecar does not name this machine.
            keras.resolve().relative_to(root).as_posix(),
            "--out",
            str(target),
        ]
        subprocess.run(argv, check=True, cwd=root)
        print(f"{name}: exported to {target}")
    for old in (WEIGHTS_DIR / "fast-models").glob("*-openvino"):
        if old.name not in keep:
            shutil.rmtree(old)
            print(f"removed {old}")


if __name__ == "__main__":
    main()
