"""MTCNN's three networks (Zhang, Zhang, Li and Qiao, "Joint Face Detection and Alignment using
Multi-task Cascaded Convolutional Networks", IEEE SPL 2016), in the state-dict layout of the
trained weights that facenet-pytorch 2.6.0 ships (``facenet_pytorch/data/{pnet,rnet,onet}.pt``).

Each net reads RGB pixels standardised as ``(x - 127.5) / 128`` and answers three questions about
a window: is it a face (a 2-way softmax, column 1 = face), where is the face relative to the
window (four offsets ``dx1, dy1, dx2, dy2`` in units of the window's width and height), and, for
O-Net only, where are the five landmarks (``x1..x5, y1..y5`` as fractions of the window).

    P-Net  any H x W   conv3x3 10, PReLU, max 2/2 | conv3x3 16, PReLU | conv3x3 32, PReLU
                       -> conv1x1 2 (softmax over channels) and conv1x1 4: a 12x12 detector
                       slid over the image with stride 2, run on every level of the pyramid
    R-Net  24 x 24     conv3x3 28, PReLU, max 3/2 | conv3x3 48, PReLU, max 3/2 |
                       conv2x2 64, PReLU | FC 128, PReLU -> FC 2 (softmax), FC 4
    O-Net  48 x 48     conv3x3 32, PReLU, max 3/2 | conv3x3 64, PReLU, max 3/2 |
                       conv3x3 64, PReLU, max 2/2 | conv2x2 128, PReLU | FC 256, PReLU
                       -> FC 2 (softmax), FC 4, FC 10

Pooling rounds up (Caffe's ``ceil`` rule). The weights come from Caffe by way of TensorFlow, whose
fully connected layers read a feature map column by column: before the first FC layer the map
``(N, C, H, W)`` is flattened in ``(W, H, C)`` order, which is what the published weights expect.

The cascade around the nets (pyramid, NMS, regression, squaring) is numpy code in
``zoo.runtime.mtcnn``; these modules are only what is exported to ONNX.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from zoo.contracts import Graph


def _flatten_caffe(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, W*H*C): the column-major order the published FC weights were made in."""
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class PNet(nn.Module):
    """Proposal net: fully convolutional, so one pass over an image scores every 12x12 window."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not face
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box offsets

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return torch.softmax(self.conv4_1(x), dim=1), self.conv4_2(x)


class RNet(nn.Module):
    """Refine net: rejects most P-Net candidates (resized to 24x24) and corrects their boxes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, 3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, 3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, 2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_flatten_caffe(x)))
        return torch.softmax(self.dense5_1(x), dim=1), self.dense5_2(x)


class ONet(nn.Module):
    """Output net: the final face score and box on 48x48 crops, plus the five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)  # landmarks: x of the five points, then y

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(_flatten_caffe(x)))
        return torch.softmax(self.dense6_1(x), dim=1), self.dense6_2(x), self.dense6_3(x)


def _pixels(batch: int, seed: int, height: int, width: int) -> torch.Tensor:
    """Standardised pixels of a smooth random image: closer to what the nets see than noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (batch, 3, height // 4 + 2, width // 4 + 2))
    image = np.kron(coarse, np.ones((1, 1, 4, 4)))[:, :, :height, :width]
    image += rng.normal(0, 12, image.shape)
    return torch.from_numpy(((np.clip(image, 0, 255) - 127.5) * 0.0078125).astype(np.float32))


class MTCNN(nn.Module):
    """The three nets side by side (state-dict keys ``pnet.*``, ``rnet.*``, ``onet.*``); it has
    no forward of its own because the cascade between the nets is not a network."""

    def __init__(self, config: dict | None = None) -> None:
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()

    def export_graphs(self, samples=None) -> list[Graph]:
        """P-Net with dynamic height and width (every pyramid level differs; the tracing input
        and the parity inputs have different sizes), R-Net and O-Net with a dynamic batch of crops."""
        def pnet_inputs(batch: int, seed: int) -> tuple:
            return (_pixels(batch, seed, 37 + 11 * seed, 53 + 7 * seed),)

        def crops(size: int):
            return lambda batch, seed: (_pixels(batch, seed, size, size),)

        return [
            Graph("pnet", self.pnet, pnet_inputs, ["input"], ["prob", "box"],
                  {"input": {0: "batch", 2: "height", 3: "width"},
                   "prob": {0: "batch", 2: "rows", 3: "cols"}, "box": {0: "batch", 2: "rows", 3: "cols"}}),
            Graph("rnet", self.rnet, crops(24), ["input"], ["prob", "box"],
                  {"input": {0: "batch"}, "prob": {0: "batch"}, "box": {0: "batch"}}),
            Graph("onet", self.onet, crops(48), ["input"], ["prob", "box", "landmarks"],
                  {"input": {0: "batch"}, "prob": {0: "batch"}, "box": {0: "batch"},
                   "landmarks": {0: "batch"}}),
        ]


NETS = ("pnet", "rnet", "onet")


def read_wheel(spec, module, path) -> dict[str, torch.Tensor]:
    """``zoo weights import mtcnn facenet_pytorch-2.6.0-py3-none-any.whl``: the three state
    dicts inside facenet-pytorch's wheel (``facenet_pytorch/data/{pnet,rnet,onet}.pt``), each read
    with ``torch.load(weights_only=True)`` and prefixed with its net's name."""
    import io
    import zipfile

    from zoo.errors import ZooError

    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ZooError(f"{path}: not a readable wheel or zip file ({exc})") from exc
    state: dict[str, torch.Tensor] = {}
    with archive:
        names = archive.namelist()
        for net in NETS:
            member = next((n for n in names if n.endswith(f"data/{net}.pt")), None)
            if member is None:
                raise ZooError(f"{path}: holds no data/{net}.pt (expected facenet-pytorch's wheel, which ships "
                               "facenet_pytorch/data/pnet.pt, rnet.pt and onet.pt)")
            info = archive.getinfo(member)
            if info.file_size > 64 << 20:
                raise ZooError(f"{path}: {member} is {info.file_size} bytes, too large for an MTCNN net")
            try:
                part = torch.load(io.BytesIO(archive.read(member)), map_location="cpu", weights_only=True)
            except Exception as exc:
                raise ZooError(f"{path}: {member} is not a loadable state dict ({type(exc).__name__})") from exc
            if not isinstance(part, dict) or not all(torch.is_tensor(v) for v in part.values()):
                raise ZooError(f"{path}: {member} does not hold a state dict of tensors")
            state.update({f"{net}.{key}": value for key, value in part.items()})
    return state
