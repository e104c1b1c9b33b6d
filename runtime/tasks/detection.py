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

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from zoo.errors import ZooError
from zoo.runtime.boxes import Letterbox, batched_nms, iou, nms, place_labels
from zoo.runtime.images import SaveTargets, collect_images, iter_images, load_image, save_image
from zoo.runtime.results import DetectionResult
from zoo.runtime.tasks import Prepared, Task

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
def letterbox(image: np.ndarray | Image.Image, size: int) -> tuple[np.ndarray, Letterbox]:
    """uint8 (H, W, 3) (or the PIL image itself) -> float32 (3, size, size) in [0, 1], aspect
    kept, grey padding."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8))
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


def label_style(width: int, height: int) -> tuple[ImageFont.ImageFont, int]:
    """The font and line width for drawing on a ``width`` x ``height`` picture: sizes follow the
    picture's area, so labels read the same on a thumbnail and on a 24-megapixel photo (and a
    panorama's labels are not sized by its long side alone)."""
    scale = (width * height) ** 0.5
    try:
        font = ImageFont.load_default(size=max(11, round(scale / 40)))
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        font = ImageFont.load_default()
    return font, max(1, round(scale / 300))


def label_layout(size: tuple[int, int], detections: list[dict[str, Any]], font, width: int) -> list[np.ndarray]:
    """Each detection's label text and rectangle (x1 y1 x2 y2), the most confident placed first,
    none covering another (``boxes.place_labels``)."""
    pen = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    texts = [f"{det['label']} {det['score']:.2f}" for det in detections]
    extents = [pen.textbbox((0, 0), text, font=font) for text in texts]
    sizes = np.array([[r - left + 2 * width, b - top + 2 * width] for left, top, r, b in extents], np.float64)
    order = np.argsort([-float(det["score"]) for det in detections], kind="stable")
    rects = place_labels(np.array([detections[i]["box"] for i in order], np.float64).reshape(-1, 4),
                         sizes[order].reshape(-1, 2), *size)
    placed: list[np.ndarray] = [np.zeros(4)] * len(detections)
    for i, rect in zip(order, rects):
        placed[i] = rect
    return placed


def draw(image: Image.Image, detections: list[dict[str, Any]]) -> Image.Image:
    """The image with a rectangle per detection and its label (class and score) beside it;
    boxes are drawn first and labels over them, so no line crosses a label's text."""
    out = image.convert("RGB")
    pen = ImageDraw.Draw(out)
    font, width = label_style(*out.size)
    for det in detections:
        pen.rectangle(tuple(det["box"]), outline=_colour(det["class"]), width=max(2, width))
    for det, rect in zip(detections, label_layout(out.size, detections, font, width)):
        colour = _colour(det["class"])
        text = f"{det['label']} {det['score']:.2f}"
        left, top, _, _ = pen.textbbox((0, 0), text, font=font)
        pen.rectangle(tuple(float(v) for v in rect), fill=colour)
        ink = (0, 0, 0) if 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2] > 140 else (255, 255, 255)
        pen.text((rect[0] + width - left, rect[1] + width - top), text, fill=ink, font=font)
    return out


# -- mAP ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassCurve:
    """One class's detections over the whole set, in score order, and whether each is a true
    positive at every IoU threshold of ``IOU_THRESHOLDS`` (rows)."""

    scores: np.ndarray  # (D,)
    hits: np.ndarray  # (T, D) bool
    truths: int  # ground-truth boxes of the class

    def precision_recall(self, k: int = 0) -> tuple[np.ndarray, np.ndarray]:
        tp = np.cumsum(self.hits[k])
        precision = tp / np.maximum(np.arange(1, len(tp) + 1), 1)
        return precision, tp / max(self.truths, 1)

    def envelope(self, k: int = 0) -> np.ndarray:
        """The precision envelope at the 101 recall points (COCO's interpolation)."""
        if not len(self.scores):
            return np.zeros(len(RECALL_POINTS))
        precision, recall = self.precision_recall(k)
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        idx = np.searchsorted(recall, RECALL_POINTS, side="left")
        return np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0)

    def ap(self) -> np.ndarray:
        """AP at each IoU threshold: the mean of the envelope."""
        return np.array([self.envelope(k).mean() for k in range(len(IOU_THRESHOLDS))])


def class_curves(detections: list[dict[str, np.ndarray]], truths: list[dict[str, np.ndarray]],
                 num_classes: int) -> dict[int, ClassCurve]:
    """Per class with ground truth: detections in score order are matched greedily, image by
    image, to the unmatched ground-truth box they overlap most (IoU >= threshold)."""
    curves = {}
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
            curves[c] = ClassCurve(np.zeros(0), np.zeros((len(IOU_THRESHOLDS), 0), bool), n_truth)
            continue
        order = np.argsort(-np.concatenate(scores), kind="mergesort")
        curves[c] = ClassCurve(np.concatenate(scores)[order], np.concatenate(matched, 1)[:, order], n_truth)
    return curves


def average_precision(detections: list[dict[str, np.ndarray]], truths: list[dict[str, np.ndarray]],
                      num_classes: int) -> dict[str, float]:
    """COCO-style mAP over the classes that have ground truth (``class_curves``): AP is the mean
    of the precision envelope at 101 recall points. Returns ``map50`` (IoU 0.5) and ``map``
    (mean over IoU 0.5:0.95)."""
    aps = [curve.ap() for curve in class_curves(detections, truths, num_classes).values()]
    if not aps:
        return {"map50": 0.0, "map": 0.0}
    table = np.stack(aps, 1)  # (T, classes present)
    return {"map50": float(table[0].mean()), "map": float(table.mean())}


def draw_pr_curves(curves: dict[int, ClassCurve], labels: Sequence[str], path, map50: float):
    """Precision against recall at IoU 0.5 (the envelope AP averages), one line per class and
    the mean over classes in black, as a PNG at ``path``. Needs matplotlib (the train extra)."""
    from pathlib import Path

    from zoo.store import atomic_path

    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ZooError("--plot draws with matplotlib: pip install 'zoo[train]' (or matplotlib)") from None
    path = Path(path)
    if not path.parent.is_dir():
        raise ZooError(f"{path.parent}: no such folder for the plot")
    figure = Figure(figsize=(7, 5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    named = len(curves) <= 20  # a legend beyond that is unreadable: classes in grey, the mean in black
    for c, curve in curves.items():
        name = labels[c] if c < len(labels) else str(c)
        axes.plot(RECALL_POINTS, curve.envelope(), linewidth=1, color=None if named else "0.75",
                  label=f"{name}: AP {curve.ap()[0]:.3f}" if named else None)
    if curves:
        axes.plot(RECALL_POINTS, np.mean([c.envelope() for c in curves.values()], 0), color="black", linewidth=2.5,
                  label=f"all classes: mAP@0.5 {map50:.3f}")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
             title="precision-recall at IoU 0.5 (precision envelope, as AP averages it)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=7, ncol=2 if len(curves) > 10 else 1)
    figure.tight_layout()
    with atomic_path(path, ".png") as tmp:
        figure.savefig(tmp, format="png")
    return path


def truths_from_targets(targets: np.ndarray) -> list[dict[str, np.ndarray]]:
    """The padded (N, MAX_BOXES, 5) target array -> per image boxes and classes."""
    out = []
    for t in np.asarray(targets):
        valid = t[:, 0] >= 0
        out.append({"boxes": t[valid, 1:5].astype(np.float64), "classes": t[valid, 0].astype(np.int64)})
    return out


# -- graphs with the post-processing inside (``zoo export --format onnx-nms``) ------------------
#: the outputs of such a graph, in order (documented in its metadata's ``postprocess.outputs``)
NMS_OUTPUTS = ("num_detections", "boxes", "scores", "classes")


def baked_postprocess(meta: dict[str, Any], where: str = "artifact") -> dict[str, Any] | None:
    """The thresholds a graph with decoding and NMS inside was exported with, checked (the
    metadata is untrusted), or None for a plain graph whose raw output zoo decodes."""
    block = meta.get("postprocess")
    if block is None:
        return None
    fine = isinstance(block, dict) and block.get("kind") == "yolo-nms" and all(
        isinstance(block.get(k), (int, float)) and not isinstance(block.get(k), bool) and 0 <= block[k] <= 1
        for k in ("conf", "iou")) and isinstance(block.get("agnostic"), bool) and isinstance(block.get("max_det"), int) \
        and not isinstance(block.get("max_det"), bool) and 1 <= block["max_det"] <= 100_000
    if not fine:
        raise ZooError(f"{where}: artifact metadata postprocess must be {{kind: yolo-nms, conf and iou in [0, 1], "
                       "agnostic: true/false, max_det: 1..100000}")
    return block


def read_nms_outputs(outputs: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """A graph's padded ``num_detections``, ``boxes``, ``scores``, ``classes`` -> per image the
    ``boxes`` (network-input pixels), ``scores`` and ``classes`` that ``decode`` gives."""
    out = []
    for n, boxes, scores, classes in zip(*(outputs[name] for name in NMS_OUTPUTS)):
        k = min(max(int(np.asarray(n).reshape(-1)[0]), 0), len(scores))
        real = np.asarray(classes[:k], np.int64) >= 0  # padding (-1), whatever a graph claims it counted
        out.append({"boxes": np.asarray(boxes[:k], np.float64).reshape(-1, 4)[real],
                    "scores": np.asarray(scores[:k], np.float64)[real],
                    "classes": np.asarray(classes[:k], np.int64)[real]})
    return out


def _baked_thresholds(baked: dict[str, Any], model: str, conf: float, iou_threshold: float, agnostic: bool) -> None:
    """Options the graph can honour: a score threshold at or above the baked one (applied to its
    outputs, which equals a higher threshold inside: suppression only removes a box in favour
    of a better one); the baked IoU threshold and kind of suppression only."""
    plain = f"use the plain export (`zoo export {model}`), which zoo decodes with any thresholds"
    if conf < float(baked["conf"]) - 1e-9:
        raise ZooError(f"--conf {conf:g} is below the {float(baked['conf']):g} baked into this graph's NMS; {plain}")
    if abs(iou_threshold - float(baked["iou"])) > 1e-9:
        raise ZooError(f"--iou {iou_threshold:g}: this graph's NMS is baked at IoU {float(baked['iou']):g}; {plain}")
    if agnostic and not baked["agnostic"]:
        raise ZooError(f"--agnostic: this graph suppresses per class; export it with --format onnx-nms-agnostic "
                       f"for one box per object, or {plain}")


# -- the task ----------------------------------------------------------------------------------
#: the score threshold of ``zoo run`` when neither ``--conf`` nor the artifact names one
DEFAULT_CONF = 0.25
#: the thresholds ``ObjectDetection.calibrate`` chooses among
CONF_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def model_conf(meta: dict[str, Any], where: str) -> float:
    """The score threshold an artifact names (``conf``, chosen on its dev split when it was
    trained), else ``DEFAULT_CONF``."""
    conf = meta.get("conf")
    if conf is None:
        return DEFAULT_CONF
    if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0 < conf < 1:
        raise ZooError(f"{where}: artifact metadata conf must be a number between 0 and 1 (got {conf!r})")
    return float(conf)


def best_f1_threshold(detections: list[dict[str, np.ndarray]], truths: list[dict[str, np.ndarray]],
                      num_classes: int, grid: np.ndarray = CONF_GRID) -> dict[str, float]:
    """The threshold of ``grid`` with the highest F1 over all classes together (a detection is
    true when it matches an unmatched box of its class at IoU >= 0.5), with its precision and
    recall. Every detection counts, those of classes with no ground truth too."""
    curves = class_curves(detections, truths, num_classes)
    scores = np.concatenate([c.scores for c in curves.values()] or [np.zeros(0)])
    hits = np.concatenate([c.hits[0] for c in curves.values()] or [np.zeros(0, bool)])
    all_scores = np.concatenate([d["scores"] for d in detections] or [np.zeros(0)])
    n_truth = sum(c.truths for c in curves.values())
    best = {"conf": float(grid[0]), "f1": -1.0, "precision": 0.0, "recall": 0.0}
    for threshold in grid:
        tp, found = float(hits[scores >= threshold].sum()), int((all_scores >= threshold).sum())
        precision, recall = tp / max(found, 1), tp / max(n_truth, 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        if f1 > best["f1"]:
            best = {"conf": float(threshold), "f1": f1, "precision": precision, "recall": recall}
    return best


class ObjectDetection(Task):
    input_kinds = ("path", "pil", "array")
    name = "object-detection"
    result_type = DetectionResult
    primary_metric = "map50"
    #: thresholds for the metric: low confidence so that the whole precision/recall curve counts
    metric_conf, metric_iou = 0.001, 0.6

    def calibrate(self, outputs: np.ndarray, targets: np.ndarray, meta: dict[str, Any]) -> dict[str, Any]:
        """``conf``: the score threshold that ``zoo run`` uses by default, the one of
        ``CONF_GRID`` with the best F1 on the dev split (``best_f1_threshold``; suppression at
        the run's default IoU)."""
        config = meta["config"]
        detections = decode(outputs, config, self.metric_conf, float(self.with_defaults({}).get("iou") or 0.45))
        return {"conf": best_f1_threshold(detections, truths_from_targets(targets), int(config["num_classes"]))["conf"]}

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

    def runtime_outputs(self, artifact, raw, targets, meta, batch_size: int = 64) -> np.ndarray:
        if baked_postprocess(meta, str(artifact.path)) is not None:
            raise ZooError(f"{artifact.path}: zoo val scores the whole precision/recall curve, which the score "
                           f"threshold baked into this graph's NMS cuts; val the plain export (`zoo export "
                           f"{artifact.model}`, then `zoo val {artifact.model}`)")
        return super().runtime_outputs(artifact, raw, targets, meta, batch_size)

    def val_report(self, artifact, raw, targets, outputs, encoded, options) -> dict[str, Any]:
        """Per class with ground truth: AP at IoU 0.5 (``ap50``; their mean is ``map50``) and over
        0.5:0.95 (``ap``), with precision and recall at ``zoo run``'s default threshold (the
        spec's ``--conf`` default, else the model's own, else 0.25; IoU 0.5) and the number of
        true boxes (``support``); with ``options["plot"]`` the precision-recall curves as a PNG."""
        meta = artifact.meta
        config = meta["config"]
        labels = list(meta.get("labels") or [])
        report_conf = self.with_defaults({}).get("conf")
        report_conf = model_conf(meta, str(artifact.path)) if report_conf is None else float(report_conf)
        detections = decode(outputs, config, self.metric_conf, self.metric_iou)
        curves = class_curves(detections, truths_from_targets(encoded), int(config["num_classes"]))
        per_class = {}
        for c, curve in curves.items():
            ap = curve.ap()
            confident = curve.scores >= report_conf
            tp = int(curve.hits[0][confident].sum())
            per_class[labels[c] if c < len(labels) else str(c)] = {
                "ap50": float(ap[0]), "ap": float(ap.mean()),
                "precision": tp / int(confident.sum()) if confident.any() else 0.0,
                "recall": tp / curve.truths, "support": curve.truths}
        report: dict[str, Any] = {"per_class": per_class}
        if options.get("plot"):
            map50 = float(np.mean([row["ap50"] for row in per_class.values()])) if per_class else 0.0
            report["plot"] = str(draw_pr_curves(curves, labels, options["plot"], map50))
        return report

    def relabel(self, targets: Any, index: np.ndarray) -> Any:
        """Each image's ``(k, 5)`` rows ``class, x1, y1, x2, y2`` with the classes renumbered."""
        out = []
        for boxes in targets:
            boxes = np.array(boxes, np.float64).reshape(-1, 5)
            boxes[:, 0] = index[boxes[:, 0].astype(np.int64)]
            out.append(boxes)
        return out

    def begin(self, artifact, inputs, options: dict[str, Any]) -> dict[str, Any]:
        """Thresholds checked (against those baked into an onnx-nms graph too) and where drawn
        images go, decided before any image is read."""
        options = super().begin(artifact, inputs, options)
        meta = artifact.meta
        baked = baked_postprocess(meta, str(artifact.path))
        if options["conf"] is None:  # the threshold baked into the graph, else the model's own
            options["conf"] = float(baked["conf"]) if baked is not None else model_conf(meta, str(artifact.path))
        conf, iou_threshold = float(options["conf"]), float(options["iou"])
        if not 0 <= conf <= 1 or not 0 <= iou_threshold <= 1:
            raise ZooError(f"--conf and --iou must lie in [0, 1] (got {conf}, {iou_threshold})")
        saving = options["save"] or options["save_dir"]
        targets = SaveTargets(collect_images(inputs) if saving and inputs else [], options["save"],
                              options["save_dir"])
        agnostic = bool(options["agnostic"])
        if baked is not None:
            _baked_thresholds(baked, artifact.model, conf, iou_threshold, agnostic)
            outputs = [o.name for o in artifact.session().get_outputs()]
            if outputs != list(NMS_OUTPUTS):
                raise ZooError(f"{artifact.path}: its metadata says decoding and NMS are inside, but the graph's "
                               f"outputs are {outputs}, not {list(NMS_OUTPUTS)}")
        return {**options, "conf": conf, "iou": iou_threshold, "agnostic": agnostic, "baked": baked,
                "save_targets": targets}

    def expand(self, inputs):
        return iter_images(inputs)

    def preprocess(self, artifact, item, options: dict[str, Any]) -> Prepared:
        """The letterboxed image; only network-size arrays outlive this call, so a batch never
        holds full-size images."""
        img = load_image(item, "RGB")
        array, box = letterbox(img, int(artifact.meta["config"]["input_size"]))
        return Prepared(item, array, (img.size, box))

    def predict(self, artifact, batch: np.ndarray, options: dict[str, Any]) -> list[dict[str, np.ndarray]]:
        session = artifact.session()
        feed = {session.get_inputs()[0].name: batch}
        conf = options["conf"]
        if options["baked"] is None:
            return decode(session.run(None, feed)[0], artifact.meta["config"], conf, options["iou"],
                          agnostic=options["agnostic"])
        found = read_nms_outputs(dict(zip(NMS_OUTPUTS, session.run(list(NMS_OUTPUTS), feed))))
        return [{key: value[f["scores"] >= conf] for key, value in f.items()} for f in found]

    def postprocess(self, artifact, prepared: Prepared, output, options: dict[str, Any]) -> dict[str, Any]:
        labels = artifact.meta.get("labels") or []
        (width, height), box = prepared.info
        pixels = box.to_image(output["boxes"])
        inside = (pixels[:, 2] > pixels[:, 0]) & (pixels[:, 3] > pixels[:, 1])  # not all in the padding
        detections = [{"class": int(c), "label": labels[c] if c < len(labels) else str(c),
                       "score": float(s), "box": [float(v) for v in b]}
                      for b, s, c in zip(pixels[inside], output["scores"][inside], output["classes"][inside])]
        result = {"input": str(prepared.input), "width": width, "height": height, "detections": detections}
        target = options["save_targets"].target(prepared.input)
        if target is not None:
            save_image(draw(load_image(prepared.input, "RGB"), detections), target)
            result["saved"] = str(target)
        return result

    def format(self, result: dict[str, Any]) -> str:
        lines = [f"{result['input']}: {len(result['detections'])} detection(s)"
                 + (f", drawn in {result['saved']}" if "saved" in result else "")]
        for det in result["detections"]:
            x1, y1, x2, y2 = det["box"]
            lines.append(f"  {det['label']:<12} {det['score']:.2f}  box {x1:.0f} {y1:.0f} {x2:.0f} {y2:.0f}")
        return "\n".join(lines)

