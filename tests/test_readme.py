"""The README's Python section runs as written, from the repository, and prints what it says."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## From Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readmes_python_section_runs(lenet_home):
    import os

    from zoo.data import load_mnist
    from zoo.errors import ZooError

    try:
        load_mnist()
        have_mnist = True
    except ZooError:
        have_mnist = False
    code = _python_block()
    if not have_mnist:  # everything but the last line, which needs the official MNIST
        code = code.rsplit("print(zoo.val", 1)[0]
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, ZOO_HOME=str(lenet_home)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[('7', ")  # the top two of the shipped digit 7
    assert lines[1].startswith("{'input': 'zoo/samples/digit3.png', 'top': [{'index': 3, 'label': '3'")
    assert lines[2].startswith("{'input': 'zoo/samples/digit7.png', 'top': [{'index': 7, 'label': '7'")
    if have_mnist:
        assert "'accuracy': 0.9923" in lines[3]
