"""EfficientNet-Lite as PyTorch modules (imported only to build, train or export).

EfficientNet (Tan and Le, 2019) stacks mobile inverted bottlenecks (MBConv, MobileNetV2: Sandler
et al., 2018). For an input x with c_in channels, expansion e, kernel k and stride s, a block is

    h = ReLU6(BN(W_expand * x))            1 x 1 conv to e * c_in channels (absent when e = 1)
    h = ReLU6(BN(W_depthwise (*) h))       k x k depthwise conv, stride s, TensorFlow "SAME" padding
    y = BN(W_project * h)                  1 x 1 conv to c_out channels, linear (no activation)
    y = y + x                              only when s = 1 and c_in = c_out (the residual)

and during training the residual branch is dropped per sample with probability
``drop_connect * i / n`` for block i of n (stochastic depth; kept branches are scaled by 1/p).

The Lite variants (TensorFlow's ``efficientnet/lite``) change three things for mobile
accelerators and post-training quantisation: ReLU6 instead of swish, no squeeze-and-excitation,
and the stem (32 filters) and head (1280 filters) kept fixed when the width is scaled. The
network is the stem (3 x 3 conv, stride 2), seven stages of MBConv blocks

    stage  repeats  kernel  stride  expand  filters in -> out
    1      1        3       1       1       32  -> 16
    2      2        3       2       6       16  -> 24
    3      2        5       2       6       24  -> 40
    4      3        3       2       6       40  -> 80
    5      3        5       1       6       80  -> 112
    6      4        5       2       6       112 -> 192
    7      1        3       1       6       192 -> 320

then the head (1 x 1 conv to 1280, BN, ReLU6), global average pooling, dropout and the linear
classifier. ``width`` scales the filters (rounded to multiples of 8, never more than 10% down) and
``depth`` the repeats (rounded up), except in the first and last stages; Lite0 is 1.0 and 1.0 at
224 x 224. Batch norm uses TensorFlow's epsilon, 1e-3.

TensorFlow's "SAME" padding is asymmetric for stride 2 on an even size (a 3 x 3 kernel pads 0
left/top and 1 right/bottom, a 5 x 5 one 1 and 2); the padding of every convolution is fixed
when the network is built, from ``image_size``, so an exported graph has plain Pad nodes.

Attribute names follow the state dicts of ``efficientnet-lite-pytorch`` (``_conv_stem``,
``_blocks.N._depthwise_conv``, ``_fc``...), so the published ``efficientnet-lite0-57934424.pth``
loads key for key.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.plugins.imagenet import FreezableStages

#: (repeats, kernel, stride, expand ratio, filters in, filters out) per stage, at width and depth 1
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
STEM, HEAD = 32, 1280
BN_EPS = 1e-3  # TensorFlow's batch_norm_epsilon for EfficientNet
BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99, in PyTorch's convention


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Filters scaled by ``width``, to the nearest multiple of ``divisor``, never below 90%."""
    if width == 1.0:
        return filters
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME": the output is ceil(size / stride); the extra pixel goes right/bottom."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding for a known input size (no bias: every
    convolution here is followed by batch norm)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, size: int, groups: int = 1):
        super().__init__(c_in, c_out, kernel, stride, padding=0, groups=groups, bias=False)
        before, after = same_padding(size, kernel, stride)
        self.pad = (before, after, before, after)  # left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad)
        return super().forward(x)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """The mobile inverted bottleneck of the module docstring, without squeeze-and-excitation."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int, size: int,
                 drop_connect: float):
        super().__init__()
        hidden = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(c_in, hidden, 1, 1, size)
            self._bn0 = batch_norm(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, size, groups=hidden)
        self._bn1 = batch_norm(hidden)
        self._project_conv = SameConv2d(hidden, c_out, 1, 1, math.ceil(size / stride))
        self._bn2 = batch_norm(c_out)
        self.residual = stride == 1 and c_in == c_out
        self.drop_connect = drop_connect

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        if not self.residual:
            return h
        if self.training and self.drop_connect > 0:
            keep = 1.0 - self.drop_connect
            mask = torch.floor(keep + torch.rand(h.shape[0], 1, 1, 1, dtype=h.dtype, device=h.device))
            h = h / keep * mask
        return h + x


class EfficientNetLite(FreezableStages, nn.Module):
    def __init__(self, config: dict[str, Any]):
        super().__init__()
        size = int(config["image_size"])
        if size < 32:
            raise ZooError(f"image_size {size} is too small for EfficientNet (at least 32)")
        width, depth = float(config["width"]), float(config["depth"])
        drop_connect = float(config["drop_connect"])
        self.input_shape = (3, size, size)
        self._conv_stem = SameConv2d(3, STEM, 3, 2, size)
        self._bn0 = batch_norm(STEM)
        size = math.ceil(size / 2)

        plan = []  # (stage, c_in, c_out, kernel, stride, expand) per block
        for index, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(STAGES):
            fixed = index in (0, len(STAGES) - 1)  # the first and last stages keep their repeats
            c_in = STEM if index == 0 else round_filters(c_in, width)
            c_out = round_filters(c_out, width)
            repeats = repeats if fixed else int(math.ceil(depth * repeats))
            plan += [(index, c_in if i == 0 else c_out, c_out, kernel, stride if i == 0 else 1, expand)
                     for i in range(repeats)]
        blocks, stages = [], {"stem": ("_conv_stem", "_bn0")}
        for i, (stage, c_in, c_out, kernel, stride, expand) in enumerate(plan):
            blocks.append(MBConv(c_in, c_out, kernel, stride, expand, size, drop_connect * i / len(plan)))
            stages[f"stage{stage + 1}"] = stages.get(f"stage{stage + 1}", ()) + (f"_blocks.{i}",)
            size = math.ceil(size / stride)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(plan[-1][2], HEAD, 1, 1, size)
        self._bn1 = batch_norm(HEAD)
        self._dropout = nn.Dropout(float(config["dropout"]))
        self._fc = nn.Linear(HEAD, int(config["num_classes"]))
        self.stages = {**stages, "top": ("_conv_head", "_bn1"), "fc": ("_fc",)}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean((2, 3))
        return self._fc(self._dropout(pooled))
