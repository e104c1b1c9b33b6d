"""A run option's default is written once, in its ``TaskOption``: every built-in task, called
directly with no options (as tests, ``zoo val`` and the pipeline call it), answers as it does
with the spec's defaults, and a spec whose defaults are changed moves the answer with them, so
no other default hides in the task. A task made without a spec has none."""

from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

from zoo.registry import registry
from zoo.runtime.tasks import text as text_task


class FakeSession:
    """An onnxruntime session look-alike: ``answer(names, feed)`` gives the outputs."""

    def __init__(self, answer: Callable[[Any, dict], list], *inputs: tuple[str, tuple]):
        self.answer, self.inputs = answer, [SimpleNamespace(name=n, shape=s) for n, s in inputs]

    def get_inputs(self):
        return self.inputs

    def run(self, names, feed):
        return self.answer(names, feed)


class FakeArtifact:
    def __init__(self, meta: dict[str, Any], session: FakeSession | None = None, **extra: Any):
        self.meta, self._session, self.path, self.provider, self.model = meta, session, Path("fake.onnx"), "cpu", "fake"
        self.__dict__.update(extra)

    def session(self, name: str | None = None):
        return self._session


def _photos(folder: Path, count: int, size=(40, 30)) -> list[str]:
    rng = np.random.default_rng(3)
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), np.uint8)).save(path)
        paths.append(str(path))
    return paths


# -- one artifact and input list per built-in task ---------------------------------------------
def classification(tmp_path, monkeypatch, request):
    def logits(names, feed):
        x = feed["input"].reshape(len(feed["input"]), -1)
        return [x[:, :10] * 3 + np.arange(10, dtype=np.float32)]

    meta = {"preprocessing": {"mode": "L", "size": [8, 8]}, "labels": list("abcdefghij")}
    return FakeArtifact(meta, FakeSession(logits, ("input", (None, 1, 8, 8)))), _photos(tmp_path / "p", 3)


@pytest.fixture(scope="module")
def tiny_yolo(tmp_path_factory) -> Path:
    """A yolo-nano of random weights at a tiny size, exported once for the module."""
    import torch

    from zoo.modelio import export_model

    torch.manual_seed(0)  # random weights whatever ran before: the same boxes each time
    folder = tmp_path_factory.mktemp("tiny-yolo")
    tiny = {"input_size": 64, "num_classes": 3, "width": 0.25, "strides": [32, 16], "class_activation": "sigmoid",
            "anchors": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.5, 0.5], [0.7, 0.7], [0.9, 0.9]]}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_HOME", str(folder / "home"))
        return export_model("yolo-nano", "onnx", out=str(folder / "tiny.onnx"), random_weights=True,
                            config=tiny).path


def detection(tmp_path, monkeypatch, request):
    from zoo.runtime.artifact import open_artifact

    return open_artifact(request.getfixturevalue("tiny_yolo"), "cpu"), _photos(tmp_path / "p", 3, (90, 60))


def text_generation(tmp_path, monkeypatch, request):
    vocab = list("\nabcdefgh")

    def step(names, feed):  # the next character is likely the one after the token, never certain
        logits = np.zeros((len(feed["token"]), len(vocab)), np.float32)
        logits[np.arange(len(logits)), (feed["token"] + 1) % len(vocab)] = 2.0
        return [logits, feed["state"]]

    return FakeArtifact({"vocab": vocab}, FakeSession(step, ("token", (None,)), ("state", (None, 1, 4)))), ["ab"]


def translation(tmp_path, monkeypatch, request):
    from tests.test_seq2seq import MIXED, _EchoArtifact

    monkeypatch.setattr(text_task.Decoder, "from_artifact", classmethod(lambda cls, artifact: artifact.decoder()))
    return _EchoArtifact(MIXED, "-0123456789", target_format="iso-date"), ["2020-02-29", "2020-02-31"]


def word_embedding(tmp_path, monkeypatch, request):
    from zoo.runtime.wordvec import WordVectors

    words = [f"w{i}" for i in range(30)]
    vectors = WordVectors(words, np.random.default_rng(0).normal(size=(30, 8)))
    return FakeArtifact({}, _word_vectors=vectors), ["w0 - w1 + w2", "w3"]


def _fake_detector(monkeypatch, module):
    """MTCNN that "finds" faces of sides 24, 48 and 80 pixels, keeping those of ``min_face`` or more."""
    from zoo.runtime.mtcnn import Face

    def detect_faces(artifact, image, *, min_face):
        return [Face((5.0, 5.0, 5.0 + side, 5.0 + side), 0.9, [(8.0, 8.0)] * 5) for side in (24, 48, 80)
                if side >= min_face]

    monkeypatch.setattr(module, "detect_faces", detect_faces)


def face_detection(tmp_path, monkeypatch, request):
    from zoo.runtime.tasks import face_detection as module

    _fake_detector(monkeypatch, module)
    return FakeArtifact({}), _photos(tmp_path / "p", 2, (100, 100))


def face_embedding(tmp_path, monkeypatch, request):
    from zoo.runtime import mtcnn

    _fake_detector(monkeypatch, mtcnn)
    monkeypatch.setattr(mtcnn, "open_detector", lambda provider="auto": FakeArtifact({}))
    embed = FakeSession(lambda names, feed: [feed["input"].reshape(len(feed["input"]), -1)[:, :4]],
                        ("input", (None, 3, 16, 16)))
    meta = {"preprocessing": {"mode": "RGB", "size": [16, 16]}, "threshold": 1.0}
    return FakeArtifact(meta, embed), _photos(tmp_path / "p", 2, (100, 100))


@dataclass(frozen=True)
class Case:
    task: str
    make: Callable
    changed: dict[str, Any]  # other defaults, under which the task must answer differently


CASES = [
    Case("image-classification", classification, {"top_k": 2}),
    Case("object-detection", detection, {"conf": 0.01}),
    Case("text-generation", text_generation, {"length": 7, "seed": 3}),
    Case("translation", translation, {"unchecked": True}),
    Case("word-embedding", word_embedding, {"top_k": 3}),
    Case("face-detection", face_detection, {"min_face": 40}),
    Case("face-embedding", face_embedding, {"min_face": 40}),
]


def _with_defaults(name: str, **changed: Any):
    """The registered spec of task ``name``, with some of its options' defaults changed."""
    spec = registry().task(name)
    options = tuple(replace(o, default=changed.pop(o.key)) if o.key in changed else o for o in spec.options)
    assert not changed, f"{name} declares no option {sorted(changed)}"
    return replace(spec, options=options)


def test_every_built_in_task_with_run_options_is_checked():
    built_in = {name for name, spec in registry().tasks.items()
                if spec.impl.startswith("zoo.runtime.tasks.") and spec.options}
    assert built_in == {case.task for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c.task for c in CASES])
def test_a_task_called_directly_with_no_options_runs_with_its_specs_defaults(case, tmp_path, monkeypatch, request):
    artifact, inputs = case.make(tmp_path, monkeypatch, request)
    spec = registry().task(case.task)
    task = spec.load()
    assert task.spec is spec
    plain = task.run(artifact, inputs, {})
    assert plain == task.run(artifact, inputs, spec.defaults())  # what `zoo run` and the API pass
    assert plain == task.run(artifact, inputs, {key: None for key in spec.defaults()})  # None: not given

    other = _with_defaults(case.task, **case.changed)
    moved = other.load().run(artifact, inputs, {})
    assert moved == task.run(artifact, inputs, other.defaults())  # the changed defaults are the ones used
    assert moved != plain


def test_begin_fills_the_defaults_and_keeps_what_the_call_gave():
    spec = registry().task("image-classification")
    assert spec.load().begin(None, None, {"top_k": 2, "extra": 1}) == {**spec.defaults(), "top_k": 2, "extra": 1}


def test_a_task_made_without_a_spec_has_no_defaults_to_fill():
    from zoo.runtime.tasks.classification import ImageClassification

    task = ImageClassification()
    assert task.spec is None
    assert task.with_defaults({"top_k": 3}) == {"top_k": 3} and task.begin(None, None, {}) == {}


def test_detection_val_report_counts_precision_and_recall_at_the_conf_default(tiny_yolo):
    """``zoo val``'s per-class precision and recall are taken at ``zoo run``'s default ``--conf``:
    with the model's own likeliest boxes as the truth, a default of 0 finds them all, of 1 none."""
    from zoo.runtime.artifact import open_artifact
    from zoo.runtime.tasks.detection import MAX_BOXES, decode

    artifact = open_artifact(tiny_yolo, "cpu")
    rng = np.random.default_rng(0)
    raw = [rng.integers(0, 255, (64, 64, 3), np.uint8) for _ in range(3)]
    task = registry().task("object-detection").load()
    outputs = task.runtime_outputs(artifact, raw, np.zeros(0), artifact.meta)
    encoded = np.full((len(raw), MAX_BOXES, 5), -1.0, np.float32)
    for i, found in enumerate(decode(outputs, artifact.meta["config"], task.metric_conf, task.metric_iou)):
        best = int(found["scores"].argmax())
        encoded[i, 0] = [found["classes"][best], *found["boxes"][best]]

    def recall(conf: float) -> float:
        report = _with_defaults("object-detection", conf=conf).load().val_report(artifact, raw, None, outputs,
                                                                                 encoded, {})
        return sum(row["recall"] * row["support"] for row in report["per_class"].values()) / len(raw)

    assert recall(0.0) == 1.0 and recall(1.0) == 0.0
