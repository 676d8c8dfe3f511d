"""Feature matching: the student also learns the teacher's last feature map.

A teacher's probability is one number per view; its last feature map (EfficientNet-
Lite0: 3x3x1280 at 96 px) holds thousands, and says *why* a view looks like tumour.
With only 20,000 training patches that richer signal is what a student from random
weights lacks (Romero et al. 2015, "FitNets: hints for thin deep nets"; Heo et al.
2019, "A comprehensive overhaul of feature distillation").

``teacher_targets`` extends a teacher to output, beside its probability, its final
feature map normalised at each position over the channels (zero mean, unit variance:
the scale of the target does not depend on the teacher's activations), flattened. The
student trains inside ``FeatureMatching``: a 1x1 convolution (the *projector*, used only
in training) maps the student's own last feature map onto the teacher's, and the loss
adds ``weight`` times their mean squared difference to the usual loss on the
probability. Validation, ``predict`` and the saved ``best.keras`` use the student alone
(``FeatureMatching.student``), so the shipped model is a plain classifier.

The feature targets travel in the label tensor, after the two columns of
:mod:`model.training.distill` (target, true label), so the data pipeline, metrics and callbacks
stay those of logit distillation.
"""

from __future__ import annotations

from typing import Any, Final

import keras

from model.training.distill import HARD_LABEL, TARGET

__all__ = [
    "FEATURE_COLUMNS",
    "FeatureMatching",
    "feature_map",
    "teacher_targets",
]

#: Label columns before the flattened teacher features (target, true label).
FEATURE_COLUMNS: Final = max(TARGET, HARD_LABEL) + 1

_POOLING_LAYER: Final = "gap"
"""Every convolutional model of ``model.training.network`` pools its last feature map here."""

_EPS: Final = 1e-3


def feature_map(model: Any) -> Any:
    """The last feature map of a ``model.training.network`` model: the input of its pooling.

    Raises
    ------
    ValueError
        The model has no global-average-pooling layer named ``gap`` (``logreg``, or a
        model not built by ``model.training.network``).
    """
    try:
        layer = model.get_layer(_POOLING_LAYER)
    except ValueError:
        raise ValueError(
            f"{model.name}: no '{_POOLING_LAYER}' pooling layer, so no feature map to "
            "match; feature matching needs a convolutional student and teacher"
        ) from None
    return layer.input


def teacher_targets(teacher: Any) -> Any:
    """``teacher`` as a model ``[B, 96, 96, 3] -> ([B, 1], [B, H * W * C])``.

    The second output is the teacher's last feature map, each position normalised
    over the channels (zero mean, unit variance), flattened in ``H, W, C`` order.
    """
    features = feature_map(teacher)
    mean, variance = keras.ops.moments(features, axes=[-1], keepdims=True)
    normalised = (features - mean) * keras.ops.rsqrt(variance + _EPS)
    flat = keras.layers.Flatten(name="teacher_features")(normalised)
    model = keras.Model(teacher.input, [teacher.output, flat], name="teacher_targets")
    model.trainable = False
    return model


class FeatureMatching(keras.Model):  # type: ignore[misc]
    """A student that trains on its probability loss plus a feature-matching term.

    Parameters
    ----------
    student
        The classifier being trained (a ``model.training.network`` model).
    teacher_shape
        ``(H, W, C)`` of the teacher's last feature map (``teacher_targets``).
    weight
        Weight of the mean squared feature difference in the loss.

    Notes
    -----
    Labels are ``float32[B, 2 + H * W * C]`` in training (``model.training.distill``'s two
    columns, then the teacher's features) and ``float32[B, 2]`` in validation, where
    only the probability is scored. The logged ``loss`` of training includes the
    feature term; ``feature_loss`` logs that term alone.
    """

    def __init__(
        self, student: Any, *, teacher_shape: tuple[int, int, int], weight: float
    ) -> None:
        super().__init__(name="feature_matching")
        own = feature_map(student)
        if tuple(own.shape[1:3]) != tuple(teacher_shape[:2]):
            raise ValueError(
                f"the student's last feature map is {tuple(own.shape[1:3])} positions, "
                f"the teacher's {tuple(teacher_shape[:2])}; feature matching needs "
                "the same grid"
            )
        self.student = student
        self.paired = keras.Model(student.input, [student.output, own])
        self.projector = keras.layers.Conv2D(
            teacher_shape[2], 1, name="feature_projector", dtype="float32"
        )
        # Built now, so a backup restores it before the first step.
        self.projector.build(tuple(own.shape))
        self.weight = float(weight)
        self.feature_tracker = keras.metrics.Mean(name="feature_loss")
        # Every part is built, and BackupAndRestore needs a built model.
        self.built = True

    def call(self, inputs: Any, training: bool = False) -> Any:
        """The student's probability (validation and prediction)."""
        return self.student(inputs, training=training)

    def feature_loss(self, features: Any, targets: Any) -> Any:
        """Mean squared difference of the projected student features and ``targets``."""
        import tensorflow as tf

        projected = self.projector(tf.cast(features, tf.float32))
        wanted = tf.reshape(targets, tf.shape(projected))
        return tf.reduce_mean(tf.square(projected - wanted))

    def train_step(self, data: Any) -> dict[str, Any]:
        """One step on ``loss(probability) + weight * feature_loss``."""
        import tensorflow as tf

        x, y = data
        labels = y[:, :FEATURE_COLUMNS]
        with tf.GradientTape() as tape:
            prob, features = self.paired(x, training=True)
            matched = self.feature_loss(features, y[:, FEATURE_COLUMNS:])
            loss = (
                self._compute_loss(x=x, y=labels, y_pred=prob, training=True)
                + self.weight * matched
            )
            self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
            self.feature_tracker.update_state(matched, sample_weight=tf.shape(x)[0])
            scaled = self.optimizer.scale_loss(loss)
        weights = self.trainable_weights
        self.optimizer.apply_gradients(
            zip(tape.gradient(scaled, weights), weights, strict=True)
        )
        return self.compute_metrics(x, labels, prob)  # type: ignore[no-any-return]

    def test_step(self, data: Any) -> dict[str, Any]:
        """Validation scores the probability only: no ``val_feature_loss`` column."""
        logs = dict(super().test_step(data))
        logs.pop(self.feature_tracker.name, None)
        return logs
