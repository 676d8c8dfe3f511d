"""The stitch and export stages on a scored store (file I/O around pure functions)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wsi.errors import WsiError
from wsi.formats.export import (
    PolygonParams,
    heatmap_regions,
    write_asap_xml,
    write_detections_csv,
    write_geojson,
)
from wsi.geometry import MASK_CELL_PX, TileGrid
from wsi.heatmap.overlay import save_overlay_png
from wsi.heatmap.stitching import (
    png_draws_outlines,
    save_heatmap_png,
    stitch,
    write_heatmap_tiff,
)
from wsi.regions.detection import DetectionParams, lesion_candidates
from wsi.regions.lesion_class import (
    NodeClass,
    NodeLesion,
    StagingParams,
    describe_node,
    node_class,
    staging_lesions,
)
from wsi.regions.polygons import region_cells
from wsi.regions.slide_score import SlideScore, SlideScoreParams, slide_score
from wsi.slide.reader import open_slide
from wsi.store.heatmap_section import write_heatmap_zarr
from wsi.store.layout import Arrays, Attr, SlideOutputs
from wsi.store.locking import store_lock
from wsi.store.slide_store import (
    array,
    attrs_section,
    grid_from_attrs,
    open_store,
    read_tissue_mask,
)
from wsi.tiles.tissue import TissueMask, tissue_png

__all__ = [
    "Exported",
    "SlideSummary",
    "Stitched",
    "export_slide",
    "result_fields",
    "scored_model",
    "stitch_slide",
    "update_summary",
]

logger = logging.getLogger(__name__)

#: overlay.png is at least this many pixels on its long side when the slide allows.
OVERLAY_MIN_SIDE_PX = 1200


@dataclass(frozen=True, kw_only=True)
class Stitched:
    """A slide's heatmap and the grid that maps it to the slide."""

    heatmap: npt.NDArray[np.float32]
    grid: TileGrid

    @property
    def max_probability(self) -> float:
        """Highest cell probability (the slide-level score); 0 without cells."""
        finite = self.heatmap[np.isfinite(self.heatmap)]
        return float(finite.max()) if finite.size else 0.0


@dataclass(frozen=True, kw_only=True)
class Exported:
    """What the export stage wrote."""

    n_regions: int
    n_detections: int
    tumor_area_um2: float
    slide_score: SlideScore
    #: The staging view's lesions, longest first (`wsi.regions.lesion_class`).
    lesions: tuple[NodeLesion, ...] = ()

    @property
    def node_class(self) -> NodeClass:
        """The slide's (lymph node's) metastasis class."""
        return node_class(list(self.lesions))


def result_fields(stitched: Stitched, exported: Exported) -> dict[str, Any]:
    """The ``summary.json`` fields that stitching and export decide."""
    geometry = stitched.grid.geometry
    return {
        "slide_probability": exported.slide_score.probability,
        "slide_score": {
            "method": exported.slide_score.method,
            "scores": exported.slide_score.scores,
        },
        "max_probability": stitched.max_probability,
        "slide_mpp": [geometry.mpp_x, geometry.mpp_y],
        "slide_size_l0_px": [geometry.width_px, geometry.height_px],
        "tumor_area_um2": exported.tumor_area_um2,
        "n_regions": exported.n_regions,
        "n_detections": exported.n_detections,
        "node_class": exported.node_class.value,
        "largest_diameter_mm": round(exported.lesions[0].diameter_mm, 4)
        if exported.lesions
        else None,
        "lesions": [lesion.as_dict() for lesion in exported.lesions],
    }


@dataclass(frozen=True, kw_only=True)
class SlideSummary:
    """A finished slide's ``summary.json`` (docs/OUTPUTS.md): the one place of its keys.

    The run's facts (slide, settings, patches, model, timings) and the results of
    stitching and export (`result_fields`), written by `as_json` in a fixed order.
    """

    slide: Path
    stem: str
    settings_hash: str
    settings: dict[str, Any]
    n_patches: int
    effective_mpp: float
    stitched: Stitched
    exported: Exported
    threshold: float
    model_sha256: str
    runtime: str | None
    timings_s: dict[str, float]
    versions: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        """The JSON object of ``summary.json``."""
        return {
            "slide": {"path": str(Path(self.slide).resolve()), "stem": self.stem},
            "settings_hash": self.settings_hash,
            "settings": self.settings,
            "n_patches": self.n_patches,
            "effective_mpp": self.effective_mpp,
            **result_fields(self.stitched, self.exported),
            "threshold": self.threshold,
            "model_sha256": self.model_sha256,
            "runtime": self.runtime,
            "timings_s": self.timings_s,
            "versions": self.versions,
        }


def update_summary(
    outputs: SlideOutputs,
    stitched: Stitched,
    exported: Exported,
    *,
    settings: dict[str, Any],
) -> bool:
    """Bring an existing ``summary.json`` in line with a new stitch and export.

    The result fields (`result_fields`) and the given ``settings`` sections are
    replaced; the settings hash is dropped, so that the next pipeline run redoes the
    export with its own settings instead of taking this summary as its result (it
    reuses the scores). Returns False when there is no summary to update (a store
    tiled and scored by the single-stage commands).

    Raises
    ------
    OutputError
        The summary cannot be written.
    """
    import json

    from wsi.store.atomic import atomic_output

    try:
        summary = json.loads(outputs.summary_json.read_text())
    except (OSError, ValueError):
        return False
    summary |= result_fields(stitched, exported)
    summary["settings"] = dict(summary.get("settings") or {}) | settings
    summary["threshold"] = settings.get("polygons", {}).get(
        "threshold", summary.get("threshold")
    )
    summary.pop("settings_hash", None)
    with atomic_output(outputs.summary_json) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return True


def _open_scored(outputs: SlideOutputs) -> Any:
    try:
        root = open_store(outputs.store, writable=True)
    except WsiError as err:
        raise WsiError(
            f"{outputs.store}: no tile store; run 'wsi-heatmap tile' first"
        ) from err
    if not root.attrs.get(Attr.SCORING_COMPLETE):
        raise WsiError(
            f"{outputs.store}: not scored yet; run 'wsi-heatmap score' first"
        )
    return root


def scored_model(outputs: SlideOutputs) -> str | None:
    """The model (bundled name or file) that scored a store; None if not recorded."""
    root = _open_scored(outputs)
    model = attrs_section(root, Attr.SCORING).get("model")
    return None if model is None else str(model)


def stitch_slide(
    outputs: SlideOutputs, *, polygons: PolygonParams | None = None
) -> Stitched:
    """Stitch a scored store's scores into ``heatmap`` (store, TIFF and PNG).

    With ``polygons``, the PNG marks their threshold on its colour bar and outlines
    the cells of the regions it exports (smoothing, hysteresis, hole filling and the
    minimum area included), so the picture shows what the exported polygons are.
    """
    with store_lock(outputs.store):
        root = _open_scored(outputs)
        grid = grid_from_attrs(dict(root.attrs[Attr.TILING]))
        try:
            scores = np.asarray(array(root, Arrays.SCORES)[:], dtype=np.float32)
        except Exception as err:
            raise WsiError(
                f"{outputs.store / Arrays.SCORES}: a scores chunk is damaged "
                f"({type(err).__name__}); run 'wsi-heatmap score' (or the pipeline) "
                "again to rescore it"
            ) from err
        rowcol = np.asarray(array(root, Arrays.GRID)[:], dtype=np.int64)
        heatmap = stitch(scores, rowcol, shape=grid.shape)
        write_heatmap_zarr(root, heatmap, grid=grid)
        write_heatmap_tiff(heatmap, outputs.heatmap_tif, grid=grid)
        origin_l0 = grid.cell_origin_l0
        outline = None  # the exported regions' cells, only where the PNG draws them
        if polygons is not None and png_draws_outlines(heatmap.shape):
            outline = region_cells(heatmap, grid=grid, params=polygons)
        save_heatmap_png(
            heatmap,
            outputs.heatmap_png,
            threshold=None if polygons is None else polygons.threshold,
            outline=outline,
            title=outputs.stem,
            cell_size_um=float(grid.cell_size_l0) * grid.geometry.mpp,
            origin_um=(
                float(origin_l0[0]) * grid.geometry.mpp_x,
                float(origin_l0[1]) * grid.geometry.mpp_y,
            ),
        )
        return Stitched(heatmap=heatmap, grid=grid)


def export_slide(
    outputs: SlideOutputs,
    stitched: Stitched,
    *,
    params: PolygonParams,
    detection: DetectionParams | None = None,
    scoring: SlideScoreParams | None = None,
    staging: StagingParams | None = None,
    model_name: str | None = None,
) -> Exported:
    """Write polygons (GeoJSON, ASAP XML), detections and the overlay of a heatmap.

    ``detection`` and ``scoring`` (defaults when None) give the lesion candidates of
    ``detections.csv`` (`wsi.regions.detection.lesion_candidates`) and the slide score
    (`wsi.regions.slide_score.slide_score`); ``staging`` the lesions that give the node's
    size class (`wsi.regions.lesion_class.staging_lesions`). ``model_name`` is printed in the
    overlay's legend.
    """
    detection = DetectionParams() if detection is None else detection
    scoring = SlideScoreParams() if scoring is None else scoring
    with store_lock(outputs.store):
        root = _open_scored(outputs)
        grid = stitched.grid
        regions = heatmap_regions(stitched.heatmap, grid=grid, params=params)
        candidates = lesion_candidates(stitched.heatmap, grid=grid, params=detection)
        dets = [c.as_row() for c in candidates]
        score = slide_score(stitched.heatmap, grid=grid, params=scoring)
        lesions = tuple(staging_lesions(stitched.heatmap, grid=grid, params=staging))
        write_geojson(regions, outputs.geojson, slide_mpp=grid.geometry.mpp)
        write_asap_xml(regions, outputs.asap_xml)
        write_detections_csv(dets, outputs.detections_csv)
        tissue = read_tissue_mask(outputs.store)
        thumbnail, mask, downsample = _overlay_background(root, grid, tissue)
        save_overlay_png(
            thumbnail=thumbnail,
            tissue_mask=mask,
            heatmap=stitched.heatmap,
            grid=grid,
            thumbnail_downsample=downsample,
            regions=regions,
            path=outputs.overlay_png,
            model_name=model_name,
            verdict=verdict_lines(score.probability, lesions),
            lesions=lesions,
        )
        tissue_png(tissue, outputs.tissue_png)
        area = float(sum(r.area_um2 for r in regions))
        logger.info(
            "%s: %d regions, %.0f um2, %d detections, slide probability %.3f (%s)",
            outputs.stem,
            len(regions),
            area,
            len(dets),
            score.probability,
            score.method,
        )
        return Exported(
            n_regions=len(regions),
            n_detections=len(dets),
            tumor_area_um2=area,
            slide_score=score,
            lesions=lesions,
        )


def verdict_lines(probability: float, lesions: tuple[NodeLesion, ...]) -> list[str]:
    """The overlay's lines about the slide: its probability, the node's class.

    Examples
    --------
    >>> verdict_lines(0.05, ())
    ['slide probability 0.05', 'node class: negative']
    """
    return [
        f"slide probability {probability:.2f}",
        f"node class: {describe_node(lesions)}",
    ]


def _overlay_background(
    root: Any, grid: TileGrid, tissue: TissueMask
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_], float]:
    """Thumbnail, tissue mask and their downsample for ``overlay.png``.

    The stored thumbnail (8 target px per pixel) is used as is when it is at least
    ``OVERLAY_MIN_SIDE_PX`` on its long side; a smaller slide is read again from the
    slide file, k times finer (never finer than the patches), so that the overlay is
    large enough to look at. Without the slide file, the stored thumbnail is used.
    """
    tiling = dict(root.attrs[Attr.TILING])
    thumbnail, mask, downsample = tissue.thumbnail, tissue.mask, tissue.downsample
    k = min(MASK_CELL_PX, math.ceil(OVERLAY_MIN_SIDE_PX / max(thumbnail.shape[:2])))
    slide_path = Path(str(tiling.get("slide", {}).get("path", "")))
    if k <= 1 or not slide_path.is_file():
        return thumbnail, mask, downsample
    try:
        with open_slide(slide_path, mpp=grid.geometry.mpp) as slide:
            plan = slide.geometry.plan_for_downsample(downsample / k)
            height, width = thumbnail.shape[:2]
            rgb = slide.read_target(
                plan, x_px=0, y_px=0, width_px=width * k, height_px=height * k
            )
    except WsiError as err:
        logger.warning("overlay: %s; using the stored thumbnail", err)
        return thumbnail, mask, downsample
    return rgb, np.repeat(np.repeat(mask, k, axis=0), k, axis=1), downsample / k
