"""A real third-party package: the example plugin in examples/zoo-shallow, installed by pip into a
folder of its own, found through its entry point, and driven by the same commands."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "zoo-shallow"
SAMPLES = ROOT / "zoo" / "samples"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, capture_output=True, text=True,
                   cwd=build, timeout=600)
    assert list(target.glob("zoo_shallow-*.dist-info"))
    return target


@pytest.fixture
def env(site, tmp_path):
    return {"PYTHONPATH": str(site), "ZOO_HOME": str(tmp_path / "home")}


def names(result):
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_list_with_and_without_the_plugin(zoo, env):
    without = names(zoo("list", "--json"))
    assert "softmax-regression" not in without and "lenet5" in without
    listed = names(zoo("list", "--json", env=env))
    assert listed["softmax-regression"]["plugin"] == "shallow" and listed["two-layer-net"]["params"] == 50_890
    assert "lenet5" in listed
    plugins = zoo("plugins", "--json", env=env)
    (shallow,) = [p for p in json.loads(plugins.stdout) if p["plugin"] == "shallow"]
    assert shallow["distribution"] == "zoo-shallow" and not shallow["builtin"] and not shallow["errors"]


def test_zoo_load_plugins_empty_hides_it(zoo, env):
    listed = names(zoo("list", "--json", env={**env, "ZOO_LOAD_PLUGINS": ""}))
    assert "softmax-regression" not in listed and "lenet5" in listed


def test_train_export_run_a_third_party_model(zoo, env):
    trained = zoo("train", "shallow", "--epochs", "2", "--no-progress", env=env)
    assert trained.returncode == 0, trained.stderr
    assert "test_accuracy" in trained.stdout
    exported = zoo("export", "softmax-regression", "--onnx", env=env)
    assert exported.returncode == 0 and "onnx.checker: ok" in exported.stdout, exported.stderr
    ran = zoo("run", "softmax-regression", SAMPLES, "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    assert [r["top"][0]["label"] for r in json.loads(ran.stdout)["results"]] and "torch" not in ran.stderr


def test_the_plugins_own_tests_pass_with_the_conformance_kit(site):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(site)), timeout=600)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "4 passed" in result.stdout


def test_the_plugins_shipped_weights_export_and_run_with_no_training(zoo, env, site):
    listed = zoo("weights", "list", "softmax-regression", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert entry["tag"] == "shipped" and entry["active"] and entry["where"] == "shipped" and not entry["broken"]
    assert entry["path"].startswith(str(site / "zoo_shallow" / "weights" / "softmax-regression"))
    assert entry["metrics"]["test_accuracy"] > 0.85
    exported = zoo("export", "softmax-regression", env=env)
    assert exported.returncode == 0 and "onnx.checker: ok" in exported.stdout, exported.stderr
    ran = zoo("run", "softmax-regression", SAMPLES / "digit3.png", "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["results"][0]["top"][0]["label"] == "3"
    verified = zoo("weights", "verify", "softmax-regression", env=env)
    assert verified.returncode == 0 and "softmax-regression@shipped" in verified.stdout, verified.stderr
    removed = zoo("weights", "remove", "softmax-regression@shipped", env=env)
    assert removed.returncode != 0 and "plugin 'shallow' (distribution zoo-shallow) and read-only" in removed.stderr
