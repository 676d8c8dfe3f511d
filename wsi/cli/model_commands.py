"""CLI commands of the patch classifier: ``train`` and ``eval-patches``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from model.registry import BUNDLED_MODELS, DEFAULT_MODEL
from model.training.network import ARCHITECTURES
from wsi.cli.flags import say, spell_flags
from wsi.geometry import PATCH_PX

#: The --model help of every command that scores (one place).
MODEL_HELP = (
    "A .keras model with its .json sidecar, or a bundled model: "
    + ", ".join(
        f"{name} [default]" if name == DEFAULT_MODEL else name
        for name in BUNDLED_MODELS
    )
    + "."
)

TTA_CHOICE = click.Choice(["none", "flips", "dihedral"])


@click.command("train")
@click.argument("train_data", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--valid",
    "valid_data",
    type=click.Path(exists=True, path_type=Path),
    help="Validation set (any layout); default: split 10% off TRAIN_DATA.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Run folder: checkpoints, log.csv, curves.png, best.keras.",
)
@click.option(
    "--arch",
    type=click.Choice(ARCHITECTURES),
    default="nasnet-mobile",
    show_default=True,
)
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option(
    "--lr",
    "learning_rate",
    type=click.FloatRange(min=0, min_open=True),
    default=1e-4,
    show_default=True,
    help="Adam learning rate.",
)
@click.option(
    "--schedule",
    type=click.Choice(["plateau", "cosine"]),
    default="plateau",
    show_default=True,
    help="plateau: halve the rate when validation AUC stalls; "
    "cosine: decay it to 1% over --epochs.",
)
@click.option(
    "--ema",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Average the weights with this momentum (e.g. 0.999); validate and save "
    "the average.",
)
@click.option(
    "--bn-recalibration",
    type=click.IntRange(min=0),
    help="With --ema: recompute the BatchNorm statistics for the averaged weights "
    "on this many training patches (default: about a thousand; 0: keep the raw "
    "weights' statistics).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--imagenet-weights",
    type=click.Path(exists=True, path_type=Path),
    help="Local ImageNet weights: NASNetMobile no-top .h5 (default: random), or an "
    "EfficientNet-Lite0 .npz (default: the one shipped).",
)
@click.option(
    "--pretrained/--no-pretrained",
    default=True,
    show_default=True,
    help="efficientnet-lite0: start from the shipped ImageNet weights.",
)
@click.option(
    "--teacher",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Distil from this saved model: it scores the very view the student sees.",
)
@click.option(
    "--label-weight",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="With --teacher: weight of the true label in the target.",
)
@click.option(
    "--dropout",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    help="Dropout rate before the sigmoid unit [default: 0.5, 0.3 for "
    "efficientnet-lite0]; 0 can help a student fit its teacher.",
)
@click.option(
    "--internal-px",
    type=int,
    default=None,
    help=f"EfficientNet-Lite: resample the {PATCH_PX} px patch to this side inside "
    f"the model [default: {PATCH_PX}, as it is].",
)
@click.option(
    "--free-rotation/--no-free-rotation",
    default=False,
    show_default=True,
    help="Add free rotations with reflection padding to the 8 symmetries.",
)
@click.option(
    "--hed",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="HED stain jitter strength (0 = off).",
)
@click.option(
    "--checkpoint-steps",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Steps between resume checkpoints.",
)
@click.option(
    "--init-from",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Start from the weights of this saved model (same --arch), "
    "e.g. the bundled one; ignored when the run folder has a backup to resume.",
)
@click.option(
    "--limit", type=click.IntRange(min=2), help="Use at most N training patches."
)
def train_command(
    train_data: Path,
    valid_data: Path | None,
    out_dir: Path,
    arch: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    schedule: str,
    ema: float | None,
    bn_recalibration: int | None,
    seed: int,
    imagenet_weights: Path | None,
    pretrained: bool,
    teacher: Path | None,
    label_weight: float,
    dropout: float | None,
    internal_px: int | None,
    free_rotation: bool,
    hed: float,
    checkpoint_steps: int,
    init_from: Path | None,
    limit: int | None,
) -> None:
    """Train a patch classifier on TRAIN_DATA; rerun the same command to resume."""
    from dataclasses import replace

    from model.training.augment import AugmentParams
    from model.training.train import TrainConfig, train

    try:
        config = TrainConfig(
            train_data=train_data,
            valid_data=valid_data,
            out_dir=out_dir,
            arch=arch,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            schedule=schedule,
            ema=ema,
            seed=seed,
            imagenet_weights=imagenet_weights,
            pretrained=pretrained,
            teacher=teacher,
            label_weight=label_weight,
            dropout=dropout,
            internal_px=internal_px,
            checkpoint_steps=checkpoint_steps,
            init_from=init_from,
            augment=AugmentParams(free_rotation=free_rotation, hed=hed),
            limit_train=limit,
        )
    except ValueError as err:  # a setting the run cannot have
        raise click.UsageError(spell_flags(str(err))) from err
    if bn_recalibration is not None:
        config = replace(config, bn_recalibration=bn_recalibration)
    result = train(config)
    say(
        f"best validation AUC {result.best_val_auc:.4f}: {result.best_model} "
        f"({result.epochs_run} epochs, {result.seconds / 60:.1f} min)"
    )


@click.command("eval-patches")
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    help=MODEL_HELP,
)
@click.option("--tta", type=TTA_CHOICE, default="none", show_default=True)
@click.option(
    "--tta-mean",
    type=click.Choice(["arithmetic", "geometric"]),
    default="arithmetic",
    show_default=True,
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    help="Write the metrics as JSON here.",
)
@click.option(
    "--roc-png", type=click.Path(path_type=Path), help="Write the ROC curve here."
)
@click.option("--limit", type=click.IntRange(min=2), help="Evaluate at most N patches.")
def eval_patches_command(
    data: Path,
    model_path: Path | None,
    tta: str,
    tta_mean: str,
    json_path: Path | None,
    roc_png: Path | None,
    limit: int | None,
) -> None:
    """Evaluate a model on labelled patches in DATA (ROC AUC, accuracy, loss)."""
    from model.training.evaluate import eval_patches

    report = eval_patches(
        data, model=model_path, tta=tta, tta_mean=tta_mean, limit=limit, roc_png=roc_png
    )
    say(
        f"n={report.n}  AUC={report.auc:.4f} (95% CI {report.auc_ci95[0]:.4f}-"
        f"{report.auc_ci95[1]:.4f})  accuracy={report.accuracy:.4f}  "
        f"loss={report.loss:.4f}  (tta={tta})"
    )
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")


@click.command("export-model")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="The .keras file to write (its .json sidecar goes beside it).",
)
@click.option(
    "--float16",
    is_flag=True,
    help="Round weights to float16 precision (needs --check-data).",
)
@click.option(
    "--check-data",
    type=click.Path(exists=True, path_type=Path),
    help="Labelled patches on which the exported model must keep its AUC.",
)
@click.option(
    "--check-limit", type=click.IntRange(min=2), help="Check on at most N patches."
)
def export_model_command(
    source: Path,
    out: Path,
    float16: bool,
    check_data: Path | None,
    check_limit: int | None,
) -> None:
    """Export a training run's best model (SOURCE: run folder or .keras) for shipping."""
    from model.training.export_bundle import export_bundle

    if float16 and check_data is None:
        raise click.UsageError(
            "--float16 needs --check-data PATCHES (labelled patches, e.g. PCam valid/): "
            "the rounding is kept only if the AUC on them does not change"
        )

    result = export_bundle(
        source, out=out, float16=float16, check_data=check_data, check_limit=check_limit
    )
    auc = ""
    if result.auc_source is not None and result.auc_exported is not None:
        auc = f"; AUC {result.auc_source:.4f} -> {result.auc_exported:.4f}"
    say(
        f"{result.path}: {result.size_bytes / 1e6:.1f} MB "
        f"(from {result.source_size_bytes / 1e6:.1f} MB){auc}"
    )
