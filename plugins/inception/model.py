"""GoogLeNet, Inception v1 (Szegedy et al., 2014), the paper's Table 1:

    conv1        7x7, 64, stride 2            -> 3x3 max pool, stride 2
    conv2, 3     1x1, 64; 3x3, 192             -> 3x3 max pool, stride 2
    inception    #1x1  #3x3red #3x3  #5x5red #5x5  pool proj
      3a         64    96      128   16      32    32
      3b         128   128     192   32      96    64     -> 3x3 max pool, stride 2
      4a         192   96      208   16      48    64     (auxiliary classifier 1 after 4a)
      4b         160   112     224   24      64    64
      4c         128   128     256   24      64    64
      4d         112   144     288   32      64    64     (auxiliary classifier 2 after 4d)
      4e         256   160     320   32      128   128    -> 2x2 max pool, stride 2
      5a         256   160     320   32      128   128
      5b         384   192     384   48      128   128    -> global average pool, dropout 0.2, FC

Each inception module runs four branches side by side and concatenates them: a 1x1 convolution,
1x1 reductions before the larger convolutions (the seed's point: the reductions keep the cost
down), and a 3x3 max pool followed by a 1x1 projection. Every convolution is followed by batch
norm (eps 0.001) and ReLU, and the "5x5" branch uses a 3x3 kernel, as in torchvision's
``googlenet`` whose names and weights this module matches. The auxiliary classifiers (average
pool 4x4, 1x1 conv 128, FC 1024, dropout 0.7, FC) are a training option (``aux_logits``), their
losses weighted 0.3 as in the paper; inference and export use the main head only.

torchvision's published GoogLeNet weights were trained on inputs scaled to [-1, 1] and carry the
auxiliary heads; ``transform_input`` (on by default) maps ImageNet-normalised inputs to that
scale, as torchvision does when it loads them, and an imported file's auxiliary heads are dropped
when the config has none, so those files load and predict as they do in torchvision.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.plugins import imagenet

AUX_WEIGHT = 0.3
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    def __init__(self, cin: int, c1x1: int, c3x3red: int, c3x3: int, c5x5red: int, c5x5: int, pool_proj: int):
        super().__init__()
        self.branch1 = BasicConv2d(cin, c1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, c3x3red, 1), BasicConv2d(c3x3red, c3x3, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, c5x5red, 1), BasicConv2d(c5x5red, c5x5, 3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(cin, pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    def __init__(self, cin: int, num_classes: int, dropout: float):
        super().__init__()
        self.conv = BasicConv2d(cin, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))
        x = F.relu(self.fc1(torch.flatten(x, 1)), inplace=True)
        return self.fc2(self.dropout(x))


class GoogLeNet(imagenet.FreezableStages, nn.Module):
    """The network; with ``aux_logits`` the two auxiliary classifiers train beside the main head."""

    def __init__(self, num_classes: int, aux_logits: bool, transform_input: bool, dropout: float,
                 aux_dropout: float):
        super().__init__()
        self.transform_input = transform_input
        self.conv1 = BasicConv2d(3, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.aux1 = InceptionAux(512, num_classes, aux_dropout) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, aux_dropout) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        head = ("fc", "aux1", "aux2") if aux_logits else ("fc",)
        self.stages = {"stem": ("conv1", "conv2", "conv3"), "inception3": ("inception3a", "inception3b"),
                       "inception4": tuple(f"inception4{c}" for c in "abcde"),
                       "inception5": ("inception5a", "inception5b"), "fc": head}

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The logits; while training with auxiliary classifiers, (logits, aux1, aux2)."""
        if self.transform_input:  # (pixel - mean) / std  ->  (pixel - 0.5) / 0.5, per channel
            x = torch.cat([x[:, c: c + 1] * (std / 0.5) + (mean - 0.5) / 0.5
                           for c, (mean, std) in enumerate(zip(IMAGENET_MEAN, IMAGENET_STD))], 1)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        logits = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        return (logits, aux1, aux2) if aux1 is not None else logits

    def imported_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.aux1 is not None:
            return state
        return {k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2."))}

    def loss(self, outputs, targets: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, tuple):
            logits, aux1, aux2 = outputs
            return F.cross_entropy(logits, targets) + AUX_WEIGHT * (
                F.cross_entropy(aux1, targets) + F.cross_entropy(aux2, targets))
        return F.cross_entropy(outputs, targets)


def googlenet(config: dict[str, Any]) -> GoogLeNet:
    module = GoogLeNet(int(config["num_classes"]), bool(config["aux_logits"]), bool(config["transform_input"]),
                       float(config["dropout"]), float(config["aux_dropout"]))
    module.input_shape = imagenet.input_shape(config)
    return module
