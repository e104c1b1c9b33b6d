"""What the Python API hands back: one result per input, with the fields of ``zoo run --json``
as attributes and ``to_json()`` returning exactly that object. A task names its result type
(``Task.result_type``); these are the built-in tasks' types. numpy and Pillow only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from PIL import Image


class Result(Mapping[str, Any]):
    """One input's result. Reads like the JSON object (``r["input"]``) and like an object
    (``r.input``); ``to_json()`` is what ``zoo run --json`` prints for it."""

    def __init__(self, data: dict[str, Any], source: Any = None):
        self._data = data
        self._source = source  # the input as given (a path, an image, a text), for plot()

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {key!r}; it has {', '.join(self._data)}") from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"

    def to_json(self) -> dict[str, Any]:
        return self._data

    def _image(self) -> Image.Image:
        from zoo.runtime.images import collect_images, load_image

        (item,) = collect_images([self._source])
        return load_image(item, "RGB")


class ClassificationResult(Result):
    @property
    def top(self) -> list[tuple[str, float]]:
        """(label, probability) pairs, likeliest first."""
        return [(t["label"], t["prob"]) for t in self._data["top"]]

    @property
    def label(self) -> str:
        return self._data["top"][0]["label"]


@dataclass(frozen=True)
class Boxes:
    """Detections as arrays: ``xyxy`` (N, 4) in pixels of the original image, ``scores`` (N,),
    ``classes`` (N,) and ``labels`` (N names)."""

    xyxy: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    labels: list[str]

    def __len__(self) -> int:
        return len(self.scores)


class DetectionResult(Result):
    @property
    def boxes(self) -> Boxes:
        found = self._data["detections"]
        return Boxes(np.asarray([d["box"] for d in found], np.float64).reshape(-1, 4),
                     np.asarray([d["score"] for d in found], np.float64),
                     np.asarray([d["class"] for d in found], np.int64), [d["label"] for d in found])

    def plot(self) -> Image.Image:
        """The input image with the boxes drawn on it."""
        from zoo.runtime.tasks.detection import draw

        return draw(self._image(), self._data["detections"])


class TranslationResult(Result):
    @property
    def text(self) -> str:
        return self._data["output"]


class GenerationResult(Result):
    pass  # ``text`` (prime + generated) and ``generated`` are fields already
