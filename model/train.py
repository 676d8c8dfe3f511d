"""Train a patch classifier on PCam, resumably, selecting on validation AUC.

The output folder holds ``backup/`` (the resume point, written every
``checkpoint_steps`` steps and at each epoch end), ``best.keras`` + ``best.json`` (the
model with the best validation AUC so far, with its sidecar), ``log.csv`` and
``curves.png``. Restarting the same command after a kill continues from the backup.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from model.augment import AugmentParams
from model.callbacks import BestCheckpoint, CurvesPlot
from model.data import PatchSet, open_patch_set
from model.dataset import make_dataset
from model.network import build_model

__all__ = ["TrainConfig", "TrainResult", "train"]

logger = logging.getLogger(__name__)

LARGE_BATCH = 256


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that defines a training run."""

    train_data: Path
    valid_data: Path
    out_dir: Path
    arch: str = "nasnet-mobile"
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-4
    lr_patience: int = 2
    early_stopping_patience: int = 6
    seed: int = 0
    imagenet_weights: Path | None = None
    augment: AugmentParams = field(default_factory=AugmentParams)
    checkpoint_steps: int = 200
    limit_train: int | None = None
    limit_valid: int | None = None
    steps_per_epoch: int | None = None


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """Where the best model is, and how good it was."""

    best_model: Path
    best_val_auc: float
    epochs_run: int
    seconds: float


def train(config: TrainConfig) -> TrainResult:
    """Train (or resume) a run described by ``config``; see the module docstring."""
    import keras
    import tensorflow as tf

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_set = open_patch_set(config.train_data, split="train", limit=config.limit_train)
    valid_set = open_patch_set(config.valid_data, split="valid", limit=config.limit_valid)
    logger.info("train: %d patches, valid: %d patches", len(train_set), len(valid_set))

    gpus = tf.config.list_physical_devices("GPU")
    strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    if global_batch > LARGE_BATCH:
        logger.warning(
            "global batch %d is large: expect a wider generalisation gap; scale the "
            "learning rate with the batch and add warm-up (see README, Training)",
            global_batch,
        )
    with strategy.scope():
        model = build_model(config.arch, imagenet_weights=config.imagenet_weights,
                            seed=config.seed)
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss="binary_crossentropy",
            metrics=[keras.metrics.AUC(name="auc", num_thresholds=1000), "accuracy"],
        )
    train_ds = make_dataset(train_set, batch_size=global_batch, training=True,
                            augment=config.augment, seed=config.seed)
    valid_ds = make_dataset(valid_set, batch_size=256, training=False)
    recipe = _recipe(config, train_set)
    (out / "config.json").write_text(json.dumps(recipe, indent=2, default=str) + "\n")

    best = BestCheckpoint(out, recipe=recipe)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup"), save_freq=config.checkpoint_steps,
                                         delete_checkpoint=False),
        keras.callbacks.CSVLogger(str(out / "log.csv"), append=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_auc", mode="max", factor=0.5,
                                          patience=config.lr_patience, min_lr=1e-6),
        keras.callbacks.EarlyStopping(monitor="val_auc", mode="max",
                                      patience=config.early_stopping_patience),
        best,
        CurvesPlot(out),
    ]
    start = time.perf_counter()
    steps = config.steps_per_epoch or max(1, len(train_set) // global_batch)
    history = model.fit(train_ds, validation_data=valid_ds, epochs=config.epochs,
                        steps_per_epoch=steps, callbacks=callbacks,
                        verbose=2)
    seconds = time.perf_counter() - start
    return TrainResult(best_model=out / "best.keras", best_val_auc=best.best,
                       epochs_run=len(history.epoch), seconds=seconds)


def _recipe(config: TrainConfig, train_set: PatchSet) -> dict[str, Any]:
    recipe = asdict(config)
    recipe["augment"] = asdict(config.augment)
    recipe["train_data_hash"] = train_set.fingerprint()
    recipe["n_train"] = len(train_set)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in recipe.items()}
