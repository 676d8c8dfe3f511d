"""CLI commands of the slide pipeline: run (default), tile, score, stitch, view, doctor."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from wsi.cli_model import (
    MODEL_HELP,
    TTA_CHOICE,
    eval_patches_command,
    export_model_command,
    train_command,
)

F = TypeVar("F", bound=Callable[..., Any])

# CLI option name -> (RunConfig section, dataclass field). One table, so flags, the
# TOML file and the dataclasses cannot drift apart.
_OPTION_FIELDS: dict[str, tuple[str, str]] = {
    "target_mpp": ("tiling", "mpp"),
    "stride": ("tiling", "stride_px"),
    "min_tissue": ("tiling", "min_tissue_fraction"),
    "tissue_region": ("tiling", "tissue_region"),
    "chunk_patches": ("tiling", "chunk_patches"),
    "patch_layout": ("tiling", "patch_layout"),
    "min_saturation": ("tissue", "min_saturation"),
    "min_object_um2": ("tissue", "min_object_um2"),
    "min_hole_um2": ("tissue", "min_hole_um2"),
    "model_path": ("scoring", "model_path"),
    "batch_size": ("scoring", "batch_size"),
    "tta": ("scoring", "tta"),
    "scheduler": ("scoring", "scheduler"),
    "workers": ("scoring", "workers"),
    "threshold": ("polygons", "threshold"),
    "low_threshold": ("polygons", "low_threshold"),
    "simplify_um": ("polygons", "simplify_um"),
    "min_area_um2": ("polygons", "min_area_um2"),
    "polygon_sigma_um": ("polygons", "smooth_sigma_um"),
    "max_hole_um2": ("polygons", "max_hole_um2"),
    "detection_sigma_um": ("detection", "smooth_sigma_um"),
    "nms_radius_um": ("detection", "nms_radius_um"),
    "min_detection_probability": ("detection", "min_probability"),
    "slide_score": ("slide_score", "method"),
    "slide_sigma_um": ("slide_score", "smooth_sigma_um"),
}


def quiet_dask_logs() -> None:
    """Keep dask.distributed's own tracebacks off the terminal (unless -v/--debug).

    A lost scheduler makes ``distributed.client`` log reconnection tracebacks at
    ERROR; the run reports it as one line per slide instead. distributed sets its
    loggers' levels when imported, so this imports it first.
    """
    import logging

    if logging.getLogger("wsi").getEffectiveLevel() <= logging.DEBUG:
        return
    import distributed  # noqa: F401 - its import configures the loggers we quiet

    for name in ("distributed", "distributed.client", "distributed.core"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _stack(func: F, options: list[Any]) -> F:
    """Apply click options so they list in the order given."""
    for option in reversed(options):
        func = option(func)
    return func


def _flag_values(options: dict[str, Any], section: str) -> dict[str, Any]:
    """The dataclass fields of ``section`` that the user set as flags."""
    return {
        field: options[option]
        for option, (name, field) in _OPTION_FIELDS.items()
        if name == section and options.get(option) is not None
    }


def slide_options(func: F) -> F:
    """Options that say how to read a slide."""
    func = click.option(
        "--mpp",
        type=click.FloatRange(min=0, min_open=True),
        help="Level-0 um/px, for slides without resolution metadata.",
    )(func)
    func = click.option(
        "--mpp-from-objective",
        is_flag=True,
        help="Derive um/px from objective power (10 / power); a guess.",
    )(func)
    return click.option(
        "--overwrite", is_flag=True, help="Redo outputs written with other settings."
    )(func)


def tiling_options(func: F) -> F:
    """Options of the tissue mask and the patch grid."""
    options = [
        click.option(
            "--target-mpp",
            type=click.FloatRange(min=0, min_open=True),
            help="Patch resolution in um/px [0.972, PCam].",
        ),
        click.option(
            "--stride",
            type=click.IntRange(min=2, max=96),
            help="Grid stride in target px [96]; 32 = one patch per PCam centre.",
        ),
        click.option(
            "--min-tissue",
            type=click.FloatRange(0, 1),
            help="Tissue fraction a patch needs to be kept.",
        ),
        click.option(
            "--tissue-region",
            type=click.Choice(["center", "patch"]),
            help="Measure tissue in the centre 32x32 [center] or whole patch.",
        ),
        click.option(
            "--chunk-patches",
            type=click.IntRange(min=1),
            help="Patches per zarr chunk (and per scoring task).",
        ),
        click.option(
            "--patch-layout",
            # wsi.tiling.PATCH_LAYOUTS (not imported here: --help stays instant).
            type=click.Choice(["auto", "patches", "cells", "source-jpeg"]),
            help="How the store keeps pixels [auto: the slide's JPEG tiles at "
            "stride 96 where exact, cells below 96, else patches].",
        ),
        click.option(
            "--min-saturation",
            type=click.FloatRange(0, 1),
            help="Saturation floor of tissue [0.07, PCam].",
        ),
        click.option(
            "--min-object-um2",
            type=click.FloatRange(min=0),
            help="Smallest tissue object kept, um^2.",
        ),
        click.option(
            "--min-hole-um2",
            type=click.FloatRange(min=0),
            help="Holes smaller than this are filled, um^2.",
        ),
    ]
    return _stack(func, options)


def scoring_options(func: F) -> F:
    """Options of the classifier and where it runs."""
    options = [
        click.option(
            "--model",
            "model_path",
            type=click.Path(path_type=Path),
            help=MODEL_HELP,
        ),
        click.option(
            "--batch-size", type=click.IntRange(min=1), help="Patches per batch."
        ),
        click.option("--tta", type=TTA_CHOICE, help="Test-time augmentation [none]."),
        click.option(
            "--scheduler",
            metavar="ADDRESS",
            help="A dask.distributed scheduler, e.g. tcp://host:8786.",
        ),
        click.option("--workers", type=click.IntRange(min=1), help="Local threads."),
    ]
    return _stack(func, options)


def polygon_options(func: F) -> F:
    """Options of tumour polygons and detections."""
    options = [
        click.option(
            "--threshold",
            type=click.FloatRange(0, 1),
            help="Tumour probability threshold [0.5].",
        ),
        click.option(
            "--low-threshold",
            type=click.FloatRange(0, 1),
            help="Hysteresis: grow regions down to this probability.",
        ),
        click.option(
            "--simplify-um",
            type=click.FloatRange(min=0),
            help="Polygon simplification tolerance, um.",
        ),
        click.option(
            "--min-area-um2",
            type=click.FloatRange(min=0),
            help="Drop regions smaller than this, um^2.",
        ),
        click.option(
            "--polygon-sigma-um",
            type=click.FloatRange(min=0),
            help="Smooth the heatmap by this Gaussian sigma before thresholding, um.",
        ),
        click.option(
            "--max-hole-um2",
            type=click.FloatRange(min=0),
            help="Fill holes in regions up to this area, um^2.",
        ),
        click.option(
            "--detection-sigma-um",
            type=click.FloatRange(min=0),
            help="Smoothing of the heatmap for lesion candidates, um.",
        ),
        click.option(
            "--nms-radius-um",
            type=click.FloatRange(min=0, min_open=True),
            help="Least distance between lesion candidates, um.",
        ),
        click.option(
            "--min-detection-probability",
            type=click.FloatRange(0, 1),
            help="Drop lesion candidates below this probability.",
        ),
        click.option(
            "--slide-score",
            type=click.Choice(
                ["max_cell", "max_smoothed", "top_mean", "largest_region"]
            ),
            help="Which score is summary.json's slide probability.",
        ),
        click.option(
            "--slide-sigma-um",
            type=click.FloatRange(min=0),
            help="Smoothing of the heatmap for the slide score, um.",
        ),
    ]
    return _stack(func, options)


def build_config(
    ctx: click.Context,
    slides: tuple[Path, ...],
    out_dir: Path,
    config_file: Path | None,
    **options: Any,
) -> Any:
    """RunConfig from defaults, then the TOML file, then the flags the user set."""
    from wsi.pipeline import RunConfig

    base = RunConfig(slides=slides, out_dir=out_dir)
    sections: dict[str, dict[str, Any]] = {
        name: {}
        for name in (
            "tissue",
            "tiling",
            "scoring",
            "polygons",
            "detection",
            "slide_score",
        )
    }
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise click.BadParameter(
                f"{config_file}: {err}", param_hint="--config"
            ) from err
        for name, values in data.items():
            if name not in sections or not isinstance(values, dict):
                raise click.BadParameter(
                    f"{config_file}: unknown section [{name}]; use "
                    f"{', '.join(sections)}",
                    param_hint="--config",
                )
            sections[name].update(values)
    for name in sections:
        sections[name].update(_flag_values(options, name))
    # The chosen model's tuned settings come before the file's and the flags.
    from model.registry import tuned_settings

    model = sections["scoring"].get("model_path")
    for name, values in tuned_settings(model).items():
        sections[name] = values | sections[name]
    updates: dict[str, Any] = {}
    for name, values in sections.items():
        current = getattr(base, name)
        try:
            updates[name] = dataclasses.replace(current, **values)
        except (TypeError, ValueError) as err:
            raise click.BadParameter(f"[{name}] {err}", param_hint="--config") from err
    for flag in ("mpp", "mpp_from_objective", "overwrite"):
        if flag in options:
            updates[flag] = options[flag]
    return dataclasses.replace(base, **updates)


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
    """One line per failed slide: the message, which names the file, or both."""
    text = " ".join(message.split())
    return f"error: {text}" if Path(slide).name in text else f"error: {slide}: {text}"


def _print_table(report: Any) -> None:
    for failure in report.failures:
        click.echo(_error_line(failure.slide, failure.message), err=True)
    if not report.results:
        return
    rows = [("slide", "patches", "slide prob", "max cell", "tumour mm2", "time s")]
    for r in report.results:
        note = " (done before)" if r.skipped else ""
        rows.append(
            (
                r.slide.name + note,
                str(r.n_patches),
                "-" if r.slide_probability is None else f"{r.slide_probability:.3f}",
                f"{r.max_probability:.3f}",
                f"{r.tumor_area_um2 / 1e6:.3f}",
                f"{r.seconds:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        )
    click.echo(f"outputs: {report.results[0].outputs.folder.parent}")


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
    from wsi.layout import SlideOutputs
    from wsi.locking import discard_unused
    from wsi.settings_change import reworded_mismatch
    from wsi.tiling import tile_slide

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
            click.echo(_error_line(slide, str(err)), err=True)
            continue
        click.echo(
            f"{slide.name}: {result.n_patches} patches at "
            f"{result.effective_mpp:.4f} um/px -> {store}"
        )
    if failed:
        sys.exit(1)


def _stores(paths: tuple[Path, ...]) -> list[Any]:
    """Slide output folders (or their stores) -> SlideOutputs."""
    from wsi.layout import SlideOutputs

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

    params = ScoringParams(**_flag_values(options, "scoring"))
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
        click.echo(
            f"{outputs.stem}: {result.chunks_scored} of {result.n_chunks} chunks "
            f"scored in {result.seconds:.1f} s"
        )


@click.command("stitch")
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path))
@polygon_options
def stitch_command(folders: tuple[Path, ...], **options: Any) -> None:
    """Stitch scored FOLDERS into heatmaps and export polygons, detections, overlays."""
    from wsi.pipeline import generic_sections, tuned_sections
    from wsi.stages import export_slide, scored_model, stitch_slide, update_summary

    flags = {
        name: _flag_values(options, name)
        for name in ("polygons", "detection", "slide_score")
    }
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
            model_name=None if model is None else Path(model).name,
        )
        update_summary(
            outputs,
            stitched,
            exported,
            settings={
                name: dataclasses.asdict(sections[name])
                for name in ("polygons", "detection", "slide_score")
            },
        )
        click.echo(
            f"{outputs.stem}: slide probability "
            f"{exported.slide_score.probability:.3f} "
            f"(max cell {stitched.max_probability:.3f}), "
            f"{exported.n_regions} regions, {exported.n_detections} candidates "
            f"-> {outputs.folder}"
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
    from wsi.viewer.command import serve_viewer

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
        click.echo(f"{out_dir}: no slide stores (OUT/<stem>/<stem>.zarr) found")
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        click.echo(f"[{mark}] {check.name}: {check.detail}")
    if not all(c.ok for c in checks):
        sys.exit(1)


def register(group: click.Group) -> None:
    """Add every command to the ``wsi-heatmap`` group."""
    from wsi.cli_evaluate import evaluate_command

    for command in (
        run_command,
        tile_command,
        score_command,
        stitch_command,
        train_command,
        eval_patches_command,
        export_model_command,
        evaluate_command,
        view_command,
        doctor_command,
    ):
        group.add_command(command)
