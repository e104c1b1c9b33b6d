"""Object detection as the seed describes YOLO: the network looks once at a letterboxed image and
predicts, for every grid cell and anchor box, ``(t_x, t_y, t_w, t_h, p_c, c_1..c_C)``; this module
turns those raw numbers into boxes (sigmoid offsets within the cell, anchor sizes scaled by
``exp``), keeps the confident ones, runs per-class non-max suppression and maps the boxes back
to the original image. The same numpy code scores training (mAP), checks export parity inputs
and answers ``zoo run``.

The network's output is one array ``(N, P, 5 + C)``: the prediction heads one after another (in
``config["strides"]`` order), each laid out as row, column, anchor. The layout is fixed by the
model config carried in every artifact: ``input_size``, ``strides`` and ``anchors`` (width and
height as fractions of the input side) and ``class_activation`` (``softmax``: one class per
box, as YOLOv2; ``sigmoid``: independent classes, as YOLOv3)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from zoo.errors import ZooError
from zoo.runtime.boxes import Letterbox, batched_nms, iou, nms
from zoo.runtime.images import SaveTargets, collect_images, load_image, save_image, to_array
from zoo.runtime.results import DetectionResult
from zoo.runtime.tasks import Task

#: boxes per image in the padded target array (COCO evaluates at most 100 detections per image)
MAX_BOXES = 100
PAD_VALUE = 0.5  # Darknet's letterbox grey
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


# -- layout ------------------------------------------------------------------------------------
def head_layout(config: dict[str, Any]) -> list[tuple[int, np.ndarray]]:
    """``(stride, anchors)`` per head in output order, anchors as (B, 2) fractions of the input.

    Anchors are sorted by area and dealt out in equal shares: the smallest go to the finest grid
    (YOLOv3's rule), so a k-means result can be given in any order."""
    strides = [int(s) for s in config["strides"]]
    anchors = np.asarray(config["anchors"], np.float64).reshape(-1, 2)
    if len(anchors) % len(strides):
        raise ZooError(f"{len(anchors)} anchors cannot be shared by {len(strides)} heads")
    per_head = len(anchors) // len(strides)
    anchors = anchors[np.argsort(anchors[:, 0] * anchors[:, 1], kind="stable")]
    by_stride = {s: anchors[i * per_head: (i + 1) * per_head] for i, s in enumerate(sorted(strides))}
    return [(s, by_stride[s]) for s in strides]


def grid_cells(config: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every prediction row: its cell (x, y), stride and anchor size in input pixels."""
    size = int(config["input_size"])
    cells, strides, anchors = [], [], []
    for stride, head_anchors in head_layout(config):
        n = size // stride
        gy, gx, b = np.meshgrid(np.arange(n), np.arange(n), np.arange(len(head_anchors)), indexing="ij")
        cells.append(np.stack([gx.ravel(), gy.ravel()], 1))
        strides.append(np.full(gx.size, stride))
        anchors.append(head_anchors[b.ravel()] * size)
    return np.concatenate(cells).astype(np.float64), np.concatenate(strides).astype(np.float64), np.concatenate(anchors)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


def decode(outputs: np.ndarray, config: dict[str, Any], conf: float, iou_threshold: float,
           max_det: int = 100, agnostic: bool = False) -> list[dict[str, np.ndarray]]:
    """Raw network output (N, P, 5 + C) -> per image ``boxes`` (input pixels, x1 y1 x2 y2),
    ``scores`` (p_c times the class probability) and ``classes``, after per-class NMS (or, with
    ``agnostic``, NMS across classes: one object, one box, whatever class each box names)."""
    outputs = np.asarray(outputs, np.float64)
    cells, strides, anchors = grid_cells(config)
    if outputs.ndim != 3 or outputs.shape[1] != len(cells):
        raise ZooError(f"detector output {outputs.shape} does not match the grid layout of {len(cells)} predictions")
    centre = (sigmoid(outputs[..., 0:2]) + cells) * strides[:, None]
    size = anchors * np.exp(np.clip(outputs[..., 2:4], -10, 10))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], -1)
    if config.get("class_activation", "sigmoid") == "softmax":  # one class per box (YOLOv2)
        logits = outputs[..., 5:] - outputs[..., 5:].max(-1, keepdims=True)
        class_prob = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    else:  # independent classes (YOLOv3)
        class_prob = sigmoid(outputs[..., 5:])
    classes = class_prob.argmax(-1)
    scores = sigmoid(outputs[..., 4]) * np.take_along_axis(class_prob, classes[..., None], -1)[..., 0]
    results = []
    for b, s, c in zip(boxes, scores, classes):
        keep = np.flatnonzero(s >= conf)
        kept = nms(b[keep], s[keep], iou_threshold) if agnostic else batched_nms(b[keep], s[keep], c[keep],
                                                                                  iou_threshold)
        keep = keep[kept][:max_det]
        results.append({"boxes": b[keep], "scores": s[keep], "classes": c[keep]})
    return results


# -- images ------------------------------------------------------------------------------------
def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """uint8 (H, W, 3) -> float32 (3, size, size) in [0, 1], aspect kept, grey padding."""
    img = Image.fromarray(np.asarray(image, np.uint8))
    if img.mode != "RGB":
        img = img.convert("RGB")
    box = Letterbox.fit(img.width, img.height, size)
    canvas = np.full((size, size, 3), PAD_VALUE, np.float32)
    w, h = box.resized
    resized = np.asarray(img.resize((w, h), Image.Resampling.BILINEAR), np.float32) / 255.0
    canvas[box.pad_y: box.pad_y + h, box.pad_x: box.pad_x + w] = resized
    return canvas.transpose(2, 0, 1).copy(), box


def _colour(index: int) -> tuple[int, int, int]:
    hue = (index * 0.618033988749895) % 1.0
    r, g, b = Image.new("HSV", (1, 1), (int(hue * 255), 200, 255)).convert("RGB").getpixel((0, 0))
    return int(r), int(g), int(b)


def draw(image: Image.Image, detections: list[dict[str, Any]]) -> Image.Image:
    """The image with a labelled rectangle per detection."""
    out = image.convert("RGB")
    pen = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 300))
    try:
        font = ImageFont.load_default(size=max(12, round(max(out.size) / 45)))
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        font = ImageFont.load_default()
    for det in detections:
        x1, y1, x2, y2 = det["box"]
        colour = _colour(det["class"])
        pen.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        text = f"{det['label']} {det['score']:.2f}"
        left, top, right, bottom = pen.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
        ty = y1 - th - 2 * width if y1 - th - 2 * width >= 0 else y1
        pen.rectangle((x1, ty, x1 + tw + 2 * width, ty + th + 2 * width), fill=colour)
        pen.text((x1 + width - left, ty + width - top), text, fill=(0, 0, 0), font=font)
    return out


# -- mAP ---------------------------------------------------------------------------------------
def average_precision(detections: list[dict[str, np.ndarray]], truths: list[dict[str, np.ndarray]],
                      num_classes: int) -> dict[str, float]:
    """COCO-style mAP: per class and IoU threshold, detections in score order are matched
    greedily to the unmatched ground-truth box they overlap most (IoU >= threshold); AP is the
    mean of the precision envelope at 101 recall points; classes without ground truth are left
    out. Returns ``map50`` (IoU 0.5) and ``map`` (mean over IoU 0.5:0.95)."""
    ap = np.full((len(IOU_THRESHOLDS), num_classes), np.nan)
    for c in range(num_classes):
        n_truth = sum(int((t["classes"] == c).sum()) for t in truths)
        if n_truth == 0:
            continue
        scores, matched = [], []
        for det, truth in zip(detections, truths):
            d = det["classes"] == c
            if not d.any():
                continue
            order = np.argsort(-det["scores"][d], kind="stable")
            d_boxes, d_scores = det["boxes"][d][order], det["scores"][d][order]
            t_boxes = truth["boxes"][truth["classes"] == c]
            overlaps = iou(d_boxes, t_boxes)
            hits = np.zeros((len(IOU_THRESHOLDS), len(d_boxes)), bool)
            for k, threshold in enumerate(IOU_THRESHOLDS):
                used = np.zeros(len(t_boxes), bool)
                for i in range(len(d_boxes)):
                    candidates = np.where(used, -1.0, overlaps[i])
                    if candidates.size and candidates.max() >= threshold:
                        j = int(candidates.argmax())
                        used[j] = True
                        hits[k, i] = True
            scores.append(d_scores)
            matched.append(hits)
        if not scores:
            ap[:, c] = 0.0
            continue
        order = np.argsort(-np.concatenate(scores), kind="mergesort")
        hits = np.concatenate(matched, 1)[:, order]
        tp = np.cumsum(hits, 1)
        fp = np.cumsum(~hits, 1)
        recall = tp / n_truth
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        for k in range(len(IOU_THRESHOLDS)):
            envelope = np.maximum.accumulate(precision[k][::-1])[::-1]
            idx = np.searchsorted(recall[k], RECALL_POINTS, side="left")
            ap[k, c] = np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0).mean()
    present = ~np.isnan(ap[0])
    if not present.any():
        return {"map50": 0.0, "map": 0.0}
    return {"map50": float(ap[0, present].mean()), "map": float(ap[:, present].mean())}


def truths_from_targets(targets: np.ndarray) -> list[dict[str, np.ndarray]]:
    """The padded (N, MAX_BOXES, 5) target array -> per image boxes and classes."""
    out = []
    for t in np.asarray(targets):
        valid = t[:, 0] >= 0
        out.append({"boxes": t[valid, 1:5].astype(np.float64), "classes": t[valid, 0].astype(np.int64)})
    return out


# -- the task ----------------------------------------------------------------------------------
class ObjectDetection(Task):
    name = "object-detection"
    result_type = DetectionResult
    primary_metric = "map50"
    #: thresholds for the metric: low confidence so that the whole precision/recall curve counts
    metric_conf, metric_iou = 0.001, 0.6

    def encode_inputs(self, raw: Sequence[np.ndarray], meta: dict[str, Any]) -> np.ndarray:
        size = int(meta["config"]["input_size"])
        return np.stack([letterbox(np.asarray(x), size)[0] for x in raw]).astype(np.float32)

    def encode_targets(self, raw: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                       meta: dict[str, Any]) -> np.ndarray:
        """Per image ``(k, 5)`` rows ``class, x1, y1, x2, y2`` in image pixels -> one padded
        ``(N, MAX_BOXES, 5)`` array in network-input pixels (rows of -1 are padding)."""
        size = int(meta["config"]["input_size"])
        out = np.full((len(targets), MAX_BOXES, 5), -1.0, np.float32)
        for i, (image, boxes) in enumerate(zip(raw, targets)):
            boxes = np.asarray(boxes, np.float64).reshape(-1, 5)[:MAX_BOXES]
            h, w = np.asarray(image).shape[:2]
            out[i, :len(boxes), 0] = boxes[:, 0]
            out[i, :len(boxes), 1:] = Letterbox.fit(w, h, size).to_input(boxes[:, 1:])
        return out

    def metric(self, outputs: np.ndarray, targets: np.ndarray, meta: dict[str, Any]) -> dict[str, float]:
        config = meta["config"]
        detections = decode(outputs, config, self.metric_conf, self.metric_iou)
        return average_precision(detections, truths_from_targets(targets), int(config["num_classes"]))

    def relabel(self, targets: Any, index: np.ndarray) -> Any:
        """Each image's ``(k, 5)`` rows ``class, x1, y1, x2, y2`` with the classes renumbered."""
        out = []
        for boxes in targets:
            boxes = np.array(boxes, np.float64).reshape(-1, 5)
            boxes[:, 0] = index[boxes[:, 0].astype(np.int64)]
            out.append(boxes)
        return out

    def run(self, artifact, inputs: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
        meta = artifact.meta
        config = meta["config"]
        labels = meta.get("labels") or []
        size = int(config["input_size"])
        conf, iou_threshold = float(options.get("conf", 0.25)), float(options.get("iou", 0.45))
        if not 0 <= conf <= 1 or not 0 <= iou_threshold <= 1:
            raise ZooError(f"--conf and --iou must lie in [0, 1] (got {conf}, {iou_threshold})")
        paths = collect_images(inputs)
        targets = SaveTargets(paths, options.get("save"), options.get("save_dir"))
        session = artifact.session()
        input_name = session.get_inputs()[0].name
        batch = max(1, int(options.get("batch_size") or 8))
        results = []
        for start in range(0, len(paths), batch):
            chunk = paths[start: start + batch]
            # one full-size image in memory at a time: a batch holds only network-size arrays
            encoded, sizes = [], []
            for p in chunk:
                img = load_image(p, "RGB")
                sizes.append(img.size)
                encoded.append(letterbox(to_array(img), size))
                del img
            raw = session.run(None, {input_name: np.stack([e[0] for e in encoded])})[0]
            for path, (width, height), (_, box), found in zip(chunk, sizes, encoded,
                                                             decode(raw, config, conf, iou_threshold,
                                                                    agnostic=bool(options.get("agnostic")))):
                pixels = box.to_image(found["boxes"])
                inside = (pixels[:, 2] > pixels[:, 0]) & (pixels[:, 3] > pixels[:, 1])  # not all in the padding
                detections = [{"class": int(c), "label": labels[c] if c < len(labels) else str(c),
                               "score": round(float(s), 4), "box": [round(float(v), 1) for v in b]}
                              for b, s, c in zip(pixels[inside], found["scores"][inside], found["classes"][inside])]
                result = {"input": str(path), "width": width, "height": height, "detections": detections}
                target = targets.target(path)
                if target is not None:
                    save_image(draw(load_image(path, "RGB"), detections), target)
                    result["saved"] = str(target)
                results.append(result)
        return results

    def format(self, result: dict[str, Any]) -> str:
        lines = [f"{result['input']}: {len(result['detections'])} detection(s)"
                 + (f", drawn in {result['saved']}" if "saved" in result else "")]
        for det in result["detections"]:
            x1, y1, x2, y2 = det["box"]
            lines.append(f"  {det['label']:<12} {det['score']:.2f}  box {x1:.0f} {y1:.0f} {x2:.0f} {y2:.0f}")
        return "\n".join(lines)

