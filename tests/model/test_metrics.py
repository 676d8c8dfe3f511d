"""ROC AUC, loss and ranking helpers against scikit-learn on known scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from model.training.evaluate import log_loss, most_wrong, roc_auc


def test_auc_known_values_with_ties() -> None:
    assert roc_auc([0, 1], [0.2, 0.8]) == 1.0
    assert roc_auc([0, 1], [0.8, 0.2]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    # 2 negatives x 2 positives: pairs (n, p) wins 1 + 1 + 0.5 (tie) + 0 = 2.5 of 4.
    assert roc_auc([0, 0, 1, 1], [0.1, 0.6, 0.6, 0.4]) == 0.625
    assert roc_auc([0, 0, 1, 1], [0.1, 0.6, 0.6, 0.4]) == roc_auc_score(
        [0, 0, 1, 1], [0.1, 0.6, 0.6, 0.4]
    )


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn_on_random_scores_with_many_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.random(500) * 0.5 + labels * 0.2, 2)  # rounded: many ties
    assert roc_auc(labels, scores) == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-12
    )
    assert roc_auc(labels.astype(bool), scores.astype(np.float32)) == pytest.approx(
        roc_auc_score(labels, scores.astype(np.float32)), abs=1e-12
    )


def test_auc_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="same length"):
        roc_auc([0, 1], [0.1])
    with pytest.raises(ValueError, match="finite"):
        roc_auc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="0 or 1"):
        roc_auc([0, 2], [0.1, 0.2])


def test_log_loss_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    probs = rng.random(200)
    probs[:3] = [0.0, 1.0, 0.5]
    assert log_loss(labels, probs) == pytest.approx(
        sk_log_loss(labels, np.clip(probs, 1e-7, 1 - 1e-7)), rel=1e-9
    )


def test_most_wrong_orders_by_error() -> None:
    assert most_wrong([1, 0, 1, 0], [0.9, 0.2, 0.05, 0.7], k=3).tolist() == [2, 3, 1]
