"""FaceNet embedding networks and their training losses (imported by the facenet builders only:
this module needs torch).

An embedding network maps a face crop x to f(x) on the unit sphere, ||f(x)||_2 = 1, so that
d(x1, x2) = ||f(x1) - f(x2)||^2 is small for the same person and large for different people
(Schroff, Kalenichenko and Philbin, FaceNet, CVPR 2015). Two losses train it, chosen with
``--config loss=triplet|pair``:

- triplet: l(A, P, N) = max(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + alpha, 0), J = sum l over
  the mini-batch, with the triplets mined online inside the batch (``mining``):
    batch-hard  every sample is an anchor with its farthest positive and nearest negative
                (Hermans, Beyer and Leibe 2017);
    semi-hard   every (anchor, positive) pair with the nearest negative that is still farther
                than the positive, d(A, P) < d(A, N) (FaceNet's section 3.2); when no such
                negative exists, the farthest one;
- pair: verification as binary classification on a pair,
  y^ = sigmoid(sum_k w_k |f(x_i)_k - f(x_j)_k| + b), with binary cross-entropy over every pair
  of the mini-batch (positives weighted up to balance the far more numerous negatives).

``InceptionResnetV1`` is the network of facenet-pytorch 2.6.0 (Inception-ResNet-v1 of Szegedy et
al. 2016 at 160x160 with a 512-d bottleneck), every name and shape as in its state dict, so its
VGGFace2 and CASIA-WebFace ``.pt`` files load as they are. ``SmallFaceNet`` is a small ResNet
that trains from scratch on two CPU cores in minutes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("triplet", "pair")
MINING = ("batch-hard", "semi-hard")


def squared_distances(emb: torch.Tensor) -> torch.Tensor:
    """||f_i - f_j||^2 for every pair; for unit vectors 2 - 2 f_i.f_j, clamped at 0."""
    dot = emb @ emb.t()
    sq = dot.diagonal()
    return (sq[:, None] - 2 * dot + sq[None, :]).clamp_min(0)


def triplet_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float, mining: str) -> torch.Tensor:
    """Mean of the mined triplets' losses (0 when the batch holds no positive pair)."""
    d = squared_distances(emb)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    positive, negative = same & ~eye, ~same
    if mining == "batch-hard":
        has = positive.any(1) & negative.any(1)
        if not has.any():
            return emb.sum() * 0
        hardest_pos = torch.where(positive, d, torch.zeros_like(d)).max(1).values
        hardest_neg = torch.where(negative, d, torch.full_like(d, float("inf"))).min(1).values
        return F.relu(hardest_pos - hardest_neg + margin)[has].mean()
    if mining == "semi-hard":
        a, p = positive.nonzero(as_tuple=True)
        if len(a) == 0 or not negative.any():
            return emb.sum() * 0
        d_ap = d[a, p][:, None]
        d_an = d[a]  # (pairs, batch)
        neg = negative[a]
        farther = neg & (d_an > d_ap)
        nearest_farther = torch.where(farther, d_an, torch.full_like(d_an, float("inf"))).min(1).values
        farthest = torch.where(neg, d_an, torch.full_like(d_an, -float("inf"))).max(1).values
        chosen = torch.where(farther.any(1), nearest_farther, farthest)
        return F.relu(d_ap[:, 0] - chosen + margin).mean()
    raise ValueError(f"unknown mining {mining!r}; choose from {', '.join(MINING)}")


def pair_loss(emb: torch.Tensor, labels: torch.Tensor, head: nn.Linear) -> torch.Tensor:
    """Binary cross-entropy of sigmoid(w . |f_i - f_j| + b) against 'same person' over all i < j."""
    i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=emb.device)
    logits = head((emb[i] - emb[j]).abs()).squeeze(1)
    target = (labels[i] == labels[j]).float()
    positives = target.sum()
    pos_weight = ((len(target) - positives) / positives.clamp_min(1)).clamp_min(1)
    return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)


class EmbeddingNet(nn.Module):
    """What every face-embedding network shares: the training losses (engine hook ``loss``) and
    the exported graph, ``input (N, C, H, W) -> embedding (N, D)``."""

    def setup_training(self, config: dict[str, Any], embedding: int) -> None:
        self.loss_name = str(config.get("loss", "triplet"))
        self.mining = str(config.get("mining", "semi-hard"))
        self.margin = float(config.get("margin", 0.2))
        if self.loss_name not in LOSSES:
            raise ValueError(f"unknown loss {self.loss_name!r}; choose from {', '.join(LOSSES)}")
        if self.mining not in MINING:
            raise ValueError(f"unknown mining {self.mining!r}; choose from {', '.join(MINING)}")
        # the pair classifier's w and b exist only where they are trained (they would change the
        # published state-dict layout otherwise)
        self.pair_head = nn.Linear(embedding, 1) if self.loss_name == "pair" else None

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "pair":
            return pair_loss(outputs, targets, self.pair_head)
        return triplet_loss(outputs, targets, self.margin, self.mining)

    def export_graphs(self, samples: np.ndarray | None):
        from zoo.contracts import Graph

        shape = tuple(self.input_shape)

        def inputs(batch: int, seed: int) -> tuple:
            if samples is not None and len(samples) >= 16:
                start = (seed * 7) % (len(samples) - batch)
                return (torch.from_numpy(np.ascontiguousarray(samples[start: start + batch])).float(),)
            return (torch.randn(batch, *shape, generator=torch.Generator().manual_seed(seed)),)

        return [Graph("model", self, inputs, ["input"], ["embedding"],
                      {"input": {0: "batch"}, "embedding": {0: "batch"}})]


# -- Inception-ResNet-v1, in facenet-pytorch's layout -------------------------------------------
class BasicConv2d(nn.Module):
    """conv (no bias) -> batch norm (eps 1e-3) -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001, momentum=0.1, affine=True)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Block35(nn.Module):
    """Inception-ResNet-A (35x35 in the paper, 17x17 at 160 input): three branches, 1x1 up to
    256 channels, x * 1 + scale * up(branches), ReLU."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(256, 32, 1)
        self.branch1 = nn.Sequential(BasicConv2d(256, 32, 1), BasicConv2d(32, 32, 3, padding=1))
        self.branch2 = nn.Sequential(BasicConv2d(256, 32, 1), BasicConv2d(32, 32, 3, padding=1),
                                     BasicConv2d(32, 32, 3, padding=1))
        self.conv2d = nn.Conv2d(96, 256, 1)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)
        return self.relu(self.conv2d(out) * self.scale + x)


class Block17(nn.Module):
    """Inception-ResNet-B: a 1x1 branch and a 1x1 -> 1x7 -> 7x1 branch, up to 896 channels."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(896, 128, 1)
        self.branch1 = nn.Sequential(BasicConv2d(896, 128, 1), BasicConv2d(128, 128, (1, 7), padding=(0, 3)),
                                     BasicConv2d(128, 128, (7, 1), padding=(3, 0)))
        self.conv2d = nn.Conv2d(256, 896, 1)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat((self.branch0(x), self.branch1(x)), 1)
        return self.relu(self.conv2d(out) * self.scale + x)


class Block8(nn.Module):
    """Inception-ResNet-C: a 1x1 branch and a 1x1 -> 1x3 -> 3x1 branch, up to 1792 channels; the
    last one of the network has no ReLU."""

    def __init__(self, scale: float = 1.0, no_relu: bool = False):
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(1792, 192, 1)
        self.branch1 = nn.Sequential(BasicConv2d(1792, 192, 1), BasicConv2d(192, 192, (1, 3), padding=(0, 1)),
                                     BasicConv2d(192, 192, (3, 1), padding=(1, 0)))
        self.conv2d = nn.Conv2d(384, 1792, 1)
        self.relu = None if no_relu else nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2d(torch.cat((self.branch0(x), self.branch1(x)), 1)) * self.scale + x
        return out if self.relu is None else self.relu(out)


class Mixed6a(nn.Module):
    """Reduction-A: 3x3/2 conv, 1x1 -> 3x3 -> 3x3/2 convs, 3x3/2 max pool; 256 -> 896 channels."""

    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(256, 384, 3, stride=2)
        self.branch1 = nn.Sequential(BasicConv2d(256, 192, 1), BasicConv2d(192, 192, 3, padding=1),
                                     BasicConv2d(192, 256, 3, stride=2))
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)


class Mixed7a(nn.Module):
    """Reduction-B: three conv branches ending in 3x3/2 and a 3x3/2 max pool; 896 -> 1792."""

    def __init__(self):
        super().__init__()
        self.branch0 = nn.Sequential(BasicConv2d(896, 256, 1), BasicConv2d(256, 384, 3, stride=2))
        self.branch1 = nn.Sequential(BasicConv2d(896, 256, 1), BasicConv2d(256, 256, 3, stride=2))
        self.branch2 = nn.Sequential(BasicConv2d(896, 256, 1), BasicConv2d(256, 256, 3, padding=1),
                                     BasicConv2d(256, 256, 3, stride=2))
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)


class InceptionResnetV1(EmbeddingNet):
    """Inception-ResNet-v1 as FaceNet uses it (sizes at 160x160 input):

        conv2d_1a 3x3/2 32 (79) -> 2a 3x3 32 (77) -> 2b 3x3 64 (77) -> max pool 3x3/2 (38)
        -> 3b 1x1 80 -> 4a 3x3 192 (36) -> 4b 3x3/2 256 (17)
        -> 5 x Block35 (scale 0.17) -> Mixed6a (8, 896) -> 10 x Block17 (0.10)
        -> Mixed7a (3, 1792) -> 5 x Block8 (0.20) -> Block8 (no ReLU)
        -> global average pool -> dropout -> last_linear 1792 -> 512 (no bias) -> last_bn
        -> L2 normalisation (or, with ``num_classes``, the ``logits`` layer of softmax training)
    """

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        embedding = int(config.get("embedding", 512))
        num_classes = int(config.get("num_classes") or 0)
        self.conv2d_1a = BasicConv2d(3, 32, 3, stride=2)
        self.conv2d_2a = BasicConv2d(32, 32, 3)
        self.conv2d_2b = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = BasicConv2d(64, 80, 1)
        self.conv2d_4a = BasicConv2d(80, 192, 3)
        self.conv2d_4b = BasicConv2d(192, 256, 3, stride=2)
        self.repeat_1 = nn.Sequential(*(Block35(scale=0.17) for _ in range(5)))
        self.mixed_6a = Mixed6a()
        self.repeat_2 = nn.Sequential(*(Block17(scale=0.10) for _ in range(10)))
        self.mixed_7a = Mixed7a()
        self.repeat_3 = nn.Sequential(*(Block8(scale=0.20) for _ in range(5)))
        self.block8 = Block8(no_relu=True)
        self.avgpool_1a = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(float(config.get("dropout", 0.6)))
        self.last_linear = nn.Linear(1792, embedding, bias=False)
        self.last_bn = nn.BatchNorm1d(embedding, eps=0.001, momentum=0.1, affine=True)
        self.logits = nn.Linear(embedding, num_classes) if num_classes else None
        self.classify = False  # True: return the logits of the softmax-trained head instead
        self.setup_training(config, embedding)
        size = int(config.get("image_size", 160))
        self.input_shape = (3, size, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool_3a(self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x))))
        x = self.conv2d_4b(self.conv2d_4a(self.conv2d_3b(x)))
        x = self.mixed_6a(self.repeat_1(x))
        x = self.mixed_7a(self.repeat_2(x))
        x = self.block8(self.repeat_3(x))
        x = self.dropout(self.avgpool_1a(x))
        x = self.last_bn(self.last_linear(x.flatten(1)))
        if self.classify and self.logits is not None:
            return self.logits(x)
        return F.normalize(x, p=2, dim=1)

    def imported_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """facenet-pytorch's files carry the softmax layer of their training (8,631 VGGFace2 or
        10,575 CASIA-WebFace identities); an embedding model without ``num_classes`` drops it."""
        if self.logits is not None:
            return state
        return {k: v for k, v in state.items() if not k.startswith("logits.")}

    def freeze(self, upto: str) -> None:
        """``head``: train only the bottleneck (last_linear, last_bn); a module name (``mixed_7a``,
        say): freeze everything before it. Frozen batch norms keep their statistics."""
        names = [name for name, _ in self.named_children()]
        stop = "last_linear" if upto == "head" else upto
        if stop not in names:
            raise ValueError(f"--freeze {upto!r}: choose head or one of {', '.join(names)}")
        self.frozen = names[: names.index(stop)]
        for name in self.frozen:
            for p in getattr(self, name).parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in getattr(self, "frozen", ()):
            getattr(self, name).eval()
        return self


# -- a small embedding network that trains on a CPU ---------------------------------------------
class ResidualBlock(nn.Module):
    """Two 3x3 conv + batch norm layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class SmallFaceNet(EmbeddingNet):
    """A ResNet-ish embedding network for small inputs (32x32 by default):

        stem 3x3 conv, width w (32x32) -> residual stages of widths (w, 2w, 4w), each halving
        the side (16, 8, 4) -> global average pool -> linear 4w -> D -> L2 normalisation
    """

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        width, embedding = int(config.get("width", 16)), int(config.get("embedding", 128))
        channels = int(config.get("in_channels", 1))
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        widths = (width, 2 * width, 4 * width)
        stages, cin = [], width
        for cout in widths:
            stages.append(ResidualBlock(cin, cout, 2))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.embed = nn.Linear(cin, embedding)
        self.setup_training(config, embedding)
        size = int(config.get("image_size", 32))
        self.input_shape = (channels, size, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return F.normalize(self.embed(x.mean((2, 3))), p=2, dim=1)
