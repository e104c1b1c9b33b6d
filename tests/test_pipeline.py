"""The per-input task contract and the pipelined runtime built on it: the next batch decodes on
a thread pool while the current one is inferred, and that changes no answer, reads at most a
batch or two ahead of the results handed out, and reports a bad input on its own, after every
input before it has been answered."""

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo as zoo_api
from conftest import assert_one_line_error
from zoo.errors import ZooError
from zoo.runtime.tasks import Prepared, Task

SAMPLES = Path(__file__).resolve().parent.parent / "zoo" / "samples"
DIGIT = SAMPLES / "digit7.png"


# -- the contract, with a task of plain numpy (no artifact, no onnxruntime) -----------------------
class Doubling(Task):
    """Each input is a number; the "network" doubles a batch of them."""

    name = "doubling"
    default_batch_size = 4

    def __init__(self):
        self.calls: list[int] = []  # the size of each predict call

    def preprocess(self, artifact, item, options):
        if item == "bad":
            raise ZooError("input 'bad': not a number")
        return Prepared(item, np.float64(item))

    def predict(self, artifact, batch, options):
        self.calls.append(len(batch))
        return batch * 2

    def postprocess(self, artifact, prepared, output, options):
        return {"input": prepared.input, "doubled": float(output)}


class Counted:
    """An iterable that counts how many of its items have been read."""

    def __init__(self, items):
        self.items, self.taken = list(items), 0

    def __iter__(self):
        for item in self.items:
            self.taken += 1
            yield item


@pytest.mark.parametrize("prefetch", [0, 1, 2])
def test_the_base_class_composes_preprocess_predict_and_postprocess_a_batch_at_a_time(prefetch):
    task = Doubling()
    results = [r for b in task.batches(None, list(range(10)), {}, prefetch=prefetch) for r in b.results]
    assert [r["doubled"] for r in results] == [2.0 * i for i in range(10)]
    assert task.calls == [4, 4, 2]
    assert Doubling().run(None, [1, 2], {}) == [{"input": 1, "doubled": 2.0}, {"input": 2, "doubled": 4.0}]


@pytest.mark.parametrize("prefetch", [0, 1, 2])
def test_the_pipeline_reads_at_most_prefetch_batches_ahead_of_the_results(prefetch):
    inputs = Counted(range(40))
    handed, ahead = 0, []
    for batch in Doubling().batches(None, inputs, {}, batch_size=4, prefetch=prefetch):
        handed += len(batch.results)
        ahead.append(inputs.taken - handed)
    assert handed == 40
    assert max(ahead) == 4 * prefetch  # the batches decoding while this one was answered, no more
    assert ahead[-1] == 0


@pytest.mark.parametrize("prefetch", [0, 1])
def test_a_bad_input_fails_on_its_own_after_every_input_before_it_is_answered(prefetch):
    inputs = [0, 1, 2, 3, 4, "bad", 6, 7, 8, 9]  # the bad one is in the second batch
    got = []
    with pytest.raises(ZooError, match="input 'bad': not a number") as error:
        for batch in Doubling().batches(None, inputs, {}, batch_size=4, prefetch=prefetch):
            got += [r["input"] for r in batch.results]
    assert got == [0, 1, 2, 3, 4] and "6" not in str(error.value)


def test_an_input_that_cannot_even_be_listed_fails_at_its_own_turn(tmp_path):
    from zoo.runtime.images import iter_images

    class Listing(Doubling):
        def expand(self, inputs):
            return (str(p) for p in iter_images(inputs))

        def preprocess(self, artifact, item, options):
            return Prepared(item, np.float64(len(item)))

    for i in range(6):
        Image.open(DIGIT).save(tmp_path / f"{i}.png")
    given = [str(tmp_path / f"{i}.png") for i in range(6)] + [str(tmp_path / "missing.png")]
    got = []
    with pytest.raises(ZooError, match="missing.png: no such file"):
        for batch in Listing().batches(None, given, {}, batch_size=4, prefetch=1):
            got += batch.results
    assert len(got) == 6  # the read-ahead found the missing file first, but reported it in turn


def test_the_worker_threads_end_with_the_call_even_when_it_fails():
    before = threading.active_count()
    with pytest.raises(ZooError):
        for _ in Doubling().batches(None, [1, 2, 3, 4, 5, "bad", 7, 8, 9, 10, 11, 12], {}, batch_size=2,
                                    workers=3):
            pass
    stream = Doubling().batches(None, iter(range(100)), {}, batch_size=2, workers=3)
    next(stream)
    stream.close()  # a consumer that stops early
    assert threading.active_count() == before


class RunOnly(Task):
    """A task written to the batch-level contract: it overrides ``run`` and nothing else."""

    name = "run-only"

    def __init__(self):
        self.calls: list[list] = []

    def run(self, artifact, inputs, options):
        self.calls.append(list(inputs))
        return [{"input": x, "answer": "ok"} for x in inputs] or [{"input": None, "answer": "none given"}]

    def format(self, result):
        return result["answer"]


def test_a_task_that_overrides_run_is_called_once_for_a_list_and_a_batch_at_a_time_for_a_stream():
    task = RunOnly()
    assert not task.per_input and Doubling().per_input
    assert [r["input"] for b in task.batches(None, [1, 2, 3, 4, 5], {}, batch_size=2) for r in b.results] == \
        [1, 2, 3, 4, 5]
    assert task.calls == [[1, 2, 3, 4, 5]]
    task.calls.clear()
    assert len([r for b in task.batches(None, iter([1, 2, 3, 4, 5]), {}, batch_size=2) for r in b.results]) == 5
    assert task.calls == [[1, 2], [3, 4], [5]]
    task.calls.clear()
    assert [r["answer"] for b in task.batches(None, iter([]), {}) for r in b.results] == ["none given"]
    assert task.calls == [[]]  # a task that needs no input is called once


# -- through real artifacts -------------------------------------------------------------------------
@pytest.fixture
def lenet(lenet_home, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(lenet_home))
    return zoo_api.load("lenet5", provider="cpu")


def _answers(results):
    return [{k: v for k, v in r.to_json().items() if k != "timings"} for r in results]


def _digits(folder: Path, count: int) -> Path:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    base = np.asarray(Image.open(DIGIT).convert("L"), np.float64)
    for i in range(count):
        noisy = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"{i:02d}.png")
    return folder


def test_pipelined_and_serial_classification_give_the_same_results(lenet, tmp_path):
    folder = _digits(tmp_path / "digits", 11)
    lenet.prefetch = 0
    serial = _answers(lenet.stream([folder], batch_size=3, top_k=3))
    lenet.prefetch, lenet.workers = 2, 3
    assert _answers(lenet.stream([folder], batch_size=3, top_k=3)) == serial
    assert _answers(lenet.run([folder], batch_size=3, top_k=3)) == serial
    assert [r["input"] for r in serial] == [str(p) for p in sorted(folder.iterdir())]


def test_the_batch_level_contract_still_runs_through_the_api(lenet, tmp_path):
    """A task that only overrides ``run`` (as every task did before the per-input pieces) gives
    what the per-input task gives, through ``run`` and ``stream``."""
    from zoo.runtime.images import collect_images, load_image
    from zoo.runtime.tasks.classification import ImageClassification, preprocess, softmax, top_k

    class Whole(ImageClassification):
        def run(self, artifact, inputs, options):
            pre, paths = artifact.meta["preprocessing"], collect_images(inputs)
            x = np.stack([preprocess(load_image(p, pre["mode"]), pre) for p in paths])
            session = artifact.session()
            probs = softmax(session.run(None, {session.get_inputs()[0].name: x})[0])
            return [{"input": str(p), "top": t} for p, t in zip(paths, top_k(probs, options["top_k"],
                                                                             artifact.meta["labels"]))]

    folder = _digits(tmp_path / "digits", 5)
    expected = _answers(lenet.run([folder]))
    lenet._task = Whole()
    assert _answers(lenet.run([folder])) == expected
    assert _answers(lenet.stream([folder], batch_size=2)) == expected
    assert set(lenet.run([DIGIT])[0].timings) == {"preprocess_ms", "inference_ms", "postprocess_ms", "batch"}


def test_one_bad_file_among_good_ones_is_reported_on_its_own(lenet, tmp_path, zoo, lenet_home):
    folder = _digits(tmp_path / "digits", 6)
    (folder / "03.png").write_bytes(b"not a picture at all\n" * 20)
    got = []
    with pytest.raises(ZooError) as error:
        for result in lenet.stream([folder], batch_size=2):
            got.append(Path(result.input).name)
    assert got == ["00.png", "01.png", "02.png"]
    assert str(error.value) == f"{folder / '03.png'}: not an image file Pillow can read"
    ran = zoo("run", "lenet5", str(folder), "--batch-size", "2", env={"ZOO_HOME": str(lenet_home)})
    assert_one_line_error(ran, "03.png", "not an image file")
    assert [line.split(":")[0] for line in ran.stdout.splitlines()] == [str(folder / f"0{i}.png") for i in range(3)]


def test_pipelined_detection_gives_the_serial_results(tmp_path, monkeypatch):
    from zoo.modelio import export_model

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    tiny = {"input_size": 64, "num_classes": 3, "width": 0.25, "strides": [32, 16], "class_activation": "sigmoid",
            "anchors": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.5, 0.5], [0.7, 0.7], [0.9, 0.9]]}
    path = export_model("yolo-nano", "onnx", out=str(tmp_path / "tiny.onnx"), random_weights=True, config=tiny).path
    rng = np.random.default_rng(1)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, (w, h) in enumerate([(90, 60), (60, 90), (64, 64), (120, 40), (33, 77)] * 2):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), np.uint8)).save(photos / f"{i}.jpg")
    model = zoo_api.load(path, provider="cpu")
    model.prefetch = 0
    serial = _answers(model.stream([photos], conf=0.01, batch_size=3))
    assert sum(len(r["detections"]) for r in serial) > 0
    model.prefetch = 1
    assert _answers(model.stream([photos], conf=0.01, batch_size=3)) == serial
    drawn = model.run([photos / "0.jpg"], conf=0.01, save_dir=str(tmp_path / "drawn"))
    assert Path(drawn[0]["saved"]).is_file()


def test_threads_set_onnxruntimes_intra_op_threads(lenet_home, monkeypatch, zoo):
    monkeypatch.setenv("ZOO_HOME", str(lenet_home))
    one = zoo_api.load("lenet5", provider="cpu", threads=1)
    assert one.artifact.session().get_session_options().intra_op_num_threads == 1
    assert one(DIGIT).label == "7"
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ZooError, match="threads"):
            zoo_api.load("lenet5", provider="cpu", threads=bad)
    ran = zoo("run", "lenet5", str(DIGIT), "--threads", "1", env={"ZOO_HOME": str(lenet_home)})
    assert ran.returncode == 0 and ran.stdout.startswith(f"{DIGIT}: 7"), ran.stderr
    assert_one_line_error(zoo("run", "lenet5", str(DIGIT), "--threads", "0", env={"ZOO_HOME": str(lenet_home)}),
                          "--threads")


def test_zoo_prefetch_in_the_environment_sets_the_pipeline_depth(lenet_home, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(lenet_home))
    monkeypatch.setenv("ZOO_PREFETCH", "0")
    assert zoo_api.load("lenet5", provider="cpu").prefetch == 0
    monkeypatch.setenv("ZOO_PREFETCH", "many")
    with pytest.raises(ZooError, match="ZOO_PREFETCH"):
        zoo_api.load("lenet5", provider="cpu")
