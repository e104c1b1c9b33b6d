"""Image folders are read from disk when used: small ones are encoded whole into memory, large
ones stream through a DataLoader with workers, batch for batch the same as in memory."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from zoo import engine
from zoo.data import ImageFiles, load_image_folder
from zoo.errors import ZooError
from zoo.registry import registry


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "shapes"
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 255, (24 + i, 20 + c, 3), dtype=np.uint8)
            pixels[4:12, 4 + 3 * c: 10 + 3 * c] = 255
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.{'jpg' if i % 2 else 'png'}")
    return root


def _data(folder, monkeypatch, *, stream: bool, workers: int = 2):
    monkeypatch.setattr(engine, "STREAM_BYTES", 0 if stream else float("inf"))
    monkeypatch.setattr(engine, "STREAM_WORKERS", workers)
    spec = registry().model("lenet5")
    opts = engine.TrainOptions(dataset="image-folder", data=str(folder), seed=4, batch_size=5).resolved(spec)
    return engine.load_data(spec, registry().task(spec.task).load(), opts)


def test_image_folder_splits_hold_files_decoded_when_read(folder):
    splits = load_image_folder(folder, test=0.25, dev=0.25)
    assert isinstance(splits.train.inputs, ImageFiles) and len(splits.train.inputs) == len(splits.train) == 12
    first = splits.train.inputs[0]
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    view = splits.train.inputs[2:5]
    assert isinstance(view, ImageFiles) and len(view) == 3
    assert np.array_equal(view[0], splits.train.inputs[2])
    assert len(list(splits.dev.inputs)) == len(splits.dev)


def test_streamed_batches_are_the_in_memory_batches_for_the_same_seed(folder, monkeypatch):
    in_memory = _data(folder, monkeypatch, stream=False)
    streamed = _data(folder, monkeypatch, stream=True, workers=2)
    assert isinstance(in_memory.train, engine.InMemory) and isinstance(streamed.train, engine.Streamed)
    ctx = engine.Distributed()
    for epoch in (1, 2):
        batches = [engine.epoch_batches(len(d.train), 4, epoch, 5, 100, ctx) for d in (in_memory, streamed)]
        pairs = list(zip(in_memory.train.batches(batches[0]), streamed.train.batches(batches[1]), strict=True))
        assert len(pairs) == 4  # 16 training images in batches of 5
        for (xa, ya), (xb, yb) in pairs:
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    for part in ("dev", "test"):
        a, b = (list(getattr(d, part).in_order(3)) for d in (in_memory, streamed))
        assert torch.equal(torch.cat([x for x, _ in a]), torch.cat([x for x, _ in b]))
        assert torch.equal(torch.cat([y for _, y in a]), torch.cat([y for _, y in b]))


def test_small_folders_stay_in_memory_and_large_ones_stream(folder, monkeypatch):
    spec = registry().model("lenet5")
    opts = engine.TrainOptions(dataset="image-folder", data=str(folder)).resolved(spec)
    task = registry().task(spec.task).load()
    monkeypatch.setattr(engine, "STREAM_BYTES", 24 * 4 * 32 * 32)  # the encodings of all 24 images, exactly
    assert isinstance(engine.load_data(spec, task, opts).train, engine.InMemory)
    monkeypatch.setattr(engine, "STREAM_BYTES", 24 * 4 * 32 * 32 - 1)
    assert all(isinstance(getattr(engine.load_data(spec, task, opts), p), engine.Streamed)
               for p in ("train", "dev", "test"))
    opts = engine.TrainOptions().resolved(spec)  # digits: arrays in memory, never streamed
    monkeypatch.setattr(engine, "STREAM_BYTES", 0)
    assert isinstance(engine.load_data(spec, task, opts).train, engine.InMemory)


@pytest.mark.parametrize("workers", [0, 2])
def test_training_through_the_stream_matches_training_in_memory(folder, monkeypatch, zoo_home, workers):
    histories = []
    for stream in (False, True):
        monkeypatch.setattr(engine, "STREAM_BYTES", 0 if stream else float("inf"))
        monkeypatch.setattr(engine, "STREAM_WORKERS", workers)
        result = engine.train("lenet5", engine.TrainOptions(
            epochs=2, max_steps=2, batch_size=4, dataset="image-folder", data=str(folder), install=False,
            progress=False, seed=1, run_dir=str(zoo_home / f"run-{stream}")))
        history = json.loads((result.run_dir / "checkpoint" / "state.json").read_text())["history"]
        histories.append([{k: v for k, v in h.items() if k != "seconds"} for h in history])
        assert 0.0 <= result.metrics["test_accuracy"] <= 1.0
    assert histories[0] == histories[1] and len(histories[0]) == 2  # same losses, augmentation included


def test_an_unreadable_image_in_a_streamed_split_is_one_clear_error(folder, monkeypatch, zoo_home):
    (folder / "class1" / "9.jpg").write_bytes(b"not a jpeg at all")
    monkeypatch.setattr(engine, "STREAM_BYTES", 0)
    monkeypatch.setattr(engine, "STREAM_WORKERS", 1)
    with pytest.raises(ZooError, match=r"9\.jpg") as caught:
        engine.train("lenet5", engine.TrainOptions(epochs=1, batch_size=25, dataset="image-folder",
                                                   data=str(folder), install=False, progress=False,
                                                   run_dir=str(zoo_home / "run")))
    assert "Traceback" not in str(caught.value) and "\n" not in str(caught.value)
