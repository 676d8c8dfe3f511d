"""Lesion-level matching and the FROC curve, on hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from wsi.evaluation.froc import SlideHits, froc_curve, match_detections
from wsi.evaluation.masks import EvalGrid, EvalMask, evaluation_mask
from wsi.evaluation.outputs import Detections

GRID = EvalGrid(downsample=32.0, shape=(100, 100), mpp=7.776)


def _mask() -> EvalMask:
    """Label 1: a 2x2 ITC at rows 10-11; label 2: a 40x4 lesion at rows 30-69."""
    truth = np.zeros(GRID.shape, bool)
    truth[10:12, 10:12] = True
    truth[30:70, 50:54] = True
    mask = evaluation_mask(truth, GRID)
    assert mask.n_regions == 2
    assert mask.itc == frozenset({1})
    return mask


def _det(*rows: tuple[float, int, int]) -> Detections:
    """Detections (probability, eval row, eval col), placed at pixel centres."""
    table = np.array(rows, dtype=float).reshape(-1, 3)
    xy = np.stack([(table[:, 2] + 0.5) * 32, (table[:, 1] + 0.5) * 32], axis=1)
    return Detections(probabilities=table[:, 0], l0_xy=xy)


def _hits(fp: list[float], regions: list[float], n_lesions: int) -> SlideHits:
    return SlideHits(
        fp_probabilities=np.array(fp, float),
        region_probabilities=np.array(regions, float),
        n_lesions=n_lesions,
        n_itc=0,
        n_ignored=0,
    )


def test_a_lesion_hit_twice_counts_once_at_its_best() -> None:
    hits = match_detections(_det((0.6, 40, 51), (0.9, 60, 52), (0.7, 35, 50)), _mask())
    assert hits.region_probabilities.tolist() == [0.0, 0.9]
    assert hits.fp_probabilities.tolist() == []
    assert hits.n_detected == 1
    curve = froc_curve([hits])
    assert curve.sensitivity.max() == 1.0  # one lesion, found once
    assert curve.fp_per_slide.max() == 0.0  # the other hits are not false positives


def test_a_detection_in_an_itc_region_is_ignored() -> None:
    hits = match_detections(_det((0.95, 10, 10), (0.5, 11, 11)), _mask())
    assert hits.n_ignored == 2
    assert hits.fp_probabilities.tolist() == []
    assert hits.region_probabilities.tolist() == [0.0, 0.0]  # the ITC is no target
    assert hits.n_lesions == 1
    assert hits.n_itc == 1


def test_a_detection_grown_into_the_lesion_border_is_a_hit() -> None:
    # 4 px left of the lesion (within the 4.82 px growth) hits; 5 px left misses.
    hits = match_detections(_det((0.8, 50, 46), (0.4, 50, 45)), _mask())
    assert hits.region_probabilities.tolist() == [0.0, 0.8]
    assert hits.fp_probabilities.tolist() == [0.4]


def test_every_detection_on_a_normal_slide_is_a_false_positive() -> None:
    hits = match_detections(_det((0.95, 10, 10), (0.3, 50, 51)), None)
    assert hits.fp_probabilities.tolist() == [0.95, 0.3]
    assert hits.n_lesions == 0
    assert hits.region_probabilities.size == 0


def test_interpolation_at_each_fp_rate() -> None:
    # 4 slides, 4 lesions. Lesion hits 0.9, 0.7, 0.5; one missed (0).
    # False positives 0.95, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05 (2 per slide).
    a = _hits([0.95, 0.8], [0.9, 0.0], 2)
    b = _hits([0.6, 0.4], [0.7], 1)
    c = _hits([0.3, 0.2], [0.5], 1)
    d = _hits([0.1, 0.05], [], 0)
    curve = froc_curve([a, b, c, d])
    # By hand, by increasing threshold (as the official script) -> (FP/slide, sens):
    #   0.05 (2, .75)    0.1 (1.75, .75)   0.2 (1.5, .75)   0.3 (1.25, .75)
    #   0.4 (1, .75)     0.5 (0.75, .75)   0.6 (0.75, .5)   0.7 (0.5, .5)
    #   0.8 (0.5, .25)   0.9 (0.25, .25)   0.95 (0.25, 0)   then (0, 0).
    # 0 (the missed lesion) is the lowest score and is not a threshold.
    assert curve.thresholds[:-1].tolist() == [
        0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95,
    ]  # fmt: skip
    assert curve.fp_per_slide.tolist() == [
        2, 1.75, 1.5, 1.25, 1, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25, 0,
    ]  # fmt: skip
    assert curve.sensitivity.tolist() == [
        0.75, 0.75, 0.75, 0.75, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25, 0, 0,
    ]  # fmt: skip
    # At 1/4 and 1/2 the curve has a vertical step: the best sensitivity there.
    # Beyond the largest FP rate (2) the last sensitivity holds.
    expected = {0.25: 0.25, 0.5: 0.5, 1.0: 0.75, 2.0: 0.75, 4.0: 0.75, 8.0: 0.75}
    assert curve.sensitivity_at == pytest.approx(expected)
    assert curve.froc == pytest.approx(np.mean(list(expected.values())))


def test_interpolation_between_curve_points_is_linear() -> None:
    # One slide, 2 lesions, hits 0.9 and 0.2; false positives 0.8, 0.7, 0.5.
    # Points (FP, sens): (3, 1) at 0.2, (3, .5) 0.5, (2, .5) 0.7, (1, .5) 0.8,
    # (0, .5) 0.9. Every lesion is hit, so no score is 0: the official script would
    # drop the lowest one (0.2); it is kept here (see wsi.evaluation.froc).
    curve = froc_curve([_hits([0.8, 0.7, 0.5], [0.9, 0.2], 2)])
    assert curve.fp_per_slide.tolist() == [3, 3, 2, 1, 0, 0]
    assert curve.sensitivity.tolist() == [1, 0.5, 0.5, 0.5, 0.5, 0]
    assert curve.sensitivity_at == pytest.approx(
        {0.25: 0.5, 0.5: 0.5, 1.0: 0.5, 2.0: 0.5, 4.0: 1.0, 8.0: 1.0}
    )
    # Two slides halve the FP rates: 1/4 lies between (0, .5) and (0.5, .5) ...
    half = froc_curve([_hits([0.8, 0.7, 0.5], [0.9, 0.0], 2), _hits([], [], 0)])
    assert half.fp_per_slide.tolist() == [1.5, 1, 0.5, 0, 0]
    assert half.sensitivity_at[0.25] == pytest.approx(0.5)


def test_interpolation_on_a_slope() -> None:
    # Sensitivity rises between FP rates: lesion hits 0.9, 0.6, 0.3, 0.05 of 5;
    # FPs at 0.8, 0.7, 0.5, 0.4, 0.2, 0.1 on 4 slides (0 = a missed 5th lesion).
    slides = [
        _hits([0.8, 0.7], [0.9, 0.6, 0.0], 3),
        _hits([0.5], [0.3], 1),
        _hits([0.4, 0.2], [0.05], 1),
        _hits([0.1], [], 0),
    ]
    curve = froc_curve(slides)
    pairs = list(
        zip(curve.fp_per_slide.tolist(), curve.sensitivity.tolist(), strict=True)
    )
    # thresholds .05 .1 .2 .3 .4 .5 .6 .7 .8 .9
    assert pairs == [
        (1.5, 0.8), (1.5, 0.6), (1.25, 0.6), (1.0, 0.6), (1.0, 0.4), (0.75, 0.4),
        (0.5, 0.4), (0.5, 0.2), (0.25, 0.2), (0.0, 0.2), (0.0, 0.0),
    ]  # fmt: skip
    assert curve.sensitivity_at[0.25] == pytest.approx(0.2)
    assert curve.sensitivity_at[0.5] == pytest.approx(0.4)
    assert curve.sensitivity_at[1.0] == pytest.approx(0.6)
    assert curve.sensitivity_at[2.0] == pytest.approx(0.8)
    assert curve.froc == pytest.approx((0.2 + 0.4 + 0.6 + 0.8 * 3) / 6)


def test_a_lesion_found_only_below_every_false_positive() -> None:
    curve = froc_curve([_hits([0.9, 0.8], [0.3, 0.0], 2), _hits([0.7, 0.6], [], 0)])
    # thresholds 0.9 .8 .7 .6 .3: FP/slide .5 1 1.5 2 2; sens 0 0 0 0 .5
    assert curve.sensitivity_at[0.25] == 0
    assert curve.sensitivity_at[1.0] == 0
    assert curve.sensitivity_at[2.0] == pytest.approx(0.5)


def test_a_perfect_detector_scores_one() -> None:
    curve = froc_curve([_hits([], [0.9], 1)])
    assert curve.froc == 1.0


def test_a_hit_of_probability_zero_finds_nothing() -> None:
    hits = match_detections(_det((0.0, 50, 51)), _mask())
    assert hits.n_detected == 0
    assert froc_curve([hits]).froc == 0.0


def test_froc_needs_lesions() -> None:
    with pytest.raises(ValueError, match="no lesions"):
        froc_curve([_hits([0.5], [], 0)])
    with pytest.raises(ValueError, match="at least one slide"):
        froc_curve([])
