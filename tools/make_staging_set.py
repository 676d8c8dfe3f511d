"""Build Camelyon17-style development patients for lesion sizing and pN staging.

Run from the repository root (it reads the shared data folder; nothing in ``wsi/``
does)::

    nice -n 5 .venv/bin/python tools/make_staging_set.py --data ../shared/data \
        --out /work/stagingset [--patients-per-stage 2]

It writes two sets of patients, five lymph nodes (slides) each:

``OUT/tune/``  ``--patients-per-stage`` patients per pN stage (seed ``--seed``,
lesions from Tumor_001-Tumor_009), to choose the staging settings on;
``OUT/heldout/``  one patient per stage (seed ``--seed + 1``, lesions from
Tumor_010-Tumor_019), to report on once they are chosen.

and in each set:

``slides/patient_P_node_N.tif``
    Pyramidal TIFFs like `make_eval_slides`'s (level 0 at 0.243 um/px; the pixels
    are PCam ``test-dev/`` patches, ``valid/`` with ``--patches valid``; the two
    sets draw from different halves).
``annotations/patient_P_node_N.xml``
    ASAP XML of the nodes with lesions (level-0 px).
``stage_labels.csv``
    The reference in Camelyon17's layout: ``patient,stage``, then per patient
    ``patient_P.zip,<pN stage>`` and its nodes ``patient_P_node_N.tif,<class>``
    (``negative|itc|micro|macro``).
``lesions.csv``
    Every placed lesion: node, source outline, longest diameter (um), area, tumour
    cells.

Notes
-----
1. Node classes by the longest diameter of the largest lesion (the largest distance
   between two of its points, `wsi.regions.lesion_size.max_diameter_um`): macro > 2 mm,
   micro > 0.2 mm, ITC <= 0.2 mm (Camelyon17). Each stage's patient has a fixed
   mix of node classes (`PATIENTS`), shuffled over node numbers 0-4; ITC, micro and
   macro nodes carry their lesion plus 0-2 isolated tumour cells beside it.
2. Lesions are real Camelyon16 outlines at real size (the NCRF JSON polygons with
   their holes, turned by 90-degree steps, maybe mirrored); macro-metastases up to
   the largest outline of the set's sources (tune: 2.1, 6.4, 8.0 mm; held-out
   2.4-5.0 mm). A node's tissue grows with its largest lesion (at least the
   development slides' 3.2 x 3.9 mm, else the lesion plus 1.5 mm each way), or is
   ``--min-node-mm`` wide: a real node's size, where false lesions show (a 14 mm
   node holds about 13,000 patches).
3. A lesion whose outline covers no cell's centre 32 x 32 square has no tumour
   pixels in a mosaic of PCam patches (the label rule); such a placement is drawn
   again, so that every node's class is visible in its pixels.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from shapely.ops import unary_union

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_demo_slide import node_outline
from make_eval_slides import (
    HELDOUT_SOURCES,
    L0_MPP,
    TUNE_SOURCES,
    Lesion,
    Placed,
    build_mosaic,
    label_cells,
    load_lesions,
    place_lesions,
    set_arguments,
    split_halves,
    usable_patches,
    write_slide,
    write_truth_xml,
)

from wsi.geometry import PATCH_PX, PCAM_MPP
from wsi.regions.lesion_class import size_class
from wsi.regions.lesion_size import max_diameter_um

logger = logging.getLogger("make_staging_set")

NODES_PER_PATIENT = 5
#: Each stage's patient: the classes of its five nodes (shuffled over the numbers).
PATIENTS: dict[str, tuple[str, ...]] = {
    "pN0": ("negative",) * 5,
    "pN0(i+)": ("itc", "itc", "negative", "negative", "negative"),
    "pN1mi": ("micro", "itc", "negative", "negative", "negative"),
    "pN1": ("macro", "micro", "itc", "negative", "negative"),
    "pN2": ("macro", "micro", "micro", "micro", "negative"),
}
#: Smallest ITC outline used, mm (smaller ones rarely reach a cell's centre square).
ITC_MIN_MM = 0.05
MIN_ROWS, MIN_COLS = 34, 42
MARGIN_MM = 1.5
PLACEMENT_TRIES = 20


def diameter_mm(lesion: Lesion) -> float:
    """Longest diameter of an outline, mm."""
    return max_diameter_um(lesion.polygon, mpp=L0_MPP) / 1000


def build_node(
    out: Path,
    stem: str,
    *,
    node_class: str,
    pools: dict[str, list[Lesion]],
    patches: dict[int, Sequence[Path]],
    rng: np.random.Generator,
    quality: int,
    min_side_mm: float = 0.0,
) -> list[list[object]]:
    """Write one node's slide (and annotation); return its lesions.csv rows."""
    drawn: list[Lesion] = []
    if node_class != "negative":
        drawn.append(pools[node_class][int(rng.integers(len(pools[node_class])))])
        for _ in range(int(rng.integers(0, 3))):
            drawn.append(pools["itc"][int(rng.integers(len(pools["itc"])))])
    largest_mm = max((diameter_mm(les) for les in drawn), default=0.0)
    side_mm = max(largest_mm + 2 * MARGIN_MM, min_side_mm)
    side_cells = math.ceil(side_mm * 1000 / (PATCH_PX * PCAM_MPP))
    rows, cols = max(MIN_ROWS, side_cells), max(MIN_COLS, side_cells)
    height, width = rows * PATCH_PX, cols * PATCH_PX
    for _ in range(PLACEMENT_TRIES):
        node = node_outline(
            centre_xy=(width / 2, height / 2),
            radii_xy=(0.44 * width, 0.42 * height),
            seed=int(rng.integers(1 << 30)),
        )
        placed = place_lesions(drawn, node, rng)
        shape = unary_union([node, *(p.l2.buffer(PATCH_PX) for p in placed)])
        tissue, lesion_of = label_cells(shape, placed, rows=rows, cols=cols)
        counts = [int((lesion_of == i).sum()) for i in range(1, len(placed) + 1)]
        if len(placed) == len(drawn) and all(counts):
            break
    else:
        raise SystemExit(f"{stem}: could not place {len(drawn)} visible lesions")
    placed = [
        Placed(lesion=p.lesion, turn=p.turn, mirror=p.mirror, l2=p.l2, n_cells=n)
        for p, n in zip(placed, counts, strict=True)
    ]
    mosaic = build_mosaic(tissue, lesion_of, patches, rng)
    write_slide(out / "slides" / f"{stem}.tif", mosaic, quality=quality)
    if placed:
        write_truth_xml(out / "annotations" / f"{stem}.xml", placed)
    logger.info(
        "%s: %s, %dx%d cells, lesions %s mm",
        stem,
        node_class,
        rows,
        cols,
        [round(diameter_mm(p.lesion), 3) for p in placed],
    )
    return [
        [
            f"{stem}.tif",
            i,
            p.lesion.source,
            p.lesion.index,
            round(diameter_mm(p.lesion) * 1000, 1),
            round(p.l0.area * L0_MPP**2, 1),
            p.n_cells,
        ]
        for i, p in enumerate(placed, start=1)
    ]


def build_set(
    out: Path,
    *,
    first_patient: int,
    per_stage: int,
    lesions: Sequence[Lesion],
    patches: dict[int, Sequence[Path]],
    seed: int,
    quality: int,
    min_side_mm: float = 0.0,
) -> None:
    """Write one set of patients into ``out``."""
    rng = np.random.default_rng(seed)
    (out / "slides").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    pools: dict[str, list[Lesion]] = {"itc": [], "micro": [], "macro": []}
    for lesion in lesions:
        d = diameter_mm(lesion)
        if d >= ITC_MIN_MM:
            pools[size_class(d).value].append(lesion)
    logger.info("outlines: %s", {k: len(v) for k, v in pools.items()})
    labels: list[tuple[str, str]] = [("patient", "stage")]
    lesion_rows: list[list[object]] = []
    stages = [stage for stage in PATIENTS for _ in range(per_stage)]
    for offset, k in enumerate(rng.permutation(len(stages))):
        stage = stages[k]
        patient = f"patient_{first_patient + offset:03d}"
        labels.append((f"{patient}.zip", stage))
        classes = [PATIENTS[stage][i] for i in rng.permutation(NODES_PER_PATIENT)]
        for node, node_class in enumerate(classes):
            stem = f"{patient}_node_{node}"
            lesion_rows += build_node(
                out,
                stem,
                node_class=node_class,
                pools=pools,
                patches=patches,
                rng=rng,
                quality=quality,
                min_side_mm=min_side_mm,
            )
            labels.append((f"{stem}.tif", node_class))
    with (out / "stage_labels.csv").open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(labels)
    with (out / "lesions.csv").open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        columns = ["slide", "lesion", "source", "source_index", "diameter_um"]
        writer.writerow([*columns, "area_um2", "tumour_cells"])
        writer.writerows(lesion_rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    set_arguments(parser, out=Path("/work/stagingset"), seed=17)
    parser.add_argument(
        "--patients-per-stage", type=int, default=2, help="tune set (held-out: 1)"
    )
    parser.add_argument(
        "--min-node-mm",
        type=float,
        default=0.0,
        help="every node's tissue at least this wide (real nodes: 10-15 mm)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    split = args.data / "pcam" / args.patches
    halves = {
        lab: split_halves(usable_patches(split, lab, drop_pale=False), args.seed)
        for lab in (0, 1)
    }
    ncrf = args.data / "camelyon" / "ncrf-json"
    specs = {
        "tune": (0, TUNE_SOURCES, 0, args.patients_per_stage, args.seed),
        "heldout": (1, HELDOUT_SOURCES, 100, 1, args.seed + 1),
    }
    for name in args.sets:
        half, sources, first, per_stage, seed = specs[name]
        build_set(
            args.out / name,
            first_patient=first,
            per_stage=per_stage,
            lesions=load_lesions(ncrf, sources, major_um=(0.0, math.inf)),
            patches={lab: halves[lab][half] for lab in (0, 1)},
            seed=seed,
            quality=args.quality,
            min_side_mm=args.min_node_mm,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
