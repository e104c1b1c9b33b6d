"""LeNet-5 end to end through the real CLI: train, resume, export, plain onnxruntime, run."""

import json
import sys

import numpy as np
import pytest

from zoo.registry import load_registry
from zoo.testing import check_model, check_plugin_specs

SAMPLES = __import__("pathlib").Path(__file__).resolve().parent.parent / "zoo" / "samples"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, zoo):
    """A user store holding a quickly trained lenet5 and its export."""
    home = tmp_path_factory.mktemp("lenet-home")
    env = {"ZOO_HOME": str(home)}
    result = zoo("train", "lenet5", "--epochs", "1", "--max-steps", "15", "--no-progress", "--tag", "quick",
                 "--activate", env=env)
    assert result.returncode == 0, result.stderr
    exported = zoo("export", "lenet5", "--onnx", env=env)
    assert exported.returncode == 0, exported.stderr
    return home, env, exported.stdout


def test_lenet5_matches_the_paper_layout_and_declared_parameter_count(tmp_path):
    check_plugin_specs("lenet")
    spec = load_registry().model("lenet5")
    assert spec.input_shape == (1, 32, 32) and spec.params == 61_706
    check_model("lenet5", tmp_path)


def test_training_writes_metrics_curve_checkpoints_and_a_manifest(trained):
    home, _, _ = trained
    run = home / "runs" / "lenet5" / "quick"
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1] and 0 <= history[0]["dev_accuracy"] <= 1
    assert (run / "curve.png").read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((home / "weights" / "lenet5" / "quick" / "manifest.json").read_text())
    assert manifest["splits"] == {"train": 3500, "dev": 500, "test": 1000}
    assert {"test_accuracy", "dev_accuracy"} <= set(manifest["metrics"])
    assert manifest["command"].startswith("zoo train lenet5") and len(manifest["sha256"]) == 64
    assert not list(run.glob(".*"))  # no temporary files left behind


def test_resume_continues_from_the_last_checkpoint(tmp_path, zoo):
    env = {"ZOO_HOME": str(tmp_path)}
    first = zoo("train", "lenet5", "--epochs", "1", "--max-steps", "3", "--no-progress", env=env)
    assert first.returncode == 0, first.stderr
    second = zoo("train", "lenet5", "--epochs", "2", "--max-steps", "3", "--no-progress", "--resume", env=env)
    assert second.returncode == 0, second.stderr
    assert "resuming lenet5 from epoch 1" in second.stderr
    (run,) = (tmp_path / "runs" / "lenet5").iterdir()  # the newest run is the one resumed
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2 and [h["epoch"] for h in state["history"]] == [1, 2]
    first_seconds, total = (h["seconds"] for h in state["history"])
    assert total > first_seconds  # training time counts the epochs before the resume


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, zoo):
    result = zoo("train", "lenet5", "--resume", "--epochs", "1", env={"ZOO_HOME": str(tmp_path)})
    assert result.returncode != 0 and "no checkpoint" in result.stderr and "Traceback" not in result.stderr


def test_export_reports_checker_and_parity_at_two_batch_sizes(trained):
    _, _, stdout = trained
    assert "onnx.checker: ok" in stdout
    assert "real samples from the digits dev split" in stdout
    assert "batch 4" in stdout and "batch 1" in stdout and "FAILED" not in stdout


def test_artifact_runs_in_plain_onnxruntime_and_describes_itself(trained, tmp_path):
    home, _, _ = trained
    path = home / "exports" / "lenet5.onnx"
    # a plain onnxruntime user: no zoo import at all
    code = f"""
import json, numpy as np, onnxruntime as ort, sys
s = ort.InferenceSession({str(path)!r}, providers=["CPUExecutionProvider"])
meta = json.loads(s.get_modelmeta().custom_metadata_map["zoo"])
x = np.zeros((3, 1, 32, 32), np.float32)
print(json.dumps({{"shape": s.run(None, {{"input": x}})[0].shape, "meta": meta, "zoo": "zoo" in sys.modules}}))
"""
    import subprocess

    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out["shape"] == [3, 10] and out["zoo"] is False
    meta = out["meta"]
    assert meta["task"] == "image-classification" and meta["labels"] == [str(i) for i in range(10)]
    assert meta["preprocessing"]["size"] == [32, 32] and len(meta["weights_sha256"]) == 64
    assert meta["zoo_version"]


def test_run_prints_label_and_probability_and_json(trained, zoo):
    _, env, _ = trained
    text = zoo("run", "lenet5", SAMPLES / "digit7.png", env=env)
    assert text.returncode == 0, text.stderr
    label, prob = text.stdout.split(": ", 1)[1].split(" (")[0], text.stdout.split("(")[1].split("%")[0]
    assert label in [str(i) for i in range(10)] and 0 <= float(prob) <= 100
    js = zoo("run", "lenet", SAMPLES, "--json", "--top-k", "3", env=env)
    data = json.loads(js.stdout)
    assert data["provider"] == "CPUExecutionProvider" and len(data["results"]) == 2
    for result in data["results"]:
        probs = [t["prob"] for t in result["top"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6


def test_run_accepts_the_artifact_path_and_several_files(trained, zoo):
    home, env, _ = trained
    files = [SAMPLES / "digit7.png", SAMPLES / "digit3.png", SAMPLES / "digit7.png"]
    result = zoo("run", home / "exports" / "lenet5.onnx", *files, "--json", "--batch-size", "2", env=env)
    assert result.returncode == 0, result.stderr
    assert [r["input"] for r in json.loads(result.stdout)["results"]] == [str(f) for f in files]


def test_shipped_weights_reach_98_percent_on_the_held_out_test_split():
    from zoo import store

    entry = store.find("lenet5")
    assert entry is not None and entry.shipped, "lenet5 weights must ship in weights/lenet5"
    entry.verify()
    metrics = entry.manifest["metrics"]
    assert entry.manifest["splits"]["test"] >= 1000
    assert metrics["test_accuracy"] >= 0.98, metrics


def test_shipped_weights_read_the_shipped_sample_digits(tmp_path, zoo):
    env = {"ZOO_HOME": str(tmp_path)}
    assert zoo("export", "lenet5", "--onnx", env=env).returncode == 0
    result = json.loads(zoo("run", "lenet5", SAMPLES, "--json", env=env).stdout)
    best = {r["input"].rsplit("/", 1)[1]: r["top"][0]["label"] for r in result["results"]}
    assert best == {"digit3.png": "3", "digit7.png": "7"}


def test_parity_check_detects_a_graph_that_differs_from_the_module(trained, tmp_path):
    import torch

    from zoo.exporters.onnx import _parity, image_graph

    home, _, _ = trained
    other = load_registry().model("lenet5").build()
    torch.manual_seed(1)
    graph = image_graph(other.eval(), (1, 32, 32), None)
    assert not any(p.ok for p in _parity(graph, home / "exports" / "lenet5.onnx"))


def test_digit_preprocessing_treats_ink_on_paper_like_mnist():
    from zoo.runtime.tasks.classification import preprocess

    pre = load_registry().model("lenet5").preprocessing
    light = np.zeros((60, 40), np.uint8)
    light[10:50, 18:24] = 255  # a white stroke on black, like MNIST
    dark = 255 - light  # the same stroke in dark ink on white paper
    a, b = preprocess(light, pre), preprocess(dark, pre)
    assert a.shape == (1, 32, 32) and np.allclose(a, b)
    assert a.max() > a.min() and (a > a.min() + 1e-3).sum() < 0.3 * a.size  # ink is the minority


def test_shipped_model_reads_digits_from_other_writers(tmp_path, zoo):
    """scikit-learn's digits (UCI, 8x8, other writers, never seen in training) drawn as dark ink
    on light paper and enlarged: the shipped model still reads most of them (87% seen)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pick = np.random.default_rng(0).choice(len(digits.target), 300, replace=False)
    folder = tmp_path / "uci"
    folder.mkdir()
    for i in pick:
        ink = (digits.images[i] / 16 * 255).astype(np.uint8)
        Image.fromarray(255 - ink).resize((64, 64), Image.Resampling.BICUBIC).save(folder / f"{i:04d}_{digits.target[i]}.png")
    env = {"ZOO_HOME": str(tmp_path / "home")}
    assert zoo("export", "lenet5", env=env).returncode == 0
    results = json.loads(zoo("run", "lenet5", folder, "--json", env=env).stdout)["results"]
    correct = sum(r["top"][0]["label"] == r["input"].rsplit("_", 1)[1][0] for r in results)
    assert len(results) == 300 and correct / 300 >= 0.8, correct
