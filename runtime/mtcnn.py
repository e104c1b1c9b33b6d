"""The MTCNN cascade (Zhang et al. 2016), written once in numpy around the three exported nets.

    1. Pyramid. A face of ``min_face`` pixels must shrink to P-Net's 12x12 window, so the image
       is scaled by 12 / min_face, then again by ``factor`` (0.709, about 1/sqrt(2): the area
       halves per level) while its shorter side stays >= 12. Resizing averages the source pixels
       each output pixel covers (area interpolation, as the reference implementations do).
    2. P-Net on every level scores each 12x12 window at stride 2. A window at output cell
       (row, col) of the level scaled by s covers ``x1 = floor((2 col + 1) / s)`` to
       ``x2 = floor((2 col + 12) / s)`` in the image. Windows with face probability >= t1 are
       kept, NMS runs within the level (IoU 0.5) and then over all levels (0.7).
    3. Box regression: ``x1 += dx1 w, y1 += dy1 h, x2 += dx2 w, y2 += dy2 h`` with the net's
       offsets, then each box is made square around its centre (side = the longer side), so the
       next net sees the face undistorted.
    4. R-Net on each box cropped (zero padding outside the image, as the authors' code does) and
       resized to 24x24: probability > t2 kept, NMS 0.7, regression, square again.
    5. O-Net on 48x48 crops: probability > t3 kept, five landmarks placed in the box, regression,
       and a last NMS that divides the overlap by the smaller box (a box inside a larger one goes).

Boxes follow the convention of the published MTCNN code (1-based pixel corners, as their
MATLAB origin); a box may extend past the edge of the image for a face that the edge cuts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from zoo.errors import ZooError
from zoo.runtime.artifact import Artifact, open_artifact

MEAN, SCALE = 127.5, 0.0078125  # the nets read (pixel - 127.5) / 128
CELL, STRIDE = 12, 2  # P-Net's window and step in its input
NETS = ("pnet", "rnet", "onet")
CROP_BATCH = 256  # crops per onnxruntime call
MAX_LEVEL_PIXELS = 64_000_000  # the largest pyramid level P-Net is asked to read


@dataclass
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    score: float
    landmarks: list[tuple[float, float]]  # left eye, right eye, nose, mouth left, mouth right


def open_detector(provider: str = "auto") -> Artifact:
    """The exported MTCNN artifact in the user store (``zoo export mtcnn`` writes it)."""
    from zoo import store

    path = store.exports_dir() / "mtcnn"
    if not (path / "zoo.json").is_file():
        raise ZooError(f"no exported MTCNN face detector at {path}: run \"zoo export mtcnn\" first")
    artifact = open_artifact(path, provider)
    check_artifact(artifact)
    return artifact


def check_artifact(artifact: Artifact) -> None:
    graphs = artifact.meta.get("graphs") or {}
    missing = [n for n in NETS if n not in graphs]
    if artifact.task != "face-detection" or missing:
        raise ZooError(f"{artifact.path}: not an MTCNN artifact (task {artifact.task!r}, "
                       f"graphs {', '.join(graphs) or 'none'}; needs {', '.join(NETS)})")


# -- pixels ------------------------------------------------------------------------------------
def integral_image(image: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H + 1, W + 1, C) float64 table of sums over ``image[:y, :x]``: any
    rectangle's sum in four look-ups, so the whole pyramid and every crop cost one pass."""
    h, w = image.shape[:2]
    table = np.zeros((h + 1, w + 1, image.shape[2]), np.float64)
    inner = table[1:, 1:]  # summed in place: a large photo costs one table, no float copies
    np.cumsum(image, axis=0, dtype=np.float64, out=inner)
    np.cumsum(inner, axis=1, out=inner)
    return table


def _spans(start: np.ndarray, size: np.ndarray, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Output pixel i of a window of ``size`` source pixels from ``start`` averages the source
    pixels ``[floor(i size / out), ceil((i + 1) size / out))``: (N,) -> two (N, out) arrays."""
    i = np.arange(out)
    size = np.asarray(size, np.int64)[:, None]
    start = np.asarray(start, np.int64)[:, None]
    return start + (i * size) // out, start - ((-(i + 1) * size) // out)


def window_means(table: np.ndarray, top: np.ndarray, left: np.ndarray, height: np.ndarray, width: np.ndarray,
                 out_h: int, out_w: int) -> np.ndarray:
    """Area-resize N windows of the image behind ``table`` to (out_h, out_w) -> (N, out_h, out_w, C).
    A window may reach past the image: the pixels outside count as zeros (the authors' padding)."""
    h, w = table.shape[0] - 1, table.shape[1] - 1
    y0, y1 = _spans(top, height, out_h)
    x0, x1 = _spans(left, width, out_w)
    cy0, cy1 = np.clip(y0, 0, h)[:, :, None], np.clip(y1, 0, h)[:, :, None]
    cx0, cx1 = np.clip(x0, 0, w)[:, None, :], np.clip(x1, 0, w)[:, None, :]
    total = table[cy1, cx1] - table[cy0, cx1] - table[cy1, cx0] + table[cy0, cx0]
    count = (y1 - y0)[:, :, None] * (x1 - x0)[:, None, :]
    return total / count[..., None]


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, C) -> (height, width, C) float64 by area interpolation (each output pixel the mean
    of the source pixels it covers, as the reference implementations resize)."""
    h, w = image.shape[:2]
    one = np.zeros(1, np.int64)
    return window_means(integral_image(image), one, one, one + h, one + w, height, width)[0]


def to_input(pixels: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) pixels -> (..., 3, H, W) float32 as the nets read them."""
    x = (np.asarray(pixels, np.float64) - MEAN) * SCALE
    return np.ascontiguousarray(np.moveaxis(x, -1, -3), dtype=np.float32)


def pyramid_scales(height: int, width: int, min_face: int, factor: float) -> list[float]:
    scale = CELL / min_face
    side = min(height, width) * scale
    scales = []
    while side >= CELL:
        scales.append(scale)
        scale *= factor
        side *= factor
    return scales


def crops(table: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Each box, truncated to whole pixels (corners 1-based, both included), cut out with zeros
    outside the image and resized to size x size -> (N, size, size, 3)."""
    corners = np.trunc(boxes[:, :4]).astype(np.int64)
    width = np.maximum(corners[:, 2] - corners[:, 0] + 1, 1)
    height = np.maximum(corners[:, 3] - corners[:, 1] + 1, 1)
    return window_means(table, corners[:, 1] - 1, corners[:, 0] - 1, height, width, size, size)


# -- boxes -------------------------------------------------------------------------------------
def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, by: str = "union") -> np.ndarray:
    """Indices kept, best first: a box goes when its overlap with a kept one, divided by the
    union (``by="union"``, IoU) or by the smaller of the two areas (``by="min"``), exceeds
    ``threshold``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        iw = np.clip(np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0]), 0, None)
        ih = np.clip(np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1]), 0, None)
        inter = iw * ih
        denom = np.minimum(areas[best], areas[rest]) if by == "min" else areas[best] + areas[rest] - inter
        overlap = np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)
        order = rest[overlap <= threshold]
    return np.asarray(keep, np.int64)


def regress(boxes: np.ndarray, offsets: np.ndarray, plus_one: bool = True) -> np.ndarray:
    """Move each corner by its offset times the box's width or height. The published cascade
    measures the P-Net windows as ``x2 - x1`` and the refined boxes as ``x2 - x1 + 1``."""
    boxes = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + plus_one
    h = boxes[:, 3] - boxes[:, 1] + plus_one
    boxes[:, :4] += offsets[:, :4] * np.stack([w, h, w, h], 1)
    return boxes


def square(boxes: np.ndarray) -> np.ndarray:
    """Each box grown to a square around its centre, side = its longer side."""
    boxes = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += (w - side) / 2
    boxes[:, 1] += (h - side) / 2
    boxes[:, 2:4] = boxes[:, 0:2] + side[:, None]
    return boxes


# -- the cascade -------------------------------------------------------------------------------
def _run(artifact: Artifact, net: str, x: np.ndarray, outputs: Sequence[str]) -> list[np.ndarray]:
    session = artifact.session(net)
    return [o.astype(np.float64) for o in session.run(list(outputs), {session.get_inputs()[0].name: x})]


def _run_crops(artifact: Artifact, net: str, table: np.ndarray, boxes: np.ndarray, size: int,
               outputs: Sequence[str]) -> list[np.ndarray]:
    """The net on every box's crop, CROP_BATCH crops at a time."""
    parts = [_run(artifact, net, to_input(crops(table, boxes[i: i + CROP_BATCH], size)), outputs)
             for i in range(0, len(boxes), CROP_BATCH)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(outputs))]


def propose(artifact: Artifact, table: np.ndarray, min_face: int, threshold: float, factor: float) -> np.ndarray:
    """Stage 1 -> (N, 5) boxes x1 y1 x2 y2 score, regressed and squared."""
    h, w = table.shape[0] - 1, table.shape[1] - 1
    found = []
    one = np.zeros(1, np.int64)
    for scale in pyramid_scales(h, w, min_face, factor):
        level = window_means(table, one, one, one + h, one + w, int(h * scale + 1), int(w * scale + 1))[0]
        prob, offsets = _run(artifact, "pnet", to_input(level)[None], ("prob", "box"))
        rows, cols = np.nonzero(prob[0, 1] >= threshold)
        if not rows.size:
            continue
        cells = np.stack([cols, rows], 1).astype(np.float64)
        boxes = np.concatenate([np.floor((STRIDE * cells + 1) / scale), np.floor((STRIDE * cells + CELL) / scale),
                                prob[0, 1, rows, cols, None], offsets[0][:, rows, cols].T], 1)
        found.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
    if not found:
        return np.zeros((0, 5))
    boxes = np.concatenate(found)
    boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
    return square(regress(boxes[:, :5], boxes[:, 5:9], plus_one=False))


def refine(artifact: Artifact, table: np.ndarray, boxes: np.ndarray, threshold: float) -> np.ndarray:
    """Stage 2 (R-Net)."""
    if not len(boxes):
        return boxes
    prob, offsets = _run_crops(artifact, "rnet", table, boxes, 24, ("prob", "box"))
    keep = prob[:, 1] > threshold
    boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], 1)
    offsets = offsets[keep]
    pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
    return square(regress(boxes[pick], offsets[pick]))


def output(artifact: Artifact, table: np.ndarray, boxes: np.ndarray, threshold: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Stage 3 (O-Net) -> boxes (N, 5) and landmarks (N, 5, 2)."""
    if not len(boxes):
        return boxes, np.zeros((0, 5, 2))
    prob, offsets, marks = _run_crops(artifact, "onet", table, boxes, 48, ("prob", "box", "landmarks"))
    keep = prob[:, 1] > threshold
    boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], 1)
    offsets, marks = offsets[keep], marks[keep]
    w = boxes[:, 2:3] - boxes[:, 0:1] + 1
    h = boxes[:, 3:4] - boxes[:, 1:2] + 1
    points = np.stack([boxes[:, 0:1] + w * marks[:, :5] - 1, boxes[:, 1:2] + h * marks[:, 5:] - 1], -1)
    boxes = regress(boxes, offsets)
    pick = nms(boxes[:, :4], boxes[:, 4], 0.7, by="min")
    return boxes[pick], points[pick]


def detect_faces(artifact: Artifact, image: np.ndarray, *, min_face: int = 20,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7), factor: float = 0.709) -> list[Face]:
    """Every face in an RGB image (H, W, 3) uint8, best score first."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ZooError(f"face detection needs an RGB image as a (height, width, 3) uint8 array, "
                       f"got {image.dtype} {tuple(image.shape)}")
    if not isinstance(min_face, (int, np.integer)) or min_face < 1:
        raise ZooError(f"--min-face must be a positive number of pixels, got {min_face!r}")
    if len(thresholds) != 3 or not all(0 <= t <= 1 for t in thresholds):
        raise ZooError(f"thresholds must be three probabilities in [0, 1], got {tuple(thresholds)}")
    if not 0 < factor < 1:
        raise ZooError(f"the pyramid factor must lie in (0, 1), got {factor}")
    first = CELL / min_face
    if image.shape[0] * image.shape[1] * first * first > MAX_LEVEL_PIXELS:
        raise ZooError(f"--min-face {min_face} is too small for a {image.shape[1]}x{image.shape[0]} image: its first "
                       f"pyramid level would exceed {MAX_LEVEL_PIXELS:,} pixels; use a larger --min-face")
    check_artifact(artifact)
    table = integral_image(image)
    boxes = propose(artifact, table, int(min_face), thresholds[0], factor)
    boxes = refine(artifact, table, boxes, thresholds[1])
    boxes, points = output(artifact, table, boxes, thresholds[2])
    return [Face(tuple(float(v) for v in b[:4]), float(b[4]), [(float(x), float(y)) for x, y in p])
            for b, p in zip(boxes, points)]
