"""int8 variants: calibrated on dev samples, judged by the task's metric on held-out samples
beside float32, refused (nothing written) when they lose too much."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from tests.conftest import digits_in_mnist_layout

from zoo.errors import ZooError
from zoo.exporters.int8 import WEIGHTED, export_int8, float_tail, int8_path
from zoo.registry import load_registry
from zoo.runtime.artifact import open_artifact
from zoo.specs import load_object

SAMPLE = Path(__file__).resolve().parent.parent / "zoo" / "samples" / "digit7.png"


@pytest.fixture(scope="module")
def digits():
    reg = load_registry()
    return reg.task("image-classification").load(), load_object(reg.dataset("digits").loader)(None, seed=0)


@pytest.fixture
def fp32(lenet_home, tmp_path):
    path = tmp_path / "lenet5.onnx"
    shutil.copyfile(lenet_home / "exports" / "lenet5.onnx", path)
    return path


def quantise(path, digits, **kw):
    task, splits = digits
    calibration = task.encode_inputs(list(splits.dev.inputs[:128]), open_artifact(path, "cpu").meta)
    return export_int8(path, task, calibration, list(splits.test.inputs[:300]), splits.test.targets[:300], **kw)


def test_int8_variant_is_scored_on_held_out_data_and_describes_itself(fp32, digits):
    report = quantise(fp32, digits, force=True)
    assert report.written and report.path == int8_path(fp32) and report.samples == 300
    artifact = open_artifact(report.path, "cpu")
    assert artifact.meta["precision"] == "int8" and artifact.meta["model"] == "lenet5"
    ops = {node.op_type for node in onnx.load(str(report.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    task, splits = digits
    targets = splits.test.targets[:300]
    outputs = task.runtime_outputs(artifact, list(splits.test.inputs[:300]), targets, artifact.meta)
    assert task.metric(outputs, targets, artifact.meta)["accuracy"] == report.int8
    assert 0.9 < report.int8 <= 1 and 0.9 < report.agreement <= 1
    assert "top-1 agreement" in report.lines()[0]


def test_the_layers_that_make_the_outputs_stay_float(fp32, digits):
    graph = onnx.load(str(fp32)).graph
    kinds = {node.name: node.op_type for node in graph.node}
    tail = float_tail(graph)
    assert [kinds[name] for name in tail if kinds[name] in WEIGHTED] == ["Gemm"]  # the classifier layer alone
    quantised = onnx.load(str(quantise(fp32, digits, force=True).path)).graph
    producer = {out: node.op_type for node in quantised.node for out in node.output}
    fed = {node.name: {producer.get(name) for name in node.input} for node in quantised.node}
    assert all("DequantizeLinear" not in fed[name] for name in tail)  # float inputs, float weights
    assert all("DequantizeLinear" in fed[node.name] for node in quantised.node
               if node.op_type in WEIGHTED and node.name not in tail)  # every other layer runs on int8


def test_an_int8_variant_that_loses_too_much_is_refused_and_nothing_is_written(fp32, digits):
    with pytest.raises(ZooError, match="the int8 variant was not written"):
        quantise(fp32, digits, max_drop=-1.0)  # no variant can gain a whole point of accuracy
    assert not int8_path(fp32).exists() and not list(fp32.parent.glob(".*"))


def test_stale_value_info_does_not_stop_quantisation(fp32, digits):
    model = onnx.load(str(fp32))
    weight = next(init for init in model.graph.initializer if len(init.dims) == 2)
    stale = onnx.helper.make_tensor_value_info(weight.name, onnx.TensorProto.FLOAT, list(weight.dims[::-1]))
    del model.graph.value_info[:]
    model.graph.value_info.append(stale)  # a shape that no longer describes the tensor, as a rewrite can leave
    onnx.save(model, str(fp32))
    assert quantise(fp32, digits, force=True).written


def test_several_graphs_are_refused(tmp_path, digits):
    folder = tmp_path / "multi"
    folder.mkdir()
    (folder / "zoo.json").write_text(json.dumps({"task": "image-classification", "model": "x", "graphs": {}}))
    task, _ = digits
    with pytest.raises(ZooError, match="single-graph"):
        export_int8(folder, task, np.zeros((8, 1, 32, 32), np.float32), [], np.zeros(0))


def test_zoo_export_int8_and_zoo_run_precision_int8(tmp_path, zoo):
    env = {"ZOO_HOME": str(tmp_path)}
    data = digits_in_mnist_layout(tmp_path / "mnist")
    result = zoo("export", "lenet5", "--int8", "--force", "--data", data, env=env)
    assert result.returncode == 0, result.stderr
    assert "int8: accuracy" in result.stdout and "on 1000 held-out samples" in result.stdout
    assert (tmp_path / "exports" / "lenet5-int8.onnx").is_file() and "WARNING" not in result.stderr
    ran = zoo("run", "lenet5", SAMPLE, "--precision", "int8", "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["artifact"].endswith("lenet5-int8.onnx")
    missing = zoo("run", "lenet5", SAMPLE, "--precision", "fp16", env=env)
    assert missing.returncode != 0 and "zoo export lenet5 --fp16" in missing.stderr


def test_a_step_graph_is_quantised_dynamically_and_generates(tmp_path, zoo):
    """char-rnn's step graph takes its state in beside the token: its weights are quantised ahead,
    its activations at run time, and it is judged on the held-out text by bits per character."""
    env = {"ZOO_HOME": str(tmp_path)}
    result = zoo("export", "char-rnn", "--int8", "--force", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["int8"]
    assert report["written"] and report["method"] == "dynamic" and report["metric"] == "bpc"
    assert abs(report["int8"] - report["fp32"]) < 0.005 and report["samples"] > 100
    ops = {node.op_type for node in onnx.load(report["path"]).graph.node}
    assert "DynamicQuantizeLinear" in ops and "MatMulInteger" in ops
    ran = zoo("run", "char-rnn", "--prime", "The ", "--length", "20", "--precision", "int8", "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["artifact"].endswith("char-rnn-int8.onnx")
