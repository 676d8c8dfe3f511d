"""Slide-level ROC AUC and its bootstrap interval (checked against scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from wsi.evaluation.slide_level import bootstrap_auc_ci, roc_auc, roc_curve


def test_auc_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(130) < 0.4
    scores = np.round(rng.random(130) * 0.5 + labels * 0.3, 2)  # many ties
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))


def test_roc_curve_matches_scikit_learn() -> None:
    rng = np.random.default_rng(4)
    labels = rng.random(50) < 0.5
    scores = np.round(rng.random(50), 1)
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    curve = roc_curve(labels, scores)
    np.testing.assert_allclose(curve.false_positive_rate, fpr)
    np.testing.assert_allclose(curve.true_positive_rate, tpr)


def test_bootstrap_ci_by_brute_force() -> None:
    rng = np.random.default_rng(5)
    labels = np.r_[np.ones(12, bool), np.zeros(18, bool)]
    scores = rng.random(30) + labels * 0.4
    low, high = bootstrap_auc_ci(labels, scores, n_resamples=200, seed=7)
    # The same stratified resamples, one AUC at a time through scikit-learn.
    gen = np.random.default_rng(7)
    pos, neg = scores[labels], scores[~labels]
    p = pos[gen.integers(0, 12, size=(200, 12))]
    n = neg[gen.integers(0, 18, size=(200, 18))]
    aucs = [
        roc_auc_score(np.r_[np.ones(12), np.zeros(18)], np.r_[pi, ni])
        for pi, ni in zip(p, n, strict=True)
    ]
    assert (low, high) == pytest.approx(tuple(np.quantile(aucs, [0.025, 0.975])))
    assert low < roc_auc(labels, scores) < high
    assert bootstrap_auc_ci(labels, scores, n_resamples=200, seed=7) == (low, high)


def test_perfect_separation_has_a_degenerate_interval() -> None:
    assert bootstrap_auc_ci([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([1, 1], [0.5, 0.6], "both a positive and a negative"),
        ([1, 0], [0.5], "differ in length"),
        ([1, 0], [0.5, np.nan], "finite"),
    ],
)
def test_bad_inputs(labels: list[int], scores: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        roc_auc(labels, scores)
