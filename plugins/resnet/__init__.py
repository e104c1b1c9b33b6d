"""ResNet (He, Zhang, Ren and Sun, 2015): the family's card, torch-free. ResNet-18 to 152 of the
paper's Table 1, basic blocks for 18/34 and bottlenecks for 50/101/152; the networks are
``zoo.plugins.resnet.model`` (laid out as torchvision's ``resnet*``, whose weights load as they
are)."""

from __future__ import annotations

from zoo.hookspecs import hookimpl
from zoo.plugins import imagenet
from zoo.specs import ModelSpec

#: depth -> (block, blocks per stage)
DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}


@hookimpl
def zoo_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name=f"resnet{depth}",
            family="resnet",
            task="image-classification",
            summary=f"ResNet-{depth}: {sum(blocks)} {kind} residual blocks in four stages, ImageNet layout "
                    "(torchvision weights load as they are)",
            paper="He, Zhang, Ren and Sun, Deep Residual Learning for Image Recognition, CVPR 2016",
            builder=f"zoo.plugins.resnet.model:resnet{depth}",
            params=PARAMS[depth],
            default_config={"num_classes": 1000, "image_size": imagenet.IMAGE_SIZE},
            input_shape=(3, imagenet.IMAGE_SIZE, imagenet.IMAGE_SIZE),
            preprocessing=imagenet.PREPROCESSING,
            labels=imagenet.labels(),
            family_default=depth == 50,
            train_defaults=imagenet.TRAIN_DEFAULTS,
        )
        for depth, (kind, blocks) in DEPTHS.items()
    ]
