import json
import subprocess
import sys

import pytest

from zoo.errors import ZooError


def test_triton_repository_entry_for_lenet5(tmp_path, zoo):
    repo = tmp_path / "models"
    result = zoo("export", "lenet5", "--format", "triton", "--out", repo, env={"ZOO_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr
    config = (repo / "lenet5" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "max_batch_size: 64" in config
    assert 'name: "input"' in config and "dims: [ 1, 32, 32 ]" in config and "dims: [ 10 ]" in config
    model = repo / "lenet5" / "1" / "model.onnx"
    code = (f"import onnxruntime as o, json; s = o.InferenceSession({str(model)!r}, providers=['CPUExecutionProvider']);"
            "print(json.loads(s.get_modelmeta().custom_metadata_map['zoo'])['model'])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "lenet5"
    assert sorted(p.name for p in repo.iterdir()) == ["lenet5"]  # nothing staged left behind
    # Triton's classification extension names classes from labels.txt, one per logit, in order
    assert (repo / "lenet5" / "labels.txt").read_text().splitlines() == [str(i) for i in range(10)]
    logits = config[config.index('name: "logits"'):]
    assert logits.index('label_filename: "labels.txt"') < logits.index("}")
    assert config.count("label_filename") == 1  # the input names no labels
    again = zoo("export", "lenet5", "--format", "triton", "--out", repo, env={"ZOO_HOME": str(tmp_path / "home")})
    assert again.returncode == 0, again.stderr  # an entry with labels.txt is still one zoo wrote


def _graph(tmp_path, outputs):
    import onnx
    from onnx import helper

    nodes = [helper.make_node("Identity", ["x"], [name]) for name, _, _ in outputs]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, ["batch", 10])],
                              [helper.make_tensor_value_info(name, kind, shape) for name, kind, shape in outputs])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_label_filename_only_on_outputs_of_one_score_per_label(tmp_path):
    from zoo.exporters.triton import config_pbtxt

    path = _graph(tmp_path, [("probs", 1, ["batch", 10]), ("rows", 1, ["batch", 5, 10]), ("ids", 7, ["batch", 10]),
                             ("other", 1, ["batch", 7])])
    config = config_pbtxt("m", path, labels=10)
    blocks = {b.split('"')[1]: b for b in config.split("output [")[1].split("},")}
    assert "label_filename" in blocks["probs"]
    assert not any("label_filename" in blocks[name] for name in ("rows", "ids", "other"))
    assert "label_filename" not in config_pbtxt("m", path)  # no labels, no file named


def test_triton_refuses_models_driven_by_a_loop(tmp_path):
    from zoo.exporters.triton import export

    class TwoGraphs:
        def export_graphs(self, samples):
            return [object(), object()]

    class Spec:
        name = "looped"

    with pytest.raises(ZooError, match="several graphs"):
        export(Spec(), TwoGraphs(), tmp_path)


def test_triton_nms_entry_serves_boxes_without_a_labels_file(tmp_path, monkeypatch):
    """The detector's entry with decoding and NMS inside: outputs with the batch axis left to
    Triton, padded to max_det, and no label_filename (its scores are per detection)."""
    pytest.importorskip("torch")
    from zoo.modelio import export_model

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    report = export_model("yolov3-tiny", "triton-nms", out=str(tmp_path / "models"))
    entry = tmp_path / "models" / "yolov3-tiny-nms"
    assert report.path == entry and sorted(p.name for p in entry.iterdir()) == ["1", "config.pbtxt"]
    config = (entry / "config.pbtxt").read_text()
    assert 'name: "yolov3-tiny-nms"' in config and "label_filename" not in config
    for name, kind, dims in (("num_detections", "TYPE_INT64", "1"), ("boxes", "TYPE_FP32", "100, 4"),
                             ("scores", "TYPE_FP32", "100"), ("classes", "TYPE_INT64", "100")):
        assert f'name: "{name}"\n    data_type: {kind}\n    dims: [ {dims} ]' in config, config
    assert 'name: "images"\n    data_type: TYPE_FP32\n    dims: [ 3, 416, 416 ]' in config
