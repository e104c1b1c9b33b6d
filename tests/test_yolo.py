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

from conftest import assert_one_line_error
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


def test_loss_is_zero_for_perfect_predictions():
    model = tiny_model()
    assert model.loss(responsible(perfect_outputs()), one_box_target()).item() < 1e-6


def test_loss_charges_coordinates_only_to_the_responsible_prediction():
    model = tiny_model()
    base = responsible(perfect_outputs())
    moved = base.clone()
    moved[0, 31, 0] = 1.0  # t_x off: sigmoid(1) - 0.5 instead of 0
    weight = 2 - 12.8 ** 2 / 64 ** 2
    expected = 5.0 * weight * (torch.sigmoid(torch.tensor(1.0)) - 0.5) ** 2
    assert model.loss(moved, one_box_target()).item() == pytest.approx(expected.item(), rel=1e-4)
    moved = base.clone()
    moved[0, 31, 3] = 0.5  # t_h in log space
    assert model.loss(moved, one_box_target()).item() == pytest.approx(5.0 * weight * 0.25, rel=1e-4)
    other = base.clone()
    other[0, 30, 0:4] = 3.0  # another anchor of the same cell: its box is not learned
    assert model.loss(other, one_box_target()).item() < 1e-6


def test_loss_down_weights_empty_cells_and_ignores_good_overlaps():
    model = tiny_model()
    out = responsible(perfect_outputs())
    out[0, 0, 4] = 0.0  # p_c = 0.5 where there is nothing: BCE ln 2, times lambda_noobj
    assert model.loss(out, one_box_target()).item() == pytest.approx(0.5 * math.log(2), rel=1e-4)
    out = responsible(perfect_outputs())
    out[0, 30, 2:4] = math.log(2)  # anchor 6.4 doubled: the same box as the truth (IoU 1)
    out[0, 30, 4] = 0.0
    assert model.loss(out, one_box_target()).item() < 1e-6


def test_loss_charges_objectness_and_class_of_the_responsible_prediction():
    model = tiny_model()
    out = responsible(perfect_outputs())
    out[0, 31, 4] = 0.0
    assert model.loss(out, one_box_target()).item() == pytest.approx(math.log(2), rel=1e-4)
    out = responsible(perfect_outputs())
    out[0, 31, 5 + 2] = 0.0
    out[0, 31, 5 + 0] = 0.0
    assert model.loss(out, one_box_target()).item() == pytest.approx(2 * math.log(2), rel=1e-4)


def test_softmax_class_loss_is_cross_entropy_and_decodes_as_probabilities():
    config = dict(TINY, class_activation="softmax")
    model = registry().model("yolo-nano").build(config)
    out = responsible(perfect_outputs())
    assert model.loss(out, one_box_target()).item() < 1e-6
    out[0, 31, 5:] = 0.0  # three equal logits: -log(1/3)
    assert model.loss(out, one_box_target()).item() == pytest.approx(math.log(3), rel=1e-4)
    out[0, 31, 5 + 2] = math.log(2)  # probabilities 1/4, 1/4, 1/2
    found = decode(out.numpy(), config, conf=0.1, iou_threshold=0.5)[0]
    assert found["classes"].tolist() == [2] and found["scores"][0] == pytest.approx(0.5, rel=1e-6)


def test_loss_is_averaged_over_the_batch_and_differentiable():
    model = tiny_model()
    out = torch.cat([responsible(perfect_outputs()), perfect_outputs()]).requires_grad_()
    targets = torch.cat([one_box_target(), torch.full((1, 4, 5), -1.0)])
    loss = model.loss(out, targets)
    loss.backward()
    assert loss.item() < 1e-6 and out.grad is not None


def test_decode_recovers_the_box_from_the_responsible_prediction():
    found = decode(responsible(perfect_outputs()).numpy(), TINY, conf=0.5, iou_threshold=0.5)[0]
    assert found["classes"].tolist() == [2]
    np.testing.assert_allclose(found["boxes"][0], [33.6, 17.6, 46.4, 30.4], atol=1e-6)
    cells, strides, anchors = grid_cells(TINY)
    assert cells[31].tolist() == [2, 1] and strides[31] == 16 and anchors[31].tolist() == pytest.approx([12.8, 12.8])


def test_kmeans_anchors_find_the_box_clusters():
    from zoo.plugins.detection_data import kmeans_anchors

    rng = np.random.default_rng(0)
    wh = np.concatenate([rng.normal(c, 0.002, (50, 2)) for c in ((0.05, 0.1), (0.2, 0.2), (0.5, 0.4))])
    np.testing.assert_allclose(kmeans_anchors(wh, 3), [[0.05, 0.1], [0.2, 0.2], [0.5, 0.4]], atol=0.005)


@pytest.mark.parametrize("seed", range(4))
def test_augment_moves_boxes_with_the_pixels(seed):
    from zoo.plugins.yolo import augment

    x = torch.zeros(1, 3, 64, 64)
    x[:, :, 10:30, 20:44] = 1.0  # a white box x 20..44, y 10..30
    y = torch.full((1, 3, 5), -1.0)
    y[0, 0] = torch.tensor([1, 20, 10, 44, 30])
    xa, ya = augment(x, y, torch.Generator().manual_seed(seed), flip=True, colour=0.0)
    ys, xs = np.nonzero(xa[0, 0].numpy() > 0.75)
    if ya[0, 0, 0] < 0:  # pushed out of the picture: dropped
        return
    np.testing.assert_allclose(ya[0, 0, 1:].numpy(), [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=1.5)
    assert (ya[0, 1:] == -1).all()


def test_map_matches_pycocotools():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(1)
    truths, detections, gt_json, dt_json = [], [], [], []
    for image in range(12):
        n = int(rng.integers(1, 5))
        xy = rng.uniform(0, 80, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 40, (n, 2))], 1)
        classes = rng.integers(0, 3, n)
        truths.append({"boxes": boxes, "classes": classes})
        jitter = boxes[rng.integers(0, n, n + 3)] + rng.normal(0, 3, (n + 3, 4))
        jitter[:, 2:] = np.maximum(jitter[:, 2:], jitter[:, :2] + 1)  # boxes of positive size
        d_classes = np.where(rng.random(n + 3) < 0.8, classes[rng.integers(0, n, n + 3)], rng.integers(0, 3, n + 3))
        d_scores = rng.random(n + 3)
        detections.append({"boxes": jitter, "scores": d_scores, "classes": d_classes})
        for b, c in zip(boxes, classes):
            gt_json.append({"id": len(gt_json) + 1, "image_id": image, "category_id": int(c), "iscrowd": 0,
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1])})
        for b, c, s in zip(jitter, d_classes, d_scores):
            dt_json.append({"image_id": image, "category_id": int(c), "score": float(s),
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
    coco = COCO()
    coco.dataset = {"images": [{"id": i} for i in range(12)], "annotations": gt_json,
                    "categories": [{"id": c} for c in range(3)]}
    coco.createIndex()
    evaluator = COCOeval(coco, coco.loadRes(dt_json), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    ours = average_precision(detections, truths, 3)
    assert ours["map"] == pytest.approx(evaluator.stats[0], abs=1e-6)
    assert ours["map50"] == pytest.approx(evaluator.stats[1], abs=1e-6)


def test_map_is_one_for_exact_detections_and_zero_for_wrong_classes():
    truth = [{"boxes": np.array([[0, 0, 10, 10], [20, 20, 40, 40]], float), "classes": np.array([0, 1])}]
    exact = [{"boxes": truth[0]["boxes"], "scores": np.array([0.9, 0.8]), "classes": np.array([0, 1])}]
    assert average_precision(exact, truth, 2) == {"map50": 1.0, "map": 1.0}
    swapped = [dict(exact[0], classes=np.array([1, 0]))]
    assert average_precision(swapped, truth, 2) == {"map50": 0.0, "map": 0.0}


# -- data loaders --------------------------------------------------------------------------------
def _photo(path, size=(40, 30)):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def test_yolo_txt_folder_loads_boxes_in_pixels(tmp_path):
    from zoo.plugins.detection_data import load_yolo_txt

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for i in range(10):
        _photo(tmp_path / "images" / f"im{i}.png")
        (tmp_path / "labels" / f"im{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.5 0.2\n1 0.25 0.5 0.1 0.1\n")
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    splits = load_yolo_txt(str(tmp_path))
    assert splits.labels == ("cat", "dog") and splits.sizes() == {"train": 6, "dev": 2, "test": 2}
    boxes = splits.train.targets[0]
    np.testing.assert_allclose(boxes[0, 1:], [10, 12, 30, 18])  # 40 x 30 image: w 20, h 6 around (20, 15)
    np.testing.assert_allclose(boxes[1], [1, 8, 13.5, 12, 16.5])
    assert len(splits.config["anchors"]) == 6


def test_yolo_txt_bad_line_names_file_and_line(tmp_path):
    from zoo.plugins.detection_data import load_yolo_txt

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    _photo(tmp_path / "images" / "a.png")
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.5 0.2\n0 1.5 nope\n")
    with pytest.raises(ZooError, match=r"a\.txt:2"):
        load_yolo_txt(str(tmp_path))


def test_coco_json_loads_boxes_and_skips_crowds(tmp_path):
    from zoo.plugins.detection_data import load_coco_json

    images, annotations = [], []
    for i in range(8):
        _photo(tmp_path / f"{i}.jpg")
        images.append({"id": 100 + i, "file_name": f"{i}.jpg", "width": 40, "height": 30})
        annotations += [{"id": 2 * i, "image_id": 100 + i, "category_id": 7, "bbox": [5, 6, 10, 12], "iscrowd": 0},
                        {"id": 2 * i + 1, "image_id": 100 + i, "category_id": 3, "bbox": [0, 0, 40, 30],
                         "iscrowd": 1}]
    (tmp_path / "annotations.json").write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": 7, "name": "kite"}, {"id": 3, "name": "car"}]}))
    splits = load_coco_json(str(tmp_path))
    assert splits.labels == ("car", "kite")  # categories in id order
    for boxes in splits.train.targets:
        np.testing.assert_allclose(boxes, [[1, 5, 6, 15, 18]])


def test_coco_json_that_is_not_coco_is_refused(tmp_path):
    from zoo.plugins.detection_data import load_coco_json

    (tmp_path / "a.json").write_text('{"images": [{"id": 1}]}')
    with pytest.raises(ZooError, match="not a COCO detection JSON"):
        load_coco_json(str(tmp_path / "a.json"))


def test_digits_on_photos_boxes_hold_the_digits():
    from zoo.plugins.detection_data import load_digits_on_photos

    splits = load_digits_on_photos()
    assert splits.sizes() == {"train": 8000, "dev": 300, "test": 400}
    for image, boxes in zip(splits.test.inputs[:50], splits.test.targets[:50]):
        h, w = image.shape[:2]
        assert 1 <= len(boxes) <= 5
        assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= w).all() and (boxes[:, 4] <= h).all()
        assert set(boxes[:, 0].astype(int)) <= set(range(10))


def test_digits_on_photos_dev_and_test_do_not_depend_on_the_training_size():
    from zoo.plugins.detection_data import load_digits_on_photos

    small, full = load_digits_on_photos(train=50), load_digits_on_photos()
    assert small.sizes()["train"] == 50
    for name in ("dev", "test"):
        a, b = getattr(small, name), getattr(full, name)
        assert len(a.inputs) == len(b.inputs) > 0
        assert all(np.array_equal(x, y) for x, y in zip(a.inputs, b.inputs))
        assert all(np.array_equal(x, y) for x, y in zip(a.targets, b.targets))


# -- Darknet weights ----------------------------------------------------------------------------
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
    assert_one_line_error(zoo("weights", "import", "yolov3-tiny", path), f"{size:,} bytes", "35,434,956")
    path.write_bytes(path.read_bytes()[:-10])
    assert_one_line_error(zoo("weights", "import", "yolo-nano", path), "truncated", f"{size:,}")
    path.write_bytes(path.read_bytes() + b"\0" * 14)
    assert_one_line_error(zoo("weights", "import", "yolo-nano", path), "larger than the architecture")


def test_safetensors_of_another_architecture_are_refused(tmp_path, zoo_home, zoo):
    from safetensors.torch import save_file

    path = tmp_path / "nano.safetensors"
    save_file(registry().model("yolo-nano").build().state_dict(), str(path))
    assert_one_line_error(zoo("weights", "import", "yolov3-tiny", path), "do not fit this architecture")


# -- end to end ----------------------------------------------------------------------------------
E2E_CONFIG = ("--config", "input_size=64", "--config", "width=0.25")


@pytest.mark.slow
def test_train_export_run_end_to_end(tmp_path, zoo_home, zoo):
    result = zoo("train", "yolo-nano", "--epochs", "1", "--max-steps", "2", "--batch-size", "8", "--no-progress",
                 "--activate", *E2E_CONFIG)
    assert result.returncode == 0, result.stderr
    assert "test_map50" in result.stdout
    assert "chosen on the dev split for zoo run: conf" in result.stderr
    result = zoo("export", "yolo-nano", "--onnx")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" ok") >= 2 and "real samples" in result.stdout
    from zoo.store import find

    chosen = find("yolo-nano").manifest["task_meta"]["conf"]  # the export carries it: zoo run's default
    assert 0 < chosen < 1
    assert f"zoo run defaults chosen on the dev split: --conf {chosen}" in zoo("info", "yolo-nano").stdout

    from sklearn.datasets import load_sample_images

    photo = tmp_path / "china.jpg"
    Image.fromarray(load_sample_images().images[0]).save(photo)
    result = zoo("run", "yolo-nano", photo, "--json")
    assert result.returncode == 0, result.stderr
    assert all(d["score"] >= chosen for d in json.loads(result.stdout)["results"][0]["detections"])
    folder = tmp_path / "many"
    folder.mkdir()
    for i, size in enumerate(((90, 50), (50, 120), (64, 64))):
        _photo(folder / f"{i}.png", size)

    # a low threshold so that the untrained model reports boxes to check
    result = zoo("run", "yolo-nano", photo, "--conf", "0.0", "--json", "--save", tmp_path / "out.jpg")
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
    result = zoo("run", "yolo-nano", rotated, "--conf", "0.0", "--json")
    found = json.loads(result.stdout)["results"][0]
    assert (found["width"], found["height"]) == (50, 90)
    assert all(d["box"][2] <= 50 and d["box"][3] <= 90 for d in found["detections"])

    result = zoo("run", "yolo-nano", folder, photo, "--conf", "0.0", "--batch-size", "2", "--save-dir", tmp_path / "drawn")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == ["0.jpg", "1.jpg", "2.jpg", "china.jpg"]
    assert "detection(s)" in result.stdout and " box " in result.stdout

    # torch-free
    code = ("import runpy, sys; sys.argv = ['zoo', 'run', 'yolo-nano', %r, '--conf', '0.3']\n"
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
                          ((photo, "--conf", "1.5"), "--conf")):
        assert_one_line_error(zoo("run", "yolo-nano", *args), message)


def test_bench_takes_the_input_size_from_config(zoo_home, zoo):
    result = zoo("bench", "yolo-nano", "--random-weights", "--config", "input_size=96", "--iters", "2")
    assert result.returncode == 0, result.stderr
    assert "batch    1" in result.stdout and "ort-cpu" in result.stdout
    result = zoo("bench", "yolo-nano", "--random-weights", "--config", "input_size=100", "--iters", "2")
    assert_one_line_error(result, "multiple of 32")
    assert "internal error" not in result.stderr


def test_run_without_weights_says_how_to_get_them(zoo_home, zoo):
    # yolov2-tiny ships no weights (yolov3-tiny, the family default, does)
    assert_one_line_error(zoo("run", "yolov2-tiny", "x.jpg"), "zoo weights import yolov2-tiny", "zoo train yolov2-tiny")


def test_task_encodes_targets_through_the_letterbox():
    task = ObjectDetection()
    image = np.zeros((50, 100, 3), np.uint8)  # 100 x 50 into 64: scale 0.64, 16 rows of padding on top
    y = task.encode_targets([image], [np.array([[3, 0, 0, 100, 50]], np.float32)], {"config": {"input_size": 64}})
    assert y.shape == (1, 100, 5)
    np.testing.assert_allclose(y[0, 0], [3, 0, 16, 64, 48])
    assert (y[0, 1:] == -1).all()
    x = task.encode_inputs([image], {"config": {"input_size": 64}})
    assert x.shape == (1, 3, 64, 64) and x[0, :, 0, 0].tolist() == [0.5] * 3 and x[0, :, 32, 32].tolist() == [0] * 3


@pytest.mark.slow
def test_shipped_yolo_nano_reaches_its_test_map_through_zoo_run(tmp_path, zoo):
    """The shipped weights, exported and run through `zoo run` (onnxruntime, letterbox, decode,
    NMS, boxes mapped back to image pixels) on the 500 held-out test images saved as PNG files,
    score the mAP their manifest records (0.851 at IoU 0.5 on digits-on-photos-v4)."""
    from zoo import store
    from zoo.plugins.detection_data import load_digits_on_photos_v4

    entry = store.find("yolo-nano")
    assert entry is not None and entry.shipped, "yolo-nano weights must ship in weights/yolo-nano"
    entry.verify()
    recorded = entry.manifest["metrics"]
    counts = entry.manifest["splits"]
    assert entry.manifest["dataset"] == "digits-on-photos-v4"
    assert entry.manifest["task_meta"]["conf"] == 0.6  # chosen on the dev split: zoo run's default for it
    test = load_digits_on_photos_v4(train=counts["train"], dev=counts["dev"], test=counts["test"], only="test").test
    folder = tmp_path / "test"
    folder.mkdir()
    for i, image in enumerate(test.inputs):
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    env = {"ZOO_HOME": str(tmp_path / "home")}
    assert zoo("export", "yolo-nano", "--onnx", env=env).returncode == 0
    # the metric's thresholds: every detection down to 0.001 counts on the precision/recall curve
    result = zoo("run", "yolo-nano", folder, "--json", "--conf", "0.001", "--iou", "0.6", "--batch-size", "32", env=env)
    assert result.returncode == 0, result.stderr
    found = {r["input"].rsplit("/", 1)[1]: r["detections"] for r in json.loads(result.stdout)["results"]}
    detections = [{"boxes": np.array([d["box"] for d in found[f"{i:03d}.png"]]).reshape(-1, 4),
                   "scores": np.array([d["score"] for d in found[f"{i:03d}.png"]]),
                   "classes": np.array([d["class"] for d in found[f"{i:03d}.png"]], np.int64)}
                  for i in range(len(test.inputs))]
    truths = [{"boxes": np.asarray(t, np.float64)[:, 1:5], "classes": np.asarray(t)[:, 0].astype(np.int64)}
              for t in test.targets]
    scores = average_precision(detections, truths, 10)
    assert abs(scores["map50"] - recorded["test_map50"]) < 0.01, (scores, recorded)
    assert abs(scores["map"] - recorded["test_map"]) < 0.01, (scores, recorded)
    assert scores["map50"] >= 0.8, scores
