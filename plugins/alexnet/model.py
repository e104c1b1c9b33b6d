"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012), in the single-tower form of Krizhevsky's
"One weird trick" (2014) that torchvision ships:

    conv1  11x11, 64, stride 4, ReLU -> 3x3 max pool, stride 2
    conv2  5x5, 192, ReLU            -> 3x3 max pool, stride 2
    conv3  3x3, 384, ReLU
    conv4  3x3, 256, ReLU
    conv5  3x3, 256, ReLU            -> 3x3 max pool, stride 2 -> adaptive 6x6 average pool
    fc6    dropout, 9216 -> 4096, ReLU
    fc7    dropout, 4096 -> 4096, ReLU
    fc8    4096 -> 1000

Local response normalisation and the two-GPU split of the paper are left out, as torchvision
does; names and order follow its ``alexnet`` so that its weights files load as they are.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.plugins import imagenet


class AlexNet(imagenet.FreezableStages, nn.Module):
    def __init__(self, num_classes: int, hidden: int, dropout: float):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2),  # conv1
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(64, 192, 5, padding=2),  # conv2
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(192, 384, 3, padding=1),  # conv3
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),  # conv4
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),  # conv5
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(256 * 6 * 6, hidden),  # fc6
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),  # fc7
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),  # fc8
        )
        self.stages = {"conv1": ("features.0",), "conv2": ("features.3",), "conv3": ("features.6",),
                       "conv4": ("features.8",), "conv5": ("features.10",), "fc6": ("classifier.1",),
                       "fc7": ("classifier.4",), "fc8": ("classifier.6",)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def alexnet(config: dict[str, Any]) -> AlexNet:
    shape = imagenet.input_shape(config)
    if shape[1] < 63:
        raise ZooError(f"alexnet needs image_size of at least 63 (three stride-2 pools after a stride-4 conv), "
                       f"got {shape[1]}")
    module = AlexNet(int(config["num_classes"]), int(config["hidden"]), float(config["dropout"]))
    module.input_shape = shape
    return module
