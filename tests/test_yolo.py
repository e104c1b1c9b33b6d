"""YOLO: the loss on hand-made targets, anchors, augmentation, mAP against pycocotools, the data
loaders, the Darknet round trip, and the whole path from `zoo train` to `zoo run`."""

import json
import math
import struct
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.errors import ZooError
from zoo.registry import registry
from zoo.runtime.tasks.detection import ObjectDetection, average_precision, decode, grid_cells
from zoo.testing import check_model, check_plugin_specs

# a 64 x 64 model: head 0 at stride 32 (2 x 2 cells) holds the three large anchors, head 1 at
# stride 16 (4 x 4 cells) the three small ones; rows 0-11 are head 0, rows 12-59 head 1
TINY = {"input_size": 64, "num_classes": 3, "width": 0.25, "strides": [32, 16],
        "class_activation": "sigmoid", "anchors": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.5, 0.5], [0.7, 0.7], [0.9, 0.9]]}
BIG = 30.0  # a logit that is certainly yes (and -BIG certainly no)


def tiny_model():
    return registry().model("yolo-nano").build(TINY)


def perfect_outputs(rows: int = 60, classes: int = 3) -> torch.Tensor:
    out = torch.zeros(1, rows, 5 + classes)
    out[..., 4] = -BIG
    out[..., 5:] = -BIG
    return out


def one_box_target() -> torch.Tensor:
    """Class 2, centre (40, 24), 12.8 x 12.8 pixels: the 12.8 anchor (head 1, anchor 1) fits it
    exactly; its centre lies half-way into cell (x 2, y 1) of the 4 x 4 grid, so the responsible
    row is 12 + (1 * 4 + 2) * 3 + 1 = 31 with t_x = t_y = 0 (sigmoid 0.5) and t_w = t_h = 0."""
    y = torch.full((1, 4, 5), -1.0)
    y[0, 0] = torch.tensor([2, 40 - 6.4, 24 - 6.4, 40 + 6.4, 24 + 6.4])
    return y


def responsible(out: torch.Tensor) -> torch.Tensor:
    out[0, 31, 4] = BIG
    out[0, 31, 5 + 2] = BIG
    return out


def test_plugin_specs_and_tiny_model_export(tmp_path):
    check_plugin_specs("yolo")
    result = check_model("yolo-nano", tmp_path, config=TINY)
    assert result["meta"]["config"]["strides"] == [32, 16]


def test_third_head_at_stride_8_exports_and_round_trips_through_darknet(tmp_path):
    from zoo.plugins.darknet import read_darknet, write_darknet

    config = {**TINY, "strides": [32, 16, 8]}  # two anchors per head, smallest on the 8 x 8 grid
    result = check_model("yolo-nano", tmp_path, config=config)
    assert result["meta"]["config"]["strides"] == [32, 16, 8]
    spec = registry().model("yolo-nano")
    module = _randomised(spec.build(config))
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = module(x)
    assert out.shape == (2, (2 * 2 + 4 * 4 + 8 * 8) * 2, 8)
    np.testing.assert_allclose(grid_cells(config)[1][-64 * 2:], 8)
    path = tmp_path / "three.weights"
    write_darknet(module, path)
    loaded = spec.build(config)
    loaded.load_state_dict(read_darknet(spec, loaded, path))
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), out)
    with pytest.raises(ZooError, match=r"heads at \[32, 16\] or \[32, 16, 8\]"):
        spec.build({**TINY, "strides": [16, 8]})


# Darknet's published files: a 20-byte header, then the parameters plus the two running
# statistics of every batch-norm filter, as float32
PUBLISHED = {"yolov3-tiny": (35_434_956, 3184, (13 * 13 + 26 * 26) * 3), "yolov2-tiny": (44_948_600, 2544, 13 * 13 * 5)}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_darknet_coco_models_have_the_published_size(name):
    size, bn_filters, rows = PUBLISHED[name]
    spec = registry().model(name)
    module = spec.build()
    params = sum(p.numel() for p in module.parameters())
    bn = sum(m.num_features for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert params == spec.params and bn == bn_filters
    assert 20 + 4 * (params + 2 * bn) == size
    assert len(spec.labels) == 80 and spec.labels[0] == "person" and spec.labels[-1] == "toothbrush"
    assert module(torch.zeros(1, 3, 416, 416)).shape == (1, rows, 85)


def _randomised(module):
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.2 + (0.5 if "var" in name else -0.1))
    return module.eval()


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_darknet_round_trip_through_zoo_weights_import(name, tmp_path, zoo_home, zoo):
    from zoo.modelio import load_trained
    from zoo.plugins.darknet import write_darknet

    spec = registry().model(name)
    module = _randomised(spec.build())
    path = tmp_path / f"{name}.weights"
    assert write_darknet(module, path) == PUBLISHED[name][0]
    major, minor, revision, seen = struct.unpack("<3iq", path.read_bytes()[:20])
    assert (major, minor, revision, seen) == (0, 2, 0, 0)
    result = zoo("weights", "import", name, path)
    assert result.returncode == 0, result.stderr
    loaded, _ = load_trained(spec)
    x = torch.rand(2, 3, 416, 416, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), module(x))


def test_darknet_file_of_the_wrong_size_is_refused_with_byte_counts(tmp_path, zoo_home, zoo):
    from zoo.plugins.darknet import write_darknet

    nano = registry().model("yolo-nano").build()
    path = tmp_path / "nano.weights"
    size = write_darknet(nano, path)
    result = zoo("weights", "import", "yolov3-tiny", path)
    assert result.returncode != 0
    assert f"{size:,} bytes" in result.stderr and "35,434,956" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    path.write_bytes(path.read_bytes()[:-10])
    result = zoo("weights", "import", "yolo-nano", path)
    assert result.returncode != 0 and "truncated" in result.stderr and f"{size:,}" in result.stderr
    path.write_bytes(path.read_bytes() + b"\0" * 14)
    result = zoo("weights", "import", "yolo-nano", path)
    assert result.returncode != 0 and "larger than the architecture" in result.stderr


def test_safetensors_of_another_architecture_are_refused(tmp_path, zoo_home, zoo):
    from safetensors.torch import save_file

    path = tmp_path / "nano.safetensors"
    save_file(registry().model("yolo-nano").build().state_dict(), str(path))
    result = zoo("weights", "import", "yolov3-tiny", path)
    assert result.returncode != 0 and "do not fit this architecture" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# -- end to end ----------------------------------------------------------------------------------
E2E_CONFIG = ("--config", "input_size=64", "--config", "width=0.25")


@pytest.mark.slow
def test_train_export_run_end_to_end(tmp_path, zoo_home, zoo):
    result = zoo("train", "yolo-nano", "--epochs", "1", "--max-steps", "2", "--batch-size", "8", "--no-progress",
                 *E2E_CONFIG)
    assert result.returncode == 0, result.stderr
    assert "test_map50" in result.stdout
    result = zoo("export", "yolo-nano", "--onnx")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" ok") >= 2 and "real samples" in result.stdout

    from sklearn.datasets import load_sample_images

    photo = tmp_path / "china.jpg"
    Image.fromarray(load_sample_images().images[0]).save(photo)
    folder = tmp_path / "many"
    folder.mkdir()
    for i, size in enumerate(((90, 50), (50, 120), (64, 64))):
        _photo(folder / f"{i}.png", size)

    # a low threshold so that the untrained model reports boxes to check
    result = zoo("run", "yolo", photo, "--conf", "0.0", "--json", "--save", tmp_path / "out.jpg")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)["results"][0]
    assert (found["width"], found["height"]) == (640, 427) and found["detections"]
    for det in found["detections"]:
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 427 and 0 <= det["score"] <= 1
    assert Image.open(tmp_path / "out.jpg").size == (640, 427)

    rotated = tmp_path / "rotated.jpg"  # stored 90 x 50, EXIF says: turn it upright to 50 x 90
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((50, 90, 3), np.uint8)).save(rotated, exif=exif)
    result = zoo("run", "yolo", rotated, "--conf", "0.0", "--json")
    found = json.loads(result.stdout)["results"][0]
    assert (found["width"], found["height"]) == (50, 90)
    assert all(d["box"][2] <= 50 and d["box"][3] <= 90 for d in found["detections"])

    result = zoo("run", "yolo", folder, photo, "--conf", "0.0", "--batch-size", "2", "--save-dir", tmp_path / "drawn")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == ["0.jpg", "1.jpg", "2.jpg", "china.jpg"]
    assert "detection(s)" in result.stdout and " box " in result.stdout

    # torch-free
    code = ("import runpy, sys; sys.argv = ['zoo', 'run', 'yolo', %r, '--conf', '0.3']\n"
            "try:\n    runpy.run_module('zoo', run_name='__main__')\nexcept SystemExit as e:\n    assert not e.code\n"
            "assert 'torch' not in sys.modules, 'zoo run imported torch'\nprint('TORCH-FREE')" % str(photo))
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "TORCH-FREE" in done.stdout, done.stderr

    # bad input: one line, non-zero exit
    bad = tmp_path / "broken.jpg"
    bad.write_text("not an image")
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in (((bad,), "not an image file"), ((empty,), "holds no image files"),
                          ((photo, folder, "--save", tmp_path / "x.jpg"), "--save-dir"),
                          ((photo, "--conf", "1.5"), "must lie in [0, 1]")):
        result = zoo("run", "yolo", *args)
        assert result.returncode != 0 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_bench_takes_the_input_size_from_config(zoo_home, zoo):
    result = zoo("bench", "yolo-nano", "--random-weights", "--config", "input_size=96", "--iters", "2")
    assert result.returncode == 0, result.stderr
    assert "batch    1" in result.stdout and "ort-cpu" in result.stdout
    result = zoo("bench", "yolo-nano", "--random-weights", "--config", "input_size=100", "--iters", "2")
    assert result.returncode != 0 and "multiple of 32" in result.stderr and "internal error" not in result.stderr


def test_run_without_weights_says_how_to_get_them(zoo_home, zoo):
    result = zoo("run", "yolov3-tiny", "x.jpg")
    assert result.returncode != 0
    assert "zoo weights import yolov3-tiny" in result.stderr and "zoo train yolov3-tiny" in result.stderr


def test_task_encodes_targets_through_the_letterbox():
    task = ObjectDetection()
    image = np.zeros((50, 100, 3), np.uint8)  # 100 x 50 into 64: scale 0.64, 16 rows of padding on top
    y = task.encode_targets([image], [np.array([[3, 0, 0, 100, 50]], np.float32)], {"config": {"input_size": 64}})
    assert y.shape == (1, 100, 5)
    np.testing.assert_allclose(y[0, 0], [3, 0, 16, 64, 48])
    assert (y[0, 1:] == -1).all()
    x = task.encode_inputs([image], {"config": {"input_size": 64}})
    assert x.shape == (1, 3, 64, 64) and x[0, :, 0, 0].tolist() == [0.5] * 3 and x[0, :, 32, 32].tolist() == [0] * 3
