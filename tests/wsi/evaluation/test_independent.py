"""A second, independent computation of the Camelyon16 metrics, from the protocol text.

The library rasterises polygons straight at level 5 (pixel centres), grows tumour
with a Euclidean distance transform, fills holes with scipy, labels and measures
regions with scikit-image and interpolates the FROC with ``numpy.interp``. Here the
same protocol is followed another way: the truth is drawn with Pillow at level 3
(1.944 um/px) and reduced to level 5 by majority of 4 x 4 blocks, as a mask
pyramid would; tumour is grown by dilation with a disk; holes are the background
components (4-connected) that do not reach the border; the major axis comes from the
eigenvalues of each region's pixel covariance; the FROC is read off the swept curve
by explicit linear interpolation. Both run on synthetic slides carrying real
Camelyon16 lesion outlines (with their exclusion holes) at their real size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.ndimage as ndi
import shapely
import skimage.measure
from PIL import Image, ImageDraw
from shapely.affinity import translate
from shapely.geometry import Polygon

from wsi.evaluation import (
    EvalConfig,
    EvalGrid,
    evaluate,
    evaluation_mask,
    read_ncrf_json,
)
from wsi.evaluation.masks import rasterize_polygons

FIXTURES = Path(__file__).parents[2] / "fixtures" / "annotations"
MPP = 0.243
LEVEL5 = 32
RATES = (0.25, 0.5, 1, 2, 4, 8)

# slide -> (level-0 size, [(fixture lesion, level-0 offset of its box, detections)]);
# detections: "hit" once, "twice" (two hits), "miss" (none).
SLIDES: dict[
    str, tuple[tuple[int, int], list[tuple[tuple[str, str], tuple[int, int], str]]]
] = {
    "Tumor_A": (
        (40000, 32000),
        [
            (("Tumor_014", "_3"), (2000, 2000), "twice"),  # 2.6 mm, 6 exclusion holes
            (("Tumor_011", "_9"), (20000, 3000), "hit"),  # 53 x 133 um: ITC
            (("Tumor_009", "_2"), (20000, 12000), "miss"),  # 249 x 403 um
            (("Tumor_013", "_3"), (30000, 20000), "hit"),  # 224 x 244 um
        ],
    ),
    "Tumor_B": (
        (30000, 20000),
        [
            (("Tumor_007", "_1"), (3000, 3000), "hit"),  # 364 x 275 um
            (("Tumor_007", "_1"), (4450, 3000), "twice"),  # 42 um to its right: merges
            (("Tumor_019", "_1"), (3000, 12000), "twice"),  # 51 x 39 um: ITC
            (("Tumor_013", "_3"), (15000, 10000), "miss"),
        ],
    ),
    "Normal_A": ((20000, 20000), []),
    "Normal_B": ((24000, 16000), []),
}


def _fixture_lesions() -> dict[tuple[str, str], dict[str, list[Any]]]:
    lesions = {}
    for name in ("ncrf_lesions.json", "ncrf_small_lesions.json"):
        for item in json.loads((FIXTURES / name).read_text())["lesions"]:
            for positive in item["positive"]:
                lesions[(item["slide"], positive["name"])] = {
                    "positive": [positive],
                    "negative": item["negative"],
                }
    return lesions


def _shift(vertices: list[list[float]], dx: float, dy: float) -> list[list[float]]:
    return [[x + dx, y + dy] for x, y in vertices]


def _write_truth(
    folder: Path,
) -> tuple[dict[str, list[Polygon]], dict[str, list[tuple[Polygon, str]]]]:
    """NCRF JSON per tumour slide: the polygons the files hold, and each lesion placed."""
    lesions = _fixture_lesions()
    folder.mkdir(parents=True)
    polygons: dict[str, list[Polygon]] = {}
    placed_lesions: dict[str, list[tuple[Polygon, str]]] = {}
    for stem, (_, placed) in SLIDES.items():
        if not placed:
            continue
        positive: list[dict[str, Any]] = []
        negative: list[dict[str, Any]] = []
        for key, (ox, oy), plan in placed:
            lesion = lesions[key]
            outline = shapely.make_valid(Polygon(lesion["positive"][0]["vertices"]))
            x0, y0, _, _ = outline.bounds
            for group, out in (("positive", positive), ("negative", negative)):
                for item in lesion[group]:
                    out.append(
                        {
                            "name": item["name"],
                            "vertices": _shift(item["vertices"], ox - x0, oy - y0),
                        }
                    )
            placed_lesions.setdefault(stem, []).append(
                (translate(outline, ox - x0, oy - y0), plan)
            )
        path = folder / f"{stem}.json"
        path.write_text(json.dumps({"positive": positive, "negative": negative}))
        polygons[stem] = read_ncrf_json(path)
    return polygons, placed_lesions


def _detections(
    stem: str,
    polygons: list[Polygon],
    placed: list[tuple[Polygon, str]],
    rng: np.random.Generator,
) -> list[tuple[float, int, int]]:
    """Hits inside lesions as planned, and false positives over 300 um from tumour."""
    (width, height), _ = SLIDES[stem]
    tumour = shapely.union_all(polygons) if polygons else None
    rows: list[tuple[float, float, float]] = []
    for outline, plan in placed:
        inside = outline.intersection(tumour) if tumour is not None else outline
        parts = getattr(inside, "geoms", [inside])
        point = max(parts, key=lambda g: g.area).representative_point()
        for _ in range({"miss": 0, "hit": 1, "twice": 2}[plan]):
            rows.append((float(rng.uniform(0.05, 1)), point.x, point.y))
    n_hits = len(rows)
    while len(rows) < n_hits + 6:
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        if tumour is None or tumour.distance(shapely.Point(x, y)) * MPP > 300:
            rows.append((float(rng.uniform(0, 1)), x, y))
    return [(round(p, 6), int(x), int(y)) for p, x, y in rows]


def _write_outputs(
    out: Path,
    truth: dict[str, list[Polygon]],
    placed: dict[str, list[tuple[Polygon, str]]],
) -> dict[str, list[tuple[float, int, int]]]:
    rng = np.random.default_rng(2016)
    detections = {}
    for stem, ((width, height), _) in SLIDES.items():
        folder = out / stem
        folder.mkdir(parents=True)
        rows = _detections(stem, truth.get(stem, []), placed.get(stem, []), rng)
        (folder / "detections.csv").write_text(
            "".join(f"{p:.6f},{x},{y}\n" for p, x, y in rows)
        )
        summary = {
            "slide_probability": 0.5,
            "slide_mpp": MPP,
            "slide_size_l0_px": [width, height],
        }
        (folder / "summary.json").write_text(json.dumps(summary))
        detections[stem] = rows
    return detections


# -- the independent computation ---------------------------------------------------


def _level5_truth(polygons: list[Polygon], size: tuple[int, int]) -> np.ndarray:
    """Draw at level 3 with Pillow (holes cleared), reduce 4 x 4 by majority."""
    width, height = size
    shape5 = (-(-height // LEVEL5), -(-width // LEVEL5))
    level3 = np.zeros((shape5[0] * 4, shape5[1] * 4), bool)
    for polygon in polygons:
        image = Image.new("1", (level3.shape[1], level3.shape[0]), 0)
        draw = ImageDraw.Draw(image)
        draw.polygon([(x / 8, y / 8) for x, y in polygon.exterior.coords], fill=1)
        for ring in polygon.interiors:
            draw.polygon([(x / 8, y / 8) for x, y in ring.coords], fill=0)
        level3 |= np.asarray(image, dtype=bool)
    blocks = level3.reshape(shape5[0], 4, shape5[1], 4).mean(axis=(1, 3))
    majority: np.ndarray = blocks >= 0.5
    return majority


def _protocol_labels(
    truth: np.ndarray, eval_mpp: float
) -> tuple[np.ndarray, set[int], dict[int, float]]:
    """Grow by 75/2 um (disk), fill holes, 8-connected labels, ITC by major axis."""
    radius = 75 / (2 * eval_mpp)
    reach = int(np.ceil(radius))
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    grown = ndi.binary_dilation(truth, structure=dy**2 + dx**2 < radius**2)
    background, _ = ndi.label(~grown)  # 4-connected
    outside = set(
        np.unique(
            np.r_[background[0], background[-1], background[:, 0], background[:, -1]]
        )
    )
    filled = grown | ~np.isin(background, list(outside - {0}))
    labels, n = ndi.label(filled, structure=np.ones((3, 3)))
    axes: dict[int, float] = {}
    for k in range(1, n + 1):
        rows, cols = np.nonzero(labels == k)
        cov = np.cov(np.stack([rows, cols]).astype(float), bias=True)
        axes[k] = float(4 * np.sqrt(max(np.linalg.eigvalsh(cov).max(), 0.0)))
    itc = {k for k, axis in axes.items() if axis < 275 / eval_mpp}
    return labels, itc, axes


@dataclass
class ProtocolSlide:
    """A slide's lesion labels, and its detections as (probability, where)."""

    lesions: list[int] = field(default_factory=list)
    detections: list[tuple[float, str | int]] = field(default_factory=list)


def _protocol_froc(slides: list[ProtocolSlide]) -> dict[float, float]:
    """Sweep every detection probability; interpolate sensitivity at each FP rate."""
    n_slides = len(slides)
    n_lesions = sum(len(s.lesions) for s in slides)
    thresholds = sorted({p for s in slides for p, _ in s.detections})
    points = [(0.0, 0.0)]
    for t in thresholds:
        n_fp = sum(
            1 for s in slides for p, where in s.detections if where == "fp" and p >= t
        )
        found = sum(
            1
            for s in slides
            for lesion in s.lesions
            if any(p >= t and where == lesion for p, where in s.detections)
        )
        points.append((n_fp / n_slides, found / n_lesions))
    by_fp: dict[float, list[float]] = {}
    for fp, sens in points:
        by_fp.setdefault(fp, []).append(sens)
    fps = sorted(by_fp)
    result: dict[float, float] = {}
    for rate in RATES:
        if rate >= fps[-1]:
            result[rate] = max(by_fp[fps[-1]])
            continue
        if rate in by_fp:
            result[rate] = max(by_fp[rate])
            continue
        a = max(f for f in fps if f < rate)
        b = min(f for f in fps if f > rate)
        sa, sb = max(by_fp[a]), min(by_fp[b])
        result[rate] = sa + (sb - sa) * (rate - a) / (b - a)
    return result


def test_vector_and_mask_computations_agree_on_real_lesion_shapes(
    tmp_path: Path,
) -> None:
    truth, placed = _write_truth(tmp_path / "truth")
    detections = _write_outputs(tmp_path / "out", truth, placed)
    report = evaluate(
        EvalConfig(
            out_dir=tmp_path / "out", annotations=tmp_path / "truth", plots=False
        )
    )
    assert report.ok
    by_stem = {s.stem: s for s in report.slides}

    protocol_slides: list[ProtocolSlide] = []
    for stem, (size, _) in SLIDES.items():
        rows = detections[stem]
        if stem not in truth:
            protocol_slides.append(
                ProtocolSlide(detections=[(p, "fp") for p, _, _ in rows])
            )
            continue
        mask = _level5_truth(truth[stem], size)
        labels, itc, axes = _protocol_labels(mask, 32 * MPP)
        lesions = sorted(set(range(1, labels.max() + 1)) - itc)
        tagged: list[tuple[float, str | int]] = []
        for p, x, y in rows:
            label = int(labels[int(y // LEVEL5), int(x // LEVEL5)])
            tagged.append((p, "fp" if label == 0 else "itc" if label in itc else label))
        protocol_slides.append(ProtocolSlide(lesions=lesions, detections=tagged))

        # the same regions, lesions and ITC, slide by slide ...
        evaluated = by_stem[stem]
        assert evaluated.n_lesions == len(lesions)
        assert evaluated.n_itc == len(itc)
        assert evaluated.n_false_positives == sum(1 for _, w in tagged if w == "fp")
        assert evaluated.n_ignored_itc == sum(1 for _, w in tagged if w == "itc")
        assert evaluated.n_detected == len(
            {w for _, w in tagged if w not in ("fp", "itc")}
        )
        # ... with the same extent and major axes, up to the two rasterisers' edges
        grid = EvalGrid.for_slide(width_px=size[0], height_px=size[1], slide_mpp=MPP)
        vector = evaluation_mask(rasterize_polygons(truth[stem], grid), grid)
        ours = np.zeros(grid.shape, bool)
        r0, c0 = vector.offset_rc
        ours[r0 : r0 + vector.labels.shape[0], c0 : c0 + vector.labels.shape[1]] = (
            vector.labels > 0
        )
        iou = (ours & (labels > 0)).sum() / (ours | (labels > 0)).sum()
        assert iou > 0.95
        regions = skimage.measure.regionprops(vector.labels)  # type: ignore[no-untyped-call]
        ours_axes = sorted(r.axis_major_length for r in regions)
        assert ours_axes == pytest.approx(sorted(axes.values()), abs=1.5)

    expected = _protocol_froc(protocol_slides)
    assert report.froc is not None
    assert report.froc.sensitivity_at == pytest.approx(expected, abs=1e-12)
    assert report.froc.froc == pytest.approx(
        np.mean(list(expected.values())), abs=1e-12
    )
    # the case is not trivial: lesions missed, hit twice, merged; ITC hit; FPs
    assert [
        (s.stem, s.n_lesions, s.n_itc, s.n_detected, s.n_ignored_itc)
        for s in report.slides
    ] == [
        ("Normal_A", 0, 0, 0, 0),
        ("Normal_B", 0, 0, 0, 0),
        ("Tumor_A", 3, 1, 2, 1),
        ("Tumor_B", 2, 1, 1, 2),
    ]
    assert all(s.n_false_positives == 6 for s in report.slides)
    assert 0 < report.froc.froc < 1
    assert report.n_lesions == sum(len(s.lesions) for s in protocol_slides)
