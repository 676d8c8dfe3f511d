"""Write the mean of saved patch classifiers as one model (``research/ensemble.py``).

    python research/scripts/build_ensemble.py A.keras B.keras --out runs/ensemble/best.keras

Then ship it like a training run's model: ``wsi-heatmap export-model runs/ensemble
--out model/weights/NAME.keras --float16 --check-data ../shared/data/pcam/valid``.
"""

from __future__ import annotations

import sys
from pathlib import Path as _Path

sys.path.insert(
    0,
    str(
        _Path(__file__)
        .resolve()
        .parents[1 if "scripts" in __file__ or "tests" in __file__ else 0]
    ),
)

import argparse
from pathlib import Path

from ensemble import build_ensemble  # research/ensemble.py

from model.registry import resolve_model_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("members", nargs="+", help="bundled names or .keras files")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    card = build_ensemble([resolve_model_path(m) for m in args.members], out=args.out)
    print(f"{args.out}: {card.architecture}, sha256 {card.weights_sha256[:12]}")


if __name__ == "__main__":
    main()
