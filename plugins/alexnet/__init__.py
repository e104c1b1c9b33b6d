"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012): the family's card, torch-free. The network,
five convolutions and three fully connected layers in torchvision's single-tower layout (whose
weights load as they are), is ``zoo.plugins.alexnet.model``."""

from __future__ import annotations

from zoo.hookspecs import hookimpl
from zoo.plugins import imagenet
from zoo.specs import ModelSpec


@hookimpl
def zoo_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="alexnet",
            family="alexnet",
            task="image-classification",
            summary="AlexNet: five convolutions (11x11 to 3x3) and three FC layers with dropout "
                    "(torchvision weights load as they are)",
            paper="Krizhevsky, Sutskever and Hinton, ImageNet Classification with Deep Convolutional Neural "
                  "Networks, NIPS 2012",
            builder="zoo.plugins.alexnet.model:alexnet",
            params=61_100_840,
            default_config={"num_classes": 1000, "image_size": imagenet.IMAGE_SIZE, "hidden": 4096, "dropout": 0.5},
            input_shape=(3, imagenet.IMAGE_SIZE, imagenet.IMAGE_SIZE),
            preprocessing=imagenet.PREPROCESSING,
            labels=imagenet.labels(),
            family_default=True,
            train_defaults=imagenet.TRAIN_DEFAULTS,
        )
    ]
