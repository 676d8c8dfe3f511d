"""Build the demo slide: real PCam patches laid out around a real Camelyon16 lesion.

Run from the repository root (it reads the shared data folder, nothing else does)::

    .venv/bin/python tools/make_demo_slide.py --data ../shared/data --out demo

It writes, into ``--out``:

``demo_slide.tif``
    Pyramidal tiled (256 x 256) JPEG TIFF, level 0 at 0.243 um/px (Camelyon16 level 0),
    downsamples 1, 2, 4, 8, 16, 32. OpenSlide opens it as a generic tiled TIFF.
``demo_slide.truth.xml``
    ASAP XML, group ``Tumor``: the lesion polygon in level-0 pixels.
``demo_slide.cells.csv``
    ``row,col,label,pcam_index`` for every placed patch of the level-2 grid
    (96 x 96 px cells from the slide origin, the tiler's default stride-96 grid).

Notes
-----
1. The slide is designed at level 2 (downsample 4, 0.972 um/px = PCam's scale): a
   ``rows x cols`` grid of 96 px cells. A cell is tissue when its centre lies inside
   the node outline (an irregular ellipse joined with the lesion grown by one cell);
   other cells stay background (near-white with faint noise).
2. A tissue cell is tumour when its PCam centre square (the middle 32 x 32 px) overlaps
   the lesion polygon: PCam's own label rule. Tumour cells get a label-1 patch,
   other tissue cells a label-0 patch from PCam ``valid``; patches that are more than
   30% near-white, or black or grey scanning artefacts, are skipped so the node looks
   filled. Each patch is used once.
3. Level 2 is that mosaic, unchanged. Level 0 is the mosaic enlarged 4x (bicubic);
   level 1 is level 0 averaged over 2 x 2 pixels; levels 3+ are level 2 averaged over
   2 x 2, 4 x 4, ... pixels (PIL ``reduce``: box filter, no shift).
4. Size: JPEG codes a 4x-enlarged image poorly (about 1.2 bits per level-0 pixel at
   quality 60, i.e. six times the bytes of level 2 at quality 85), so levels 0 and 1,
   which carry no detail beyond level 2, get ``--upsampled-quality`` and levels 2+,
   the pixels the classifier reads, get ``--quality``. The node is kept to about 180
   patches so the file stays a few MB.
5. Everything is seeded: the same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import numpy.typing as npt
import tifffile
from PIL import Image
from shapely import affinity
from shapely.geometry import Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from wsi.geometry import CENTER_PX, PATCH_PX, PCAM_MPP, SlideGeometry, TileGrid

logger = logging.getLogger("make_demo_slide")

REPO = Path(__file__).resolve().parent.parent
#: Level-0 resolution: Camelyon16 level 0, PCam's scale divided by four.
L0_MPP = PCAM_MPP / 4
#: Level-0 pixels per level-2 (PCam) pixel.
PCAM_DOWNSAMPLE = 4
DOWNSAMPLES = (1, 2, 4, 8, 16, 32)
TILE_PX = 256
STEM = "demo_slide"
#: Patch filter: at most this fraction of near-white pixels (no half-empty patches),
#: and mean chroma / brightness at least these (no black or grey scanning artefacts).
MAX_WHITE_FRACTION = 0.3
MIN_MEAN_CHROMA = 20
MIN_MEAN_BRIGHTNESS = 60
#: Lesion simplification tolerance in level-2 px (2 = 8 level-0 px, about 2 um).
SIMPLIFY_L2_PX = 2.0
BACKGROUND_RGB = (241, 240, 243)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoLayout:
    """Which level-2 grid cells hold tissue and tumour, and the lesion polygon.

    ``tissue`` and ``tumor`` are boolean ``[row, col]`` arrays; ``lesion_l2`` is the
    lesion in level-2 pixels and ``lesion_l0`` the same polygon in level-0 pixels.
    """

    tissue: npt.NDArray[np.bool_]
    tumor: npt.NDArray[np.bool_]
    lesion_l2: Polygon
    lesion_l0: Polygon
    lesion_scale: float


def load_lesion(path: Path) -> Polygon:
    """Largest positive polygon of an NCRF Camelyon16 JSON, in its level-0 pixels."""
    data = json.loads(path.read_text())
    polygons = [
        Polygon(p["vertices"]) for p in data["positive"] if len(p["vertices"]) > 2
    ]
    if not polygons:
        raise ValueError(f"{path} has no positive polygon")
    lesion = max(polygons, key=lambda p: p.area)
    if not lesion.is_valid:
        lesion = lesion.buffer(0)
        if lesion.geom_type == "MultiPolygon":
            lesion = max(lesion.geoms, key=lambda p: p.area)
    holes = [Polygon(p["vertices"]) for p in data.get("negative", [])]
    for hole in holes:
        if hole.is_valid and lesion.contains(hole):
            lesion = lesion.difference(hole)
    return lesion


def node_outline(
    *, centre_xy: tuple[float, float], radii_xy: tuple[float, float], seed: int
) -> Polygon:
    """Draw an irregular ellipse shaped like a lymph node section, in level-2 pixels."""
    rng = np.random.default_rng(seed)
    theta = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    wobble = np.ones_like(theta)
    for k, amplitude in ((2, 0.05), (3, 0.06), (5, 0.03), (7, 0.015)):
        wobble += amplitude * np.sin(k * theta + rng.uniform(0, 2 * np.pi))
    x = centre_xy[0] + radii_xy[0] * wobble * np.cos(theta)
    y = centre_xy[1] + radii_xy[1] * wobble * np.sin(theta)
    return Polygon(np.column_stack([x, y]))


def design_layout(
    lesion_src: Polygon, *, rows: int, cols: int, lesion_fraction: float, seed: int
) -> DemoLayout:
    """Scale the lesion into a node outline and label the level-2 grid cells.

    The lesion is scaled about its centroid so that its area is ``lesion_fraction``
    of the node ellipse's, simplified to about 2 um, and centred in the slide.
    """
    height_px, width_px = rows * PATCH_PX, cols * PATCH_PX
    centre = (width_px / 2, height_px / 2)
    radii = (0.38 * width_px, 0.38 * height_px)
    ellipse_area = math.pi * radii[0] * radii[1]
    scale = math.sqrt(
        lesion_fraction * ellipse_area / lesion_src.area
    )  # l2 px per src px

    c = lesion_src.centroid
    lesion_l2 = affinity.affine_transform(
        lesion_src,
        [scale, 0, 0, scale, centre[0] - scale * c.x, centre[1] - scale * c.y],
    )
    lesion_l2 = lesion_l2.simplify(SIMPLIFY_L2_PX)
    tissue_shape = node_outline(centre_xy=centre, radii_xy=radii, seed=seed).union(
        lesion_l2.buffer(PATCH_PX)
    )
    if not box(PATCH_PX, PATCH_PX, width_px - PATCH_PX, height_px - PATCH_PX).contains(
        tissue_shape
    ):
        raise ValueError(
            f"the node does not fit a {cols}x{rows} grid with a one-cell margin; "
            f"lower --lesion-fraction (now {lesion_fraction})"
        )

    tissue = np.zeros((rows, cols), dtype=bool)
    tumor = np.zeros((rows, cols), dtype=bool)
    lo = (PATCH_PX - CENTER_PX) / 2
    for r in range(rows):
        for col in range(cols):
            x0, y0 = col * PATCH_PX, r * PATCH_PX
            tissue[r, col] = tissue_shape.contains(
                Point(x0 + PATCH_PX / 2, y0 + PATCH_PX / 2)
            )
            centre_square = box(
                x0 + lo, y0 + lo, x0 + lo + CENTER_PX, y0 + lo + CENTER_PX
            )
            tumor[r, col] = lesion_l2.intersects(centre_square)
    if np.any(tumor & ~tissue):
        raise ValueError("a tumour cell lies outside the tissue; this is a bug")
    lesion_l0 = affinity.scale(
        lesion_l2, xfact=PCAM_DOWNSAMPLE, yfact=PCAM_DOWNSAMPLE, origin=(0, 0)
    )
    return DemoLayout(
        tissue=tissue,
        tumor=tumor,
        lesion_l2=lesion_l2,
        lesion_l0=lesion_l0,
        lesion_scale=scale * PCAM_DOWNSAMPLE,
    )


def looks_like_tissue(
    rgb: npt.NDArray[np.uint8], *, max_white_fraction: float = MAX_WHITE_FRACTION
) -> bool:
    """Tell whether a patch is filled with stained tissue (see the filter constants)."""
    value = rgb.astype(np.int16)
    chroma = (value.max(axis=2) - value.min(axis=2)).mean()
    return bool(
        (value.min(axis=2) > 200).mean() <= max_white_fraction
        and chroma >= MIN_MEAN_CHROMA
        and value.mean() >= MIN_MEAN_BRIGHTNESS
    )


def pick_patches(
    pcam_dir: Path, label: int, count: int, rng: np.random.Generator
) -> list[Path]:
    """``count`` distinct, mostly-tissue patches of one label, in a seeded order."""
    files = sorted((pcam_dir / str(label)).glob("patch*.jpg"))
    order = rng.permutation(len(files))
    chosen: list[Path] = []
    for i in order:
        if looks_like_tissue(np.asarray(Image.open(files[i]).convert("RGB"))):
            chosen.append(files[i])
            if len(chosen) == count:
                return chosen
    raise ValueError(
        f"only {len(chosen)} usable label-{label} patches in {pcam_dir}, need {count}"
    )


def build_mosaic(
    layout: DemoLayout, pcam_dir: Path, rng: np.random.Generator
) -> tuple[npt.NDArray[np.uint8], list[tuple[int, int, int, int]]]:
    """Lay out the level-2 image; list ``(row, col, label, pcam_index)`` per patch."""
    rows, cols = layout.tissue.shape
    height, width = rows * PATCH_PX, cols * PATCH_PX
    noise = rng.normal(0, 0.0, size=(height, width, 1))
    mosaic = np.clip(np.array(BACKGROUND_RGB) + noise, 0, 255).astype(np.uint8)
    labels = np.where(layout.tumor, 1, 0)
    cells: list[tuple[int, int, int, int]] = []
    pools = {
        lab: iter(
            pick_patches(
                pcam_dir, lab, int((layout.tissue & (labels == lab)).sum()), rng
            )
        )
        for lab in (0, 1)
    }
    for r, c in zip(*np.nonzero(layout.tissue), strict=True):
        lab = int(labels[r, c])
        path = next(pools[lab])
        patch = np.asarray(Image.open(path).convert("RGB"))
        mosaic[r * PATCH_PX : (r + 1) * PATCH_PX, c * PATCH_PX : (c + 1) * PATCH_PX] = (
            patch
        )
        cells.append((int(r), int(c), lab, int(path.stem.removeprefix("patch"))))
    return mosaic, cells


def build_pyramid(mosaic: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.uint8]]:
    """Levels at ``DOWNSAMPLES`` from the level-2 mosaic (see Notes 3)."""
    l2 = Image.fromarray(mosaic)
    l0 = l2.resize(
        (l2.width * PCAM_DOWNSAMPLE, l2.height * PCAM_DOWNSAMPLE),
        Image.Resampling.BICUBIC,
    )
    levels = []
    for ds in DOWNSAMPLES:
        if ds < PCAM_DOWNSAMPLE:
            img = l0.reduce(ds) if ds > 1 else l0
        else:
            img = l2.reduce(ds // PCAM_DOWNSAMPLE) if ds > PCAM_DOWNSAMPLE else l2
        levels.append(np.asarray(img))
    return levels


def write_slide(
    path: Path,
    levels: Sequence[npt.NDArray[np.uint8]],
    *,
    quality: int,
    upsampled_quality: int,
) -> None:
    """Write a tiled JPEG pyramid, one top-level page per level, with px/cm resolution.

    OpenSlide's generic-TIFF backend reads every tiled page of the main IFD chain as a
    level (not SubIFDs) and takes the microns per pixel from the first page's
    ``XResolution`` in pixels per centimetre.
    """
    description = (
        "wsi-heatmap demo slide: PatchCamelyon patches (CC0) around a Camelyon16 "
        "lesion outline (CC0); built by tools/make_demo_slide.py"
    )
    with tifffile.TiffWriter(path) as tif:
        for ds, level in zip(DOWNSAMPLES, levels, strict=True):
            px_per_cm = 1e4 / (L0_MPP * ds)
            tif.write(
                level,
                tile=(TILE_PX, TILE_PX),
                # RGB in; tifffile stores JPEG as YCbCr with 2x2 chroma subsampling.
                photometric="rgb",
                compression="jpeg",
                compressionargs={
                    "level": upsampled_quality if ds < PCAM_DOWNSAMPLE else quality,
                    # optimal Huffman tables: still baseline JPEG, about 9% smaller
                    "optimize": True,
                },
                resolution=(px_per_cm, px_per_cm),
                resolutionunit="CENTIMETER",
                subfiletype=0 if ds == 1 else 1,
                description=description if ds == 1 else None,
                metadata=None,
            )


def write_truth_xml(path: Path, lesion_l0: BaseGeometry) -> None:
    """ASAP XML with the lesion's exterior (group ``Tumor``) in level-0 pixels."""
    root = ET.Element("ASAP_Annotations")
    annotations = ET.SubElement(root, "Annotations")
    polygons = list(getattr(lesion_l0, "geoms", [lesion_l0]))
    for i, poly in enumerate(polygons):
        ann = ET.SubElement(
            annotations,
            "Annotation",
            Name=f"Annotation {i}",
            Type="Polygon",
            PartOfGroup="Tumor",
            Color="#F4FA58",
        )
        coords = ET.SubElement(ann, "Coordinates")
        for order, (x, y) in enumerate(np.asarray(poly.exterior.coords)[:-1]):
            ET.SubElement(
                coords, "Coordinate", Order=str(order), X=f"{x:.1f}", Y=f"{y:.1f}"
            )
    groups = ET.SubElement(root, "AnnotationGroups")
    group = ET.SubElement(
        groups, "Group", Name="Tumor", PartOfGroup="None", Color="#FF0000"
    )
    ET.SubElement(group, "Attributes")
    ET.indent(root, space="\t")
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")


def write_cells_csv(path: Path, cells: Sequence[tuple[int, int, int, int]]) -> None:
    """One line per placed patch: level-2 grid ``row,col``, PCam ``label`` and index."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["row", "col", "label", "pcam_index"])
        writer.writerows(cells)


def check_slide(path: Path, levels: Sequence[npt.NDArray[np.uint8]]) -> None:
    """Open the written slide with OpenSlide and check size, levels and resolution."""
    import openslide

    with openslide.OpenSlide(path) as slide:
        mpp = float(slide.properties[openslide.PROPERTY_NAME_MPP_X])
        downsamples = [round(d, 3) for d in slide.level_downsamples]
        if abs(mpp - L0_MPP) > 1e-3 or downsamples != list(map(float, DOWNSAMPLES)):
            raise RuntimeError(f"OpenSlide reads mpp {mpp}, downsamples {downsamples}")
        if slide.dimensions != (levels[0].shape[1], levels[0].shape[0]):
            raise RuntimeError(f"OpenSlide reads size {slide.dimensions}")
        geometry = SlideGeometry(
            width_px=slide.dimensions[0],
            height_px=slide.dimensions[1],
            mpp_x=mpp,
            mpp_y=float(slide.properties[openslide.PROPERTY_NAME_MPP_Y]),
            level_dimensions=tuple(slide.level_dimensions),
        )
    grid = TileGrid(geometry=geometry)
    logger.info(
        "OpenSlide: %s, mpp %.3f, %d levels; PCam grid %s read at level %d",
        geometry.level_dimensions[0],
        mpp,
        len(downsamples),
        grid.shape,
        grid.plan.level,
    )


def write_preview(
    path: Path, level: npt.NDArray[np.uint8], layout: DemoLayout, ds: int
) -> None:
    """Write a PNG of one level with the lesion outline on it, for a quick look."""
    from PIL import ImageDraw

    img = Image.fromarray(level).convert("RGB")
    draw = ImageDraw.Draw(img)
    for poly in getattr(layout.lesion_l0, "geoms", [layout.lesion_l0]):
        draw.line(
            [(x / ds, y / ds) for x, y in poly.exterior.coords],
            fill=(0, 160, 0),
            width=2,
        )
    img.save(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data",
        help="shared data folder with pcam/ and camelyon/ (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "demo", help="output folder")
    parser.add_argument(
        "--lesion",
        default="Tumor_011",
        help="NCRF JSON stem; its largest lesion is used (default: %(default)s)",
    )
    parser.add_argument("--rows", type=int, default=22, help="level-2 grid rows")
    parser.add_argument("--cols", type=int, default=18, help="level-2 grid columns")
    parser.add_argument(
        "--lesion-fraction",
        type=float,
        default=0.35,
        help="lesion area / node ellipse area (default: %(default)s)",
    )
    parser.add_argument(
        "--quality",
        type=int,
        default=85,
        help="JPEG quality of levels 2+ (default: %(default)s)",
    )
    parser.add_argument(
        "--upsampled-quality",
        type=int,
        default=60,
        help="JPEG quality of levels 0 and 1 (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--preview", type=Path, help="also write a level-3 PNG here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    pcam_dir = args.data / "pcam" / "valid"
    lesion_src = load_lesion(
        args.data / "camelyon" / "ncrf-json" / f"{args.lesion}.json"
    )
    layout = design_layout(
        lesion_src,
        rows=args.rows,
        cols=args.cols,
        lesion_fraction=args.lesion_fraction,
        seed=args.seed,
    )
    rng = np.random.default_rng(args.seed)
    mosaic, cells = build_mosaic(layout, pcam_dir, rng)
    levels = build_pyramid(mosaic)

    args.out.mkdir(parents=True, exist_ok=True)
    slide_path = args.out / f"{STEM}.tif"
    write_slide(
        slide_path,
        levels,
        quality=args.quality,
        upsampled_quality=args.upsampled_quality,
    )
    write_truth_xml(args.out / f"{STEM}.truth.xml", layout.lesion_l0)
    write_cells_csv(args.out / f"{STEM}.cells.csv", cells)
    check_slide(slide_path, levels)
    if args.preview:
        write_preview(args.preview, levels[3], layout, DOWNSAMPLES[3])

    n_tumor = int(layout.tumor.sum())
    logger.info(
        "%s: %.2f MB, level 0 %dx%d px; %d tissue cells (%d tumour, %d normal) "
        "of %dx%d; lesion %s scaled x%.3f, %.2f mm2",
        slide_path,
        slide_path.stat().st_size / 1e6,
        levels[0].shape[1],
        levels[0].shape[0],
        len(cells),
        n_tumor,
        len(cells) - n_tumor,
        args.rows,
        args.cols,
        args.lesion,
        layout.lesion_scale,
        layout.lesion_l0.area * L0_MPP**2 / 1e6,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
