"""Face embedding: verification and recognition around an exported FaceNet, in numpy.

    image -> faces (MTCNN, ``zoo.runtime.mtcnn``; or the whole image with ``--no-detect``)
          -> each box grown by a margin (``margin`` pixels of the network input, spread over the
             box as facenet-pytorch does), cropped, resized to the input size
          -> standardised: "fixed" (x - 127.5) / 128, or "prewhiten" (x - mean) / max(std, 1/sqrt(n))
          -> the network: f(x), a unit vector
    verification  d = ||f(x1) - f(x2)||^2, "same" if d <= tau
    recognition   the enrolled embedding nearest to f(x) names the face if its d <= tau,
                  otherwise the face is "not recognized"

tau comes, in this order, from ``--threshold``, the database's calibration (``zoo faces
calibrate``), the artifact's config (the authors' LFW value for imported weights) and the
threshold chosen on the dev pairs when the weights were trained here.

The metric scores a split the way face verification is reported: pair accuracy with the
threshold chosen on nine folds and applied to the tenth (LFW's protocol) on balanced pairs, the
best threshold on the whole split (``tau``; the dev split's becomes the artifact's), TAR at
FAR = 1e-3 over all pairs where there are at least 1,000 negative pairs, recall@1 (the nearest
other sample has the same identity) and one-shot recognition (one random example per identity
enrolled, the rest named by the nearest enrolled, averaged over ten draws).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from zoo.errors import ZooError
from zoo.runtime.images import collect_images, load_image, to_array
from zoo.runtime.tasks import Task

MIN_CROP = 8  # pixels: a face smaller than this on either side carries no identity
FAR = 1e-3
NOT_RECOGNIZED = "not recognized"


# -- pixels ------------------------------------------------------------------------------------
def standardize(pixels: np.ndarray, how: str) -> np.ndarray:
    x = pixels.astype(np.float32)
    if how == "fixed":
        return (x - 127.5) / 128.0
    if how == "prewhiten":
        std = max(float(x.std()), 1.0 / np.sqrt(x.size))
        return (x - float(x.mean())) / std
    if how == "none":
        return x
    raise ZooError(f"unknown standardisation {how!r} in the artifact's preprocessing")


def preprocess(crop: np.ndarray, pre: dict[str, Any]) -> np.ndarray:
    """One face crop (H, W[, C]) uint8 -> float32 (C, H, W) at the network's input size."""
    img = Image.fromarray(np.asarray(crop, np.uint8))
    mode = pre.get("mode", "RGB")
    if img.mode != mode:
        img = img.convert(mode)
    height, width = pre["size"]
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return standardize(arr, pre.get("standardize", "fixed")).transpose(2, 0, 1).copy()


def crop_face(image: np.ndarray, box: Sequence[float], pre: dict[str, Any]) -> np.ndarray:
    """The box grown by ``margin`` input pixels (facenet-pytorch's rule: margin * box / (size -
    margin) image pixels in all, half on each side), clipped to the image."""
    height, width = image.shape[:2]
    size = pre["size"][0]
    margin = float(pre.get("margin", 0))
    x1, y1, x2, y2 = (float(v) for v in box)
    mx = margin * (x2 - x1) / max(size - margin, 1)
    my = margin * (y2 - y1) / max(size - margin, 1)
    left, top = int(max(x1 - mx / 2, 0)), int(max(y1 - my / 2, 0))
    right, bottom = int(min(x2 + mx / 2, width)), int(min(y2 + my / 2, height))
    if right - left < MIN_CROP or bottom - top < MIN_CROP:
        raise ZooError(f"face too small: {right - left}x{bottom - top} pixels (at least {MIN_CROP}x{MIN_CROP})")
    return image[top:bottom, left:right]


# -- distances and the metric ------------------------------------------------------------------
def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.clip((a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :], 0, None)


def best_threshold(dist: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The tau maximising pair accuracy (same iff d <= tau), and that accuracy; tau lies halfway
    between two neighbouring distances."""
    order = np.argsort(dist, kind="stable")
    d, s = dist[order], same[order]
    # accepting the first k pairs as "same": correct = positives among them + negatives after
    correct = np.concatenate([[0], np.cumsum(s)]) + (np.count_nonzero(~s) - np.concatenate([[0], np.cumsum(~s)]))
    k = int(np.argmax(correct))
    if k == 0:
        tau = float(d[0]) / 2
    elif k == len(d):
        tau = float(d[-1]) + 1e-6
    else:
        tau = float(d[k - 1] + d[k]) / 2
    return tau, float(correct[k]) / len(d)


def balanced_pairs(labels: np.ndarray, max_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs (i, j) and 'same' flags: up to ``max_pairs`` positive pairs and as many negative."""
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(len(labels), 1)
    same = labels[i] == labels[j]
    pos, neg = np.nonzero(same)[0], np.nonzero(~same)[0]
    n = min(len(pos), len(neg), max_pairs)
    pick = np.concatenate([rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)])
    return i[pick], j[pick], same[pick]


def verification_metrics(emb: np.ndarray, labels: np.ndarray, folds: int = 10, max_pairs: int = 3000,
                         seed: int = 0) -> dict[str, float]:
    labels = np.asarray(labels)
    emb = np.asarray(emb, np.float64)
    out: dict[str, float] = {}
    if len(labels) < 2 or len(np.unique(labels)) < 2:
        return out
    d = squared_distances(emb, emb)
    i, j, same = balanced_pairs(labels, max_pairs, seed)
    if len(same) >= 2:
        dist = d[i, j]
        out["tau"], out["pair_accuracy_at_tau"] = best_threshold(dist, same)
        order = np.random.default_rng(seed).permutation(len(same))
        correct = 0
        for fold in np.array_split(order, min(folds, len(same))):
            rest = np.setdiff1d(order, fold)
            tau, _ = best_threshold(dist[rest], same[rest]) if len(rest) else (out["tau"], 0)
            correct += int(np.count_nonzero((dist[fold] <= tau) == same[fold]))
        out["verification_accuracy"] = correct / len(same)
        out["pairs"] = float(len(same))
    iu, ju = np.triu_indices(len(labels), 1)
    all_same = labels[iu] == labels[ju]
    negatives = d[iu, ju][~all_same]
    if len(negatives) >= round(1 / FAR) and all_same.any():
        tau_far = float(np.sort(negatives)[int(np.floor(FAR * len(negatives))) - 1]) if FAR * len(negatives) >= 1 \
            else 0.0
        out["tar_at_far_1e-3"] = float(np.mean(d[iu, ju][all_same] <= tau_far))
    masked = d + np.diag(np.full(len(labels), np.inf))
    nearest = masked.argmin(1)
    has_mate = np.array([np.count_nonzero(labels == lab) > 1 for lab in labels])
    if has_mate.any():
        out["recall_at_1"] = float(np.mean(labels[nearest][has_mate] == labels[has_mate]))
    out.update(one_shot(d, labels, seed=seed))
    return out


def one_shot(d: np.ndarray, labels: np.ndarray, draws: int = 10, seed: int = 0) -> dict[str, float]:
    """Enrol one random example per identity; name every other sample by its nearest enrolled."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    if len(classes) < 2 or any(np.count_nonzero(labels == c) < 2 for c in classes):
        return {}
    accuracies = []
    for _ in range(draws):
        gallery = np.array([rng.choice(np.nonzero(labels == c)[0]) for c in classes])
        queries = np.setdiff1d(np.arange(len(labels)), gallery)
        named = classes[d[np.ix_(queries, gallery)].argmin(1)]
        accuracies.append(float(np.mean(named == labels[queries])))
    return {"one_shot_accuracy": float(np.mean(accuracies)), "one_shot_accuracy_std": float(np.std(accuracies))}


def threshold_of(meta: dict[str, Any], override: float | None = None, calibrated: float | None = None) -> float:
    for value in (override, calibrated, meta.get("threshold"), (meta.get("config") or {}).get("threshold"),
                  (meta.get("metrics") or {}).get("dev_tau")):
        if value is not None:
            tau = float(value)
            if not np.isfinite(tau) or tau < 0:
                raise ZooError(f"threshold {value!r} must be a non-negative number")
            return tau
    raise ZooError("this artifact carries no verification threshold; pass --threshold TAU "
                   "or calibrate one with `zoo faces calibrate DIR`")


# -- embedding images ----------------------------------------------------------------------------
class FaceEmbedder:
    """The artifact's network with the shared detection, cropping and preprocessing."""

    def __init__(self, artifact, no_detect: bool, min_face: int):
        self.artifact = artifact
        self.pre = artifact.meta["preprocessing"]
        self.no_detect = bool(no_detect)
        self.min_face = int(min_face)
        self._detector = None
        self.session = artifact.session()
        self.input_name = self.session.get_inputs()[0].name

    @property
    def sha256(self) -> str:
        return str(self.artifact.meta.get("weights_sha256") or "")

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros((0, 0), np.float32)
        x = np.stack([preprocess(c, self.pre) for c in crops]).astype(np.float32)
        return np.concatenate([self.session.run(None, {self.input_name: x[i: i + 16]})[0]
                               for i in range(0, len(x), 16)])

    def faces(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Every face of an RGB image: box, score, landmarks and ``embedding`` (largest first
        when not detecting there is one face, the whole image)."""
        if self.no_detect:
            h, w = image.shape[:2]
            if h < MIN_CROP or w < MIN_CROP:
                raise ZooError(f"face too small: {w}x{h} pixels (at least {MIN_CROP}x{MIN_CROP})")
            found = [{"box": [0.0, 0.0, float(w), float(h)], "score": None, "landmarks": None, "crop": image}]
        else:
            if self._detector is None:
                from zoo.runtime.mtcnn import open_detector

                self._detector = open_detector(self.artifact.provider)
            from zoo.runtime.mtcnn import detect_faces

            found = []
            for face in detect_faces(self._detector, image, min_face=self.min_face):
                found.append({"box": [float(v) for v in face.box], "score": float(face.score),
                              "landmarks": [[float(x), float(y)] for x, y in face.landmarks],
                              "crop": crop_face(image, face.box, self.pre)})
        embeddings = self.embed([f.pop("crop") for f in found])
        for face, e in zip(found, embeddings):
            face["embedding"] = e
        return found


def largest(faces: list[dict[str, Any]]) -> dict[str, Any]:
    return max(faces, key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))


def draw(image: Image.Image, faces: list[dict[str, Any]]) -> Image.Image:
    """Boxes, the five landmarks and each face's name."""
    out = image.convert("RGB")
    pen = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 300))
    try:
        font = ImageFont.load_default(size=max(12, round(max(out.size) / 45)))
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    for face in faces:
        x1, y1, x2, y2 = face["box"]
        known = face.get("name") not in (None, NOT_RECOGNIZED)
        colour = (40, 200, 80) if known else (230, 60, 40)
        pen.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        for x, y in face.get("landmarks") or ():
            pen.ellipse((x - width, y - width, x + width, y + width), fill=(255, 220, 0))
        text = face.get("name")
        if text:
            if face.get("distance") is not None:
                text += f" {face['distance']:.2f}"
            left, top, right, bottom = pen.textbbox((0, 0), text, font=font)
            ty = y1 - (bottom - top) - 2 * width if y1 - (bottom - top) - 2 * width >= 0 else y2
            pen.rectangle((x1, ty, x1 + right - left + 2 * width, ty + bottom - top + 2 * width), fill=colour)
            pen.text((x1 + width - left, ty + width - top), text, fill=(0, 0, 0), font=font)
    return out


class FaceEmbedding(Task):
    input_kinds = ("path", "pil", "array")
    name = "face-embedding"
    primary_metric = "verification_accuracy"

    def encode_inputs(self, raw: Sequence[np.ndarray], meta: dict[str, Any]) -> np.ndarray:
        pre = meta["preprocessing"]
        return np.stack([preprocess(np.asarray(x), pre) for x in raw]).astype(np.float32)

    def metric(self, outputs: np.ndarray, targets: np.ndarray, meta: dict[str, Any]) -> dict[str, float]:
        return verification_metrics(outputs, targets)

    def run(self, artifact, inputs: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
        options = self.with_defaults(options)
        embedder = FaceEmbedder(artifact, bool(options["no_detect"]), options["min_face"])
        database = None
        if options["db"]:
            from zoo.faces import FaceDatabase

            database = FaceDatabase.open(options["db"], must_exist=True)
            database.check_weights(embedder.sha256, artifact.model)
        tau = threshold_of(artifact.meta, options["threshold"], database.threshold if database else None)
        if options["verify"]:
            return [self._verify(embedder, inputs, tau)]
        paths = collect_images(inputs)
        save = options["save"]
        if save and len(paths) > 1:
            raise ZooError(f"--save names one output image but {len(paths)} inputs were given")
        results = []
        for path in paths:
            img = load_image(path, "RGB")
            faces = embedder.faces(to_array(img))
            for face in faces:
                e = face.pop("embedding")
                face["name"] = face["distance"] = None
                if database is not None:
                    face["name"], face["distance"] = database.identify(e, tau)
            result = {"input": str(path), "faces": faces}
            if save:
                target = Path(save)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    draw(img, faces).save(target)
                except (OSError, ValueError) as exc:
                    raise ZooError(f"{target}: cannot write the annotated image ({exc})") from exc
                result["saved"] = str(target)
            results.append(result)
        return results

    @staticmethod
    def _verify(embedder: FaceEmbedder, inputs: list[str], tau: float) -> dict[str, Any]:
        paths = collect_images(inputs)
        if len(paths) != 2:
            raise ZooError(f"--verify compares two images, got {len(paths)}")
        embeddings = []
        for path in paths:
            faces = embedder.faces(to_array(load_image(path, "RGB")))
            if not faces:
                raise ZooError(f"{path}: no face found to verify")
            embeddings.append(largest(faces)["embedding"])
        d = float(squared_distances(embeddings[0][None], embeddings[1][None])[0, 0])
        return {"input": [str(p) for p in paths], "distance": d, "same": bool(d <= tau),
                "threshold": tau}

    def format(self, result: dict[str, Any]) -> str:
        if "same" in result:
            a, b = result["input"]
            verdict = "same person" if result["same"] else "different people"
            return f"{a} vs {b}: distance {result['distance']:.4f} -> {verdict} (threshold {result['threshold']:.4g})"
        faces = result["faces"]
        if not faces:
            return f"{result['input']}: no face found"
        lines = [f"{result['input']}: {len(faces)} face(s)" + (f", drawn in {result['saved']}" if "saved" in result
                                                               else "")]
        for face in faces:
            x1, y1, x2, y2 = face["box"]
            score = f"{face['score']:.2f}" if face["score"] is not None else "-"
            who = ""
            if face["name"] is not None:
                who = f"  {face['name']}" + (f" (distance {face['distance']:.3f})" if face["distance"] is not None
                                             else "")
            lines.append(f"  box {x1:.0f} {y1:.0f} {x2:.0f} {y2:.0f}  score {score}{who}")
        return "\n".join(lines)
