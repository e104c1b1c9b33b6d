"""YOLO (Redmon et al., 2016; YOLOv2 2017; YOLOv3 2018): the family's card, torch-free.

The image is cut into an S x S grid; each cell predicts B boxes, one per anchor box. The networks
(YOLOv3-tiny's and YOLOv2-tiny's layer tables), their loss and their export live in
``zoo.plugins.yolo.model``; decoding, score threshold and per-class non-max suppression live once,
in numpy, in ``zoo.runtime.tasks.detection``; Darknet ``.weights`` files are read by
``zoo.plugins.darknet``. This module holds what ``zoo list`` needs: the specs, the anchors, the
class names, and the training augmentation (named by ``train_defaults``; it imports torch when
called).

``yolov3-tiny`` (the family default: ``zoo run yolo``) is the published network at full width
(COCO's 80 classes, 416 x 416); Darknet's own COCO weights ship with zoo, converted from
``yolov3-tiny.weights`` (``weights/README.md``), and the port equals OpenCV's Darknet reader
(``tests/test_coco_yolo.py``). Batch norm uses Darknet's epsilon, 1e-6 (config ``bn_eps``).
``yolo-nano`` is this table at half width with a third head, on 256 x 256 inputs, trained on
the built-in digits-on-photos set (``zoo run yolo-nano``); ``yolov2-tiny``
(``cfg/yolov2-tiny.cfg``) has one head at stride 32 with five anchors and softmax classes, for
``yolov2-tiny.weights``.
"""

from __future__ import annotations

from importlib import resources

from zoo.hookspecs import hookimpl
from zoo.specs import ModelSpec, TaskOption, TaskSpec

#: YOLOv3-tiny's COCO anchors (pixels at 416), from cfg/yolov3-tiny.cfg
COCO_ANCHORS = [[10, 14], [23, 27], [37, 58], [81, 82], [135, 169], [344, 319]]
#: YOLOv2-tiny's COCO anchors (grid cells of a 13 x 13 grid), from cfg/yolov2-tiny.cfg
COCO_V2_ANCHORS = [[0.57273, 0.677385], [1.87446, 2.06253], [3.33843, 5.47434], [7.88282, 3.52778],
                   [9.77052, 9.16828]]
#: Darknet's batch-norm epsilon (``normalize_cpu``: (x - mean) / (sqrt(var) + .000001f)); OpenCV's
#: Darknet reader uses the same 1e-6. PyTorch's default 1e-5 would shift the COCO networks' outputs
#: by up to 1e-3.
DARKNET_BN_EPS = 1e-6


def coco_names() -> tuple[str, ...]:
    text = resources.files("zoo.plugins").joinpath("coco.names").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


# -- augmentation ------------------------------------------------------------------------------
def augment(x, y, generator=None, *, flip: bool = False, scale: tuple[float, float] = (0.75, 1.25),
            shift: float = 0.15, colour: float = 0.15):
    """Random scale and translation (the scale/crop of YOLOv2's jitter: zooming in crops, zooming
    out pads with grey), colour jitter and, with ``flip``, horizontal mirroring, with the boxes
    in ``y`` (N, M, 5 padded) moved alike; a box pushed mostly out of the picture is dropped.
    Mirroring is off by default: a mirrored digit is not a digit."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    y = y.clone()
    valid = y[..., 0] >= 0
    boxes = y[..., 1:5]
    if flip:
        mirror = (torch.rand(n, generator=generator) < 0.5)[:, None] & valid
        flipped = torch.stack([w - boxes[..., 2], boxes[..., 1], w - boxes[..., 0], boxes[..., 3]], -1)
        boxes = torch.where(mirror[..., None], flipped, boxes)
        x = torch.where(mirror[:, :1, None, None], x.flip(3), x)
    s = scale[0] + torch.rand(n, generator=generator) * (scale[1] - scale[0])
    t = (torch.rand(n, 2, generator=generator) * 2 - 1) * shift  # as a fraction of half the side
    zeros = torch.zeros(n)
    theta = torch.stack([torch.stack([1 / s, zeros, -t[:, 0] / s], 1), torch.stack([zeros, 1 / s, -t[:, 1] / s], 1)], 1)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    x = F.grid_sample(x - 0.5, grid, align_corners=False, padding_mode="zeros") + 0.5
    half = torch.tensor([w / 2, h / 2, w / 2, h / 2])
    moved = (boxes - half) * s[:, None, None] + half + (t.repeat(1, 2) * half)[:, None, :]
    clipped = torch.stack([moved[..., 0].clamp(0, w), moved[..., 1].clamp(0, h), moved[..., 2].clamp(0, w),
                           moved[..., 3].clamp(0, h)], -1)
    area = lambda b: (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)  # noqa: E731
    keep = valid & (area(clipped) >= 0.6 * area(moved)) & ((clipped[..., 2:] - clipped[..., :2]) >= 2).all(-1)
    y[..., 1:5] = clipped
    y[~keep] = -1
    gain = 1 + (torch.rand(n, c, 1, 1, generator=generator) * 2 - 1) * colour
    bias = (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * colour / 2
    return ((x - 0.5) * gain + 0.5 + bias).clamp(0, 1), y


def augment_flip(x, y, generator=None):
    """``augment`` with horizontal mirroring, for objects that look alike mirrored."""
    return augment(x, y, generator, flip=True)


# -- registration ------------------------------------------------------------------------------
PAPER = ("Redmon, Divvala, Girshick and Farhadi, You Only Look Once, CVPR 2016; Redmon and Farhadi, "
         "YOLO9000, CVPR 2017; YOLOv3: An Incremental Improvement, 2018")
PREPROCESSING = {"mode": "RGB", "letterbox": True, "pad": 0.5, "scale": "pixel/255"}


def _darknet_coco(name: str, summary: str, builder: str, params: int, config: dict,
                  family_default: bool = False) -> ModelSpec:
    """A published Darknet network at full width: 416 x 416, COCO's 80 classes, weights imported
    from its ``.weights`` file."""
    return ModelSpec(
        name=name,
        family="yolo",
        task="object-detection",
        summary=summary,
        paper=PAPER,
        builder=f"zoo.plugins.yolo.model:{builder}",
        params=params,
        default_config={"input_size": 416, "num_classes": 80, "width": 1.0, "bn_eps": DARKNET_BN_EPS, **config},
        dataset="coco-json",
        input_shape=(3, 416, 416),
        preprocessing=PREPROCESSING,
        labels=coco_names(),
        train_defaults={"epochs": 100, "batch_size": 16, "optimizer": "adam", "lr": 1e-3,
                        "augment": "zoo.plugins.yolo:augment_flip", "clip_grad": 10.0, "bench_batches": (1,)},
        importers={".weights": "zoo.plugins.darknet:read_darknet"},
        family_default=family_default,
    )


@hookimpl
def zoo_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="yolo-nano",
            family="yolo",
            task="object-detection",
            summary="YOLOv3-tiny's layer table at half width with a third head at stride 8, 256x256 input, "
                    "6 k-means anchors on 3 grids (8x8, 16x16, 32x32); trained on handwritten digits placed on photographs",
            paper=PAPER,
            builder="zoo.plugins.yolo.model:YoloV3Tiny",
            params=2_238_818,
            default_config={"input_size": 256, "num_classes": 10, "width": 0.5, "strides": [32, 16, 8],
                            "class_activation": "softmax", "bn_eps": 1e-5,
                            "anchors": [[round(a / 416, 5) for a in wh] for wh in COCO_ANCHORS]},
            dataset="digits-on-photos-v4",
            input_shape=(3, 256, 256),
            preprocessing=PREPROCESSING,
            labels=tuple(str(i) for i in range(10)),
            train_defaults={"epochs": 45, "batch_size": 16, "optimizer": "adam", "lr": 2e-3, "lr_decay": 0.95,
                            "patience": 10, "augment": "zoo.plugins.yolo:augment", "clip_grad": 10.0,
                            "bench_batches": (1,)},
            importers={".weights": "zoo.plugins.darknet:read_darknet"},
        ),
        _darknet_coco("yolov3-tiny", "YOLOv3-tiny (Darknet), 416x416, 80 COCO classes; Darknet's published COCO "
                      "weights ship with zoo", "YoloV3Tiny", 8_852_366,
                      {"strides": [32, 16], "class_activation": "sigmoid",
                       "anchors": [[a / 416 for a in wh] for wh in COCO_ANCHORS]}, family_default=True),
        _darknet_coco("yolov2-tiny", "YOLOv2-tiny (Darknet), 416x416, one 13x13 grid with 5 anchors, 80 COCO classes; "
                      "import the published yolov2-tiny.weights with `zoo weights import`",
                      "YoloV2Tiny", 11_232_057,
                      {"strides": [32], "class_activation": "softmax",
                       "anchors": [[round(a / 13, 5) for a in wh] for wh in COCO_V2_ANCHORS]}),
    ]


@hookimpl
def zoo_tasks() -> list[TaskSpec]:
    return [
        TaskSpec(
            name="object-detection",
            summary="boxes with labels and scores: YOLO grid decoding, score threshold, per-class NMS "
                    "(or read from a graph with NMS inside, `zoo export --format onnx-nms`)",
            impl="zoo.runtime.tasks.detection:ObjectDetection",
            options=(
                TaskOption("conf", "float", None, "keep detections scoring at least this (p_c x class probability) "
                           "[default: the model's own, chosen on its dev split when it was trained, else 0.25]; "
                           "an onnx-nms graph takes its baked value or higher"),
                TaskOption("iou", "float", 0.45, "non-max suppression IoU threshold (an onnx-nms graph: its baked one)"),
                TaskOption("agnostic", "flag", False, "non-max suppression across classes: one box per object"),
                TaskOption("save", "path", None, "draw the boxes on the image and save it here (one input)"),
                TaskOption("save-dir", "path", None, "draw the boxes and save one image per input in this folder"),
                TaskOption("batch-size", "int", 8, "images per onnxruntime call"),
            ),
        ),
    ]
