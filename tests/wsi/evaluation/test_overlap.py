"""Dice and IoU of predicted polygons against the truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import MultiPolygon, Polygon, box

from wsi.evaluation.overlap import mask_overlap, polygon_overlap


def test_dice_and_iou_by_hand() -> None:
    # truth 10x10 with a 2x2 hole; prediction the right half (5x10)
    truth = Polygon(
        box(0, 0, 10, 10).exterior.coords, [box(6, 4, 8, 6).exterior.coords]
    )
    o = polygon_overlap([box(5, 0, 10, 10)], [truth])
    assert (o.truth_area, o.predicted_area, o.intersection_area) == (96, 50, 46)
    assert o.dice == pytest.approx(2 * 46 / 146)
    assert o.iou == pytest.approx(46 / 100)


def test_overlapping_predictions_are_merged_first() -> None:
    pred = [box(0, 0, 6, 10), MultiPolygon([box(4, 0, 10, 10), box(20, 20, 21, 21)])]
    o = polygon_overlap(pred, [box(0, 0, 10, 10)])
    assert o.predicted_area == 101
    assert o.dice == pytest.approx(200 / 201)


def test_nothing_on_either_side_is_not_a_score() -> None:
    o = polygon_overlap([], [])
    assert math.isnan(o.dice)
    assert math.isnan(o.iou)
    assert polygon_overlap([], [box(0, 0, 1, 1)]).dice == 0


def test_mask_overlap() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True
    b[1:3] = True
    o = mask_overlap(a, b)
    assert o.dice == 0.5
    assert o.iou == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="shapes differ"):
        mask_overlap(a, b[:2])
