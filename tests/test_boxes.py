"""IoU, non-max suppression and the letterbox, on cases worked out by hand."""

import numpy as np
import pytest

from zoo.runtime.boxes import Letterbox, batched_nms, iou, nms


def test_iou_of_identical_boxes_is_one():
    assert iou([[0, 0, 10, 10]], [[0, 0, 10, 10]])[0, 0] == pytest.approx(1.0)


def test_iou_of_boxes_touching_at_an_edge_is_zero():
    assert iou([[0, 0, 10, 10]], [[10, 0, 20, 10]])[0, 0] == 0.0
    assert iou([[0, 0, 10, 10]], [[10, 10, 20, 20]])[0, 0] == 0.0  # corners touch


def test_iou_of_nested_boxes_is_the_area_ratio():
    assert iou([[0, 0, 10, 10]], [[2, 2, 7, 7]])[0, 0] == pytest.approx(25 / 100)


def test_iou_of_half_overlapping_boxes():
    # intersection 5 x 10 = 50, union 100 + 100 - 50 = 150
    assert iou([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(50 / 150)


def test_iou_with_a_zero_area_box_is_zero_not_nan():
    out = iou([[3, 3, 3, 3], [0, 0, 0, 0]], [[0, 0, 10, 10], [0, 0, 0, 0]])
    assert np.all(out == 0) and not np.isnan(out).any()


def test_iou_is_pairwise():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    expected = np.array([[1, 50 / 150, 0], [0, 0, 1]])
    np.testing.assert_allclose(iou(a, b), expected)


def test_nms_keeps_the_best_of_overlapping_boxes_and_distant_ones():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    scores = np.array([0.8, 0.9, 0.7, 0.6])
    # box 1 (0.9) overlaps box 0 by 90/110 and box 3 likewise; box 2 is far away
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]


def test_nms_threshold_is_strict_above():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]])  # IoU exactly 1/3
    assert nms(boxes, np.array([0.9, 0.8]), 1 / 3).tolist() == [0, 1]
    assert nms(boxes, np.array([0.9, 0.8]), 0.3).tolist() == [0]


def test_nms_of_identical_boxes_keeps_one():
    boxes = np.tile([[5, 5, 15, 15]], (4, 1))
    assert nms(boxes, np.array([0.1, 0.4, 0.3, 0.2]), 0.5).tolist() == [1]


def test_nms_keeps_zero_area_boxes_since_they_overlap_nothing():
    boxes = np.array([[0, 0, 10, 10], [5, 5, 5, 5]])
    assert sorted(nms(boxes, np.array([0.9, 0.8]), 0.1).tolist()) == [0, 1]


def test_nms_of_nothing_is_empty():
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_batched_nms_never_suppresses_across_classes():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    scores = np.array([0.9, 0.8, 0.7])
    assert batched_nms(boxes, scores, np.array([0, 1, 0]), 0.5).tolist() == [0, 1]


def test_letterbox_of_a_wide_image_pads_top_and_bottom():
    box = Letterbox.fit(200, 100, 64)
    assert (box.scale, box.pad_x, box.pad_y, box.resized) == (0.32, 0, 16, (64, 32))
    np.testing.assert_allclose(box.to_input([[0, 0, 200, 100]]), [[0, 16, 64, 48]])


def test_letterbox_maps_boxes_back_to_the_image_and_clips():
    box = Letterbox.fit(100, 300, 96)
    original = np.array([[10, 20, 60, 280]])
    np.testing.assert_allclose(box.to_image(box.to_input(original)), original)
    np.testing.assert_allclose(box.to_image([[-50, -50, 200, 200]]), [[0, 0, 100, 300]])


def test_agnostic_decoding_keeps_one_box_where_two_classes_overlap():
    from zoo.runtime.tasks.detection import decode

    # one 1x1 grid, two equal anchors predicting the same centred box, sure of an object: the
    # first says class 0, the second class 1
    config = {"input_size": 32, "strides": [32], "anchors": [[[16, 16], [16, 16]]], "num_classes": 2}
    raw = np.zeros((1, 2, 7))
    raw[0, :, 4] = 10.0
    raw[0, 0, 5:], raw[0, 1, 5:] = [10.0, -10.0], [-10.0, 10.0]
    per_class = decode(raw, config, 0.25, 0.45)[0]
    agnostic = decode(raw, config, 0.25, 0.45, agnostic=True)[0]
    assert sorted(per_class["classes"].tolist()) == [0, 1]  # different classes never suppress each other
    assert len(agnostic["classes"]) == 1  # across classes, the overlapping box goes
