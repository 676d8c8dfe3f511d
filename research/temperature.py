"""Research (did not pay: runs kd19, kd20, research/TRAINING.md): distillation at a
temperature. Target and prediction are compared as logits divided by T, the loss
scaled by T^2 (Hinton et al. 2015); T = 1 is the product's ``target_crossentropy``.

Train with it through the training hook:
``model.training.train.train(config, loss=tempered_crossentropy(4.0))`` (a teacher given).
"""

from __future__ import annotations

from typing import Any

import keras

from model.training.distill import TARGET, target_crossentropy

__all__ = ["TemperedCrossentropy", "tempered_crossentropy"]

_EPS = 1e-6  # probabilities clipped away from 0 and 1 before they become logits


def _logit(p: Any) -> Any:
    """``log(p / (1 - p))`` of probabilities clipped away from 0 and 1."""
    p = keras.ops.clip(keras.ops.cast(p, "float32"), _EPS, 1 - _EPS)
    return keras.ops.log(p) - keras.ops.log1p(-p)


@keras.saving.register_keras_serializable(package="wsi_heatmap")
class TemperedCrossentropy(keras.losses.Loss):  # type: ignore[misc]
    """Cross-entropy of target and prediction compared at a temperature.

    Both probabilities become logits, divided by ``temperature``, and the binary
    cross-entropy between the softened pair is scaled by ``temperature**2`` (Hinton
    et al. 2015), so its gradient keeps the scale of ``target_crossentropy``'s where
    the target is uncertain. With temperature 1 it is ``target_crossentropy``.
    Above 1 the student also learns how sure the teacher is where the teacher is
    sure: a target of 0.999 against a prediction of 0.99 pulls with the difference
    of their logits (about 2.3), not of their probabilities (0.009). As the
    temperature grows, the loss tends to a squared difference of logits (Ba and
    Caruana 2014).
    """

    def __init__(
        self,
        temperature: float = 1.0,
        name: str = "tempered_crossentropy",
        **kwargs: Any,
    ) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        super().__init__(name=name, **kwargs)
        self.temperature = float(temperature)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """Per-view loss against column ``TARGET`` of ``y_true``, ``[B]``."""
        t = self.temperature
        target = keras.ops.sigmoid(_logit(y_true[:, TARGET : TARGET + 1]) / t)
        return (t * t) * keras.losses.binary_crossentropy(
            target, _logit(y_pred) / t, from_logits=True
        )

    def get_config(self) -> dict[str, Any]:
        """Serialisable settings (the temperature)."""
        return {**super().get_config(), "temperature": self.temperature}


def tempered_crossentropy(temperature: float) -> Any:
    """The distillation loss at ``temperature``: ``target_crossentropy`` at 1."""
    if temperature == 1:
        return target_crossentropy
    return TemperedCrossentropy(temperature)
