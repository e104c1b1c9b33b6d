"""VGG (Simonyan and Zisserman, 2014): the family's card, torch-free. Configurations A, B, D and
E of the paper's Table 1 (VGG-11, 13, 16, 19) and VGG-16 with batch norm; the networks are
``zoo.plugins.vgg.model`` (laid out as torchvision's ``vgg*``, whose weights load as they are)."""

from __future__ import annotations

from zoo.hookspecs import hookimpl
from zoo.plugins import imagenet
from zoo.specs import ModelSpec

BLOCKS: dict[str, tuple[int, ...]] = {  # convolutions per block, widths 64, 128, 256, 512, 512
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
WIDTHS = (64, 128, 256, 512, 512)
PARAMS = {"vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
          "vgg16_bn": 138_365_992}


@hookimpl
def zoo_models() -> list[ModelSpec]:
    specs = []
    for name in ("vgg11", "vgg13", "vgg16", "vgg19", "vgg16_bn"):
        blocks = BLOCKS[name.removesuffix("_bn")]
        depth = sum(blocks) + 3
        specs.append(ModelSpec(
            name=name,
            family="vgg",
            task="image-classification",
            summary=f"VGG-{depth}{' with batch norm' if name.endswith('_bn') else ''}: {sum(blocks)} 3x3 convolutions "
                    "in five blocks and three FC layers (torchvision weights load as they are)",
            paper="Simonyan and Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, "
                  "ICLR 2015",
            builder=f"zoo.plugins.vgg.model:{name}",
            params=PARAMS[name],
            default_config={"num_classes": 1000, "image_size": imagenet.IMAGE_SIZE, "hidden": 4096, "dropout": 0.5},
            input_shape=(3, imagenet.IMAGE_SIZE, imagenet.IMAGE_SIZE),
            preprocessing=imagenet.PREPROCESSING,
            labels=imagenet.labels(),
            family_default=name == "vgg16",
            train_defaults=imagenet.TRAIN_DEFAULTS,
        ))
    return specs
