"""BatchNorm statistics that match averaged (EMA) weights.

A BatchNorm layer's moving mean and variance follow the *raw* weights that training
steps. Weights averaged over the last thousand steps (``TrainConfig.ema``) are other
weights: with the raw statistics their activations are mis-normalised (measured
once: validation AUC 0.643 with the raw statistics, 0.936 once they were recomputed
for the averaged weights on 2,048 training patches; research/TRAINING.md).
:func:`recalibrate_batchnorm`
recomputes them (the cumulative mean over the given patches, as for stochastic
weight averaging), and :class:`SwapEMAWeightsRecalibrated` does it each time the
averaged weights are swapped in, for validation and for the saved checkpoint.

Imports Keras.
"""

from __future__ import annotations

from typing import Any, Final

import keras
import numpy as np
import numpy.typing as npt

from model.training.data import sample_index

__all__ = [
    "RECALIBRATION_PATCHES",
    "SwapEMAWeightsRecalibrated",
    "batchnorm_layers",
    "recalibrate_batchnorm",
    "recalibration_patches",
]

#: Training patches the statistics are recomputed on (un-augmented, fixed).
RECALIBRATION_PATCHES: Final = 1024
_BATCH: Final = 64


def batchnorm_layers(model: Any) -> list[Any]:
    """Every BatchNormalization layer of ``model``, nested ones included."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def _state(layers: list[Any]) -> list[tuple[npt.NDArray[Any], npt.NDArray[Any]]]:
    return [
        (np.array(layer.moving_mean.numpy()), np.array(layer.moving_variance.numpy()))
        for layer in layers
    ]


def _restore(
    layers: list[Any], state: list[tuple[npt.NDArray[Any], npt.NDArray[Any]]]
) -> None:
    for layer, (mean, variance) in zip(layers, state, strict=True):
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)


def recalibration_patches(
    patch_set: Any, n: int = RECALIBRATION_PATCHES, *, seed: int = 0
) -> npt.NDArray[np.uint8]:
    """``n`` patches of ``patch_set`` (a ``model.training.data.PatchSet``), fixed by ``seed``.

    At most all of them, in the set's order, un-augmented.
    """
    patches: npt.NDArray[np.uint8] = patch_set.read(
        sample_index(len(patch_set), n, seed=seed)
    )
    return patches


def recalibrate_batchnorm(
    model: Any, patches: npt.NDArray[np.uint8], *, batch_size: int = _BATCH
) -> None:
    """Recompute every BatchNorm layer's moving statistics on ``patches``.

    The model runs in training mode over ``patches`` in batches; batch ``k`` enters
    with weight ``1 / (k + 1)``, so each layer ends with the mean of the batches'
    statistics. Weights are unchanged; each layer's momentum is restored.
    """
    layers = batchnorm_layers(model)
    if not layers or len(patches) == 0:
        return
    momenta = [layer.momentum for layer in layers]
    try:
        for k, start in enumerate(range(0, len(patches), batch_size)):
            for layer in layers:
                layer.momentum = k / (k + 1)
            model(patches[start : start + batch_size].astype(np.float32), training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum


class SwapEMAWeightsRecalibrated(keras.callbacks.SwapEMAWeights):  # type: ignore[misc]
    """``SwapEMAWeights(swap_on_epoch=True)`` with BatchNorm statistics to match.

    Whenever the averaged weights are swapped in (validation, then the epoch-end
    callbacks that save them), the BatchNorm statistics are recomputed for them on
    ``patches`` (once per epoch); when the raw weights come back, so do the raw
    statistics, so training and mid-epoch backups are unaffected.
    """

    def __init__(self, patches: npt.NDArray[np.uint8]) -> None:
        super().__init__(swap_on_epoch=True)
        self._patches = patches
        self._raw: list[tuple[npt.NDArray[Any], npt.NDArray[Any]]] | None = None
        self._averaged: list[tuple[npt.NDArray[Any], npt.NDArray[Any]]] | None = None

    def _averaged_in(self) -> None:
        layers = batchnorm_layers(self.model)
        self._raw = _state(layers)
        if self._averaged is None:
            recalibrate_batchnorm(self.model, self._patches)
            self._averaged = _state(layers)
        else:
            _restore(layers, self._averaged)

    def _raw_back(self) -> None:
        if self._raw is not None:
            _restore(batchnorm_layers(self.model), self._raw)
            self._raw = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Raw weights and statistics back; this epoch's weights are new."""
        if self._ema_weights_in_model:
            self._raw_back()
        super().on_epoch_begin(epoch, logs)
        self._averaged = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Averaged weights in, with their statistics, for the callbacks after."""
        was_in = self._ema_weights_in_model
        super().on_epoch_end(epoch, logs)
        if not was_in and self._ema_weights_in_model:
            self._averaged_in()

    def on_test_begin(self, logs: dict[str, float] | None = None) -> None:
        """Validate the averaged weights with their statistics."""
        was_in = self._ema_weights_in_model
        super().on_test_begin(logs)
        if not was_in and self._ema_weights_in_model:
            self._averaged_in()

    def on_test_end(self, logs: dict[str, float] | None = None) -> None:
        """Raw weights and statistics back for training."""
        if self._ema_weights_in_model:
            self._raw_back()
        super().on_test_end(logs)
