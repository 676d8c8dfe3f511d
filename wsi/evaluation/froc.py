"""Lesion-level Camelyon16 metric: detections matched to lesions, the FROC curve.

The protocol of the official ``Evaluation_FROC.py``:

- On a tumour slide, a detection whose pixel (``int(y / d), int(x / d)`` on the
  evaluation mask) lies in no region is a false positive; one in an isolated
  tumour cell (ITC) region is ignored; one in a lesion is a true positive, and a
  lesion hit several times keeps its most probable hit. On a normal slide every
  detection is a false positive.
- The curve is swept over every distinct probability above 0 of the false positives
  and of the lesions' best hits, plus the point ``(0, 0)``. At threshold ``t``:
  false positives per slide = ``#FP >= t`` over the number of slides; sensitivity =
  ``#lesions with a hit >= t`` over the lesions. (The script sweeps the distinct
  scores with the lowest left out, meaning the 0 of the lesions and ITC regions that
  no detection hit; the two agree whenever such a 0 exists, as on any real test
  set. Without one, the script would drop the lowest real score, and a detector
  that finds every lesion with no false positive would score 0; we keep it.)
- FROC = the mean of the sensitivities interpolated (``numpy.interp``) at 1/4, 1/2,
  1, 2, 4 and 8 false positives per slide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wsi.evaluation.masks import EvalMask
from wsi.evaluation.outputs import Detections

__all__ = [
    "FP_RATES",
    "FrocCurve",
    "SlideHits",
    "bootstrap_froc_ci",
    "froc_curve",
    "match_detections",
]

#: Average false positives per slide at which sensitivity is read.
FP_RATES: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class SlideHits:
    """Detections of one slide sorted against its lesions.

    ``fp_probabilities`` holds the false positives' probabilities;
    ``region_probabilities[k]`` the best probability of the hits in region ``k + 1``
    (0 when none, and always 0 for ITC regions, as in the official script; a hit of
    probability 0 finds nothing).
    """

    fp_probabilities: npt.NDArray[np.float64]
    region_probabilities: npt.NDArray[np.float64]
    n_lesions: int
    n_itc: int
    n_ignored: int

    @property
    def n_detected(self) -> int:
        """Lesions with a hit of probability above 0."""
        return int((self.region_probabilities > 0).sum())


@dataclass(frozen=True, slots=True, kw_only=True)
class FrocCurve:
    """The FROC curve, by increasing threshold (as the official script), and its summary.

    ``fp_per_slide[k]`` and ``sensitivity[k]`` are the rates at ``thresholds[k]``
    (the last point, ``(0, 0)``, has threshold ``inf``); ``sensitivity_at`` maps each
    rate of ``FP_RATES`` to the interpolated sensitivity; ``froc`` is their mean.
    """

    thresholds: npt.NDArray[np.float64]
    fp_per_slide: npt.NDArray[np.float64]
    sensitivity: npt.NDArray[np.float64]
    sensitivity_at: dict[float, float]
    froc: float
    n_slides: int
    n_lesions: int


def match_detections(detections: Detections, mask: EvalMask | None) -> SlideHits:
    """Sort a slide's detections into false positives, lesion hits and ITC hits.

    Parameters
    ----------
    detections
        The slide's candidates.
    mask
        Its evaluation mask; None for a normal slide (every detection is then a
        false positive).

    Examples
    --------
    >>> from wsi.evaluation.masks import EvalGrid, evaluation_mask
    >>> grid = EvalGrid(downsample=32.0, shape=(60, 60), mpp=7.776)
    >>> truth = np.zeros(grid.shape, bool)
    >>> truth[10:12, 10:12] = True                  # an ITC (label 1)
    >>> truth[20:60, 30:34] = True                  # a lesion (label 2)
    >>> det = Detections(probabilities=np.array([0.9, 0.6, 0.8, 0.3]),
    ...     l0_xy=np.array([[32 * 31, 32 * 40], [32 * 32, 32 * 50],   # lesion twice
    ...                     [32 * 11, 32 * 11], [0, 0]]))             # ITC, background
    >>> hits = match_detections(det, evaluation_mask(truth, grid))
    >>> hits.region_probabilities.tolist(), hits.fp_probabilities.tolist(), hits.n_ignored
    ([0.0, 0.9], [0.3], 1)
    """
    probabilities = detections.probabilities
    if mask is None:
        return SlideHits(
            fp_probabilities=probabilities.copy(),
            region_probabilities=np.zeros(0),
            n_lesions=0,
            n_itc=0,
            n_ignored=0,
        )
    labels = mask.label_at(detections.l0_xy)
    regions = np.zeros(mask.n_regions, dtype=np.float64)
    itc = np.isin(labels, np.fromiter(mask.itc, dtype=np.int32, count=len(mask.itc)))
    lesion = (labels > 0) & ~itc
    np.maximum.at(regions, labels[lesion] - 1, probabilities[lesion])
    return SlideHits(
        fp_probabilities=probabilities[labels == 0].copy(),
        region_probabilities=regions,
        n_lesions=mask.n_lesions,
        n_itc=len(mask.itc),
        n_ignored=int(itc.sum()),
    )


def froc_curve(
    hits: Sequence[SlideHits], *, fp_rates: Sequence[float] = FP_RATES
) -> FrocCurve:
    """The FROC curve and score of a set of slides (tumour and normal).

    Raises
    ------
    ValueError
        No slides, or no lesions on any of them (sensitivity undefined).

    Examples
    --------
    Two slides, three lesions; hits 0.9 and 0.4, one lesion missed; false
    positives 0.8 and 0.3:

    >>> a = SlideHits(fp_probabilities=np.array([0.8]), n_lesions=3, n_itc=0,
    ...               region_probabilities=np.array([0.9, 0.4, 0.0]), n_ignored=0)
    >>> b = SlideHits(fp_probabilities=np.array([0.3]), n_lesions=0, n_itc=0,
    ...               region_probabilities=np.zeros(0), n_ignored=0)
    >>> curve = froc_curve([a, b])
    >>> curve.fp_per_slide.tolist(), curve.sensitivity.round(3).tolist()
    ([1.0, 0.5, 0.5, 0.0, 0.0], [0.667, 0.667, 0.333, 0.333, 0.0])
    >>> [round(curve.sensitivity_at[r], 3) for r in (0.25, 0.5, 1.0, 8.0)]
    [0.333, 0.667, 0.667, 0.667]
    >>> round(curve.froc, 4)
    0.6111
    """
    if not hits:
        raise ValueError("froc_curve needs at least one slide")
    n_lesions = sum(h.n_lesions for h in hits)
    if n_lesions == 0:
        raise ValueError("no lesions on any slide: the FROC sensitivity is undefined")
    fps = np.sort(np.concatenate([h.fp_probabilities for h in hits]))
    tps = np.sort(np.concatenate([h.region_probabilities for h in hits]))
    scores = np.unique(np.concatenate([fps, tps]))
    thresholds = scores[scores > 0]
    n_fp = len(fps) - np.searchsorted(fps, thresholds, side="left")
    n_tp = len(tps) - np.searchsorted(tps, thresholds, side="left")
    fp_per_slide = np.append(n_fp, 0) / len(hits)
    sensitivity = np.append(n_tp, 0) / n_lesions
    at = np.interp(np.asarray(fp_rates, float), fp_per_slide[::-1], sensitivity[::-1])
    return FrocCurve(
        thresholds=np.append(thresholds, np.inf),
        fp_per_slide=fp_per_slide,
        sensitivity=sensitivity,
        sensitivity_at={float(r): float(s) for r, s in zip(fp_rates, at, strict=True)},
        froc=float(np.mean(at)),
        n_slides=len(hits),
        n_lesions=n_lesions,
    )


def bootstrap_froc_ci(
    hits: Sequence[SlideHits],
    *,
    fp_rates: Sequence[float] = FP_RATES,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile confidence interval of the FROC score, slides resampled.

    Slides with lesions and slides without are resampled separately (stratified,
    with replacement), so every sample keeps the set's mix; a slide carries all its
    lesions and detections with it, as lesions on one slide are not independent.

    Examples
    --------
    >>> a = SlideHits(fp_probabilities=np.array([0.8]), n_lesions=2, n_itc=0,
    ...               region_probabilities=np.array([0.9, 0.0]), n_ignored=0)
    >>> b = SlideHits(fp_probabilities=np.array([0.3]), n_lesions=0, n_itc=0,
    ...               region_probabilities=np.zeros(0), n_ignored=0)
    >>> low, high = bootstrap_froc_ci([a, a, b, b], n_resamples=50)
    >>> low <= froc_curve([a, a, b, b]).froc <= high
    True
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    with_lesions = [h for h in hits if h.n_lesions]
    without = [h for h in hits if not h.n_lesions]
    if not with_lesions:
        raise ValueError("no lesions on any slide: the FROC sensitivity is undefined")
    rng = np.random.default_rng(seed)
    scores = np.empty(n_resamples)
    for i in range(n_resamples):
        sample = [
            with_lesions[j]
            for j in rng.integers(len(with_lesions), size=len(with_lesions))
        ]
        sample += [without[j] for j in rng.integers(len(without), size=len(without))]
        scores[i] = froc_curve(sample, fp_rates=fp_rates).froc
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(scores, [tail, 100 - tail])
    return float(low), float(high)
