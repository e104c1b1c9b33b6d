"""The conformance kit's dataset and task checks pass on built-ins and catch what they promise to."""

import pytest

from fakeplugins import make_plugin
from zoo.testing import check_dataset, check_task

OVERLAP = '''
import numpy as np
import zoo
from zoo.data import Split, Splits

def load(path=None, *, seed=0):
    images = np.arange(4 * 16, dtype=np.uint8).reshape(4, 4, 4)
    part = Split(images[:2], np.array([0, 1]))
    return Splits(part, Split(images[1:3], np.array([1, 0])), Split(images[3:], np.array([1])), labels=("a", "b"))

@zoo.hookimpl
def zoo_datasets():
    return [zoo.DatasetSpec(name="leaky", task="image-classification", summary="dev overlaps train",
                            loader="leaky_plugin:load", source="made up")]
'''


def test_check_dataset_accepts_the_bundled_digits():
    splits = check_dataset("digits")
    assert splits.sizes() == {"train": 3500, "dev": 500, "test": 1000}


def test_check_dataset_catches_a_sample_in_two_splits(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(make_plugin(tmp_path, "leaky-dist", "leaky", "leaky_plugin", OVERLAP)))
    with pytest.raises(AssertionError, match="in both train and dev"):
        check_dataset("leaky")


@pytest.mark.parametrize("task, model", [("image-classification", "lenet5"), ("text-generation", "char-rnn")])
def test_check_task_drives_builtin_tasks_through_pytorch_and_the_artifact(task, model, tmp_path):
    metrics = check_task(task, model, tmp_path)
    assert metrics


def test_check_task_refuses_a_model_of_another_task(tmp_path):
    with pytest.raises(AssertionError, match="is a model of image-classification"):
        check_task("text-generation", "lenet5", tmp_path)
