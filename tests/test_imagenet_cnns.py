"""AlexNet, VGG, ResNet and GoogLeNet: torchvision equivalence without torchvision (the closed-
formula fixture), weights import, freezing for transfer learning, fine-tuning on a generated
image folder through the real CLI, export (fp32 and fp16) and the torch-free runtime."""

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

from zoo.errors import ZooError
from zoo.registry import load_registry
from zoo.testing import check_model, check_plugin_specs, count_parameters

FIXTURE = Path(__file__).parent / "data" / "torchvision-0.26-reference.json"
REFERENCE = json.loads(FIXTURE.read_text())["models"]
BIG = {"vgg11", "vgg13", "vgg16", "vgg19", "vgg16_bn"}  # a few seconds each in float64
#: the fixture's googlenet was built with transform_input=False (see tests/data/README.md)
FIXTURE_CONFIG = {"googlenet": {"transform_input": False}}
TINY = {"image_size": 64, "num_classes": 3}


def formula_state(keys_shapes: list[tuple[str, list[int]]]) -> dict[str, torch.Tensor]:
    """The fixture's closed formula (see tests/data/README.md), float64, keys in order."""
    bn = {key.rsplit(".", 1)[0] for key, _ in keys_shapes if key.endswith("running_var")}
    state = {}
    for k, (key, shape) in enumerate(keys_shapes):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.int64)
            continue
        n = int(np.prod(shape))
        base = np.sin(0.37 * np.arange(n, dtype=np.float64) + 0.5 * k)
        if key.endswith("running_var"):
            v = 1.0 + 0.25 * (1 + base) / 2
        elif key.endswith("running_mean"):
            v = 0.05 * base
        elif len(shape) >= 2:
            v = base * np.sqrt(1.0 / (n / shape[0]))
        elif key.rsplit(".", 1)[0] in bn and key.endswith(".weight"):
            v = 1 + 0.1 * base
        else:
            v = 0.05 * base
        state[key] = torch.from_numpy(v.reshape(shape))
    return state


def formula_input(shape: list[int]) -> torch.Tensor:
    return torch.from_numpy(np.sin(0.011 * np.arange(int(np.prod(shape)), dtype=np.float64)).reshape(shape))


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in REFERENCE])
def test_torchvision_equivalence(name):
    """Same keys, order, shapes, dtypes and parameter count as torchvision, and the same logits
    for the formula weights and input (float64)."""
    ref = REFERENCE[name]
    spec = load_registry().model(name)
    module = spec.build(FIXTURE_CONFIG.get(name)).eval()
    state = module.state_dict()
    assert [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in state.items()] == ref["state_dict"]
    assert count_parameters(module) == ref["num_params"] == spec.params
    module = module.double()
    module.load_state_dict(formula_state([(k, list(v.shape)) for k, v in state.items()]))
    with torch.no_grad():
        logits = module(formula_input(ref["input"])).numpy().ravel()
    expected = np.asarray(ref["logits"])
    assert logits.shape == expected.shape == (1000,)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-12)


def test_plugins_and_specs():
    for plugin in ("alexnet", "vgg", "resnet", "inception"):
        check_plugin_specs(plugin)
    reg = load_registry()
    assert reg.model("resnet").name == "resnet50"
    assert reg.model("vgg").name == "vgg16"
    assert reg.model("inception").name == reg.model("googlenet").name == "googlenet"
    for name in REFERENCE:
        spec = reg.model(name)
        assert dict(spec.preprocessing) == {"mode": "RGB", "resize": 256, "size": [224, 224],
                                            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
        assert len(spec.labels) == 1000 and spec.labels[0] == "tench" and spec.labels[999] == "toilet tissue"
        assert spec.train_defaults["augment"] == "zoo.augment:mirror_crop_colour"
    small = reg.model("resnet18").preprocessing_for(reg.model("resnet18").config({"image_size": 112}))
    assert small["size"] == [112, 112] and small["resize"] == 128


@pytest.mark.parametrize("name,config", [
    ("alexnet", {"image_size": 64, "num_classes": 5, "hidden": 32}),
    ("vgg11", {"image_size": 32, "num_classes": 5, "hidden": 32}),
    pytest.param("vgg16_bn", {"image_size": 32, "num_classes": 5, "hidden": 32}, marks=pytest.mark.slow),
    ("resnet18", {"image_size": 32, "num_classes": 5}),
    ("googlenet", {"image_size": 32, "num_classes": 5}),
])
def test_conformance_small_configs(name, config, tmp_path):
    result = check_model(name, tmp_path, config=config)
    assert result["meta"]["config"]["num_classes"] == 5
    assert load_registry().model(name).build(config).input_shape == (3, config["image_size"], config["image_size"])


def test_googlenet_auxiliary_classifiers_are_a_training_option():
    spec = load_registry().model("googlenet")
    module = spec.build({"aux_logits": True, "image_size": 96, "num_classes": 7})
    keys = list(module.state_dict())
    # torchvision's layout with aux_logits=True: 13,004,888 parameters, aux heads before fc
    assert count_parameters(spec.build({"aux_logits": True})) == 13_004_888
    assert keys.index("aux1.conv.conv.weight") < keys.index("aux2.fc2.bias") < keys.index("fc.weight")
    x, y = torch.randn(2, 3, 96, 96), torch.tensor([1, 5])
    module.train()
    outputs = module(x)
    assert isinstance(outputs, tuple) and all(o.shape == (2, 7) for o in outputs)
    total = module.loss(outputs, y)
    main = torch.nn.functional.cross_entropy(outputs[0], y)
    assert total > main
    module.eval()
    with torch.no_grad():
        assert module(x).shape == (2, 7)


def test_googlenet_takes_torchvision_published_weights(zoo, zoo_home, tmp_path):
    """torchvision's googlenet file carries the auxiliary heads, and its weights expect inputs in
    [-1, 1]: the import drops the heads and ``transform_input`` rescales ImageNet-normalised input."""
    spec = load_registry().model("googlenet")
    published = spec.build({"aux_logits": True, "transform_input": False}).eval()
    path = tmp_path / "googlenet-torchvision.pth"
    torch.save(published.state_dict(), path)
    r = zoo("weights", "import", "googlenet", path)
    assert r.returncode == 0, r.stderr
    imported = load_file(str(zoo_home / "weights" / "googlenet" / "imported" / "model.safetensors"))
    assert not any(k.startswith("aux") for k in imported) and len(imported) == len(REFERENCE["googlenet"]["state_dict"])

    model = spec.build().eval()
    model.load_state_dict(imported)
    x = torch.randn(2, 3, 64, 64)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    pixels = x * std + mean
    with torch.no_grad():
        torch.testing.assert_close(model(x), published(pixels * 2 - 1), rtol=1e-5, atol=1e-5)


def test_freeze_stages_and_batch_norm():
    module = load_registry().model("resnet18").build(TINY)
    module.freeze("layer2")
    trainable = {k.split(".")[0] for k, p in module.named_parameters() if p.requires_grad}
    assert trainable == {"layer3", "layer4", "fc"}
    module.train()
    assert not module.bn1.training and not module.layer2[1].bn2.training
    assert module.layer3[0].bn1.training and module.fc.training
    before = module.layer1[0].bn1.running_mean.clone()
    module(torch.randn(4, 3, 64, 64))
    assert torch.equal(module.layer1[0].bn1.running_mean, before)  # frozen stage: statistics fixed

    head = load_registry().model("resnet50").build(TINY)
    head.freeze("head")
    assert [k for k, p in head.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]

    vgg = load_registry().model("vgg11").build({**TINY, "hidden": 16})
    vgg.freeze("block3")
    frozen = {k for k, p in vgg.named_parameters() if not p.requires_grad}
    assert "features.8.weight" in frozen and "features.11.weight" not in frozen  # block3 ends at pool 10
    vgg.freeze("head")
    assert [k for k, p in vgg.named_parameters() if p.requires_grad] == ["classifier.6.weight", "classifier.6.bias"]

    net = load_registry().model("googlenet").build({**TINY, "aux_logits": True})
    net.freeze("head")
    assert {k.split(".")[0] for k, p in net.named_parameters() if p.requires_grad} == {"fc", "aux1", "aux2"}

    with pytest.raises(ZooError, match="layer1, layer2, layer3, layer4"):
        module.freeze("layer9")


def test_alexnet_refuses_too_small_input():
    with pytest.raises(ZooError, match="at least 63"):
        load_registry().model("alexnet").build({"image_size": 48})


# -- the CLI, end to end ------------------------------------------------------------------------
SHAPES = ("circle", "square", "triangle")


def make_image_folder(root: Path, per_class: int = 12, size: int = 72) -> Path:
    """Coloured shapes on noisy backgrounds, one sub-folder per shape."""
    rng = np.random.default_rng(0)
    for label in SHAPES:
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            background = rng.integers(0, 256, 3)
            pixels = np.clip(rng.normal(background, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            img = Image.fromarray(pixels)
            draw = ImageDraw.Draw(img)
            r = int(rng.integers(size // 5, size // 3))
            cx, cy = rng.integers(r, size - r, 2)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            if label == "circle":
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
            elif label == "square":
                draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
            else:
                draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
            img.save(root / label / f"{label}{i:02d}.png")
    return root


def torch_free(zoo_home: Path, *argv: str) -> subprocess.CompletedProcess:
    """``zoo ARGV`` in a fresh interpreter that then fails if torch was imported."""
    code = ("import sys, runpy\n"
            f"sys.argv = ['zoo', *{list(argv)!r}]\n"
            "try:\n    runpy.run_module('zoo', run_name='__main__')\n"
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, ZOO_HOME=str(zoo_home)), timeout=300)


def test_import_finetune_export_run(zoo, zoo_home, tmp_path):
    data = make_image_folder(tmp_path / "shapes")
    spec = load_registry().model("resnet18")
    torch.manual_seed(0)
    source = spec.build()
    checkpoint = tmp_path / "resnet18-torchvision-layout.pth"
    torch.save(source.state_dict(), checkpoint)

    # without installed weights, --freeze says how to get them
    r = zoo("train", "resnet18", "--dataset", "image-folder", "--data", data, "--freeze", "head")
    assert r.returncode != 0 and "zoo weights import resnet18 FILE" in r.stderr

    # a state dict of another architecture is refused, naming what does not fit
    wrong = tmp_path / "resnet34.pth"
    torch.save(load_registry().model("resnet34").build().state_dict(), wrong)
    r = zoo("weights", "import", "resnet18", wrong)
    assert r.returncode != 0
    assert r.stderr.startswith("zoo: error:") and "weights do not fit this architecture" in r.stderr
    assert "unexpected key(s)" in r.stderr and "layer1.2" in r.stderr
    # arbitrary pickled objects are never unpickled
    evil = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(1), "note": ValueError("not a tensor")}, evil)
    r = zoo("weights", "import", "resnet18", evil)
    assert r.returncode != 0 and "not a loadable PyTorch state dict" in r.stderr

    r = zoo("weights", "import", "resnet18", checkpoint)
    assert r.returncode == 0, r.stderr
    imported = load_file(str(zoo_home / "weights" / "resnet18" / "imported" / "model.safetensors"))
    assert all(torch.equal(imported[k], v) for k, v in source.state_dict().items())

    r = zoo("train", "resnet18", "--dataset", "image-folder", "--data", data, "--freeze", "nowhere",
            "--config", "image_size=64")
    assert r.returncode != 0 and "--freeze 'nowhere'" in r.stderr and "layer3" in r.stderr

    r = zoo("train", "resnet18", "--dataset", "image-folder", "--data", data, "--freeze", "head", "--epochs", "1",
            "--max-steps", "2", "--batch-size", "8", "--config", "image_size=64", "--no-progress", "--tag", "tuned")
    assert r.returncode == 0, r.stderr
    assert "starting from" in r.stderr and "120 of 122 tensors" in r.stderr
    # the imported weights have no dev metric on these shapes: the fine-tune is stored, not activated
    assert "not active: resnet18@imported stays active" in r.stdout
    assert zoo("weights", "use", "resnet18@tuned").returncode == 0
    manifest = json.loads((zoo_home / "weights" / "resnet18" / "tuned" / "manifest.json").read_text())
    assert manifest["labels"] == list(SHAPES) and manifest["config"]["num_classes"] == 3
    assert manifest["preprocessing"]["size"] == [64, 64] and manifest["preprocessing"]["resize"] == 73
    tuned = load_file(str(zoo_home / "weights" / "resnet18" / "tuned" / "model.safetensors"))
    # the frozen backbone, batch-norm statistics included, is exactly the imported one; the head is new
    assert all(torch.equal(tuned[k], imported[k]) for k in imported if not k.startswith("fc."))
    assert tuned["fc.weight"].shape == (3, 512)

    r = zoo("export", "resnet18", "--data", data, "--fp16")
    assert r.returncode == 0, r.stderr
    assert "real samples from the image-folder dev split" in r.stdout and "FAILED" not in r.stdout
    assert "fp16: top-1 agreement with fp32" in r.stdout
    fp16 = zoo_home / "exports" / "resnet18-fp16.onnx"
    import onnx  # the weights are stored in half precision (the float32 file may be smaller than 2x: the
    # TorchScript exporter stores identical tensors, as the test's imported weights have, once)
    weights = [w for w in onnx.load(str(fp16)).graph.initializer if len(w.dims) > 1]
    assert weights and all(w.data_type == onnx.TensorProto.FLOAT16 for w in weights)

    image = data / "triangle" / "triangle03.png"
    for target in ("resnet18", str(fp16)):
        r = torch_free(zoo_home, "run", target, str(image), "--json")
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout)["results"][0]
        assert result["top"][0]["label"] in SHAPES and len(result["top"]) == 3


def test_run_without_weights_is_refused(zoo, zoo_home):
    r = zoo("run", "resnet50", "photo.jpg")
    assert r.returncode != 0
    assert "no weights for resnet50" in r.stderr and "zoo weights import resnet50 FILE" in r.stderr


def test_fp16_is_refused_for_other_formats(zoo, zoo_home):
    r = zoo("export", "resnet18", "--random-weights", "--fp16", "--format", "torchscript")
    assert r.returncode != 0 and "zoo: error: --fp16 is offered for ONNX exports" in r.stderr


def test_list_and_info_do_not_import_torch(zoo_home):
    r = torch_free(zoo_home, "list", "resnet")
    assert r.returncode == 0, r.stderr
    assert all(f"resnet{d}" in r.stdout for d in (18, 34, 50, 101, 152))
    r = torch_free(zoo_home, "info", "vgg")
    assert r.returncode == 0, r.stderr
    assert "vgg16 " in r.stdout and "138,357,544" in r.stdout and '"resize": 256' in r.stdout


def test_bench_random_weights(zoo, zoo_home, tmp_path):
    out = tmp_path / "bench.json"
    r = zoo("bench", "resnet18", "--random-weights", "--batch", "1", "--batch", "2", "--iters", "2",
            "--provider", "cpu", "--json-out", out)
    assert r.returncode == 0, r.stderr
    assert "RANDOM weights" in r.stderr
    rows = json.loads(out.read_text())["results"]
    assert [row["batch"] for row in rows] == [1, 2] and all(row["speedup_cpu"] > 0 for row in rows)


@pytest.mark.slow
def test_gpu_bench_dry_run(tmp_path):
    """The GPU benchmark's code paths, on the CPU provider with tiny iteration counts."""
    out = tmp_path / "gpu.json"
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "gpu_bench.py"), str(out), "--dry-run",
                        "--model", "resnet18"],
                       capture_output=True, text=True, cwd=root, timeout=600)
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    assert result["dry_run"] is True
    paths = {row["path"] for row in result["results"]}
    assert {"torch_fp32", "torch_fp16_channels_last", "ort_fp32", "ort_fp16"} <= paths
    assert all(row["ms"] > 0 for row in result["results"])


FULL_SIZE = ["alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg16_bn", "resnet18", "resnet34", "resnet50",
             "resnet101", "resnet152", "googlenet"]


@pytest.mark.slow
@pytest.mark.parametrize("name", FULL_SIZE)
def test_full_size_export_passes_checker_and_parity(name, zoo, zoo_home, tmp_path):
    """Every listed model at 224x224 with its 1,000 classes (random weights: there is nothing else
    offline) exports with a dynamic batch, passes the full checker and matches PyTorch."""
    out = tmp_path / f"{name}.onnx"
    result = zoo("export", name, "--random-weights", "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "onnx.checker: ok" in result.stdout and result.stdout.count(" ok\n") == 2, result.stdout
    assert "RANDOM weights" in result.stderr
    out.unlink()
