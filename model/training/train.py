"""Train a patch classifier on PCam, resumably, selecting on validation AUC.

The output folder holds ``backup/`` (the resume point, written every
``checkpoint_steps`` steps and at each epoch end), ``best.keras`` + ``best.json`` (the
model with the best validation AUC so far, with its sidecar), ``log.csv`` and
``curves.png``. Restarting the same command after a kill continues from the backup.

Notes
-----
1. Resuming restores the weights and optimizer state of the last backup and starts
   again at the beginning of the epoch that was running; the data stream skips the
   batches of the finished epochs, so it is the one an uninterrupted run would see.
   The steps of the interrupted epoch that ran before the last backup are run again
   on fresh batches. Early-stopping patience restarts from zero. A cosine schedule
   follows the optimizer's step count, so it resumes where it was.
2. Large global batches (many GPUs, or ``batch_size`` > 256) train to a wider
   generalisation gap at the same number of epochs: scale the learning rate with
   the batch (linear rule, ``lr * batch / 32``) and warm it up over the first epochs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from model.card import HELD_OUT_SPLITS, in_held_out_split, read_card
from model.training.augment import AugmentParams
from model.training.batchnorm import (
    RECALIBRATION_PATCHES,
    SwapEMAWeightsRecalibrated,
    recalibration_patches,
)
from model.training.callbacks import (
    BestCheckpoint,
    CurvesPlot,
    ResumableBackup,
    resume_epoch,
)
from model.training.data import (
    PatchSet,
    open_patch_set,
    split_patch_set,
)
from model.training.dataset import make_dataset
from model.training.network import (
    ARCHITECTURES,
    PRETRAINED_SHIPPED,
    build_model,
    cached_imagenet_weights,
    check_internal_px,
)

__all__ = ["TrainConfig", "TrainResult", "build_network", "train"]

logger = logging.getLogger(__name__)

LARGE_BATCH = 256
SCHEDULES = ("plateau", "cosine")
COSINE_FLOOR = 0.01
"""The cosine schedule ends at this fraction of the starting learning rate."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that defines a training run.

    ``imagenet_weights`` None with ``use_cached_imagenet`` takes the NASNetMobile
    weights already in the Keras cache, if any (nothing is downloaded).
    ``valid_data`` None splits ``valid_fraction`` of the training set off (stratified,
    before any augmentation), for sets such as the Kaggle copy that have no
    validation split of their own. ``init_from`` starts from the weights of a saved
    model of the same architecture (e.g. the bundled one; the optimizer starts fresh),
    unless the run folder already has a backup to resume from.

    ``schedule`` "plateau" halves the learning rate when validation AUC stalls for
    ``lr_patience`` epochs; "cosine" decays it from ``learning_rate`` to
    ``COSINE_FLOOR`` times that over all ``epochs``. ``ema`` (a momentum such as 0.999)
    keeps an exponential moving average of the weights: validation, ``best.keras``
    and the final model use the averaged weights, training steps the raw ones; their
    BatchNorm statistics are recomputed for them on ``bn_recalibration`` fixed,
    un-augmented training patches (0: keep the raw weights' statistics;
    :mod:`model.training.batchnorm`).

    ``pretrained`` starts architectures whose ImageNet weights ship with the package
    (EfficientNet-Lite0) from them. ``teacher`` (a saved model) turns the run into
    distillation: the target of every training patch is
    ``label_weight * label + (1 - label_weight) * teacher(view)``, the teacher seeing
    exactly the augmented view the student sees.
    ``dropout`` sets the head's dropout rate (None:
    the architecture's default, ``model.training.network.build_model``); it has no weights,
    so ``init_from`` works across rates. ``internal_px`` (EfficientNet-Lite) resamples
    the patch to that side inside the model (``build_model``).
    With soft targets (a teacher) the loss trains on them, while the training
    ``auc`` and ``accuracy`` of ``log.csv`` still compare the predictions with the
    true 0/1 labels.
    """

    train_data: Path
    valid_data: Path | None
    out_dir: Path
    arch: str = "nasnet-mobile"
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-4
    lr_patience: int = 2
    early_stopping_patience: int = 6
    seed: int = 0
    imagenet_weights: Path | None = None
    use_cached_imagenet: bool = True
    augment: AugmentParams = field(default_factory=AugmentParams)
    checkpoint_steps: int = 200
    limit_train: int | None = None
    limit_valid: int | None = None
    steps_per_epoch: int | None = None
    valid_fraction: float = 0.1
    init_from: Path | None = None
    schedule: str = "plateau"
    ema: float | None = None
    bn_recalibration: int = RECALIBRATION_PATCHES
    pretrained: bool = True
    teacher: Path | None = None
    label_weight: float = 0.0
    dropout: float | None = None
    internal_px: int | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        check_internal_px(self.arch, self.internal_px)
        for name in ("train_data", "valid_data"):
            folder = getattr(self, name)
            if folder is not None and in_held_out_split(folder):
                raise ValueError(
                    f"{name} {folder} is a held-out split ({', '.join(HELD_OUT_SPLITS)})"
                    ", kept for choosing models and settings: train on train/ and "
                    "stop on valid/"
                )
        for name in ("epochs", "batch_size", "checkpoint_steps"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"{name} must be at least 1, got {getattr(self, name)}"
                )
        if not self.learning_rate > 0:
            raise ValueError(
                f"learning_rate must be positive, got {self.learning_rate}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule must be one of {SCHEDULES}, got {self.schedule!r}"
            )
        if self.ema is not None and not 0 < self.ema < 1:
            raise ValueError(f"ema must be between 0 and 1, got {self.ema}")
        if self.bn_recalibration < 0:
            raise ValueError(
                f"bn_recalibration must be non-negative, got {self.bn_recalibration}"
            )
        if not 0 <= self.label_weight <= 1:
            raise ValueError(
                f"label_weight must be between 0 and 1, got {self.label_weight}"
            )
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(
                f"steps_per_epoch must be at least 1, got {self.steps_per_epoch}"
            )


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """Where the best model is, and how good it was."""

    best_model: Path
    best_val_auc: float
    epochs_run: int
    seconds: float


def build_network(config: TrainConfig) -> Any:
    """The network of ``config`` (``model.training.network.build_model``)."""
    return build_model(
        config.arch,
        imagenet_weights=config.imagenet_weights,
        pretrained=config.pretrained,
        seed=config.seed,
        dropout=config.dropout,
        internal_px=config.internal_px,
    )


def train(
    config: TrainConfig,
    *,
    callbacks: Sequence[Any] = (),
    build: Callable[[TrainConfig], Any] | None = None,
    loss: Any = None,
    targets: Callable[[Any, int], Any] | None = None,
    patches: Callable[[PatchSet], PatchSet] | None = None,
    groups: Callable[[PatchSet, PatchSet], Any] | None = None,
    extra_recipe: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train (or resume) a run described by ``config``; see the module docstring.

    Parameters
    ----------
    config
        The run.
    callbacks
        Extra Keras callbacks, called after the run's own (progress bars, tests).
    build
        Builds the uncompiled network from ``config`` instead of
        ``model.training.network.build_model`` (a hook for experiments, research/): it must
        take the 96x96 patch and return one probability.
    loss
        A Keras loss for soft (teacher) targets instead of
        ``model.training.distill.target_crossentropy`` (a hook for experiments, research/):
        it gets ``[B, 2]`` labels (target, true label) and ``[B, 1]`` predictions.
    targets
        Maps the augmented training batches ``(views, labels)`` to
        ``(views', [B, 2 + k] labels)`` (target, true label, extra columns) instead
        of ``model.training.distill.distillation_targets`` (a hook for experiments,
        research/); it also gets the index of the run's first batch (a resumed run
        starts later). The run then trains on soft targets, as with a teacher.
    patches
        The training patches the run uses, from the set ``config.train_data`` opens
        (before a validation part is split off): e.g. all but one fold (a hook for
        experiments, research/).
    groups
        One integer per training patch, from ``(training patches, the opened set)``;
        the training batches then carry them as a third element
        (``model.training.dataset.make_dataset``), for a ``targets`` hook.
    extra_recipe
        Entries added to the recipe (``config.json`` and the card), e.g. what an
        experiment's hooks did.

    Raises
    ------
    DataError
        A patch set is malformed (reported before any training step).
    """
    import keras
    import tensorflow as tf

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    valid_set: PatchSet
    train_set: PatchSet = open_patch_set(
        config.train_data, split="train", limit=config.limit_train
    )
    source = train_set
    if patches is not None:
        train_set = patches(train_set)
        logger.info("training on %s: %d patches", train_set.name, len(train_set))
    if config.valid_data is None:
        train_set, valid_set = split_patch_set(
            train_set, valid_fraction=config.valid_fraction, seed=config.seed
        )
        logger.info(
            "no validation set given: split %.0f%% of %s off",
            100 * config.valid_fraction,
            config.train_data,
        )
    else:
        valid_set = open_patch_set(
            config.valid_data, split="valid", limit=config.limit_valid
        )
    logger.info("train: %d patches, valid: %d patches", len(train_set), len(valid_set))

    gpus = tf.config.list_physical_devices("GPU")
    strategy = (
        tf.distribute.MirroredStrategy()
        if len(gpus) > 1
        else tf.distribute.get_strategy()
    )
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    if global_batch > LARGE_BATCH:
        logger.warning(
            "global batch %d is large: expect a wider generalisation gap; scale the "
            "learning rate with the batch and add warm-up (see README, Training)",
            global_batch,
        )
    if (
        config.imagenet_weights is None
        and config.use_cached_imagenet
        and config.arch == "nasnet-mobile"
    ):
        cached = cached_imagenet_weights()
        if cached is not None:
            logger.info("using the ImageNet weights in the Keras cache: %s", cached)
            config = replace(config, imagenet_weights=cached)
    steps = config.steps_per_epoch or max(1, len(train_set) // global_batch)
    with strategy.scope():
        model = (build or build_network)(config)
        if config.init_from is not None and not resume_epoch(out / "backup"):
            _init_weights(model, config.init_from, arch=config.arch)
        teacher = None
        if config.teacher is not None:
            from model.training.distill import load_teacher

            teacher = load_teacher(config.teacher)
        soft = _soft_targets(config) or targets is not None
        model.compile(
            optimizer=_optimizer(config, steps), **_loss_and_metrics(soft, loss)
        )
    first_epoch = resume_epoch(out / "backup")
    if first_epoch:
        logger.info("resuming %s at epoch %d", out, first_epoch + 1)
    train_ds = make_dataset(
        train_set,
        batch_size=global_batch,
        training=True,
        augment=config.augment,
        seed=config.seed,
        start_batch=first_epoch * steps,
        groups=None if groups is None else groups(train_set, source),
    )
    valid_ds = make_dataset(valid_set, batch_size=256, training=False)
    if soft:
        from model.training.distill import distillation_targets, paired_labels

        train_ds = (
            targets(train_ds, first_epoch * steps)
            if targets is not None
            else distillation_targets(
                train_ds, teacher, label_weight=config.label_weight
            )
        )
        valid_ds = paired_labels(valid_ds)
    recipe = _recipe(config, train_set) | dict(extra_recipe or {})
    (out / "config.json").write_text(json.dumps(recipe, indent=2, default=str) + "\n")

    best = BestCheckpoint(out, recipe=recipe)
    run_callbacks = [
        ResumableBackup(
            str(out / "backup"),
            save_freq=config.checkpoint_steps,
            double_checkpoint=True,
            delete_checkpoint=False,
        ),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(out / "log.csv"), append=True),
        *_schedule_callbacks(config, train_set),
        keras.callbacks.EarlyStopping(
            monitor="val_auc", mode="max", patience=config.early_stopping_patience
        ),
        best,
        CurvesPlot(out),
        *callbacks,
    ]
    start = time.perf_counter()
    history = model.fit(
        train_ds,
        validation_data=valid_ds,
        epochs=config.epochs,
        steps_per_epoch=steps,
        callbacks=run_callbacks,
        verbose=2,
    )
    seconds = time.perf_counter() - start
    if not (out / "best.keras").exists():
        logger.error(
            "%s: no epoch produced a finite validation AUC; no best.keras "
            "was written (check the data and the learning rate)",
            out,
        )
    return TrainResult(
        best_model=out / "best.keras",
        best_val_auc=best.best,
        epochs_run=len(history.epoch),
        seconds=seconds,
    )


def _soft_targets(config: TrainConfig) -> bool:
    """Whether the run trains on soft targets (distillation)."""
    return config.teacher is not None


def _loss_and_metrics(soft: bool, loss: Any = None) -> dict[str, Any]:
    """``compile`` arguments: the loss, and ``auc`` and ``accuracy`` on true labels.

    ``loss`` replaces the distillation loss on soft targets (the ``train`` hook).

    Runs on soft targets get ``[B, 2]`` labels (target, true label; see
    ``model.training.distill``), so their metrics still compare the predictions with the
    true 0/1 labels, under the same names, rather than with the soft targets.
    """
    import keras

    if not soft:
        return {
            "loss": "binary_crossentropy",
            "metrics": [keras.metrics.AUC(name="auc", num_thresholds=1000), "accuracy"],
        }
    from model.training.distill import (
        HardLabelAccuracy,
        HardLabelAUC,
        target_crossentropy,
    )

    return {
        "loss": target_crossentropy if loss is None else loss,
        "metrics": [
            HardLabelAUC(name="auc", num_thresholds=1000),
            HardLabelAccuracy(name="accuracy"),
        ],
    }


def _optimizer(config: TrainConfig, steps: int) -> Any:
    """Adam with the run's learning-rate schedule and optional weight averaging."""
    import keras

    rate: Any = config.learning_rate
    if config.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.epochs * steps, alpha=COSINE_FLOOR
        )
    if config.ema is None:
        return keras.optimizers.Adam(rate)
    return keras.optimizers.Adam(rate, use_ema=True, ema_momentum=config.ema)


def _schedule_callbacks(config: TrainConfig, train_set: PatchSet) -> list[Any]:
    """Plateau halving, and the swap to averaged weights at each epoch's end.

    The swap comes after the backup in the callback list, so backups hold the raw
    weights that training continues from, and before ``BestCheckpoint``, which saves
    the averaged ones.
    """
    import keras

    found: list[Any] = []
    if config.schedule == "plateau":
        found.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_auc",
                mode="max",
                factor=0.5,
                patience=config.lr_patience,
                min_lr=1e-6,
            )
        )
    if config.ema is not None and config.bn_recalibration:
        patches = recalibration_patches(
            train_set, config.bn_recalibration, seed=config.seed
        )
        found.append(SwapEMAWeightsRecalibrated(patches))
    elif config.ema is not None:
        found.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    return found


def _recipe(config: TrainConfig, train_set: PatchSet) -> dict[str, Any]:
    recipe = asdict(config)
    recipe["augment"] = asdict(config.augment)
    recipe["train_data_hash"] = train_set.fingerprint()
    recipe["imagenet_init"] = bool(config.imagenet_weights) or (
        config.pretrained and config.arch in PRETRAINED_SHIPPED
    )
    recipe["n_train"] = len(train_set)
    if config.teacher is not None:  # the path may later hold another model
        # load_teacher has checked the file against its card: no second hash
        recipe["teacher_sha256"] = read_card(
            config.teacher, verify=False
        ).weights_sha256
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in recipe.items()}


def _init_weights(model: Any, path: Path, *, arch: str) -> None:
    """Copy the weights of a checked saved model of the same architecture."""
    from model.predict import load_classifier
    from wsi.errors import ModelLoadError

    source = load_classifier(path)
    if source.card.architecture != arch:
        raise ModelLoadError(
            f"{path}: is a {source.card.architecture} model, not {arch}; pass `arch` "
            f"{source.card.architecture} or another `init_from`"
        )
    model.set_weights(source.model.get_weights())
    logger.info("initialised from %s (validation AUC %s)", path, source.card.val_auc)
