"""Build a held-out development set of Camelyon-like slides for detection tuning.

Run from the repository root (it reads the shared data folder; nothing in ``wsi/``
does)::

    nice -n 5 .venv/bin/python tools/make_eval_slides.py --data ../shared/data \
        --out /work/evalset [--patches test-dev|valid] [--drop-pale]

It writes two sets, each ``--tumour`` tumour slides and ``--normal`` normal slides:

``OUT/tune/``  the tuning set (seed ``--seed``, lesions from Tumor_001-Tumor_009);
``OUT/heldout/``  the held-out set (seed ``--seed + 1``, lesions from
Tumor_010-Tumor_019), to report on once the defaults are chosen.

and in each set:

``slides/<stem>.tif``
    Pyramidal tiled JPEG TIFF, level 0 at 0.243 um/px (Camelyon16 level 0),
    downsamples 1, 4, 16, 64; OpenSlide opens it as a generic tiled TIFF.
``annotations/<stem>.xml``
    ASAP XML of the tumour slides (group ``_0``, holes in group ``_2``, as Camelyon16),
    level-0 pixels of the slide. Normal slides have none.
``reference.csv``
    ``stem,Tumor|Normal,<n lesions>,Macro|Micro|ITC|None`` per slide (Camelyon16's
    ``reference.csv`` layout: the last column is the largest lesion's class).
``lesions.csv``
    One line per placed lesion: source file and polygon, its turn, level-0 centre,
    major axis (um), area (um^2), tumour cells and whether it is an isolated tumour
    cell cluster (major axis < 275 um: the FROC protocol ignores it).

Notes
-----
1. Patches: PCam ``test-dev/`` (``--patches test-dev``, the default: real PCam test
   patches from other Camelyon16 slides than any model trained or stopped on) or
   ``valid/`` (``--patches valid``, the second line). All of a split's patches are
   used, pale and grey ones included, as real slides have them; ``--drop-pale``
   leaves out mostly-white or grey/black ones. Each label's patches are shuffled
   once and split in two halves: the tuning set draws from one, the held-out set
   from the other, so no patch of the held-out set was looked at while tuning.
   Within a slide, a tumour patch is used once until the half's tumour patches are
   used up (then they repeat, in a fresh order); normal patches repeat within a
   slide about twice, and every slide of a set reuses the same pool. That reuse is
   unavoidable with 750 patches per class and is why the sets are small.
2. Lesions: the positive polygons of the NCRF JSON files (real Camelyon16 outlines,
   holes from ``negative``), at their real size (level-0 px of 0.243 um/px, which is
   the slides' level 0), turned by a multiple of 90 degrees and maybe mirrored. Only
   outlines with a major axis of 100-2,000 um are used (micro-metastases and
   isolated tumour cells; a macro-metastasis would need more tumour patches than one
   half holds). Each tumour slide gets 2-6 lesions, each drawn with probability
   ``TARGET_SHARE`` (0.75) from the FROC targets (major axis >= 275 um) and
   otherwise from the isolated tumour cells, in turn from each shuffled pool (so a
   lesion repeats only after its pool is used up), placed at random inside the
   tissue at least 400 um apart.
3. Layout at level 2 (0.972 um/px, one 96 px cell per PCam patch): tissue is an
   irregular ellipse (one node section) joined with the lesions grown by a cell; a
   cell is tissue when its centre is inside it. A tissue cell is tumour when its
   centre 32 x 32 square overlaps a lesion (PCam's label rule), and gets a tumour
   patch; other tissue cells get normal patches; other cells are glass.
4. Pixels: level 2 is the mosaic; level 0 is it enlarged 4x (bicubic, quality 50: no
   reader of these slides looks at level 0's detail), levels 16 and 64 are box
   averages. Written tile by tile (`wsi.synthetic.page_options`, `pyramid_levels`),
   never holding level 0 in memory.
5. Everything is seeded: the same command gives the same slides.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import numpy.typing as npt
import tifffile
from PIL import Image
from shapely import affinity
from shapely.geometry import Point, Polygon, box
from shapely.ops import unary_union

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_demo_slide import looks_like_tissue, node_outline

from wsi.geometry import CENTER_PX, PATCH_PX, PCAM_MPP
from wsi.synthetic import GLASS_RGB, page_options, pyramid_levels

logger = logging.getLogger("make_eval_slides")

REPO = Path(__file__).resolve().parent.parent
L0_MPP = PCAM_MPP / 4
PCAM_DOWNSAMPLE = 4
DOWNSAMPLES = (1, 4, 16, 64)
TILE_PX = 512
#: Patch filter: at most half near-white (PCam's normal class is often fat or tissue
#: edge; the demo's stricter 0.3 keeps only 830 of 1,500), mean chroma and
#: brightness at least these (no black or grey scanning artefacts).
MAX_WHITE_FRACTION = 0.5
#: Outline sizes used (major axis, um) and the ITC limit of the FROC protocol.
MIN_MAJOR_UM, MAX_MAJOR_UM, ITC_MAJOR_UM = 100.0, 2000.0, 275.0
#: Lesions per tumour slide, the share of them drawn from the FROC targets (major
#: axis >= 275 um; the rest are isolated tumour cells), and their least distance.
LESIONS_PER_SLIDE = (2, 6)
TARGET_SHARE = 0.75
LESION_GAP_UM = 400.0
#: Source files of the two sets' lesions.
TUNE_SOURCES = tuple(f"Tumor_{i:03d}" for i in range(1, 10))
HELDOUT_SOURCES = tuple(f"Tumor_{i:03d}" for i in range(10, 20))


@dataclass(frozen=True, slots=True, kw_only=True)
class Lesion:
    """A real lesion outline in its own level-0 pixels, and where it came from."""

    polygon: Polygon
    source: str
    index: int

    @property
    def major_um(self) -> float:
        """Longest side of the minimum rotated rectangle, in um."""
        rect = np.asarray(self.polygon.minimum_rotated_rectangle.exterior.coords)
        sides = np.hypot(*np.diff(rect[:3], axis=0).T)
        return float(sides.max() * L0_MPP)


@dataclass(frozen=True, slots=True, kw_only=True)
class Placed:
    """A lesion placed on a slide (level-2 px), with its level-0 polygon."""

    lesion: Lesion
    turn: int
    mirror: bool
    l2: Polygon
    n_cells: int = 0

    @property
    def l0(self) -> Polygon:
        """The placed outline in the slide's level-0 px."""
        return affinity.scale(
            self.l2, xfact=PCAM_DOWNSAMPLE, yfact=PCAM_DOWNSAMPLE, origin=(0, 0)
        )


def load_lesions(
    folder: Path,
    sources: Sequence[str],
    *,
    major_um: tuple[float, float] = (MIN_MAJOR_UM, MAX_MAJOR_UM),
) -> list[Lesion]:
    """Every positive outline of the given NCRF JSON stems within ``major_um``."""
    lesions = []
    for stem in sources:
        data = json.loads((folder / f"{stem}.json").read_text())
        holes = [Polygon(p["vertices"]) for p in data.get("negative", [])]
        for i, item in enumerate(data["positive"]):
            if len(item["vertices"]) < 3:
                continue
            poly = Polygon(item["vertices"]).buffer(0)
            if poly.geom_type == "MultiPolygon":
                poly = max(poly.geoms, key=lambda p: p.area)
            for hole in holes:
                if hole.is_valid and poly.contains(hole):
                    poly = poly.difference(hole)
            lesion = Lesion(polygon=poly, source=stem, index=i)
            if major_um[0] <= lesion.major_um <= major_um[1]:
                lesions.append(lesion)
    return lesions


def usable_patches(split: Path, label: int, *, drop_pale: bool) -> list[Path]:
    """The label's patches (with ``drop_pale``, those that look like tissue), sorted."""
    files = sorted((split / str(label)).glob("patch*.jpg"))
    if not files:
        raise SystemExit(f"{split / str(label)}: no patch*.jpg files")
    if not drop_pale:
        return files
    return [
        f
        for f in files
        if looks_like_tissue(
            np.asarray(Image.open(f).convert("RGB")),
            max_white_fraction=MAX_WHITE_FRACTION,
        )
    ]


def split_halves(files: Sequence[Path], seed: int) -> tuple[list[Path], list[Path]]:
    """Shuffle once (seeded) and cut in two: (tuning half, held-out half)."""
    order = np.random.default_rng(seed).permutation(len(files))
    half = len(files) // 2
    return [files[i] for i in order[:half]], [files[i] for i in order[half:]]


def _turn(poly: Polygon, turn: int, mirror: bool) -> Polygon:
    c = poly.centroid
    out = affinity.rotate(poly, 90 * turn, origin=c)
    return affinity.scale(out, xfact=-1, origin=c) if mirror else out


def place_lesions(
    lesions: Sequence[Lesion], tissue: Polygon, rng: np.random.Generator
) -> list[Placed]:
    """Place lesions (largest first) at random inside ``tissue`` (level-2 px)."""
    gap_l2 = LESION_GAP_UM / PCAM_MPP
    inner = tissue.buffer(-PATCH_PX)
    placed: list[Placed] = []
    for lesion in sorted(lesions, key=lambda les: -les.polygon.area):
        turn, mirror = int(rng.integers(4)), bool(rng.integers(2))
        shape = _turn(lesion.polygon, turn, mirror)
        shape = affinity.scale(
            shape, xfact=1 / PCAM_DOWNSAMPLE, yfact=1 / PCAM_DOWNSAMPLE, origin=(0, 0)
        )
        c = shape.centroid
        minx, miny, maxx, maxy = inner.bounds
        for _ in range(400):
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            cand = affinity.translate(shape, x - c.x, y - c.y)
            if inner.contains(cand) and all(
                cand.distance(p.l2) > gap_l2 for p in placed
            ):
                placed.append(Placed(lesion=lesion, turn=turn, mirror=mirror, l2=cand))
                break
        else:
            logger.info("no room for %s #%d; skipped", lesion.source, lesion.index)
    return placed


def label_cells(
    tissue_shape: Polygon, lesions: Sequence[Placed], *, rows: int, cols: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int32]]:
    """Tissue cells, and each cell's lesion number (1-based; 0 = none)."""
    tissue = np.zeros((rows, cols), bool)
    lesion_of = np.zeros((rows, cols), np.int32)
    lo = (PATCH_PX - CENTER_PX) / 2
    for r in range(rows):
        for c in range(cols):
            x0, y0 = c * PATCH_PX, r * PATCH_PX
            tissue[r, c] = tissue_shape.contains(
                Point(x0 + PATCH_PX / 2, y0 + PATCH_PX / 2)
            )
            square = box(x0 + lo, y0 + lo, x0 + lo + CENTER_PX, y0 + lo + CENTER_PX)
            for k, p in enumerate(lesions, start=1):
                if p.l2.intersects(square):
                    lesion_of[r, c] = k
                    break
    if np.any((lesion_of > 0) & ~tissue):
        raise RuntimeError("a tumour cell lies outside the tissue; this is a bug")
    return tissue, lesion_of


def _cycle(files: Sequence[Path], rng: np.random.Generator) -> Iterator[Path]:
    """Endless: the files in a fresh random order each round."""
    while True:
        for i in rng.permutation(len(files)):
            yield files[i]


def build_mosaic(
    tissue: npt.NDArray[np.bool_],
    lesion_of: npt.NDArray[np.int32],
    pools: dict[int, Sequence[Path]],
    rng: np.random.Generator,
) -> npt.NDArray[np.uint8]:
    """The level-2 image: a patch per tissue cell, glass elsewhere."""
    rows, cols = tissue.shape
    if int((lesion_of > 0).sum()) > len(pools[1]):
        logger.info(
            "%d tumour cells, %d tumour patches: some repeat",
            int((lesion_of > 0).sum()),
            len(pools[1]),
        )
    mosaic = np.empty((rows * PATCH_PX, cols * PATCH_PX, 3), np.uint8)
    mosaic[...] = GLASS_RGB
    draws = {lab: _cycle(pools[lab], rng) for lab in (0, 1)}
    cache: dict[Path, npt.NDArray[np.uint8]] = {}
    for r, c in zip(*np.nonzero(tissue), strict=True):
        path = next(draws[int(lesion_of[r, c] > 0)])
        if path not in cache:
            cache[path] = np.asarray(Image.open(path).convert("RGB"))
        ys, xs = (
            slice(r * PATCH_PX, (r + 1) * PATCH_PX),
            slice(c * PATCH_PX, (c + 1) * PATCH_PX),
        )
        mosaic[ys, xs] = cache[path]
    return mosaic


class MosaicRenderer:
    """`wsi.synthetic.TileRenderer` over a level-2 mosaic (see Notes 4)."""

    def __init__(self, mosaic: npt.NDArray[np.uint8]) -> None:
        pad = 4
        self._pad = pad
        self._img = np.pad(
            mosaic, ((pad, pad + TILE_PX), (pad, pad + TILE_PX), (0, 0)), mode="edge"
        )

    def __call__(
        self, *, downsample: float, xy_px: tuple[int, int], size_px: tuple[int, int]
    ) -> npt.NDArray[np.uint8]:
        """Pixels of ``size_px`` level pixels from ``xy_px`` at ``downsample``."""
        f = downsample / PCAM_DOWNSAMPLE  # mosaic px per level px
        w, h = size_px
        x0, y0 = xy_px[0] * f + self._pad, xy_px[1] * f + self._pad
        if f >= 1:
            k = round(f)
            crop = self._img[
                round(y0) : round(y0) + h * k, round(x0) : round(x0) + w * k
            ]
            img = Image.fromarray(np.ascontiguousarray(crop))
            return np.asarray(img.reduce(k) if k > 1 else img)
        up = round(1 / f)
        m = 2  # margin so bicubic sees neighbours across tile edges
        ix, iy = math.floor(x0), math.floor(y0)
        crop = self._img[iy - m : iy + h // up + m, ix - m : ix + w // up + m]
        big = Image.fromarray(np.ascontiguousarray(crop)).resize(
            (crop.shape[1] * up, crop.shape[0] * up), Image.Resampling.BICUBIC
        )
        arr = np.asarray(big)
        return arr[m * up : m * up + h, m * up : m * up + w]


def write_slide(path: Path, mosaic: npt.NDArray[np.uint8], *, quality: int) -> None:
    """Write the pyramid tile by tile (level 0 at quality 50, others at ``quality``)."""
    height, width = mosaic.shape[:2]
    size = (width * PCAM_DOWNSAMPLE, height * PCAM_DOWNSAMPLE)
    render = MosaicRenderer(mosaic)
    levels = pyramid_levels(size, DOWNSAMPLES)
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for i, (w, h, ds) in enumerate(levels):
            options = page_options(
                tile_px=TILE_PX,
                compression="jpeg",
                quality=50 if ds < PCAM_DOWNSAMPLE else quality,
                mpp=L0_MPP * ds,
                reduced=i > 0,
            )
            tiles = (
                render(downsample=ds, xy_px=(tx, ty), size_px=(TILE_PX, TILE_PX))
                for ty in range(0, h, TILE_PX)
                for tx in range(0, w, TILE_PX)
            )
            tif.write(tiles, shape=(h, w, 3), dtype=np.uint8, **options)


def write_truth_xml(path: Path, lesions: Sequence[Placed]) -> None:
    """ASAP XML: each lesion in group ``_0``, its holes in group ``_2`` (level-0 px)."""
    root = ET.Element("ASAP_Annotations")
    annotations = ET.SubElement(root, "Annotations")
    n = 0

    def ring(coords: npt.ArrayLike, group: str) -> None:
        nonlocal n
        ann = ET.SubElement(
            annotations,
            "Annotation",
            Name=f"Annotation {n}",
            Type="Polygon",
            PartOfGroup=group,
            Color="#F4FA58",
        )
        n += 1
        xml_coords = ET.SubElement(ann, "Coordinates")
        for order, (x, y) in enumerate(np.asarray(coords)[:-1]):
            ET.SubElement(
                xml_coords, "Coordinate", Order=str(order), X=f"{x:.1f}", Y=f"{y:.1f}"
            )

    for p in lesions:
        for part in getattr(p.l0, "geoms", [p.l0]):
            ring(part.exterior.coords, "_0")
            for hole in part.interiors:
                ring(hole.coords, "_2")
    groups = ET.SubElement(root, "AnnotationGroups")
    for name, colour in (("_0", "#FF0000"), ("_2", "#00FF00")):
        group = ET.SubElement(
            groups, "Group", Name=name, PartOfGroup="None", Color=colour
        )
        ET.SubElement(group, "Attributes")
    ET.indent(root, space="\t")
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")


def lesion_class(major_um: float) -> str:
    """Camelyon16's classes by size: Macro > 2 mm, Micro > 0.2 mm, else ITC."""
    return "Macro" if major_um > 2000 else "Micro" if major_um > 200 else "ITC"


def build_set(
    out: Path,
    *,
    prefix: str,
    lesions: Sequence[Lesion],
    patches: dict[int, Sequence[Path]],
    n_tumour: int,
    n_normal: int,
    rows: int,
    cols: int,
    seed: int,
    quality: int,
) -> None:
    """Write one set (slides, annotations, reference.csv, lesions.csv) into ``out``."""
    rng = np.random.default_rng(seed)
    (out / "slides").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    targets = [les for les in lesions if les.major_um >= ITC_MAJOR_UM]
    itcs = [les for les in lesions if les.major_um < ITC_MAJOR_UM]
    pools = {True: _cycle(targets, rng), False: _cycle(itcs, rng)}
    reference, lesion_rows = [], []
    labels = ["Tumor"] * n_tumour + ["Normal"] * n_normal
    order = rng.permutation(len(labels))
    for number, k in enumerate(order, start=1):
        stem = f"{prefix}_{number:03d}"
        height, width = rows * PATCH_PX, cols * PATCH_PX
        node = node_outline(
            centre_xy=(width / 2, height / 2),
            radii_xy=(0.44 * width, 0.42 * height),
            seed=int(rng.integers(1 << 30)),
        )
        placed: list[Placed] = []
        if labels[k] == "Tumor":
            want = int(rng.integers(LESIONS_PER_SLIDE[0], LESIONS_PER_SLIDE[1] + 1))
            drawn = [
                next(pools[bool(rng.random() < TARGET_SHARE)]) for _ in range(want)
            ]
            placed = place_lesions(drawn, node, rng)
        shape = unary_union([node, *(p.l2.buffer(PATCH_PX) for p in placed)])
        tissue, lesion_of = label_cells(shape, placed, rows=rows, cols=cols)
        placed = [
            Placed(
                lesion=p.lesion,
                turn=p.turn,
                mirror=p.mirror,
                l2=p.l2,
                n_cells=int((lesion_of == i).sum()),
            )
            for i, p in enumerate(placed, start=1)
        ]
        mosaic = build_mosaic(tissue, lesion_of, patches, rng)
        write_slide(out / "slides" / f"{stem}.tif", mosaic, quality=quality)
        if placed:
            write_truth_xml(out / "annotations" / f"{stem}.xml", placed)
        majors = [p.lesion.major_um for p in placed]
        reference.append(
            [
                stem,
                "Tumor" if placed else "Normal",
                len(placed),
                lesion_class(max(majors)) if majors else "None",
            ]
        )
        for i, p in enumerate(placed, start=1):
            c = p.l0.centroid
            lesion_rows.append(
                [
                    stem,
                    i,
                    p.lesion.source,
                    p.lesion.index,
                    90 * p.turn,
                    int(p.mirror),
                    round(c.x),
                    round(c.y),
                    round(p.lesion.major_um, 1),
                    round(p.l0.area * L0_MPP**2, 1),
                    p.n_cells,
                    int(p.lesion.major_um < ITC_MAJOR_UM),
                ]
            )
        logger.info(
            "%s: %s, %d tissue cells, %d tumour cells, lesions %s um",
            stem,
            reference[-1][1],
            int(tissue.sum()),
            int((lesion_of > 0).sum()),
            [round(m) for m in majors],
        )
    with (out / "reference.csv").open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(reference)
    with (out / "lesions.csv").open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(
            [
                "slide",
                "lesion",
                "source",
                "source_index",
                "turn_deg",
                "mirrored",
                "l0_x",
                "l0_y",
                "major_um",
                "area_um2",
                "tumour_cells",
                "itc",
            ]
        )
        writer.writerows(lesion_rows)


def set_arguments(
    parser: argparse.ArgumentParser, *, out: Path, seed: int
) -> argparse.ArgumentParser:
    """The options of every development-set builder (this one, make_staging_set)."""
    parser.add_argument(
        "--data", type=Path, default=REPO.parent / "shared" / "data", help="shared data"
    )
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument(
        "--quality", type=int, default=85, help="JPEG quality, levels 2+"
    )
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument(
        "--patches",
        default="test-dev",
        choices=["test-dev", "valid"],
        help="PCam split the patches come from (never train/)",
    )
    parser.add_argument(
        "--sets", nargs="+", default=["tune", "heldout"], choices=["tune", "heldout"]
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    set_arguments(parser, out=Path("/work/evalset"), seed=8)
    parser.add_argument("--tumour", type=int, default=10, help="tumour slides per set")
    parser.add_argument("--normal", type=int, default=5, help="normal slides per set")
    parser.add_argument("--rows", type=int, default=34, help="level-2 grid rows")
    parser.add_argument("--cols", type=int, default=42, help="level-2 grid columns")
    parser.add_argument(
        "--drop-pale", action="store_true", help="leave out mostly-white/grey patches"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    split = args.data / "pcam" / args.patches
    halves = {
        lab: split_halves(
            usable_patches(split, lab, drop_pale=args.drop_pale), args.seed
        )
        for lab in (0, 1)
    }
    logger.info(
        "%s patches used: %d normal, %d tumour (halves per set)",
        args.patches,
        sum(map(len, halves[0])),
        sum(map(len, halves[1])),
    )
    ncrf = args.data / "camelyon" / "ncrf-json"
    specs = {
        "tune": (0, TUNE_SOURCES, "tune", args.seed),
        "heldout": (1, HELDOUT_SOURCES, "held", args.seed + 1),
    }
    for name in args.sets:
        half, sources, prefix, seed = specs[name]
        lesions = load_lesions(ncrf, sources)
        logger.info("%s: %d lesion outlines from %s", name, len(lesions), sources)
        build_set(
            args.out / name,
            prefix=prefix,
            lesions=lesions,
            patches={lab: halves[lab][half] for lab in (0, 1)},
            n_tumour=args.tumour,
            n_normal=args.normal,
            rows=args.rows,
            cols=args.cols,
            seed=seed,
            quality=args.quality,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
