"""GoogLeNet, Inception v1 (Szegedy et al., 2014): the family's card, torch-free. The network, nine
inception modules with 1x1 reductions and optional auxiliary classifiers in torchvision's layout
(whose weights load as they are), is ``zoo.plugins.inception.model``."""

from __future__ import annotations

from zoo.hookspecs import hookimpl
from zoo.plugins import imagenet
from zoo.specs import ModelSpec


@hookimpl
def zoo_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="googlenet",
            family="inception",
            task="image-classification",
            summary="GoogLeNet (Inception v1): nine inception modules with 1x1 reductions, global average pool "
                    "(torchvision weights load as they are)",
            paper="Szegedy et al., Going Deeper with Convolutions, CVPR 2015",
            builder="zoo.plugins.inception.model:googlenet",
            params=6_624_904,
            default_config={"num_classes": 1000, "image_size": imagenet.IMAGE_SIZE, "aux_logits": False,
                            "transform_input": True, "dropout": 0.2, "aux_dropout": 0.7},
            input_shape=(3, imagenet.IMAGE_SIZE, imagenet.IMAGE_SIZE),
            preprocessing=imagenet.PREPROCESSING,
            labels=imagenet.labels(),
            family_default=True,
            aliases=("inception-v1", "inception"),
            train_defaults=imagenet.TRAIN_DEFAULTS,
        )
    ]
