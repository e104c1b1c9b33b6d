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

from tests.conftest import assert_one_line_error

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
    from zoo.plugins.facenet_model import InceptionResnetV1

    module = InceptionResnetV1({"num_classes": 8631})
    layout = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in module.state_dict().items()]
    assert layout == reference["state_dict"]
    assert sum(p.numel() for p in module.parameters()) == reference["num_params"]


def test_inception_resnet_v1_reproduces_facenet_pytorch_embedding_in_float64(reference):
    import torch

    from zoo.plugins.facenet_model import InceptionResnetV1

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
    from zoo.plugins.facenet_model import InceptionResnetV1

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

    from zoo.plugins.facenet_model import triplet_loss

    emb = _unit([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1]])
    labels = torch.tensor([0, 0, 1, 1])
    d = torch.cdist(emb, emb) ** 2
    expected = torch.stack([
        torch.relu(d[0, 1] - d[0, 2] + 0.2), torch.relu(d[1, 0] - d[1, 2] + 0.2),
        torch.relu(d[2, 3] - d[2, 1] + 0.2), torch.relu(d[3, 2] - d[3, 1] + 0.2)]).mean()
    assert torch.allclose(triplet_loss(emb, labels, 0.2, "batch-hard"), expected, atol=1e-6)


def test_semi_hard_triplet_loss_picks_the_nearest_negative_beyond_the_positive():
    import torch

    from zoo.plugins.facenet_model import triplet_loss

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

    from zoo.plugins.facenet_model import triplet_loss

    emb = _unit([[1, 0], [1, 0.01], [-1, 0], [-1, 0.01]])
    labels = torch.tensor([0, 0, 1, 1])
    for mining in ("batch-hard", "semi-hard"):
        assert float(triplet_loss(emb, labels, 0.2, mining)) == 0.0


def test_pair_loss_is_binary_cross_entropy_of_the_weighted_absolute_difference():
    import torch

    from zoo.plugins.facenet_model import pair_loss

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
