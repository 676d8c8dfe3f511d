"""The shipped demo slide: OpenSlide reads it at Camelyon16 scale, and its truth agrees.

See ``demo/README.md`` and ``tools/make_demo_slide.py`` for how it was built.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import openslide
import pytest
from shapely.geometry import Polygon, box
from shapely.ops import unary_union

from wsi.geometry import CENTER_PX, PATCH_PX, PCAM_MPP, SlideGeometry, TileGrid

DEMO = Path(__file__).resolve().parent.parent / "demo"
SLIDE = DEMO / "demo_slide.tif"
L0_MPP = 0.243


@pytest.fixture(scope="module")
def slide() -> Iterator[openslide.OpenSlide]:
    with openslide.OpenSlide(SLIDE) as handle:
        yield handle


@pytest.fixture(scope="module")
def grid(slide: openslide.OpenSlide) -> TileGrid:
    geometry = SlideGeometry(
        width_px=slide.dimensions[0],
        height_px=slide.dimensions[1],
        mpp_x=float(slide.properties[openslide.PROPERTY_NAME_MPP_X]),
        mpp_y=float(slide.properties[openslide.PROPERTY_NAME_MPP_Y]),
        level_dimensions=tuple(slide.level_dimensions),
    )
    return TileGrid(geometry=geometry)  # the tiler's default: 96 px, stride 96


@pytest.fixture(scope="module")
def cells() -> list[dict[str, int]]:
    with (DEMO / "demo_slide.cells.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows
    assert list(rows[0]) == ["row", "col", "label", "pcam_index"]
    return [{k: int(v) for k, v in row.items()} for row in rows]


@pytest.fixture(scope="module")
def lesion() -> Polygon:
    root = ET.parse(DEMO / "demo_slide.truth.xml").getroot()
    annotations = root.findall("./Annotations/Annotation")
    assert annotations
    assert all(a.get("PartOfGroup") == "Tumor" for a in annotations)
    assert [g.get("Name") for g in root.findall("./AnnotationGroups/Group")] == [
        "Tumor"
    ]
    polygons = []
    for annotation in annotations:
        points = sorted(
            annotation.iter("Coordinate"), key=lambda c: int(c.get("Order", -1))
        )
        polygons.append(
            Polygon([(float(c.get("X", "")), float(c.get("Y", ""))) for c in points])
        )
    assert all(p.is_valid for p in polygons)
    return unary_union(polygons)


def test_file_is_small() -> None:
    assert SLIDE.stat().st_size < 10e6


def test_opens_as_camelyon_scale_pyramid(slide: openslide.OpenSlide) -> None:
    assert slide.properties[openslide.PROPERTY_NAME_VENDOR] == "generic-tiff"
    assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(
        L0_MPP
    )
    assert float(slide.properties[openslide.PROPERTY_NAME_MPP_Y]) == pytest.approx(
        L0_MPP
    )
    assert slide.level_count >= 5
    assert slide.level_downsamples[:5] == pytest.approx((1, 2, 4, 8, 16))
    width, height = slide.dimensions
    assert width % (4 * PATCH_PX) == 0
    assert height % (4 * PATCH_PX) == 0


def test_pcam_grid_reads_level_2_as_is(grid: TileGrid) -> None:
    plan = grid.plan
    assert (plan.level, plan.resample_factor) == (2, 1.0)
    assert plan.effective_mpp == pytest.approx(PCAM_MPP)


def test_cells_fill_the_grid_once(cells: list[dict[str, int]], grid: TileGrid) -> None:
    rows, cols = grid.shape
    positions = {(c["row"], c["col"]) for c in cells}
    assert len(positions) == len(cells) > 100
    assert all(0 <= r < rows and 0 <= c < cols for r, c in positions)
    assert len({c["pcam_index"] for c in cells}) == len(cells)  # each patch once
    assert {c["label"] for c in cells} == {0, 1}
    assert len(positions) < rows * cols * 0.8  # background is left for the mask


def test_tumour_cells_are_those_whose_centre_meets_the_lesion(
    cells: list[dict[str, int]], grid: TileGrid, lesion: Polygon
) -> None:
    # PCam's label rule: tumour when the centre 32 x 32 of the patch touches tumour.
    offset = (PATCH_PX - CENTER_PX) / 2 * grid.downsample
    side = CENTER_PX * grid.downsample
    rowcol = np.array([[c["row"], c["col"]] for c in cells])
    xy = grid.coords(rowcol) + offset
    expected = [int(lesion.intersects(box(x, y, x + side, y + side))) for x, y in xy]
    assert [c["label"] for c in cells] == expected
    tumour_fraction = np.mean(expected)
    assert 0.2 < tumour_fraction < 0.6


def test_lesion_lies_in_tissue(
    cells: list[dict[str, int]], grid: TileGrid, lesion: Polygon
) -> None:
    patch = PATCH_PX * grid.downsample
    tissue = unary_union(
        [
            box(x, y, x + patch, y + patch)
            for x, y in grid.coords([[c["row"], c["col"]] for c in cells])
        ]
    )
    assert tissue.buffer(1).contains(lesion)
    assert lesion.area * L0_MPP**2 / 1e6 > 0.1  # mm2: a macro-metastasis, not ITC


def test_pixels_are_tissue_where_cells_say(
    slide: openslide.OpenSlide, cells: list[dict[str, int]], grid: TileGrid
) -> None:
    # Level 2 holds the PCam patches: stained where a patch was placed, white elsewhere.
    level2 = np.asarray(
        slide.read_region((0, 0), 2, slide.level_dimensions[2]).convert("RGB")
    )
    rows, cols = grid.shape
    means = (
        level2[: rows * PATCH_PX, : cols * PATCH_PX]
        .reshape(rows, PATCH_PX, cols, PATCH_PX, 3)
        .mean(axis=(1, 3, 4))
    )
    placed = np.zeros((rows, cols), dtype=bool)
    placed[[c["row"] for c in cells], [c["col"] for c in cells]] = True
    assert means[~placed].min() > 230
    assert means[placed].max() < 215
