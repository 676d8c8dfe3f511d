"""Slide-level Camelyon16 metric: ROC AUC of the slide probability, bootstrap 95% CI.

The AUC is exact: the Mann-Whitney probability that a tumour slide scores higher than
a normal one, ties counting one half (what scikit-learn's ``roc_auc_score`` gives).
The confidence interval is the percentile interval of the AUCs of ``n_resamples``
stratified bootstrap samples (tumour and normal slides each resampled with
replacement, so every sample has both classes), from a seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.stats

__all__ = ["RocCurve", "bootstrap_auc_ci", "roc_auc", "roc_curve"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RocCurve:
    """ROC points by decreasing threshold, from ``(0, 0)`` to ``(1, 1)``."""

    false_positive_rate: npt.NDArray[np.float64]
    true_positive_rate: npt.NDArray[np.float64]
    thresholds: npt.NDArray[np.float64]


def _check(
    labels: npt.ArrayLike, scores: npt.ArrayLike
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    y = np.asarray(labels, dtype=bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.size}) and scores ({s.size}) differ in length")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if y.all() or not y.any():
        raise ValueError("labels need both a positive and a negative slide")
    return y, s


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Exact ROC AUC (ties count one half).

    Raises
    ------
    ValueError
        Lengths differ, a score is not finite, or one class is missing.

    Examples
    --------
    >>> roc_auc([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1])
    0.875
    """
    y, s = _check(labels, scores)
    ranks = scipy.stats.rankdata(s)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def roc_curve(labels: npt.ArrayLike, scores: npt.ArrayLike) -> RocCurve:
    """The ROC curve, one point per distinct score.

    Examples
    --------
    >>> c = roc_curve([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    >>> c.false_positive_rate.tolist(), c.true_positive_rate.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    y, s = _check(labels, scores)
    thresholds = np.unique(s)[::-1]
    pos, neg = np.sort(s[y]), np.sort(s[~y])
    tp = len(pos) - np.searchsorted(pos, thresholds, side="left")
    fp = len(neg) - np.searchsorted(neg, thresholds, side="left")
    return RocCurve(
        false_positive_rate=np.concatenate([[0.0], fp / len(neg)]),
        true_positive_rate=np.concatenate([[0.0], tp / len(pos)]),
        thresholds=np.concatenate([[np.inf], thresholds]),
    )


def bootstrap_auc_ci(
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile confidence interval of the AUC over stratified bootstrap samples.

    Parameters
    ----------
    labels, scores
        One per slide: tumour (True) or normal, and the slide probability.
    n_resamples
        Bootstrap samples.
    confidence
        Coverage of the interval, in (0, 1).
    seed
        Seed of the ``numpy.random.default_rng`` generator: same inputs, same
        interval.

    Returns
    -------
    (low, high)

    Examples
    --------
    >>> low, high = bootstrap_auc_ci([1, 1, 1, 0, 0, 0], [0.9, 0.8, 0.4, 0.5, 0.2, 0.1])
    >>> 0.0 <= low <= roc_auc([1, 1, 1, 0, 0, 0], [0.9, 0.8, 0.4, 0.5, 0.2, 0.1]) <= high
    True
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    y, s = _check(labels, scores)
    pos, neg = s[y], s[~y]
    rng = np.random.default_rng(seed)
    p = pos[rng.integers(0, len(pos), size=(n_resamples, len(pos)))]
    n = neg[rng.integers(0, len(neg), size=(n_resamples, len(neg)))]
    # AUC of each sample: P(pos > neg) + P(pos == neg) / 2, from sorted negatives.
    n.sort(axis=1)
    below = np.stack(
        [
            np.searchsorted(row, prow, side="left")
            for row, prow in zip(n, p, strict=True)
        ]
    )
    not_above = np.stack(
        [
            np.searchsorted(row, prow, side="right")
            for row, prow in zip(n, p, strict=True)
        ]
    )
    aucs = (below + not_above).sum(axis=1) / (2 * len(pos) * len(neg))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(aucs, [alpha, 1 - alpha])
    return float(low), float(high)
