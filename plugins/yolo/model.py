"""YOLO networks (Redmon et al., 2016; YOLOv2 2017; YOLOv3 2018), as the seed teaches them: the
image is cut into an S x S grid; each cell predicts B boxes, one per anchor box, each as ``(t_x,
t_y, t_w, t_h, p_c, c_1..c_C)`` with the centre relative to the cell (sigmoid) and the size
relative to the anchor (exp). Anchors are YOLOv2's dimension clusters (k-means with 1 - IoU,
computed by the dataset loader); decoding, score threshold and per-class non-max suppression
live once, in numpy, in ``zoo.runtime.tasks.detection``. ``zoo export yolo --format onnx-nms``
also writes them into the graph (ONNX ``NonMaxSuppression``, ``zoo.exporters.nms``) for users
without zoo. Darknet orders the vector ``t_x, t_y, t_w, t_h, p_c, c...`` (the seed writes
``p_c`` first); we keep Darknet's order so its weights load unchanged.

The network is YOLOv3-tiny's layer table (``cfg/yolov3-tiny.cfg``), two heads at strides 32
and 16, with a width multiplier:

    #   layer        filters  size/stride   output (416 input)
    0   conv         16       3/1           416
    1   max                   2/2           208
    2   conv         32       3/1
    3   max                   2/2           104
    4   conv         64       3/1
    5   max                   2/2            52
    6   conv         128      3/1
    7   max                   2/2            26
    8   conv         256      3/1            26  ----------------------+
    9   max                   2/2            13                        |
    10  conv         512      3/1                                      |
    11  max                   2/1            13 (pads right/bottom)    |
    12  conv         1024     3/1                                      |
    13  conv         256      1/1  ---------------+                    |
    14  conv         512      3/1                 |                    |
    15  conv         B(5+C)   1/1 linear  -> head at stride 32         |
    17  route 13                              <---+                    |
    18  conv         128      1/1                                      |
    19  upsample x2                           26                        |
    20  route 19, 8  (concatenate)           <-------------------------+
    21  conv         256      3/1
    22  conv         B(5+C)   1/1 linear  -> head at stride 16

Every conv but the heads is conv (no bias) + batch norm + leaky ReLU (0.1), as in Darknet.

With ``strides: [32, 16, 8]`` a third head is added the way YOLOv3 adds its finer ones: layer 21
through a 1 x 1 conv of 64, upsampled x2, concatenated with layer 6 (stride 8), a 3 x 3 conv of
128 and the linear head; the anchors are shared out equally, the smallest to the finest grid.

``yolov2-tiny`` (``cfg/yolov2-tiny.cfg``) is layers 0-12 of the same table, a 3 x 3 conv of 512
and one head at stride 32. The specs that pick a class and a config are in ``zoo.plugins.yolo``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.contracts import Graph, image_graph
from zoo.errors import ZooError
from zoo.runtime.tasks.detection import grid_cells, head_layout

#: filters of layers 0, 2, 4, 6, 8, 10, 12, 13, 14, 18, 21 (and the third head's 25, 28) at width 1
FILTERS = {"conv0": 16, "conv2": 32, "conv4": 64, "conv6": 128, "conv8": 256, "conv10": 512, "conv12": 1024,
           "conv13": 256, "conv14": 512, "conv18": 128, "conv21": 256, "conv25": 64, "conv28": 128}
LAMBDA_COORD, LAMBDA_NOOBJ = 5.0, 0.5  # YOLOv1's weights: boxes count more, empty cells less
IGNORE_IOU = 0.5  # YOLOv3: a prediction overlapping a true box this much is not punished as empty


def channels(config: dict, layer: str) -> int:
    return max(8, int(round(FILTERS[layer] * config["width"])))


def conv_bn(c_in: int, c_out: int, k: int, eps: float = 1e-5) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, 1, k // 2, bias=False), nn.BatchNorm2d(c_out, eps=eps),
                         nn.LeakyReLU(0.1))


class Yolo(nn.Module):
    """What every YOLO network here shares: config checks, the output layout, export and the loss."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        size = int(config["input_size"])
        if size % 32:
            raise ZooError(f"input_size {size} must be a multiple of 32 (the coarsest grid's stride)")
        self.input_shape = (3, size, size)
        self.layout = head_layout(config)
        self.per_cell = [len(a) * (5 + int(config["num_classes"])) for _, a in self.layout]
        self.width = c = {name: channels(config, name) for name in FILTERS}
        #: batch-norm epsilon: Darknet divides by sqrt(var) + 1e-6, PyTorch by sqrt(var + eps)
        self.bn_eps = float(config.get("bn_eps", 1e-5))
        self.conv0 = self.conv_bn(3, c["conv0"], 3)
        self.conv2 = self.conv_bn(c["conv0"], c["conv2"], 3)
        self.conv4 = self.conv_bn(c["conv2"], c["conv4"], 3)
        self.conv6 = self.conv_bn(c["conv4"], c["conv6"], 3)
        self.conv8 = self.conv_bn(c["conv6"], c["conv8"], 3)
        self.conv10 = self.conv_bn(c["conv8"], c["conv10"], 3)
        self.conv12 = self.conv_bn(c["conv10"], c["conv12"], 3)

    def conv_bn(self, c_in: int, c_out: int, k: int) -> nn.Sequential:
        return conv_bn(c_in, c_out, k, self.bn_eps)

    def backbone(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Layers 0-12, shared by both tables: the outputs of layers 6 (stride 8), 8 (stride
        16) and 12 (stride 32)."""
        pool = F.max_pool2d
        for layer in (self.conv0, self.conv2, self.conv4):
            x = pool(layer(x), 2)
        route6 = self.conv6(x)
        route8 = self.conv8(pool(route6, 2))
        # Darknet's 2/1 max pool after layer 10 keeps the size: pad right and bottom first
        x = F.pad(self.conv10(pool(route8, 2)), (0, 1, 0, 1), mode="replicate")
        return route6, route8, self.conv12(pool(x, 2, 1))

    def _rows(self, head: torch.Tensor, index: int) -> torch.Tensor:
        """(N, B(5+C), S, S) -> (N, S*S*B, 5+C), rows ordered by grid row, column, anchor."""
        n, _, s, _ = head.shape
        b = len(self.layout[index][1])
        return head.view(n, b, -1, s, s).permute(0, 3, 4, 1, 2).reshape(n, s * s * b, -1)

    def export_graphs(self, samples: np.ndarray | None) -> list[Graph]:
        graph = image_graph(self, self.input_shape, samples)
        graph.input_names, graph.output_names = ["images"], ["predictions"]
        graph.dynamic_axes = {"images": {0: "batch"}, "predictions": {0: "batch"}}
        return [graph]

    def _grid(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        cells, strides, anchors = grid_cells(self.config)
        return tuple(torch.as_tensor(a, dtype=torch.float32, device=device) for a in (cells, strides, anchors))

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The YOLO loss over a batch, divided by the batch size.

        Each true box is given to the one prediction whose cell holds its centre and whose
        anchor has the best shape IoU with it (YOLOv2). That prediction learns the box
        (squared error on sigmoid(t_x, t_y) and on t_w, t_h in log space, weighted by
        lambda_coord), p_c = 1 and its class (cross-entropy over a softmax, YOLOv2, or binary
        cross-entropy per class, YOLOv3, as ``class_activation`` says). Every
        other prediction learns p_c = 0, weighted by lambda_noobj, unless its box already
        overlaps a true box by IGNORE_IOU (YOLOv3's ignore rule)."""
        n, rows, _ = outputs.shape
        classes = outputs.shape[-1] - 5
        cells, strides, anchors = self._grid(outputs.device)
        size = float(self.config["input_size"])
        valid = targets[..., 0] >= 0
        img, _ = valid.nonzero(as_tuple=True)
        truth = targets[valid]
        wh = (truth[:, 3:5] - truth[:, 1:3]).clamp(min=1e-3)
        centre = (truth[:, 1:3] + truth[:, 3:5]) / 2

        # the responsible prediction: best anchor by shape, then the cell of the centre
        choices = torch.as_tensor(self._anchor_rows(), device=outputs.device)  # (A, 4): offset, B, n, anchor
        shape_anchor = anchors[choices[:, 0]]  # the anchor sizes of the first cell's rows
        inter = torch.minimum(wh[:, None], shape_anchor[None]).prod(-1)
        best = (inter / (wh.prod(-1)[:, None] + shape_anchor.prod(-1)[None] - inter)).argmax(1)
        first, b_count, grid_n = choices[best, 0], choices[best, 1], choices[best, 2]
        stride = strides[first]
        g = centre / stride[:, None]
        cell = g.floor().clamp(min=0).minimum((grid_n - 1)[:, None].float())
        row = first + (cell[:, 1].long() * grid_n + cell[:, 0].long()) * b_count
        obj = torch.zeros(n, rows, dtype=torch.bool, device=outputs.device)
        obj[img, row] = True

        pred = outputs[img, row]
        box_weight = 2.0 - wh.prod(-1) / size ** 2  # small boxes count more (YOLOv3)
        xy_err = (torch.sigmoid(pred[:, 0:2]) - (g - cell)).pow(2).sum(-1)
        wh_err = (pred[:, 2:4] - torch.log(wh / anchors[row])).pow(2).sum(-1)
        coord = (box_weight * (xy_err + wh_err)).sum()
        if self.config.get("class_activation") == "softmax":
            cls = F.cross_entropy(pred[:, 5:], truth[:, 0].long(), reduction="sum")
        else:
            cls = F.binary_cross_entropy_with_logits(pred[:, 5:], F.one_hot(truth[:, 0].long(), classes).to(pred),
                                                     reduction="sum")

        with torch.no_grad():
            xy = (torch.sigmoid(outputs[..., 0:2]) + cells) * strides[:, None]
            half = anchors * torch.exp(outputs[..., 2:4].clamp(max=10)) / 2
            boxes = torch.cat([xy - half, xy + half], -1)
            ignore = self._box_iou(boxes, targets[..., 1:5], valid).amax(-1) > IGNORE_IOU
        empty = ~obj & ~ignore
        p_c = outputs[..., 4]
        objectness = F.binary_cross_entropy_with_logits(p_c[obj], torch.ones_like(p_c[obj]), reduction="sum") + \
            LAMBDA_NOOBJ * F.binary_cross_entropy_with_logits(p_c[empty], torch.zeros_like(p_c[empty]),
                                                              reduction="sum")
        return (LAMBDA_COORD * coord + objectness + cls) / n

    def _anchor_rows(self) -> np.ndarray:
        """Per anchor (all heads): the row of its first cell, anchors per cell, grid side."""
        size, out, offset = int(self.config["input_size"]), [], 0
        for stride, head_anchors in self.layout:
            side = size // stride
            out += [[offset + b, len(head_anchors), side] for b in range(len(head_anchors))]
            offset += side * side * len(head_anchors)
        return np.asarray(out, np.int64)

    @staticmethod
    def _box_iou(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(N, P, 4) x (N, M, 4) -> (N, P, M), zero against padding rows."""
        lt = torch.maximum(a[:, :, None, :2], b[:, None, :, :2])
        rb = torch.minimum(a[:, :, None, 2:], b[:, None, :, 2:])
        inter = (rb - lt).clamp(min=0).prod(-1)
        area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
        area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
        union = area_a[:, :, None] + area_b[:, None, :] - inter
        return torch.where(valid[:, None, :], inter / union.clamp(min=1e-9), torch.zeros_like(inter))


class YoloV3Tiny(Yolo):
    def __init__(self, config: dict):
        super().__init__(config)
        if [int(v) for v in config["strides"]] not in ([32, 16], [32, 16, 8]):
            raise ZooError(f"strides {config['strides']}: the network has heads at [32, 16] or [32, 16, 8]")
        c, per_cell = self.width, self.per_cell  # layers 0-12 are built by Yolo
        self.conv13 = self.conv_bn(c["conv12"], c["conv13"], 1)
        self.conv14 = self.conv_bn(c["conv13"], c["conv14"], 3)
        self.conv15 = nn.Conv2d(c["conv14"], per_cell[0], 1)
        self.conv18 = self.conv_bn(c["conv13"], c["conv18"], 1)
        self.conv21 = self.conv_bn(c["conv18"] + c["conv8"], c["conv21"], 3)
        self.conv22 = nn.Conv2d(c["conv21"], per_cell[1], 1)
        if len(self.layout) == 3:  # a third head at stride 8
            self.conv25 = self.conv_bn(c["conv21"], c["conv25"], 1)
            self.conv28 = self.conv_bn(c["conv25"] + c["conv6"], c["conv28"], 3)
            self.conv29 = nn.Conv2d(c["conv28"], per_cell[2], 1)

    def darknet_layers(self) -> list[tuple[str, str | None]]:
        """(conv, batch norm) state-dict prefixes in the order of a Darknet .weights file."""
        return [(f"{n}.0", f"{n}.1") for n in ("conv0", "conv2", "conv4", "conv6", "conv8", "conv10", "conv12",
                                                "conv13", "conv14")] + \
            [("conv15", None), ("conv18.0", "conv18.1"), ("conv21.0", "conv21.1"), ("conv22", None)] + \
            ([("conv25.0", "conv25.1"), ("conv28.0", "conv28.1"), ("conv29", None)] if len(self.layout) == 3 else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        route6, route8, x = self.backbone(x)
        route13 = self.conv13(x)
        coarse = self.conv15(self.conv14(route13))
        up = F.interpolate(self.conv18(route13), scale_factor=2, mode="nearest")
        route21 = self.conv21(torch.cat([up, route8], 1))
        heads = [self._rows(coarse, 0), self._rows(self.conv22(route21), 1)]
        if len(self.layout) == 3:
            up = F.interpolate(self.conv25(route21), scale_factor=2, mode="nearest")
            heads.append(self._rows(self.conv29(self.conv28(torch.cat([up, route6], 1))), 2))
        return torch.cat(heads, 1)


class YoloV2Tiny(Yolo):
    """YOLOv2-tiny (``cfg/yolov2-tiny.cfg``): the same backbone to layer 12, then one 3 x 3 conv
    of 512 and the linear head; a single grid at stride 32 whose region layer decodes as
    YOLOv3's does, with softmax class scores."""

    def __init__(self, config: dict):
        super().__init__(config)
        if [int(v) for v in config["strides"]] != [32]:
            raise ZooError(f"strides {config['strides']}: YOLOv2-tiny has one head, at [32]")
        c = self.width
        self.conv13 = self.conv_bn(c["conv12"], c["conv14"], 3)  # 512 filters, as YOLOv3-tiny's layer 14
        self.conv14 = nn.Conv2d(c["conv14"], self.per_cell[0], 1)

    def darknet_layers(self) -> list[tuple[str, str | None]]:
        return [(f"{n}.0", f"{n}.1") for n in ("conv0", "conv2", "conv4", "conv6", "conv8", "conv10", "conv12",
                                                "conv13")] + [("conv14", None)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._rows(self.conv14(self.conv13(self.backbone(x)[2])), 0)

