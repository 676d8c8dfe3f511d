"""CLI commands of the slide pipeline: run (default), tile, score, stitch, view, doctor."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from wsi.cli.flags import say, spell_flags
from wsi.cli.model_commands import (
    eval_patches_command,
    export_model_command,
    train_command,
)
from wsi.cli.options import (
    build_config,
    flag_values,
    polygon_options,
    quiet_dask_logs,
    scoring_options,
    slide_options,
    tiling_options,
)

__all__ = ["build_config", "register", "run_command"]


@click.command("run")
@click.argument("slides", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("out"),
    show_default=True,
    help="Output folder; one sub-folder per slide.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, path_type=Path),
    help="TOML file with [tissue] [tiling] [scoring] [polygons] [detection] "
    "[slide_score] settings.",
)
@slide_options
@tiling_options
@scoring_options
@polygon_options
@click.pass_context
def run_command(
    ctx: click.Context,
    /,
    slides: tuple[Path, ...],
    out_dir: Path,
    config_file: Path | None,
    **options: Any,
) -> None:
    """Tile, score, stitch and export every SLIDE (the default command)."""
    from wsi.pipeline import run

    config = build_config(ctx, slides, out_dir, config_file, **options)
    if config.scoring.scheduler:
        quiet_dask_logs()
    report = run(config, progress=_progress())
    _print_table(report)
    if not report.ok:
        sys.exit(1)


def _progress() -> Any:
    """Progress bars on stderr: none with -q, none when stderr is not a terminal."""
    from wsi.progress import TqdmProgress

    quiet = (click.get_current_context().find_root().obj or {}).get("quiet", False)
    return TqdmProgress(leave=False, disable=True if quiet else None)


def _error_line(slide: Path, message: str) -> str:
    """One line per failed slide: the message, which names the file, or both.

    The library's settings are spelt as flags (`wsi.cli.flags`).
    """
    text = spell_flags(" ".join(message.split()))
    return f"error: {text}" if Path(slide).name in text else f"error: {slide}: {text}"


def _print_table(report: Any) -> None:
    for failure in report.failures:
        say(_error_line(failure.slide, failure.message), err=True)
    if not report.results:
        return
    header = "slide|patches|slide prob|node class|max cell|tumour mm2|time s"
    rows = [tuple(header.split("|"))]
    for r in report.results:
        note = " (done before)" if r.skipped else ""
        size = r.node_class or "-"
        if r.largest_diameter_mm is not None:
            size += f" {r.largest_diameter_mm:.2f} mm"
        rows.append(
            (
                r.slide.name + note,
                str(r.n_patches),
                "-" if r.slide_probability is None else f"{r.slide_probability:.3f}",
                size,
                f"{r.max_probability:.3f}",
                f"{r.tumor_area_um2 / 1e6:.3f}",
                f"{r.seconds:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        say("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    say(f"outputs: {report.results[0].outputs.folder.parent}")


@click.command("tile")
@click.argument("slides", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("out"),
    show_default=True,
)
@click.option("--config", "config_file", type=click.Path(exists=True, path_type=Path))
@slide_options
@tiling_options
@click.pass_context
def tile_command(
    ctx: click.Context,
    /,
    slides: tuple[Path, ...],
    out_dir: Path,
    config_file: Path | None,
    **options: Any,
) -> None:
    """Tile SLIDES into PCam-scale patch stores (OUT/<stem>/<stem>.zarr)."""
    from wsi.errors import SettingsMismatchError, WsiError
    from wsi.store.layout import SlideOutputs
    from wsi.store.locking import discard_unused
    from wsi.store.settings_change import reworded_mismatch
    from wsi.tiles.tiler import tile_slide

    config = build_config(ctx, slides, out_dir, config_file, **options)
    failed = 0
    for slide in slides:
        store = SlideOutputs.for_slide(out_dir, slide).store
        try:
            result = tile_slide(
                slide,
                store,
                tiling=config.tiling,
                tissue=config.tissue,
                mpp=config.mpp,
                mpp_from_objective=config.mpp_from_objective,
                overwrite=config.overwrite,
                progress=_progress(),
            )
        except WsiError as err:
            discard_unused(store)
            if isinstance(err, SettingsMismatchError):
                err = reworded_mismatch(
                    err,
                    store,
                    slide,
                    tiling=config.tiling,
                    tissue=config.tissue,
                    mpp=config.mpp,
                )
            if (ctx.find_root().obj or {}).get("debug"):
                raise err
            failed += 1
            say(_error_line(slide, str(err)), err=True)
            continue
        say(
            f"{slide.name}: {result.n_patches} patches at "
            f"{result.effective_mpp:.4f} um/px -> {store}"
        )
    if failed:
        sys.exit(1)


def _stores(paths: tuple[Path, ...]) -> list[Any]:
    """Slide output folders (or their stores) -> SlideOutputs."""
    from wsi.store.layout import SlideOutputs

    outputs = []
    for path in paths:
        folder = path.parent if path.suffix == ".zarr" else path
        outputs.append(SlideOutputs(folder))
    return outputs


@click.command("score")
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path))
@scoring_options
@click.option("--overwrite", is_flag=True, help="Rescore finished chunks.")
def score_command(folders: tuple[Path, ...], overwrite: bool, **options: Any) -> None:
    """Score the tiles of slide output FOLDERS (OUT/<stem>) or their .zarr stores."""
    from wsi.scoring import ScoringParams, score_store

    params = ScoringParams(**flag_values(options, "scoring"))
    if params.scheduler:
        from wsi.scoring import check_scheduler

        quiet_dask_logs()
        check_scheduler(params.scheduler)
    for outputs in _stores(folders):
        result = score_store(
            outputs.store,
            params=params,
            overwrite=overwrite,
            progress=_progress(),
        )
        say(
            f"{outputs.stem}: {result.chunks_scored} of {result.n_chunks} chunks "
            f"scored in {result.seconds:.1f} s"
        )


@click.command("stitch")
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path))
@polygon_options
def stitch_command(folders: tuple[Path, ...], **options: Any) -> None:
    """Stitch scored FOLDERS into heatmaps and export polygons, detections, overlays."""
    from wsi.model_settings import POST_SECTIONS
    from wsi.pipeline import generic_sections, tuned_sections
    from wsi.regions.lesion_class import describe_node
    from wsi.stages import export_slide, scored_model, stitch_slide, update_summary

    flags = {name: flag_values(options, name) for name in POST_SECTIONS}
    for outputs in _stores(folders):
        # The settings tuned for the model that scored the slide, then the flags
        # (a classifier passed in from Python has none: the generic defaults).
        model = scored_model(outputs)
        sections = (
            tuned_sections(model, **flags)
            if model is not None
            else generic_sections(**flags)
        )
        params = sections["polygons"]
        stitched = stitch_slide(outputs, polygons=params)
        exported = export_slide(
            outputs,
            stitched,
            params=params,
            detection=sections["detection"],
            scoring=sections["slide_score"],
            staging=sections["staging"],
            model_name=None if model is None else Path(model).name,
        )
        update_summary(
            outputs,
            stitched,
            exported,
            settings={
                name: dataclasses.asdict(sections[name])  # type: ignore[literal-required]
                for name in POST_SECTIONS
            },
        )
        say(
            f"{outputs.stem}: slide probability "
            f"{exported.slide_score.probability:.3f} "
            f"(max cell {stitched.max_probability:.3f}), "
            f"{exported.n_regions} regions, {exported.n_detections} candidates, "
            f"node class {describe_node(exported.lesions)} -> {outputs.folder}"
        )


@click.command("view")
@click.argument(
    "out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--annotations",
    type=click.Path(exists=True, path_type=Path),
    help="Ground truth to draw: a folder of <stem>.xml|.geojson|.json or one file.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8050, show_default=True)
@click.option("--no-browser", is_flag=True, help="Do not open a web browser.")
def view_command(
    out_dir: Path, annotations: Path | None, host: str, port: int, no_browser: bool
) -> None:
    """Browse the slides, heatmaps and polygons in OUT_DIR in a local web viewer."""
    from wsi.cli.view import serve_viewer

    serve_viewer(
        out_dir, annotations=annotations, host=host, port=port, browser=not no_browser
    )


@click.command("doctor")
@click.argument(
    "out_dir",
    required=False,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
def doctor_command(out_dir: Path | None) -> None:
    """Check the installation, or with OUT_DIR the slide stores of a run folder.

    Without OUT_DIR: versions, GPU, the bundled models, a slide end to end. With
    it: every OUT/<stem>/<stem>.zarr complete and undamaged.
    """
    import logging

    from wsi.doctor import check_outputs, run_checks

    wsi_logger = logging.getLogger("wsi")
    if wsi_logger.getEffectiveLevel() == logging.INFO:  # only the verdicts, unless -v
        logging.getLogger().setLevel(logging.WARNING)
    checks = run_checks() if out_dir is None else check_outputs(out_dir)
    if out_dir is not None and not checks:
        say(f"{out_dir}: no slide stores (OUT/<stem>/<stem>.zarr) found")
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        say(f"[{mark}] {check.name}: {check.detail}")
    if not all(c.ok for c in checks):
        sys.exit(1)


def register(group: click.Group) -> None:
    """Add every command to the ``wsi-heatmap`` group."""
    from wsi.cli.evaluate import evaluate_command
    from wsi.cli.stage import stage_command

    for command in (
        run_command,
        tile_command,
        score_command,
        stitch_command,
        train_command,
        eval_patches_command,
        export_model_command,
        evaluate_command,
        stage_command,
        view_command,
        doctor_command,
    ):
        group.add_command(command)
