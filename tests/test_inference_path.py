"""Principle: inference never imports torch."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "zoo" / "samples"

PROBE = """
import json, sys
from zoo.cli import main
sys.argv = ["zoo", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("\\nTORCH-LOADED" if "torch" in sys.modules else "\\nTORCH-FREE", code)
"""


def probe(args, env):
    return subprocess.run([sys.executable, "-c", PROBE, json.dumps([str(a) for a in args])], capture_output=True,
                          text=True, env=env, timeout=300)


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
