"""VGG (Simonyan and Zisserman, 2014), the configurations of the paper's Table 1: stacks of 3x3
convolutions (stride 1, padding 1, ReLU) between 2x2 max pools, then three fully connected
layers (4096, 4096, 1000) with dropout.

    config   block1      block2        block3            block4            block5
    A (11)   64          128           256 256           512 512           512 512
    B (13)   64 64       128 128       256 256           512 512           512 512
    D (16)   64 64       128 128       256 256 256       512 512 512       512 512 512
    E (19)   64 64       128 128       256 256 256 256   512 512 512 512   512 512 512 512

``vgg16_bn`` adds batch norm after every convolution. Names and order follow torchvision's
``vgg*`` (``features.N``, ``classifier.0/3/6``) so that its weights files load as they are; an
adaptive 7x7 average pool before the classifier lets smaller inputs through.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.plugins import imagenet
from zoo.plugins.vgg import BLOCKS, WIDTHS


class VGG(imagenet.FreezableStages, nn.Module):
    def __init__(self, blocks: tuple[int, ...], batch_norm: bool, num_classes: int, hidden: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        self.stages = {}
        cin = 3
        for number, (count, width) in enumerate(zip(blocks, WIDTHS), start=1):
            start = len(layers)
            for _ in range(count):
                layers += [nn.Conv2d(cin, width, 3, padding=1)]
                if batch_norm:
                    layers += [nn.BatchNorm2d(width)]
                layers += [nn.ReLU(inplace=True)]
                cin = width
            layers += [nn.MaxPool2d(2, stride=2)]
            self.stages[f"block{number}"] = tuple(f"features.{i}" for i in range(start, len(layers)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, hidden),  # fc6
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),  # fc7
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),  # fc8
        )
        self.stages.update({"fc6": ("classifier.0",), "fc7": ("classifier.3",), "fc8": ("classifier.6",)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def vgg(config: dict[str, Any], blocks: tuple[int, ...], batch_norm: bool) -> VGG:
    """The network with ``blocks`` convolutions per block (a value of ``BLOCKS``) for a model config."""
    module = VGG(blocks, batch_norm, int(config["num_classes"]), int(config["hidden"]), float(config["dropout"]))
    module.input_shape = imagenet.input_shape(config)
    return module


def vgg11(config: dict[str, Any]) -> VGG:
    return vgg(config, BLOCKS["vgg11"], batch_norm=False)


def vgg13(config: dict[str, Any]) -> VGG:
    return vgg(config, BLOCKS["vgg13"], batch_norm=False)


def vgg16(config: dict[str, Any]) -> VGG:
    return vgg(config, BLOCKS["vgg16"], batch_norm=False)


def vgg19(config: dict[str, Any]) -> VGG:
    return vgg(config, BLOCKS["vgg19"], batch_norm=False)


def vgg16_bn(config: dict[str, Any]) -> VGG:
    return vgg(config, BLOCKS["vgg16"], batch_norm=True)
