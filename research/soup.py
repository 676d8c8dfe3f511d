"""Weight averaging of models fine-tuned from one start ("model soups").

Wortsman et al. 2022: networks fine-tuned from the same weights usually lie in one
basin, and the average of their weights often scores better than each of them, at
the cost of one model at inference. :func:`average_weights` mixes the weights of
models of identical architecture; the BatchNorm statistics of the mixture are not the
mixture of the statistics, so recompute them afterwards
(``model.training.batchnorm.recalibrate_batchnorm``). ``research/scripts/average_models.py`` does both
and measures the result on a validation set.

Imports Keras only through the models it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["average_weights"]


def average_weights(
    models: Sequence[Any], mixing: Sequence[float] | None = None
) -> list[np.ndarray]:
    """The weighted mean of the weights of ``models`` (Keras models, one architecture).

    ``mixing`` gives each model's share (non-negative, normalised to sum to one;
    default: equal shares). Returns float32 arrays in ``models[0].get_weights()``
    order, ready for ``set_weights``.

    Raises
    ------
    ValueError
        No models, a mixing list of another length or with a negative or all-zero
        share, or models whose weight lists differ in length or shape.
    """
    if not models:
        raise ValueError("average_weights needs at least one model")
    shares = np.ones(len(models)) if mixing is None else np.asarray(mixing, float)
    if shares.shape != (len(models),):
        raise ValueError(f"{len(models)} models but {shares.size} mixing weights")
    if (shares < 0).any() or not shares.sum() > 0:
        raise ValueError(f"mixing weights must be >= 0 and not all 0, got {mixing}")
    shares = shares / shares.sum()
    lists = [model.get_weights() for model in models]
    reference = [w.shape for w in lists[0]]
    for k, weights in enumerate(lists[1:], start=1):
        if [w.shape for w in weights] != reference:
            raise ValueError(
                f"model {k} has other weights than model 0 (another architecture?)"
            )
    return [
        sum(
            (share * np.asarray(weights[i], np.float64))
            for share, weights in zip(shares, lists, strict=True)
        ).astype(np.float32)
        for i in range(len(reference))
    ]
