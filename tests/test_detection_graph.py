"""Detection output a person and a deployment can use.

- ``zoo export NAME --format onnx-nms`` writes one graph with YOLO's decoding and ONNX
  ``NonMaxSuppression`` inside: on real photos it finds what the plain graph followed by the
  numpy decode and NMS finds (same boxes within a small tolerance, same labels), for both
  shipped detectors; plain onnxruntime reads its boxes and labels from the graph alone; ``zoo
  run`` takes it and honours only the thresholds the graph can.
- ``zoo val`` on a detector reports AP per class, whose mean is the mAP, and draws PR curves.
- Labels drawn on pictures never cover each other and scale with the picture.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.errors import ZooError
from zoo.runtime.boxes import place_labels
from zoo.runtime.tasks.detection import (NMS_OUTPUTS, baked_postprocess, decode, draw, label_layout, label_style,
                                         letterbox, read_nms_outputs)

from conftest import assert_one_line_error, probe

DATA = Path(__file__).parent / "data"


def _photos(tmp_path: Path) -> list[Path]:
    """Darknet's sample photos (tests/data/photos, /usr/share/darknet/data) and the photos
    scikit-image and scikit-learn bundle."""
    photos = sorted((DATA / "photos").glob("*.jpg")) + sorted(Path("/usr/share/darknet/data").glob("*.jpg"))
    from skimage import data as sk
    from sklearn.datasets import load_sample_images

    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(sk, name)()).convert("RGB").save(tmp_path / f"{name}.png")
        photos.append(tmp_path / f"{name}.png")
    for i, image in enumerate(load_sample_images().images):
        Image.fromarray(image).save(tmp_path / f"sklearn{i}.png")
        photos.append(tmp_path / f"sklearn{i}.png")
    return photos


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Both shipped detectors exported plainly and with NMS inside, from a private store."""
    pytest.importorskip("torch")
    from zoo.modelio import export_model

    root = tmp_path_factory.mktemp("detection-graphs")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_HOME", str(root / "home"))
        for name in ("yolov3-tiny", "yolo-nano"):
            plain = export_model(name, "onnx", out=str(root / f"{name}.onnx")).path
            nms = export_model(name, "onnx-nms", out=str(root / f"{name}-nms.onnx")).path
            out[name] = (plain, nms)
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    return _photos(tmp_path_factory.mktemp("photos"))


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _session_of(model):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", ["yolov3-tiny", "yolo-nano"])
def test_nms_graph_finds_what_the_numpy_path_finds_on_real_photos(name, exported, photos):
    plain_path, nms_path = exported[name]
    plain, whole = _session(plain_path), _session(nms_path)
    meta = json.loads(whole.get_modelmeta().custom_metadata_map["zoo"])
    config, post = meta["config"], meta["postprocess"]
    total = 0
    for photo in photos:
        x = letterbox(np.asarray(Image.open(photo).convert("RGB")), int(config["input_size"]))[0][None]
        expected = decode(plain.run(None, {"images": x})[0], config, post["conf"], post["iou"], post["max_det"])[0]
        got = read_nms_outputs(dict(zip(NMS_OUTPUTS, whole.run(list(NMS_OUTPUTS), {"images": x}))))[0]
        assert got["classes"].tolist() == expected["classes"].tolist(), photo
        np.testing.assert_allclose(got["boxes"], expected["boxes"], atol=1e-2, err_msg=str(photo))
        np.testing.assert_allclose(got["scores"], expected["scores"], atol=1e-4, err_msg=str(photo))
        total += len(expected["scores"])
    # a digit detector trained with hard negatives finds (next to) nothing on photos without
    # digits at its own threshold: its comparison with many boxes is the next test's, on its own
    # test images
    if name == "yolov3-tiny":
        assert total >= 8, f"only {total} detections: the comparison proves little"


def test_nms_graph_on_yolo_nanos_own_test_images_matches_the_numpy_path(exported):
    """Digits on photographs, yolo-nano's held-out images: confident boxes, about two per image."""
    from zoo.plugins.detection_data import load_digits_on_photos_v2

    plain_path, nms_path = exported["yolo-nano"]
    plain, whole = _session(plain_path), _session(nms_path)
    meta = json.loads(whole.get_modelmeta().custom_metadata_map["zoo"])
    images = load_digits_on_photos_v2(test=24, only="test").test.inputs
    x = np.stack([letterbox(image, meta["config"]["input_size"])[0] for image in images])
    baked = meta["postprocess"]["conf"]
    assert baked == meta["conf"]  # the model's own threshold, chosen on its dev split, is what the graph bakes in
    expected = decode(plain.run(None, {"images": x})[0], meta["config"], baked, 0.45)
    got = read_nms_outputs(dict(zip(NMS_OUTPUTS, whole.run(list(NMS_OUTPUTS), {"images": x}))))
    for g, e in zip(got, expected):
        assert g["classes"].tolist() == e["classes"].tolist()
        np.testing.assert_allclose(g["boxes"], e["boxes"], atol=1e-2)
    assert sum(len(e["scores"]) for e in expected) >= len(images)  # 46 boxes on these 24 images


def test_plain_onnxruntime_gets_labelled_boxes_from_the_graph_and_its_metadata(exported):
    """What a user without zoo reads: the outputs the metadata documents, padded to max_det,
    class indices into the metadata's labels, thresholds stated."""
    _, nms_path = exported["yolov3-tiny"]
    session = _session(nms_path)
    meta = json.loads(session.get_modelmeta().custom_metadata_map["zoo"])
    post = meta["postprocess"]
    assert [o.name for o in session.get_outputs()] == list(post["outputs"]) == list(NMS_OUTPUTS)
    assert (post["conf"], post["iou"], post["max_det"], post["agnostic"]) == (0.25, 0.45, 100, False)
    assert len(meta["labels"]) == 80 and meta["task"] == "object-detection"
    x = letterbox(np.asarray(Image.open(DATA / "photos" / "person.jpg").convert("RGB")), 416)[0]
    num, boxes, scores, classes = session.run(None, {"images": np.stack([x, x])})
    assert num.shape == (2, 1) and boxes.shape == (2, 100, 4) and scores.shape == classes.shape == (2, 100)
    n = int(num[0, 0])
    names = {meta["labels"][c] for c in classes[0, :n]}
    assert {"person", "dog", "horse"} <= names, names
    assert (scores[0, :n] > 0.25).all() and np.all(np.diff(scores[0, :n]) <= 0)
    assert (classes[0, n:] == -1).all() and (boxes[0, n:] == 0).all() and (scores[0, n:] == 0).all()
    assert (boxes[0, :n, 2] > boxes[0, :n, 0]).all() and (boxes[0, :n] <= 416 + 1).all()


@pytest.mark.parametrize("name", ["yolov3-tiny", "yolo-nano"])
def test_zoo_run_reads_the_nms_graph_and_answers_as_the_plain_export(name, exported, photos):
    import zoo

    plain_path, nms_path = exported[name]
    plain, whole = zoo.load(plain_path), zoo.load(nms_path)
    for photo in photos[:4]:
        a, b = plain(str(photo)).to_json()["detections"], whole(str(photo)).to_json()["detections"]
        assert [d["label"] for d in a] == [d["label"] for d in b], photo
        np.testing.assert_allclose([d["box"] for d in a], [d["box"] for d in b], atol=0.11)
        high = plain(str(photo), conf=0.7).to_json()["detections"]
        assert [d["label"] for d in whole(str(photo), conf=0.7).to_json()["detections"]] == [d["label"] for d in high]


def test_zoo_run_on_the_nms_graph_is_torch_free_and_refuses_what_it_cannot_honour(exported, tmp_path, zoo):
    import os

    _, nms_path = exported["yolov3-tiny"]
    photo = DATA / "photos" / "dog.jpg"
    result = probe(["run", nms_path, photo, "--json"], dict(os.environ, ZOO_HOME=str(tmp_path / "home")))
    assert result.stdout.rstrip().endswith("TORCH-FREE 0"), result.stderr
    labels = {d["label"] for d in json.loads(result.stdout.rsplit("\n", 2)[0])["results"][0]["detections"]}
    assert {"dog", "bicycle", "car"} <= labels, labels
    for flags, fragment in ((("--conf", "0.1"), "below the 0.25 baked"), (("--iou", "0.6"), "baked at IoU 0.45"),
                            (("--agnostic",), "onnx-nms-agnostic")):
        assert_one_line_error(zoo("run", nms_path, photo, *flags), fragment, "zoo export yolov3-tiny")
    data = tmp_path / "labelled"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    for i in range(8):  # enough for train, dev and test splits and six anchors from the training boxes
        Image.open(photo).save(data / "images" / f"dog{i}.jpg")
        (data / "labels" / f"dog{i}.txt").write_text("0 0.35 0.6 0.3 0.6\n")
    (data / "classes.txt").write_text("dog\n")
    assert_one_line_error(zoo("val", nms_path, "--data", data, "--dataset", "yolo-txt"), "plain export")


def test_agnostic_format_suppresses_across_classes(tmp_path, photos):
    pytest.importorskip("torch")
    from zoo.modelio import export_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_HOME", str(tmp_path / "home"))
        report = export_model("yolov3-tiny", "onnx-nms-agnostic", out=str(tmp_path / "a.onnx"))
        plain = export_model("yolov3-tiny", "onnx", out=str(tmp_path / "p.onnx")).path
    assert any("NMS across classes" in line for line in report.lines())
    whole, raw = _session(report.path), _session(plain)
    config = json.loads(whole.get_modelmeta().custom_metadata_map["zoo"])["config"]
    for photo in photos:
        x = letterbox(np.asarray(Image.open(photo).convert("RGB")), 416)[0][None]
        outputs = raw.run(None, {"images": x})[0]
        expected = decode(outputs, config, 0.25, 0.45, agnostic=True)[0]
        got = read_nms_outputs(dict(zip(NMS_OUTPUTS, whole.run(list(NMS_OUTPUTS), {"images": x}))))[0]
        assert got["classes"].tolist() == expected["classes"].tolist(), photo
        np.testing.assert_allclose(got["boxes"], expected["boxes"], atol=1e-2)
    # photos rarely hold two classes' boxes on one object at 0.25: raw outputs that do show the
    # baked suppression is the agnostic one, not the per-class one
    from zoo.exporters.nms import Postprocess, compare, postprocess_model, synthetic_predictions

    post = _session_of(postprocess_model(config, Postprocess(agnostic=True)))
    x = synthetic_predictions(config, 4, 5, 2535)
    got = read_nms_outputs(dict(zip(NMS_OUTPUTS, post.run(list(NMS_OUTPUTS), {"predictions": x}))))
    assert compare(got, decode(x, config, 0.25, 0.45, agnostic=True), 0.25)[1]
    assert not compare(got, decode(x, config, 0.25, 0.45), 0.25)[1]


def test_the_export_check_catches_a_post_processing_that_differs():
    """The parity check that guards every onnx-nms export fails on a different suppression."""
    from zoo.exporters.nms import compare, synthetic_predictions
    from zoo.registry import registry

    config = dict(registry().model("yolov3-tiny").default_config)
    x = synthetic_predictions(config, 3, 0, 2535)
    reference = decode(x, config, 0.25, 0.45)
    assert compare(reference, reference, 0.25)[1]
    assert not compare(decode(x, config, 0.25, 0.6), reference, 0.25)[1]
    assert not compare(decode(x, config, 0.25, 0.45, agnostic=True), reference, 0.25)[1]
    shifted = [dict(r, boxes=r["boxes"] + 0.5) for r in reference]
    assert not compare(shifted, reference, 0.25)[1]


def test_onnx_nms_export_refuses_other_tasks_and_broken_metadata(tmp_path, zoo):
    result = zoo("export", "lenet5", "--format", "onnx-nms", "--out", tmp_path / "x.onnx",
                 env={"ZOO_HOME": str(tmp_path / "home")})
    assert_one_line_error(result, "object-detection", "lenet5")
    assert not (tmp_path / "x.onnx").exists()
    for bad in ({"kind": "yolo-nms", "conf": 2, "iou": 0.45, "agnostic": False, "max_det": 100},
                {"kind": "other"}, "yes", {"kind": "yolo-nms", "conf": 0.2, "iou": 0.4, "agnostic": 1, "max_det": 5}):
        with pytest.raises(ZooError, match="postprocess"):
            baked_postprocess({"postprocess": bad})
    assert baked_postprocess({}) is None


# -- zoo val ---------------------------------------------------------------------------------
def test_val_reports_ap_per_class_that_averages_to_the_map_and_draws_pr_curves(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    pytest.importorskip("torch")  # the first load exports the shipped weights
    import zoo.api

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    report = zoo.api.val("yolo-nano", plot=str(tmp_path / "pr.png"))
    per_class = report["per_class"]
    assert sorted(per_class) == [str(i) for i in range(10)] and report["split"] == "test"
    assert np.mean([row["ap50"] for row in per_class.values()]) == pytest.approx(report["metrics"]["map50"], abs=1e-12)
    assert np.mean([row["ap"] for row in per_class.values()]) == pytest.approx(report["metrics"]["map"], abs=1e-12)
    assert report["metrics"]["map50"] == pytest.approx(report["recorded"]["map50"], abs=1e-6)
    assert sum(row["support"] for row in per_class.values()) > report["samples"]  # 1-5 digits per image
    assert all(0 < row["precision"] <= 1 and 0 < row["recall"] <= 1 for row in per_class.values())
    assert len({round(row["ap50"], 6) for row in per_class.values()}) > 1  # per class, not one figure ten times
    picture = Image.open(report["plot"])
    assert picture.format == "PNG" and picture.size[0] >= 600
    colours = np.unique(np.asarray(picture.convert("RGB")).reshape(-1, 3), axis=0)
    assert len(colours) > 20  # curves drawn in colours, not a blank canvas


def test_val_plot_into_a_missing_folder_is_refused_before_drawing(tmp_path):
    from zoo.runtime.tasks.detection import class_curves, draw_pr_curves

    truth = [{"boxes": np.array([[0, 0, 10, 10.0]]), "classes": np.array([0])}]
    curves = class_curves([dict(truth[0], scores=np.array([0.9]))], truth, 1)
    with pytest.raises(ZooError, match="no such folder"):
        draw_pr_curves(curves, ["a"], tmp_path / "no" / "such" / "pr.png", 1.0)
    assert draw_pr_curves(curves, ["a"], tmp_path / "pr.png", 1.0).read_bytes()[:4] == b"\x89PNG"


# -- labels on pictures ----------------------------------------------------------------------
def _dets(boxes, scores=None):
    scores = scores or [0.9 - 0.01 * i for i in range(len(boxes))]
    return [{"class": i % 3, "label": ["person", "dog", "traffic light"][i % 3], "score": s, "box": list(b)}
            for i, (b, s) in enumerate(zip(boxes, scores))]


def _intersect(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_labels_of_two_overlapping_boxes_do_not_intersect():
    detections = _dets([(100, 100, 300, 300), (104, 102, 296, 310)])
    font, width = label_style(640, 480)
    a, b = label_layout((640, 480), detections, font, width)
    assert not _intersect(a, b), (a, b)
    for rect in (a, b):
        assert 0 <= rect[0] < rect[2] <= 640 and 0 <= rect[1] < rect[3] <= 480
    assert a[1] < 100 <= a[3]  # the most confident keeps the spot above its box's corner


def test_many_stacked_boxes_near_the_edges_get_labels_that_never_overlap():
    boxes = [(0, 0, 60 + 7 * i, 40 + 5 * i) for i in range(12)] + [(590, 430, 640, 480)] * 4
    for size in ((640, 480), (200, 150)):
        detections = _dets([b for b in boxes if b[2] <= size[0] and b[3] <= size[1]] or [(0, 0, 20, 20)] * 3)
        font, width = label_style(*size)
        rects = label_layout(size, detections, font, width)
        for i, r in enumerate(rects):
            assert 0 <= r[0] and r[2] <= size[0] + 1e-9 and 0 <= r[1] and r[3] <= size[1] + 1e-9
            assert not any(_intersect(r, s) for s in rects[i + 1:]), (i, r)


def test_place_labels_overlaps_only_when_the_image_cannot_hold_them():
    rects = place_labels(np.array([[0, 0, 10, 10]] * 3), np.array([[10, 10]] * 3), 10, 10)
    assert rects.shape == (3, 4) and (rects[:, 2] <= 10).all()  # one spot for three: kept inside the image


def test_labels_scale_with_the_picture_and_stay_inside_it():
    heights = {}
    for size in ((64, 48), (640, 480), (6000, 4000), (4000, 300)):
        w, h = size
        detections = _dets([(w * 0.2, h * 0.3, w * 0.6, h * 0.9), (w * 0.25, h * 0.32, w * 0.62, h * 0.95)])
        font, width = label_style(w, h)
        rects = label_layout(size, detections, font, width)
        assert not _intersect(*rects)
        assert all(0 <= r[0] and r[2] <= w and 0 <= r[1] and r[3] <= h for r in rects)
        heights[size] = rects[0][3] - rects[0][1]
    assert heights[(64, 48)] >= 11  # a thumbnail's labels are still legible
    assert heights[(6000, 4000)] > 5 * heights[(640, 480)]  # and a big photo's are not specks
    assert heights[(4000, 300)] < 300 / 3  # a panorama's labels follow its area, not its long side


def test_drawn_picture_shows_each_label_in_its_place(tmp_path):
    image = Image.new("RGB", (640, 480), (30, 30, 30))
    detections = _dets([(100, 100, 300, 300), (104, 102, 296, 310)])
    font, width = label_style(640, 480)
    drawn = np.asarray(draw(image, detections))
    for det, rect in zip(detections, label_layout((640, 480), detections, font, width)):
        x1, y1, x2, y2 = (int(round(v)) for v in rect)
        patch = drawn[y1 + 1: y2 - 1, x1 + 1: x2 - 1].reshape(-1, 3)
        from zoo.runtime.tasks.detection import _colour

        fill = np.all(patch == _colour(det["class"]), 1).mean()
        assert 0.4 < fill < 1.0, (det["label"], fill)  # the label's colour, with text written on it


def test_zoo_export_yolo_format_onnx_nms_writes_its_own_file_beside_the_plain_export(tmp_path, zoo):
    home = tmp_path / "home"
    result = zoo("export", "yolo", "--format", "onnx-nms", env={"ZOO_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    written = home / "exports" / "yolov3-tiny-nms.onnx"
    assert f"wrote {written}" in result.stdout and "NMS per class" in result.stdout
    assert "parity nms (synthetic outputs) batch 4: same detections" in result.stdout
    assert not (home / "exports" / "yolov3-tiny.onnx").exists()  # `zoo run yolo` still means the plain export
    assert [p.name for p in (home / "exports").iterdir()] == ["yolov3-tiny-nms.onnx"]  # nothing staged left


def test_padding_rows_are_never_read_as_detections():
    """A graph whose num_detections overstates its rows: the -1 padding is not class -1 (the last label)."""
    outputs = {"num_detections": np.array([[3]]), "boxes": np.ones((1, 4, 4), np.float32),
               "scores": np.array([[0.9, 0.8, 0, 0]], np.float32), "classes": np.array([[2, 5, -1, -1]])}
    (found,) = read_nms_outputs(outputs)
    assert found["classes"].tolist() == [2, 5] and found["scores"].tolist() == pytest.approx([0.9, 0.8])
    outputs["num_detections"] = np.array([[-7]])
    assert len(read_nms_outputs(outputs)[0]["scores"]) == 0


def test_pr_plot_without_matplotlib_says_what_to_install(tmp_path, monkeypatch):
    import sys

    from zoo.runtime.tasks.detection import draw_pr_curves

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    with pytest.raises(ZooError, match=r"pip install 'zoo\[train\]'"):
        draw_pr_curves({}, [], tmp_path / "pr.png", 0.0)
    assert not (tmp_path / "pr.png").exists()


def test_export_nms_flag_is_the_onnx_nms_format(tmp_path, zoo):
    from tests.conftest import assert_one_line_error

    result = zoo("export", "lenet5", "--nms", env={"ZOO_HOME": str(tmp_path)})
    assert_one_line_error(result, "the onnx-nms format is for object-detection models", "lenet5")
    assert not (tmp_path / "exports").exists() or not list((tmp_path / "exports").iterdir())
