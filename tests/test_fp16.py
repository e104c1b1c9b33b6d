"""``zoo export --fp16`` for any single-graph model: the graphs are counted as the export counts
them, the variant is judged by the model's task, and refusals leave nothing behind."""

import numpy as np
import pytest

from conftest import assert_one_line_error
from fakeplugins import make_plugin
from zoo.errors import ZooError
from zoo.registry import registry
from zoo.runtime.tasks import Agreement, Task, top1_agreement

NETS = '''
import torch
from torch import nn

from zoo.exporters.onnx import Graph


def _pixels(batch, seed):
    return (torch.randn(batch, 1, 4, 4, generator=torch.Generator().manual_seed(seed)),)


class OneGraph(nn.Module):
    """One graph of its own, with names of its own (as YOLO's ``images`` -> ``predictions``)."""

    def __init__(self, scale=1.0):
        super().__init__()
        self.fc = nn.Linear(16, 3)
        self.scale = scale

    def forward(self, x):
        return self.fc(x.flatten(1)) * self.scale

    def export_graphs(self, samples):
        return [Graph("model", self, _pixels, ["pixels"], ["scores"], {"pixels": {0: "batch"}, "scores": {0: "batch"}})]


class TwoGraphs(OneGraph):
    def export_graphs(self, samples):
        return super().export_graphs(samples) + [Graph("second", nn.Linear(16, 2), lambda b, s: (torch.randn(b, 16),),
                                                      ["x"], ["y"], {"x": {0: "batch"}, "y": {0: "batch"}})]


class TokenIds(nn.Module):
    """Integer token ids in, as a text model takes them: the ids must not be cast to float16."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, ids):
        return self.fc(self.embed(ids).mean(1))

    def export_graphs(self, samples):
        ids = lambda batch, seed: (torch.randint(0, 20, (batch, 5), generator=torch.Generator().manual_seed(seed)),)
        return [Graph("model", self, ids, ["ids"], ["logits"], {"ids": {0: "batch"}, "logits": {0: "batch"}})]


def build(config):
    return {"one": lambda: OneGraph(), "two": lambda: TwoGraphs(), "ids": lambda: TokenIds(),
            "huge": lambda: OneGraph(1e6)}[config["kind"]]()
'''

PLUGIN = '''
import zoo
from zoo import ModelSpec, TaskSpec
from zoo.runtime.tasks import Agreement
from zoo.runtime.tasks.classification import ImageClassification


class Strict(ImageClassification):
    name = "strict-scores"

    def compare_precision(self, reference, candidate, meta):
        return Agreement(0, len(reference[0]), "the strict criterion")


@zoo.hookimpl
def zoo_tasks():
    return [TaskSpec(name="strict-scores", summary="a task with its own fp16 criterion",
                     impl="{module}:Strict")]


@zoo.hookimpl
def zoo_models():
    def spec(name, kind, task="image-classification", params=51):
        return ModelSpec(name=name, family="halves", task=task, summary="fp16 test model",
                         builder="{module}_nets:build", params=params, default_config={{"kind": kind}},
                         input_shape=(1, 4, 4), preprocessing={{"mode": "L", "size": [4, 4]}}, labels=("a", "b", "c"))
    return [spec("{prefix}one", "one"), spec("{prefix}two", "two"), spec("{prefix}ids", "ids", params=187),
            spec("{prefix}huge", "huge"), spec("{prefix}strict", "one", task="strict-scores")]
'''


@pytest.fixture
def halves(plugin_dir, zoo_home, request):
    """A plugin of fp16 test models, its names unique to the test (modules are cached by name)."""
    prefix = request.node.name.split("[")[0][-12:].replace("_", "")
    module = f"halves_{prefix}"
    make_plugin(plugin_dir, f"halves-{prefix}", f"halves{prefix}", module,
                PLUGIN.format(module=module, prefix=f"{prefix}-"))
    (plugin_dir / f"{module}_nets.py").write_text(NETS)
    registry.cache_clear()
    yield prefix + "-"
    registry.cache_clear()


def export(name, out, **kwargs):
    from zoo.modelio import export_model

    return export_model(name, out=str(out), random_weights=True, fp16=True, **kwargs)


def test_a_model_whose_export_graphs_gives_one_graph_gets_a_variant_with_its_own_names(halves, tmp_path):
    import onnx

    report = export(f"{halves}one", tmp_path / "one.onnx")
    half = onnx.load(str(tmp_path / "one-fp16.onnx"))
    assert [i.name for i in half.graph.input] == ["pixels"] and [o.name for o in half.graph.output] == ["scores"]
    assert {w.data_type for w in half.graph.initializer if len(w.dims) > 1} == {onnx.TensorProto.FLOAT16}
    assert report.fp16.what == "top-1 agreement" and report.fp16.total == 16
    assert report.fp16.lines()[0].startswith("fp16: top-1 agreement with fp32")


def test_integer_inputs_pass_through_uncast(halves, tmp_path):
    import onnx

    report = export(f"{halves}ids", tmp_path / "ids.onnx")
    (ids,) = onnx.load(str(report.fp16.path)).graph.input
    assert ids.type.tensor_type.elem_type == onnx.TensorProto.INT64 and report.fp16.agree >= 14


def test_a_model_of_two_graphs_is_refused_before_anything_is_written(halves, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ZooError, match="exports 2 graphs \\(model, second\\); half precision is offered for "
                                       "single-graph models; nothing written"):
        export(f"{halves}two", out / "two.onnx")
    assert list(out.iterdir()) == []


def test_the_tasks_own_comparison_judges_the_variant(halves, tmp_path):
    report = export(f"{halves}strict", tmp_path / "strict.onnx")
    assert (report.fp16.agree, report.fp16.total, report.fp16.what) == (0, 16, "the strict criterion")
    assert "fp16: the strict criterion with fp32 0/16" in report.fp16.lines()[0]


def test_a_variant_that_overflows_is_refused_and_no_fp16_file_appears(halves, tmp_path):
    with pytest.raises(ZooError, match="overflows in half precision.*nothing written"):
        export(f"{halves}huge", tmp_path / "huge.onnx")
    assert not (tmp_path / "huge-fp16.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".zoo-export-")]


def test_several_graphs_from_the_command_line_are_one_line_and_write_nothing(zoo, tmp_path):
    home = tmp_path / "home"
    result = zoo("export", "seq2seq-dates", "--fp16", env={"ZOO_HOME": str(home)})  # its shipped weights
    assert_one_line_error(result, "--fp16: seq2seq-dates exports 2 graphs (encoder, decoder_step)")
    assert not list((home / "exports").glob("*seq2seq*"))


# -- the criteria ----------------------------------------------------------------------------
def test_top1_agreement_counts_the_samples_whose_class_is_unchanged():
    reference = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 1.1]])
    candidate = np.array([[2.9, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.1, 1.0]])
    assert top1_agreement(reference, candidate) == Agreement(2, 3, "top-1 agreement")


def test_the_default_criterion_is_every_output_within_one_percent_of_its_scale():
    reference = [np.array([[100.0, 0.0], [50.0, 10.0]]), np.array([[1.0], [1.0]])]
    close = [np.array([[100.5, 0.9], [50.0, 10.0]]), np.array([[1.0], [1.0]])]
    far = [np.array([[100.5, 0.9], [50.0, 12.0]]), np.array([[1.0], [0.5]])]
    assert Task().compare_precision(reference, close, {}).agree == 2
    assert Task().compare_precision(reference, far, {}).agree == 1
