"""Provider choice is honest, and the shared classification post-processing is right."""

import numpy as np
import onnxruntime as ort
import pytest

from zoo.errors import ZooError
from zoo.runtime import session as sess
from zoo.runtime.tasks.classification import softmax, top_k


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])])
    path = tmp_path_factory.mktemp("m") / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10),
              str(path))
    return path


class CpuOnlySession:
    """What onnxruntime hands back when CUDA libraries fail to load: a session on the CPU."""

    def __init__(self, path, sess_options=None, providers=None):
        self.asked = providers

    def get_providers(self):
        return ["CPUExecutionProvider"]


@pytest.fixture
def gpu_build_without_gpu(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", CpuOnlySession)
    monkeypatch.setattr(sess, "_gpu_present", lambda: True)


def test_cpu_provider_is_reported(model_path):
    session, report = sess.create_session(str(model_path), "cpu")
    assert report.used == "CPUExecutionProvider" and session.get_providers() == ["CPUExecutionProvider"]


def test_silent_cuda_fallback_is_a_warning_under_auto(model_path, gpu_build_without_gpu, capsys):
    _, report = sess.create_session(str(model_path), "auto")
    assert report.used == "CPUExecutionProvider"
    assert "CUDAExecutionProvider was requested but onnxruntime fell back" in capsys.readouterr().err


def test_silent_cuda_fallback_is_an_error_when_cuda_is_asked_for(model_path, gpu_build_without_gpu):
    with pytest.raises(ZooError, match="fell back to CPUExecutionProvider"):
        sess.create_session(str(model_path), "cuda")


def test_auto_without_a_gpu_device_does_not_try_cuda(model_path, monkeypatch, capsys):
    monkeypatch.setattr(sess, "_gpu_present", lambda: False)
    _, report = sess.create_session(str(model_path), "auto")
    assert report.used == "CPUExecutionProvider" and capsys.readouterr().err == ""


def test_provider_missing_from_the_build(model_path, monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ZooError, match="not in this onnxruntime build"):
        sess.create_session(str(model_path), "cuda")
    with pytest.raises(ZooError, match="unknown provider"):
        sess.create_session(str(model_path), "gpu")


def test_cpu_and_gpu_packages_side_by_side_are_reported(model_path, monkeypatch, capsys):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(sess, "_installed", lambda dist: dist in ("onnxruntime", "onnxruntime-gpu"))
    _, report = sess.create_session(str(model_path), "auto")
    assert "both onnxruntime and a GPU build" in report.note
    assert "shadows" in capsys.readouterr().err


def test_softmax_and_top_k_with_labels():
    probs = softmax(np.array([[1.0, 3.0, 2.0], [0.0, 0.0, 10.0]]))
    assert np.allclose(probs.sum(1), 1) and probs[0].argmax() == 1
    top = top_k(probs, 2, ["a", "b", "c"])
    assert [t["label"] for t in top[0]] == ["b", "c"] and [t["label"] for t in top[1]] == ["c", "a"]
    assert top_k(probs, 99, ["a", "b", "c"])[0][-1]["label"] == "a"  # k capped at the class count
    assert np.isfinite(softmax(np.array([[1000.0, -1000.0]]))).all()
