"""The CLI's option tables and the run configuration built from them (one place).

Each flag maps to one field of one ``RunConfig`` section (``OPTION_FIELDS``); the
settings apply in the order: generic defaults, the chosen model's tuned settings, a
``--config`` TOML file, the flags the user set.
"""

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

from wsi.cli.model_commands import MODEL_HELP, TTA_CHOICE

__all__ = [
    "build_config",
    "flag_values",
    "polygon_options",
    "quiet_dask_logs",
    "scoring_options",
    "slide_options",
    "tiling_options",
]

F = TypeVar("F", bound=Callable[..., Any])

# CLI option name -> (RunConfig section, dataclass field). One table, so flags, the
# TOML file and the dataclasses cannot drift apart.
OPTION_FIELDS: dict[str, tuple[str, str]] = {
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


def flag_values(options: dict[str, Any], section: str) -> dict[str, Any]:
    """The dataclass fields of ``section`` that the user set as flags."""
    return {
        field: options[option]
        for option, (name, field) in OPTION_FIELDS.items()
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
            # wsi.tiles.tiler.PATCH_LAYOUTS (not imported here: --help stays instant).
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
            "staging",
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
        sections[name].update(flag_values(options, name))
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
