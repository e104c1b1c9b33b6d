"""The conformance kit's dataset and task checks pass on built-ins and catch what they promise to."""

import pytest

from fakeplugins import make_plugin
from zoo.errors import ZooError
from zoo.testing import check_dataset, check_model, check_task

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


# -- the module contract (zoo.contracts.ZooModule) ---------------------------------------------
def _source_files():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    return [p for folder in ("zoo", "exporters", "plugins", "runtime") for p in (root / folder).rglob("*.py")]


def test_every_module_hook_zoo_looks_up_is_declared_in_the_protocol():
    import re

    from zoo.contracts import HOOKS

    lookup = re.compile(r"""(?:hasattr|getattr|hook)\((?:module|self\.module|model|net), ["']([a-z_]+)["']""")
    found = {name for path in _source_files() for name in lookup.findall(path.read_text(encoding="utf-8"))}
    assert found, "the scan finds the lookups it checks"
    assert found <= HOOKS, f"looked up but not declared in ZooModule: {sorted(found - HOOKS)}"
    assert {"loss", "forward_train", "freeze", "export_graphs", "input_shape", "imported_state",
            "darknet_layers"} <= HOOKS


def test_every_hook_is_documented_in_the_plugin_guide():
    from pathlib import Path

    from zoo.contracts import HOOKS

    guide = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert [name for name in sorted(HOOKS) if f"`{name}" not in guide] == []


def test_hook_returns_the_method_or_none_and_refuses_what_is_not_callable():
    import torch

    from zoo.contracts import hook

    class Net(torch.nn.Module):
        freeze = 3

        def loss(self, outputs, targets):
            return outputs.sum()

    net = Net()
    assert hook(net, "loss").__func__ is Net.loss and hook(net, "forward_train") is None
    with pytest.raises(ZooError, match="Net.freeze is a zoo module hook and must be a method, not a int"):
        hook(net, "freeze")
    with pytest.raises(KeyError, match="'los' is not a ZooModule hook"):
        hook(net, "los")


def test_signature_problems_name_a_hook_that_cannot_take_zoos_arguments():
    import torch

    from zoo.contracts import signature_problems

    class Net(torch.nn.Module):
        def loss(self, outputs):
            return outputs

        def freeze(self, upto, how="all"):  # an extra optional parameter is fine
            pass

        def forward_train(self, *args):
            return args[0]

    assert signature_problems(Net()) == ["Net.loss(outputs) cannot be called as loss(outputs, targets)"]


@pytest.mark.parametrize("model", ["lenet5", "char-rnn", "seq2seq-dates", "facenet-small", "yolo-nano"])
def test_the_builtin_modules_hooks_fit_the_protocol(model):
    from zoo.contracts import signature_problems
    from zoo.registry import registry

    assert signature_problems(registry().model(model).build()) == []


def test_check_model_refuses_a_module_whose_hook_does_not_fit(plugin_dir):
    make_plugin(plugin_dir, "badhook-dist", "badhook", "badhook_plugin", '''
        import torch
        import zoo

        class Net(torch.nn.Sequential):
            def loss(self, outputs):
                return outputs.sum()

        def build(config):
            return Net(torch.nn.Flatten(), torch.nn.Linear(16, 3))

        @zoo.hookimpl
        def zoo_models():
            return [zoo.ModelSpec(name="badhook", family="badhook", task="image-classification", summary="s",
                                  builder="badhook_plugin:build", params=51, input_shape=(1, 4, 4),
                                  preprocessing={"mode": "L", "size": [4, 4]}, labels=("a", "b", "c"))]
    ''')
    with pytest.raises(AssertionError, match="badhook: hooks that do not fit zoo.contracts.ZooModule: "
                                             "Net.loss\\(outputs\\) cannot be called as loss\\(outputs, targets\\)"):
        check_model("badhook", plugin_dir)
