"""Box geometry in numpy, shared by training evaluation and ``zoo run``: intersection over union,
non-max suppression (the seed's recipe: keep the most confident box, drop the boxes that overlap
it by more than the IoU threshold, repeat), and the letterbox that fits any image into the
network's square input without distorting it; and where the labels of drawn boxes go so that none
covers another.

Boxes are ``(x1, y1, x2, y2)`` in pixels, corners included as real coordinates (a box from 0 to
10 is 10 wide)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def area(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64)
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``a`` (N, 4) and ``b`` (M, 4) -> (N, M). Boxes of zero area have IoU 0
    with everything (no division by zero)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept, highest score first. A box is dropped when its IoU with a kept
    box is strictly above ``iou_threshold``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while order.size:
        best = order[0]
        keep.append(int(best))
        if order.size == 1:
            break
        overlaps = iou(boxes[best: best + 1], boxes[order[1:]])[0]
        order = order[1:][overlaps <= iou_threshold]
    return np.asarray(keep, np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Per-class NMS: boxes of different classes never suppress each other."""
    classes = np.asarray(classes)
    keep = [np.flatnonzero(classes == c)[nms(boxes[classes == c], scores[classes == c], iou_threshold)]
            for c in np.unique(classes)]
    if not keep:
        return np.zeros(0, np.int64)
    keep = np.concatenate(keep)
    return keep[np.argsort(-np.asarray(scores)[keep], kind="stable")]


@dataclass(frozen=True)
class Letterbox:
    """How an image of ``width`` x ``height`` sits in a ``size`` x ``size`` input: scaled by
    ``scale`` (aspect kept) and offset by ``pad_x``, ``pad_y`` (the rest is grey padding)."""

    width: int
    height: int
    size: int
    scale: float
    pad_x: int
    pad_y: int

    @classmethod
    def fit(cls, width: int, height: int, size: int) -> "Letterbox":
        scale = size / max(width, height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        return cls(width, height, size, scale, (size - new_w) // 2, (size - new_h) // 2)

    @property
    def resized(self) -> tuple[int, int]:
        return max(1, round(self.width * self.scale)), max(1, round(self.height * self.scale))

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Original-image boxes -> network-input boxes."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4) * self.scale
        return boxes + np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], np.float64)

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """Network-input boxes -> original-image pixels, clipped to the image."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        out = (boxes - np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], np.float64)) / self.scale
        out[:, 0::2] = np.clip(out[:, 0::2], 0, self.width)
        out[:, 1::2] = np.clip(out[:, 1::2], 0, self.height)
        return out


def _overlaps(rect: np.ndarray, placed: np.ndarray) -> bool:
    """Whether ``rect`` shares any area with one of ``placed`` (touching edges do not count)."""
    if not len(placed):
        return False
    return bool(np.any((rect[0] < placed[:, 2]) & (placed[:, 0] < rect[2]) &
                       (rect[1] < placed[:, 3]) & (placed[:, 1] < rect[3])))


def place_labels(boxes: np.ndarray, sizes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Where each box's label goes: (N, 4) rectangles ``x1 y1 x2 y2`` inside the image, none
    covering another. ``sizes`` (N, 2) are the labels' widths and heights; boxes are placed in
    the order given (most confident first, so it gets the best spot). A label's first choice is
    just above the box's top-left corner, then inside the box at the top, just below it, inside
    at the bottom, each also at the box's right edge; when all of these are taken it slides
    along the box's left side, then over the whole image, to the first free place. Only an image too crowded to hold
    every label leaves one on its first choice, over another."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    sizes = np.asarray(sizes, np.float64).reshape(-1, 2)
    placed = np.zeros((0, 4), np.float64)
    for box, (w, h) in zip(boxes, sizes):
        w, h = min(w, width), min(h, height)
        first = None
        for x, y in _spots(box, w, h, width, height):
            rect = np.array([x, y, x + w, y + h])
            first = rect if first is None else first
            if not _overlaps(rect, placed):
                break
        else:
            rect = first
        placed = np.vstack([placed, rect])
    return placed


def _spots(box: np.ndarray, w: float, h: float, width: int, height: int):
    """Candidate top-left corners for a ``w`` x ``h`` label of ``box``, best first, in the image."""
    x1, y1, x2, y2 = box
    xs = [min(max(x, 0.0), width - w) for x in (x1, x2 - w)]
    ys = [min(max(y, 0.0), height - h) for y in (y1 - h, y1, y2, y2 - h)]
    yield from ((x, y) for y in ys for x in xs)
    step = max(h / 2, 1.0)
    for y in [*np.arange(ys[0], height - h + step, step), *np.arange(ys[0], -step, -step)]:
        yield xs[0], min(max(float(y), 0.0), height - h)
    for y in np.arange(0, height - h + step, step):
        for x in np.arange(0, width - w + 1, max(w / 2, 1.0)):
            yield float(x), float(y)
