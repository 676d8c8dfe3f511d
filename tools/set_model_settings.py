"""Write the post-processing settings tuned for a model into its card.

    python tools/set_model_settings.py MODEL SETTINGS.json

MODEL is a bundled name or a ``.keras`` file; SETTINGS.json maps ``polygons``,
``detection`` and ``slide_score`` to field values (the ``RunConfig`` sections),
e.g. ``{"detection": {"smooth_sigma_um": 0.0}}``. The values are checked by building
the settings before the card is written; the weights are not touched. Tune them on
development slides (``benchmarks/bench_detection.py --set tune``), never on the
held-out set.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from model.card import read_card, write_card
from model.registry import resolve_model_path
from wsi.pipeline import generic_sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("settings", type=Path)
    args = parser.parse_args()
    settings = json.loads(args.settings.read_text())
    generic_sections(**settings)  # raises on an unknown field or a bad value
    path = resolve_model_path(args.model)
    card = read_card(path)
    write_card(path, replace(card, settings=settings))
    print(f"{path.with_suffix('.json')}: settings {json.dumps(settings)}")


if __name__ == "__main__":
    main()
