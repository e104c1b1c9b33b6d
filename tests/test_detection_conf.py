"""A detector's default score threshold belongs to the trained model: chosen on its dev split
when training ends (the best F1 over ``CONF_GRID``), carried in the artifact as ``conf`` and
used by ``zoo run`` wherever the user gives no ``--conf``; 0.25 for an artifact without one."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.errors import ZooError
from zoo.registry import registry
from zoo.runtime.tasks.detection import DEFAULT_CONF, best_f1_threshold, model_conf


def _det(boxes, scores, classes):
    return {"boxes": np.asarray(boxes, np.float64).reshape(-1, 4), "scores": np.asarray(scores, np.float64),
            "classes": np.asarray(classes, np.int64)}


def _truth(boxes, classes):
    return {"boxes": np.asarray(boxes, np.float64).reshape(-1, 4), "classes": np.asarray(classes, np.int64)}


def test_best_f1_threshold_drops_the_confident_false_boxes_below_it_and_keeps_the_true_ones():
    # two images: true boxes scored 0.9 and 0.7; false ones at 0.5 (on a digit-free image, of a
    # class with no ground truth anywhere: it still counts) and at 0.3 (a wrong place)
    detections = [_det([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.3], [1, 1]),
                  _det([[0, 0, 10, 10], [20, 20, 30, 30]], [0.7, 0.5], [2, 7])]
    truths = [_truth([[0, 0, 10, 10]], [1]), _truth([[0, 0, 10, 10]], [2])]
    best = best_f1_threshold(detections, truths, 10)
    assert best["conf"] == pytest.approx(0.55)  # the first grid value above 0.5 and at or below 0.7
    assert (best["precision"], best["recall"], best["f1"]) == (1.0, 1.0, 1.0)
    # with the 0.5 box true instead, a lower threshold that keeps it is best
    truths[1] = _truth([[0, 0, 10, 10], [20, 20, 30, 30]], [2, 7])
    assert best_f1_threshold(detections, truths, 10)["conf"] <= 0.5


def test_calibrate_chooses_the_threshold_from_raw_outputs_through_the_runs_decoding():
    task = registry().task("object-detection").load()
    config = {"input_size": 32, "num_classes": 2, "strides": [32], "anchors": [[0.5, 0.5]],
              "class_activation": "softmax"}
    # one cell, one anchor: (x, y, w, h, objectness, class 0, class 1) logits per image
    confident_true = [0, 0, 0, 0, 4.0, 4.0, -4.0]  # score ~0.98 * 0.9997, where the truth is
    doubtful_false = [0, 0, 0, 0, 0.4, 4.0, -4.0]  # score 0.599, on an image with nothing
    outputs = np.asarray([[confident_true], [doubtful_false]], np.float32)
    targets = np.full((2, 100, 5), -1.0, np.float32)
    targets[0, 0] = [0, 8, 8, 24, 24]  # the anchor's box: centre of the 32 px square, half its side
    chosen = task.calibrate(outputs, targets, {"config": config})
    assert chosen == {"conf": pytest.approx(0.6)}  # the lowest threshold of the grid above the false box


class _Artifact:
    def __init__(self, meta):
        self.meta, self.path, self.model = meta, "model.onnx", "fake"


@pytest.mark.parametrize("meta, given, expected", [
    ({}, None, DEFAULT_CONF),
    ({"conf": 0.6}, None, 0.6),
    ({"conf": 0.6}, 0.3, 0.3),  # the user's value wins, lower or higher
    ({"conf": 0.6}, 0.9, 0.9),
])
def test_zoo_run_uses_the_artifacts_threshold_unless_told_otherwise(meta, given, expected):
    task = registry().task("object-detection").load()
    options = task.begin(_Artifact({"config": {"input_size": 32}, **meta}), [], {"conf": given})
    assert options["conf"] == expected


@pytest.mark.parametrize("bad", [1.5, 0, -0.1, "0.5", True, [0.5]])
def test_an_artifact_threshold_out_of_range_or_not_a_number_is_refused_by_name(bad):
    with pytest.raises(ZooError, match="conf must be a number between 0 and 1"):
        model_conf({"conf": bad}, "model.onnx")
    task = registry().task("object-detection").load()
    with pytest.raises(ZooError, match="model.onnx: artifact metadata conf"):
        task.begin(_Artifact({"config": {"input_size": 32}, "conf": bad}), [], {})
