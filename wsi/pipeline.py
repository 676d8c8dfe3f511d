"""The one orchestrator: tile -> score -> stitch -> export, slide by slide.

Each slide's outputs go to ``OUT/<stem>/`` (see :mod:`wsi.store.layout`). A slide whose
``summary.json`` was written with the same settings is skipped; a failing slide is
recorded in the report and the batch goes on. ``run.json`` records the whole run.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from wsi.errors import BusyError, OutputError, SettingsMismatchError, WsiError
from wsi.formats.export import PolygonParams
from wsi.geometry import PATCH_PX, check_model_matches
from wsi.model_settings import TunedSections, generic_sections, tuned_sections
from wsi.progress import Progress
from wsi.provenance import settings_hash, software_versions
from wsi.regions.detection import DetectionParams
from wsi.regions.lesion_class import StagingParams
from wsi.regions.slide_score import SlideScoreParams
from wsi.run_record import Failure, RunReport, SlideResult, write_run_json
from wsi.scoring import PatchClassifier, ScoringParams, ScoringResult, score_store
from wsi.stages import SlideSummary, export_slide, stitch_slide
from wsi.store.atomic import write_json_atomic
from wsi.store.checks import (
    chunks_to_score,
    damaged_patch_chunks,
    grid_intact,
    scores_intact,
)
from wsi.store.layout import Arrays, SlideOutputs
from wsi.store.locking import discard_unused, store_lock
from wsi.store.settings_change import reworded_mismatch
from wsi.tiles.tiler import TilingParams, tile_slide
from wsi.tiles.tissue import TissueParams

__all__ = [
    "Failure",
    "RunConfig",
    "RunReport",
    "SlideResult",
    "TunedSections",
    "generic_sections",
    "run",
    "slide_outcome",
    "tuned_sections",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything a run needs; the CLI and a TOML file fill it."""

    slides: tuple[Path, ...]
    out_dir: Path
    tissue: TissueParams = field(default_factory=TissueParams)
    tiling: TilingParams = field(default_factory=TilingParams)
    scoring: ScoringParams = field(default_factory=ScoringParams)
    polygons: PolygonParams = field(default_factory=PolygonParams)
    detection: DetectionParams = field(default_factory=DetectionParams)
    slide_score: SlideScoreParams = field(default_factory=SlideScoreParams)
    staging: StagingParams = field(default_factory=StagingParams)
    mpp: float | None = None
    mpp_from_objective: bool = False
    overwrite: bool = False

    def settings(self) -> dict[str, Any]:
        """The result-shaping settings (not the slide list or where to run)."""
        scoring = asdict(self.scoring)
        for machine_only in ("scheduler", "workers", "batch_size"):
            scoring.pop(machine_only, None)
        return {
            "tissue": asdict(self.tissue),
            "tiling": asdict(self.tiling),
            "scoring": scoring,
            "polygons": asdict(self.polygons),
            "detection": asdict(self.detection),
            "slide_score": asdict(self.slide_score),
            "staging": asdict(self.staging),
            "mpp": self.mpp,
            "mpp_from_objective": self.mpp_from_objective,
        }


def _model_label(config: RunConfig) -> str:
    """The model as the overlay names it: the bundled name or the file's name."""
    from model.registry import DEFAULT_MODEL

    model = config.scoring.model_path
    return DEFAULT_MODEL if model is None else Path(model).name


def run(
    config: RunConfig,
    *,
    classifier: PatchClassifier | None = None,
    progress: Progress | None = None,
) -> RunReport:
    """Run the whole pipeline on every slide of ``config``.

    Parameters
    ----------
    config
        Slides, output folder and stage settings.
    classifier
        A loaded classifier to use instead of ``config.scoring.model_path``.
    progress
        Receives one stage at a time (tiling, scoring).

    Returns
    -------
    RunReport
        Per-slide results and failures; ``run.json`` is written beside the outputs.
    """
    if classifier is None:
        from model.registry import check_model

        # Before any slide is touched: the model exists, and takes the patches the
        # tiling settings cut (size and um/px).
        card = check_model(config.scoring.model_path)
        check_model_matches(
            model_name=str(config.scoring.model_path or "bundled model"),
            model_px=card.input_px,
            model_mpp=card.mpp,
            tile_px=PATCH_PX,
            tiles_mpp=config.tiling.mpp,
        )
    if config.scoring.scheduler:
        from wsi.scoring import check_scheduler

        check_scheduler(config.scoring.scheduler)  # seconds, not a tiled slide
    report = RunReport()
    out_dir = Path(config.out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(
            f"{out_dir}: cannot create the output folder ({err.strerror}); "
            "choose a writable `out_dir`"
        ) from err
    started = time.time()
    if config.scoring.scheduler:
        from wsi.cluster import run_slides_on_cluster

        # Whole slides are the tasks: each worker tiles, scores (its own threads),
        # stitches and exports one slide; this process only submits and reports.
        on_worker = replace(config, scoring=replace(config.scoring, scheduler=None))
        outcomes = run_slides_on_cluster(
            config.scoring.scheduler,
            config.slides,
            partial(slide_outcome, config=on_worker, classifier=classifier),
            progress=progress,
        )
    else:
        outcomes = [
            slide_outcome(
                slide, config=config, classifier=classifier, progress=progress
            )
            for slide in config.slides
        ]
    for outcome in outcomes:
        if isinstance(outcome, Failure):
            report.failures.append(outcome)
        else:
            report.results.append(outcome)
    try:
        report.run_json = write_run_json(config, report, seconds=time.time() - started)
    except OutputError as err:
        # Reported beside the slides' own errors, never instead of them.
        report.failures.append(
            Failure(slide=out_dir / "run.json", stage="report", message=str(err))
        )
    return report


def slide_outcome(
    slide: Path,
    *,
    config: RunConfig,
    classifier: PatchClassifier | None = None,
    progress: Progress | None = None,
) -> SlideResult | Failure:
    """Run one slide; its result, or its failure as one line (never raises WsiError).

    What each slide of :func:`run` goes through, here or on a cluster worker.
    """
    out_dir = Path(config.out_dir)
    stage = ["setup"]
    try:
        return _run_slide(
            slide, config, classifier=classifier, progress=progress, stage=stage
        )
    except WsiError as err:
        # Reported once, by whoever reads report.failures (the CLI prints it).
        logger.debug("%s failed: %s", slide, err, exc_info=True)
        discard_unused(SlideOutputs.for_slide(out_dir, slide).store)
        return Failure(
            slide=slide,
            stage=stage[-1],
            message=str(err),
            busy=isinstance(err, BusyError),
        )
    except OSError as err:  # disk full, permissions: record, keep the store resumable
        where = err.filename or SlideOutputs.for_slide(out_dir, slide).folder
        message = str(OutputError.write_failed(where, err, step=stage[-1]))
        logger.debug("%s failed: %s", slide, message)
        discard_unused(SlideOutputs.for_slide(out_dir, slide).store)
        return Failure(slide=slide, stage=stage[-1], message=message)


def _run_slide(
    slide: Path,
    config: RunConfig,
    *,
    classifier: PatchClassifier | None,
    progress: Progress | None,
    stage: list[str],
) -> SlideResult:
    """Run one slide; ``stage`` records the stage reached, for failure reports."""
    outputs = SlideOutputs.for_slide(config.out_dir, slide)
    digest = settings_hash(config.settings() | {"slide": str(Path(slide).resolve())})
    previous = _finished_summary(outputs, digest)
    if previous is not None and not config.overwrite:
        logger.info(
            "%s: already done with these settings; `overwrite` redoes it", slide
        )
        return _result_from_summary(slide, outputs, previous, skipped=True)
    with store_lock(outputs.store):
        timings: dict[str, float] = {}
        stage.append("tile")
        t0 = time.perf_counter()

        def tile(*, overwrite: bool) -> Any:
            return tile_slide(
                slide,
                outputs.store,
                tiling=config.tiling,
                tissue=config.tissue,
                mpp=config.mpp,
                mpp_from_objective=config.mpp_from_objective,
                overwrite=overwrite,
                progress=progress,
            )

        try:
            tiled = tile(overwrite=config.overwrite)
        except SettingsMismatchError as err:
            raise reworded_mismatch(
                err,
                outputs.store,
                slide,
                tiling=config.tiling,
                tissue=config.tissue,
                mpp=config.mpp,
            ) from err
        timings["tile"] = time.perf_counter() - t0
        stage.append("score")
        t0 = time.perf_counter()
        scored = (
            None if config.overwrite else _scored_before(outputs, config, classifier)
        )
        if (
            tiled.resumed
            and not tiled.patches_written
            and _tiles_damaged(outputs.store, rescoring=scored is None)
        ):
            scored = None  # tiled again from scratch: the scores go with the store
            stage.append("tile")
            tiled = tile(overwrite=True)
            stage.append("score")
        if scored is None:
            scored = score_store(
                outputs.store,
                params=config.scoring,
                classifier=classifier,
                overwrite=config.overwrite,
                progress=progress,
            )
        timings["score"] = time.perf_counter() - t0
        stage.append("stitch")
        t0 = time.perf_counter()
        stitched = stitch_slide(outputs, polygons=config.polygons)
        timings["stitch"] = time.perf_counter() - t0
        stage.append("export")
        t0 = time.perf_counter()
        exported = export_slide(
            outputs,
            stitched,
            params=config.polygons,
            detection=config.detection,
            scoring=config.slide_score,
            staging=config.staging,
            model_name=None if classifier is not None else _model_label(config),
        )
        timings["export"] = time.perf_counter() - t0
        summary = SlideSummary(
            slide=Path(slide),
            stem=outputs.stem,
            settings_hash=digest,
            settings=config.settings(),
            n_patches=tiled.n_patches,
            effective_mpp=tiled.effective_mpp,
            stitched=stitched,
            exported=exported,
            threshold=config.polygons.threshold,
            model_sha256=scored.model_sha256,
            runtime=scored.runtime,
            timings_s=timings,
            versions=software_versions(),
        ).as_json()
        write_json_atomic(outputs.summary_json, summary)
        return _result_from_summary(slide, outputs, summary, skipped=False)


def _tiles_damaged(store: Path, *, rescoring: bool) -> bool:
    """Whether tiles from an earlier run fail to read back where it matters.

    The patch grid always (stitching places the scores by it); with ``rescoring``,
    the patches of the chunks about to be scored.
    """
    from wsi.store.slide_store import open_store

    if not grid_intact(store):
        return True
    return rescoring and bool(
        damaged_patch_chunks(store, chunks_to_score(open_store(store), warn=False))
    )


def _scored_before(
    outputs: SlideOutputs, config: RunConfig, classifier: PatchClassifier | None
) -> ScoringResult | None:
    """The store's scores when this model and TTA made all of them, else None.

    Changing only what follows scoring (``--threshold``, polygon settings) then
    neither loads the model nor rescores: the model's identity comes from its
    sidecar, without TensorFlow.
    """
    from wsi.store.layout import Attr
    from wsi.store.slide_store import open_store

    try:
        root: Any = open_store(outputs.store)
        attrs = root.attrs.asdict()
        done = bool(attrs.get(Attr.SCORING_COMPLETE)) and bool(
            root[Arrays.SCORED][...].all()
        )
        previous = dict(attrs.get(Attr.SCORING) or {})
        n_patches = int(root[Arrays.SCORES].shape[0])
        n_chunks = int(root[Arrays.SCORED].shape[0])
    except (WsiError, OSError, KeyError, ValueError, TypeError):
        return None
    if not done or not scores_intact(outputs.store):
        return None
    try:
        sha256 = (
            classifier.sha256
            if classifier is not None
            else config.scoring.spec().identity()[2]
        )
    except (WsiError, OSError, ValueError) as err:
        logger.debug("cannot identify the model without loading it: %s", err)
        return None
    if previous.get("model_sha256") != sha256 or previous.get("tta") != (
        config.scoring.tta
    ):
        return None
    logger.info("%s: already scored by this model; not rescored", outputs.stem)
    return ScoringResult(
        n_patches=n_patches,
        n_chunks=n_chunks,
        chunks_scored=0,
        seconds=0.0,
        model_sha256=sha256,
        runtime=previous.get("runtime"),
    )


def _finished_summary(outputs: SlideOutputs, digest: str) -> dict[str, Any] | None:
    try:
        summary: dict[str, Any] = json.loads(outputs.summary_json.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if summary.get("settings_hash") != digest:
        return None
    # A finished slide whose scores were damaged since is redone (issue 30).
    intact = scores_intact(outputs.store, heatmap=True) and grid_intact(outputs.store)
    return summary if intact else None


def _result_from_summary(
    slide: Path, outputs: SlideOutputs, summary: dict[str, Any], *, skipped: bool
) -> SlideResult:
    return SlideResult(
        slide=slide,
        outputs=outputs,
        n_patches=int(summary["n_patches"]),
        max_probability=float(summary["max_probability"]),
        slide_probability=(
            float(summary["slide_probability"])
            if summary.get("slide_probability") is not None
            else None
        ),
        tumor_area_um2=float(summary["tumor_area_um2"]),
        seconds=float(sum(summary["timings_s"].values())),
        skipped=skipped,
        node_class=summary.get("node_class"),
        largest_diameter_mm=summary.get("largest_diameter_mm"),
    )
