"""Plugin distributions made on the fly: a dist-info folder with an entry point in group
``zoo.plugins`` and the module it names, on a folder the test puts on PYTHONPATH/sys.path."""

from __future__ import annotations

import textwrap
from pathlib import Path

TINY_MODEL = '''
import zoo
from zoo import ModelSpec


def build(config):
    from torch import nn
    return nn.Sequential(nn.Flatten(), nn.Linear(4 * 4, config["num_classes"]))


@zoo.hookimpl
def zoo_models():
    return [ModelSpec(name="{name}", family="{family}", task="image-classification", summary="tiny test model",
                      builder="{module}:build", params=16 * 3 + 3, default_config={{"num_classes": 3}},
                      input_shape=(1, 4, 4), preprocessing={{"mode": "L", "size": [4, 4]}}, labels=("a", "b", "c"){fields})]
'''


def make_plugin(root: Path, dist: str, entry: str, module: str, source: str, version: str = "0.1") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[zoo.plugins]\n{entry} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    return root


def tiny_model_source(name: str = "tinynet", family: str = "tiny", module: str = "tiny_plugin",
                      fields: str = "") -> str:
    """The tiny model's plugin source; ``fields`` adds ModelSpec arguments (``'weights="pkg:w"'``)."""
    return TINY_MODEL.format(name=name, family=family, module=module, fields=f", {fields}" if fields else "")
