"""ResNet (He, Zhang, Ren and Sun, 2015), the ImageNet networks of the paper's Table 1:

    layer    output   18/34: basic block (3x3, 3x3)     50/101/152: bottleneck (1x1, 3x3, 1x1 x4)
    conv1    112x112  7x7, 64, stride 2
    pool     56x56    3x3 max pool, stride 2
    layer1   56x56    64 channels      x [2, 3 | 3, 3, 3] blocks for 18, 34 | 50, 101, 152
    layer2   28x28    128, stride 2    x [2, 4 | 4, 4, 8]
    layer3   14x14    256, stride 2    x [2, 6 | 6, 23, 36]
    layer4   7x7      512, stride 2    x [2, 3 | 3, 3, 3]
    avgpool  1x1      global average pool, 1000-way fully connected

Shortcuts are identities, or 1x1 projections with batch norm where the shape changes (the
paper's option B). The bottleneck strides in its 3x3 convolution (as torchvision's "v1.5"), and
every name and parameter is laid out as torchvision's ``resnet*`` so that its weights files load
as they are.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.plugins import imagenet
from zoo.plugins.resnet import DEPTHS


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and the shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduction, 3x3 (strided), 1x1 expansion by four, and the shortcut (ResNet-50/101/152)."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


Block = type[BasicBlock] | type[Bottleneck]


class ResNet(imagenet.FreezableStages, nn.Module):
    def __init__(self, block: Block, blocks: tuple[int, ...], num_classes: int):
        super().__init__()
        self.cin = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self.stage(block, 64, blocks[0], 1)
        self.layer2 = self.stage(block, 128, blocks[1], 2)
        self.layer3 = self.stage(block, 256, blocks[2], 2)
        self.layer4 = self.stage(block, 512, blocks[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self.stages = {"stem": ("conv1", "bn1"), "layer1": ("layer1",), "layer2": ("layer2",),
                       "layer3": ("layer3",), "layer4": ("layer4",), "fc": ("fc",)}
        for m in self.modules():  # He et al. 2015 ("Delving deep") for the convolutions
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():
            # every residual branch starts at zero (Goyal et al. 2017), so that a fresh network
            # is the identity through its blocks: its activations stay bounded in 152 layers
            if isinstance(m, (BasicBlock, Bottleneck)):
                nn.init.zeros_(m.bn2.weight if isinstance(m, BasicBlock) else m.bn3.weight)

    def stage(self, block: Block, width: int, count: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.cin != width * block.expansion:
            downsample = nn.Sequential(conv1x1(self.cin, width * block.expansion, stride),
                                       nn.BatchNorm2d(width * block.expansion))
        layers = [block(self.cin, width, stride, downsample)]
        self.cin = width * block.expansion
        layers += [block(self.cin, width, 1, None) for _ in range(1, count)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet(config: dict[str, Any], depth: int) -> ResNet:
    """The network of ``depth`` (a key of ``DEPTHS``) for a model config."""
    kind, blocks = DEPTHS[depth]
    module = ResNet(BasicBlock if kind == "basic" else Bottleneck, blocks, int(config["num_classes"]))
    module.input_shape = imagenet.input_shape(config)
    return module


def resnet18(config: dict[str, Any]) -> ResNet:
    return resnet(config, 18)


def resnet34(config: dict[str, Any]) -> ResNet:
    return resnet(config, 34)


def resnet50(config: dict[str, Any]) -> ResNet:
    return resnet(config, 50)


def resnet101(config: dict[str, Any]) -> ResNet:
    return resnet(config, 101)


def resnet152(config: dict[str, Any]) -> ResNet:
    return resnet(config, 152)
