"""The figure of docs/STAGING.md: a patient's five nodes, their classes and the stage.

    python tools/make_staging_figure.py RUN patient_104 docs/img/staging_patient.png

RUN is a finished run folder (``wsi-heatmap ... --out RUN``); each node's tile is its
``overlay.png`` without the legend strip, captioned with its class and largest lesion.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from wsi.heatmap.overlay import _legend_font
from wsi.staging.stage_run import stage_run
from wsi.store.layout import SlideOutputs

TILE_PX = 300
CAPTION_PX = 44
TITLE_PX = 40


def main() -> None:
    run, patient_name, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    staged = stage_run(run)
    patient = next(p for p in staged.patients if p.patient == patient_name)
    font = _legend_font(16)
    big = _legend_font(20)
    width = len(patient.nodes) * (TILE_PX + 10) + 10
    canvas = Image.new("RGB", (width, TITLE_PX + TILE_PX + CAPTION_PX), "white")
    draw = ImageDraw.Draw(canvas)
    stage = "not staged" if patient.stage is None else patient.stage.value
    draw.text((10, 8), f"{patient.patient}: {stage}", fill="black", font=big)
    for i, (name, cls) in enumerate(patient.nodes):
        stem = Path(name).stem
        overlay = Image.open(SlideOutputs(run / stem).overlay_png).convert("RGB")
        node = staged.nodes[stem]
        # The overlay without its legend strip (which starts at the first all-white row).
        pixels = np.asarray(overlay)
        white_rows = np.flatnonzero((pixels == 255).all(axis=(1, 2)))
        height = int(white_rows[0]) if white_rows.size else overlay.height
        overlay = overlay.crop((0, 0, overlay.width, height))
        overlay.thumbnail((TILE_PX, TILE_PX))
        x = 10 + i * (TILE_PX + 10)
        canvas.paste(overlay, (x, TITLE_PX))
        size = (
            ""
            if node.largest_diameter_mm is None
            else f", {node.largest_diameter_mm:.2f} mm"
        )
        label = "-" if cls is None else cls.value
        draw.text(
            (x, TITLE_PX + TILE_PX + 6),
            f"node {stem.rsplit('_', 1)[-1]}: {label}{size}",
            fill="black",
            font=font,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.quantize(colors=256).save(out, optimize=True)
    print(f"wrote {out} ({canvas.width}x{canvas.height})")


if __name__ == "__main__":
    main()
