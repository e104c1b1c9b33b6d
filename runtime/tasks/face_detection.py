"""Face detection: every face in a photo with its score and five landmarks, found by the MTCNN
cascade of ``zoo.runtime.mtcnn`` (numpy around the three exported nets). ``zoo run mtcnn
photo.jpg`` prints them, ``--json`` gives ``{"input", "faces": [{"box", "score", "landmarks"}]}``
per image, ``--save`` draws them. A photo without a face is an answer (an empty list), not an
error.

The metric scores detections against ground-truth face boxes: recall and average precision at
IoU 0.5 (one class, the COCO-style AP of the detection task)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from zoo.errors import ZooError
from zoo.runtime.boxes import iou
from zoo.runtime.images import collect_images, load_image, to_array
from zoo.runtime.mtcnn import Face, detect_faces
from zoo.runtime.tasks import Task
from zoo.runtime.tasks.detection import average_precision

LANDMARK_NAMES = ("left eye", "right eye", "nose", "mouth left", "mouth right")
BOX_COLOUR, POINT_COLOUR = (0, 220, 90), (255, 60, 60)


def face_dict(face: Face) -> dict[str, Any]:
    return {"box": [float(v) for v in face.box], "score": float(face.score),
            "landmarks": [[float(x), float(y)] for x, y in face.landmarks]}


def draw(image: Image.Image, faces: Sequence[Face]) -> Image.Image:
    """The image with a rectangle per face and a dot per landmark."""
    out = image.convert("RGB")
    pen = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 300))
    for face in faces:
        pen.rectangle(face.box, outline=BOX_COLOUR, width=width)
        r = width + 1
        for x, y in face.landmarks:
            pen.ellipse((x - r, y - r, x + r, y + r), fill=POINT_COLOUR)
    return out


class FaceDetection(Task):
    input_kinds = ("path", "pil", "array")
    name = "face-detection"
    primary_metric = "ap50"

    def metric(self, outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray],
               meta: dict[str, Any]) -> dict[str, float]:
        """``outputs``: per image (N, 5) rows x1 y1 x2 y2 score; ``targets``: per image (M, 4)
        true boxes. Recall counts true faces that some detection overlaps with IoU >= 0.5."""
        detections, truths, found, total = [], [], 0, 0
        for out, truth in zip(outputs, targets):
            out = np.asarray(out, np.float64).reshape(-1, 5)
            truth = np.asarray(truth, np.float64).reshape(-1, 4)
            detections.append({"boxes": out[:, :4], "scores": out[:, 4], "classes": np.zeros(len(out), np.int64)})
            truths.append({"boxes": truth, "classes": np.zeros(len(truth), np.int64)})
            total += len(truth)
            if len(truth) and len(out):
                found += int((iou(truth, out[:, :4]).max(1) >= 0.5).sum())
        ap = average_precision(detections, truths, 1)
        return {"ap50": ap["map50"], "recall50": found / total if total else 0.0}

    def run(self, artifact, inputs: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
        options = self.with_defaults(options)
        min_face = int(options["min_face"])
        if min_face < 1:
            raise ZooError(f"--min-face must be a positive number of pixels, got {min_face}")
        paths = collect_images(inputs)
        save, save_dir = options["save"], options["save_dir"]
        if save and len(paths) > 1:
            raise ZooError(f"--save names one output image but {len(paths)} inputs were given; use --save-dir DIR")
        results = []
        for path in paths:
            image = load_image(path, "RGB")
            faces = detect_faces(artifact, to_array(image), min_face=min_face)
            result: dict[str, Any] = {"input": str(path), "faces": [face_dict(f) for f in faces]}
            target = Path(save) if save else (Path(save_dir) / f"{path.stem}.jpg" if save_dir else None)
            if target is not None:
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    draw(image, faces).save(target)
                except (OSError, ValueError) as exc:
                    raise ZooError(f"{target}: cannot write the annotated image ({exc})") from exc
                result["saved"] = str(target)
            results.append(result)
        return results

    def format(self, result: dict[str, Any]) -> str:
        faces = result["faces"]
        head = f"{result['input']}: {len(faces)} face(s)" if faces else f"{result['input']}: no face found"
        lines = [head + (f", drawn in {result['saved']}" if "saved" in result else "")]
        for face in faces:
            x1, y1, x2, y2 = face["box"]
            points = "  ".join(f"{name} {x:.0f},{y:.0f}" for name, (x, y) in zip(LANDMARK_NAMES, face["landmarks"]))
            lines.append(f"  face {face['score']:.3f}  box {x1:.0f} {y1:.0f} {x2:.0f} {y2:.0f}  {points}")
        return "\n".join(lines)
