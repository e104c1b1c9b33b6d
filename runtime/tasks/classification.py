"""Image classification: preprocessing declared by the model and carried in the artifact.

The preprocessing dict (all keys optional except ``size``)::

    mode      "RGB" or "L"
    digit     {"canvas": 32, "box": 20}: MNIST-style normalisation (dark ink on light paper is
              inverted, the ink is cropped, fitted into box x box and centred by mass)
    resize    shorter side resized to this before cropping (ImageNet: 256)
    size      [H, W] of the network input (centre crop after ``resize``, else a plain resize)
    mean, std per-channel normalisation applied to pixel/255
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from PIL import Image

from zoo.errors import ZooError
from zoo.runtime.images import iter_images, load_image
from zoo.runtime.results import ClassificationResult
from zoo.runtime.tasks import Agreement, Prepared, Task, top1_agreement


def _digit(gray: np.ndarray, canvas: int, box: int) -> np.ndarray:
    a = gray.astype(np.float32)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    background = float(np.median(border))
    if background > 127:  # dark ink on light paper: MNIST digits are light on dark
        a = 255.0 - a
        background = 255.0 - background
    a = np.clip(a - background, 0, None)
    peak = float(a.max())
    out = np.zeros((canvas, canvas), np.float32)
    if peak <= 0:
        return out.astype(np.uint8)
    a = a * (255.0 / peak)
    ys, xs = np.nonzero(a > 0.2 * 255)
    if len(ys) == 0:
        return out.astype(np.uint8)
    crop = a[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    h, w = crop.shape
    scale = box / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(Image.fromarray(crop.astype(np.uint8)).resize((nw, nh), Image.Resampling.LANCZOS), np.float32)
    total = resized.sum()
    cy, cx = ((np.arange(nh) @ resized.sum(1)) / total, (np.arange(nw) @ resized.sum(0)) / total) if total else (nh / 2, nw / 2)
    top = int(np.clip(round(canvas / 2 - cy), 0, canvas - nh))
    left = int(np.clip(round(canvas / 2 - cx), 0, canvas - nw))
    out[top: top + nh, left: left + nw] = resized
    return np.clip(out, 0, 255).astype(np.uint8)


def preprocess(image: np.ndarray | Image.Image, pre: dict[str, Any]) -> np.ndarray:
    """One uint8 image (H, W) or (H, W, C), or the PIL image itself -> float32 (C, H, W),
    exactly as the model expects."""
    mode = pre.get("mode", "RGB")
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    if img.mode != mode:
        img = img.convert(mode)
    height, width = pre["size"]
    if "digit" in pre:
        arr = _digit(np.asarray(img), pre["digit"]["canvas"], pre["digit"]["box"])
        img = Image.fromarray(arr)
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.BILINEAR)
    elif "resize" in pre:
        short = pre["resize"]
        scale = short / min(img.size)
        img = img.resize((max(width, round(img.width * scale)), max(height, round(img.height * scale))),
                         Image.Resampling.BILINEAR)
        left, top = (img.width - width) // 2, (img.height - height) // 2
        img = img.crop((left, top, left + width, top + height))
    elif img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    arr = np.asarray(img, np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None]
    mean = np.asarray(pre.get("mean", [0.0] * arr.shape[2]), np.float32)
    std = np.asarray(pre.get("std", [1.0] * arr.shape[2]), np.float32)
    return ((arr - mean) / std).transpose(2, 0, 1).copy()


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top_k(probs: np.ndarray, k: int, labels: Sequence[str]) -> list[list[dict[str, Any]]]:
    k = max(1, min(k, probs.shape[-1]))
    order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    return [
        [{"index": int(i), "label": labels[i] if i < len(labels) else str(i), "prob": float(p[i])} for i in row]
        for p, row in zip(probs, order)
    ]


class ImageClassification(Task):
    input_kinds = ("path", "pil", "array")
    name = "image-classification"
    result_type = ClassificationResult
    primary_metric = "accuracy"

    def encode_inputs(self, raw: Sequence[np.ndarray], meta: dict[str, Any]) -> np.ndarray:
        pre = meta["preprocessing"]
        return np.stack([preprocess(np.asarray(x), pre) for x in raw]).astype(np.float32)

    def metric(self, outputs: np.ndarray, targets: np.ndarray, meta: dict[str, Any]) -> dict[str, float]:
        predictions = outputs.argmax(axis=-1)
        return {"accuracy": float((predictions == targets).mean()) if len(targets) else 0.0}

    def compare_precision(self, reference, candidate, meta: dict[str, Any]) -> Agreement:
        return top1_agreement(reference[0], candidate[0])

    def val_report(self, artifact, raw, targets, outputs, encoded, options) -> dict[str, Any]:
        """Top-5 accuracy, per-class precision and recall, and the confusion matrix (rows: true
        class, columns: predicted), drawn as a PNG when ``options["plot"]`` names one."""
        labels = list(artifact.meta.get("labels") or [str(i) for i in range(outputs.shape[-1])])
        n = outputs.shape[-1]
        top5 = np.argsort(-outputs, axis=-1, kind="stable")[:, :5]
        predicted = outputs.argmax(-1)
        confusion = np.zeros((n, n), np.int64)
        np.add.at(confusion, (encoded, predicted), 1)
        per_class = {}
        for c in np.flatnonzero(confusion.sum(0) + confusion.sum(1)):
            hits = confusion[c, c]
            per_class[labels[c] if c < len(labels) else str(c)] = {
                "precision": float(hits / confusion[:, c].sum()) if confusion[:, c].sum() else 0.0,
                "recall": float(hits / confusion[c].sum()) if confusion[c].sum() else 0.0,
                "support": int(confusion[c].sum())}
        report: dict[str, Any] = {"top5_accuracy": float((top5 == encoded[:, None]).any(1).mean()),
                                  "per_class": per_class}
        if options.get("plot"):
            report["plot"] = str(draw_confusion(confusion, labels, options["plot"]))
        return report

    def relabel(self, targets: Any, index: np.ndarray) -> Any:
        return index[np.asarray(targets)]

    def expand(self, inputs):
        return iter_images(inputs)

    def preprocess(self, artifact, item, options: dict[str, Any]) -> Prepared:
        pre = artifact.meta["preprocessing"]
        return Prepared(item, preprocess(load_image(item, pre.get("mode", "RGB")), pre))

    def predict(self, artifact, batch: np.ndarray, options: dict[str, Any]) -> list[list[dict[str, Any]]]:
        session = artifact.session()
        logits = session.run(None, {session.get_inputs()[0].name: batch})[0]
        return top_k(softmax(logits), int(options["top_k"]), artifact.meta.get("labels", []))

    def postprocess(self, artifact, prepared: Prepared, output, options: dict[str, Any]) -> dict[str, Any]:
        return {"input": str(prepared.input), "top": output}

    def format(self, result: dict[str, Any]) -> str:
        best, *rest = result["top"]
        others = "  ".join(f"{t['label']} {t['prob']:.1%}" for t in rest)
        return f"{result['input']}: {best['label']} ({best['prob']:.1%})" + (f"   [{others}]" if others else "")


def draw_confusion(confusion: np.ndarray, labels: Sequence[str], path, cell: int = 28):
    """The confusion matrix as a heatmap (dark = many), counts written in the cells."""
    from pathlib import Path

    from PIL import ImageDraw

    from zoo.store import atomic_path

    used = np.flatnonzero(confusion.sum(0) + confusion.sum(1))[:60]  # a readable picture: at most 60 classes
    matrix = confusion[np.ix_(used, used)]
    names = [str(labels[i]) if i < len(labels) else str(i) for i in used]
    margin = 8 + 7 * max(len(n) for n in names)
    size = margin + cell * len(used)
    img = Image.new("RGB", (size, size), "white")
    pen = ImageDraw.Draw(img)
    rows = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    for i in range(len(used)):
        pen.text((4, margin + i * cell + cell // 3), names[i], fill="black")
        pen.text((margin + i * cell + 2, 4), names[i][:4], fill="black")
        for j in range(len(used)):
            shade = int(255 * (1 - rows[i, j]))
            x, y = margin + j * cell, margin + i * cell
            pen.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(shade, shade, 255))
            if matrix[i, j]:
                pen.text((x + 3, y + cell // 3), str(int(matrix[i, j])), fill="black" if shade > 110 else "white")
    path = Path(path)
    if not path.parent.is_dir():
        raise ZooError(f"{path.parent}: no such folder for the plot")
    with atomic_path(path, ".png") as tmp:
        img.save(tmp, format="PNG")
    return path
