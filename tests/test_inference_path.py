"""Principle: inference never imports torch."""

from pathlib import Path

import pytest

from conftest import probe

SAMPLES = Path(__file__).resolve().parent.parent / "zoo" / "samples"





@pytest.fixture(scope="module")
def exported(tmp_path_factory, zoo):
    home = tmp_path_factory.mktemp("home")
    env = {"ZOO_HOME": str(home)}
    assert zoo("export", "lenet5", "--onnx", env=env).returncode == 0
    import os

    return dict(os.environ, ZOO_HOME=str(home))


@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["info", "lenet5"], ["plugins"],
                                  ["weights", "list"], ["run", "lenet5", SAMPLES / "digit7.png"],
                                  ["run", "lenet5", SAMPLES, "--json"]])
def test_command_never_imports_torch(args, exported):
    result = probe(args, exported)
    assert result.stdout.rstrip().endswith("TORCH-FREE 0"), (result.stdout[-500:], result.stderr[-500:])
