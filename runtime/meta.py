"""The one typed description of an exported model (``ArtifactMeta``) and of its preprocessing
(``Preprocessing``), shared by the writer (``zoo.modelio`` and the exporters) and the reader
(``zoo.runtime.artifact``), and the bounds every artifact and manifest is checked against before
zoo allocates anything or opens a path it names.

An artifact is untrusted input: a file from the internet may claim ``size: [1e6, 1e6]`` (a 10 GB
allocation), ``std: 0`` (NaN answers), a thousand labels for ten outputs or a graph at
``../../etc/passwd``. The checks here are general bounds (types, sizes, lengths, finiteness);
a task checks what only it knows (``Task.check_meta``). Keys this schema does not name (a
task's vocabulary, thresholds, graph names) are kept as they are, within the same general
bounds, so that a new family's artifacts open without changing this module. numpy-free and
torch-free."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import PurePosixPath
from typing import Any, Mapping

from zoo.errors import ZooError

FORMAT = 1
#: the largest image side (network input, resize, canvas) an artifact may ask for
MAX_SIDE = 8192
#: the longest list anywhere in the metadata (a vocabulary of a million words fits)
MAX_ITEMS = 2_000_000
MAX_STRING = 1 << 20
MAX_DEPTH = 12
#: the largest count a config may give (classes, vocabulary size, hidden units, lengths)
MAX_COUNT = 1 << 24
#: config keys whose integer values are sizes or counts and must be positive
_COUNT_KEYS = ("size", "len", "length", "classes", "vocab", "hidden", "embed", "dim", "channels", "layers",
               "heads", "attention", "chunk", "width_px", "steps")
IMAGE_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "I", "F", "I;16")


def _fail(where: str, message: str) -> ZooError:
    return ZooError(f"{where}: artifact metadata {message}")


def check_json_bounds(value: Any, where: str, path: str = "", depth: int = 0) -> None:
    """Plain JSON within bounds: finite numbers, bounded strings, lists and nesting."""
    if depth > MAX_DEPTH:
        raise _fail(where, f"nests deeper than {MAX_DEPTH} levels at {path or 'top'}")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(where, f"{path}: {value} is not a finite number")
        if isinstance(value, int) and abs(value) > 1 << 53:
            raise _fail(where, f"{path}: {value} is out of range")
        return
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise _fail(where, f"{path}: a string of {len(value)} characters is too long")
        return
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_ITEMS:
            raise _fail(where, f"{path}: {len(value)} items exceed the limit of {MAX_ITEMS}")
        if value and all(isinstance(v, str) for v in value):
            if any(len(v) > MAX_STRING for v in value):
                raise _fail(where, f"{path}: holds a string that is too long")
            return
        for i, item in enumerate(value):
            check_json_bounds(item, where, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, Mapping):
        if len(value) > MAX_ITEMS:
            raise _fail(where, f"{path}: {len(value)} keys exceed the limit of {MAX_ITEMS}")
        for key, item in value.items():
            if not isinstance(key, str) or len(key) > 256:
                raise _fail(where, f"{path}: key {str(key)[:40]!r} is not a short string")
            check_json_bounds(item, where, f"{path}.{key}" if path else key, depth + 1)
        return
    raise _fail(where, f"{path}: {type(value).__name__} is not JSON")


def _side(value: Any, where: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or not 0 < value <= MAX_SIDE:
        raise _fail(where, f"{name} {value!r} must be a whole number in 1..{MAX_SIDE}")
    return int(value)


def _numbers(value: Any, where: str, name: str) -> tuple[float, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    if not 1 <= len(items) <= 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                          and math.isfinite(v) for v in items):
        raise _fail(where, f"{name} {value!r} must be 1 to 4 finite numbers")
    return tuple(float(v) for v in items)


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the network's input (image-classification reads every field):

    - ``mode``: Pillow mode the image is converted to ("RGB", "L");
    - ``digit``: ``{"canvas", "box"}`` MNIST-style normalisation (see the classification task);
    - ``resize``: shorter side before the centre crop (ImageNet: 256); another task may use a
      word here ("area"), which is kept as it is;
    - ``size``: ``[H, W]`` of the network input;
    - ``mean``, ``std``: per-channel normalisation of pixel/255 (``std`` never zero).
    Other keys (a task's own) are kept in ``extra``."""

    size: tuple[int, int] | None = None
    mode: str | None = None
    resize: int | str | None = None
    digit: tuple[int, int] | None = None  # (canvas, box)
    mean: tuple[float, ...] | float | None = None
    std: tuple[float, ...] | float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Any, where: str = "preprocessing") -> "Preprocessing":
        if not isinstance(raw, Mapping):
            raise _fail(where, f"preprocessing must be an object, not {type(raw).__name__}")
        check_json_bounds(dict(raw), where, "preprocessing")
        values: dict[str, Any] = {}
        if "size" in raw:
            size = raw["size"]
            if not isinstance(size, (list, tuple)) or len(size) != 2:
                raise _fail(where, f"preprocessing.size {size!r} must be [height, width]")
            values["size"] = (_side(size[0], where, "preprocessing.size"), _side(size[1], where, "preprocessing.size"))
        if "mode" in raw:
            if raw["mode"] not in IMAGE_MODES:
                raise _fail(where, f"preprocessing.mode {raw['mode']!r} is not one of {', '.join(IMAGE_MODES)}")
            values["mode"] = raw["mode"]
        if "resize" in raw:
            resize = raw["resize"]
            values["resize"] = resize if isinstance(resize, str) and len(resize) <= 64 else \
                _side(resize, where, "preprocessing.resize")
        if "digit" in raw:
            digit = raw["digit"]
            if not isinstance(digit, Mapping) or set(digit) != {"canvas", "box"}:
                raise _fail(where, "preprocessing.digit must be {\"canvas\": N, \"box\": N}")
            canvas = _side(digit["canvas"], where, "preprocessing.digit.canvas")
            box = _side(digit["box"], where, "preprocessing.digit.box")
            if box > canvas:
                raise _fail(where, f"preprocessing.digit.box {box} is larger than its canvas {canvas}")
            values["digit"] = (canvas, box)
        for key in ("mean", "std"):
            if key in raw:
                nums = _numbers(raw[key], where, f"preprocessing.{key}")
                values[key] = nums if isinstance(raw[key], (list, tuple)) else nums[0]
        std = values.get("std")
        if std is not None and any(s == 0 for s in (std if isinstance(std, tuple) else (std,))):
            raise _fail(where, f"preprocessing.std {raw['std']!r} holds a zero (every answer would be NaN)")
        known = {f.name for f in fields(cls)} - {"extra"}
        values["extra"] = {k: v for k, v in raw.items() if k not in known}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.mode is not None:
            out["mode"] = self.mode
        if self.digit is not None:
            out["digit"] = {"canvas": self.digit[0], "box": self.digit[1]}
        if self.resize is not None:
            out["resize"] = self.resize
        if self.size is not None:
            out["size"] = list(self.size)
        for key in ("mean", "std"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        out.update(self.extra)
        return out


def _check_config(config: Any, where: str) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        raise _fail(where, f"config must be an object, not {type(config).__name__}")
    for key, value in config.items():
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        lowered = key.lower()
        if any(lowered == k or lowered.endswith(("_" + k, k)) for k in _COUNT_KEYS):
            limit = MAX_SIDE if lowered in ("input_size", "image_size") else MAX_COUNT
            low = 1 if lowered in ("input_size", "image_size", "num_classes") or "vocab" in lowered else 0
            if not low <= value <= limit:
                raise _fail(where, f"config.{key} {value} must lie in {low}..{limit}")
    if "strides" in config:
        strides = config["strides"]
        if not isinstance(strides, list) or not 1 <= len(strides) <= 8 or not all(
                isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= MAX_SIDE for s in strides):
            raise _fail(where, f"config.strides {strides!r} must be 1 to 8 whole numbers in 1..{MAX_SIDE}")
        size = config.get("input_size")
        if isinstance(size, int) and any(size % s for s in strides):
            raise _fail(where, f"config.input_size {size} is not a multiple of every stride {strides}")
    if "anchors" in config:
        anchors = config["anchors"]
        flat = [v for a in anchors for v in (a if isinstance(a, list) else [a])] if isinstance(anchors, list) else None
        if not flat or len(flat) > 4096 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   and math.isfinite(v) and v > 0 for v in flat):
            raise _fail(where, "config.anchors must be positive finite numbers")
    return dict(config)


_NAMED = ("task", "model", "family", "format", "zoo_version", "labels", "preprocessing", "config",
          "weights_sha256", "weights_tag", "metrics", "input_layout", "opset", "graph", "graphs", "precision")


@dataclass(frozen=True)
class ArtifactMeta:
    """What an exported model says about itself (ONNX ``metadata_props['zoo']`` or ``zoo.json``).

    ``extra`` holds the keys a task or family adds (a vocabulary, thresholds, graph roles); they
    travel in the same flat JSON object, checked by the general bounds."""

    task: str
    model: str = "?"
    family: str = ""
    format: int = FORMAT
    zoo_version: str = ""
    labels: tuple[str, ...] = ()
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    config: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""
    weights_tag: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    input_layout: str = ""
    opset: int = 0
    graph: str = ""
    graphs: dict[str, str] = field(default_factory=dict)
    precision: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Any, where: str = "artifact") -> "ArtifactMeta":
        if not isinstance(raw, Mapping):
            raise _fail(where, "is not a JSON object")
        check_json_bounds(dict(raw), where)
        task = raw.get("task")
        if not isinstance(task, str) or not task or len(task) > 100:
            raise ZooError(f"{where}: zoo metadata lacks a task")
        fmt = raw.get("format", FORMAT)
        if isinstance(fmt, bool) or not isinstance(fmt, int):
            raise _fail(where, f"format {fmt!r} is not a number")
        if fmt > FORMAT:
            raise ZooError(f"{where}: artifact format {fmt} is newer than this zoo understands ({FORMAT})")
        for key in ("model", "family", "zoo_version", "weights_sha256", "weights_tag", "input_layout", "graph",
                    "precision"):
            if key in raw and raw[key] is not None and (not isinstance(raw[key], str) or len(raw[key]) > 256):
                raise _fail(where, f"{key} must be a short string")
        labels = raw.get("labels") or []
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise _fail(where, "labels must be a list of strings")
        config = _check_config(raw.get("config") or {}, where)
        classes = config.get("num_classes")
        if labels and isinstance(classes, int) and not isinstance(classes, bool) and len(labels) != classes:
            raise _fail(where, f"has {len(labels)} labels for {classes} classes")
        metrics = raw.get("metrics") or {}
        if not isinstance(metrics, Mapping):
            raise _fail(where, "metrics must be an object")
        graphs = raw.get("graphs") or {}
        if not isinstance(graphs, Mapping) or len(graphs) > 64:
            raise _fail(where, "graphs must be an object of at most 64 graphs")
        for name, rel in graphs.items():
            check_graph_name(rel, where, name)
        opset = raw.get("opset", 0)
        if isinstance(opset, bool) or not isinstance(opset, int) or not 0 <= opset <= 1000:
            raise _fail(where, f"opset {opset!r} is not a valid opset")
        return cls(
            task=task, model=str(raw.get("model") or "?"), family=str(raw.get("family") or ""), format=fmt,
            zoo_version=str(raw.get("zoo_version") or ""), labels=tuple(labels),
            preprocessing=Preprocessing.from_dict(raw.get("preprocessing") or {}, where), config=config,
            weights_sha256=str(raw.get("weights_sha256") or ""), weights_tag=str(raw.get("weights_tag") or ""),
            metrics=dict(metrics), input_layout=str(raw.get("input_layout") or ""), opset=opset,
            graph=str(raw.get("graph") or ""), graphs=dict(graphs), precision=str(raw.get("precision") or ""),
            extra={k: v for k, v in raw.items() if k not in _NAMED})

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON object written into the artifact (and handed to tasks as ``meta``)."""
        out: dict[str, Any] = {"task": self.task, "model": self.model, "family": self.family, "format": self.format,
                               "zoo_version": self.zoo_version, "labels": list(self.labels),
                               "preprocessing": self.preprocessing.to_dict(), "config": dict(self.config),
                               "weights_sha256": self.weights_sha256, "metrics": dict(self.metrics),
                               "input_layout": self.input_layout}
        for key in ("weights_tag", "graph", "precision"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.opset:
            out["opset"] = self.opset
        if self.graphs:
            out["graphs"] = dict(self.graphs)
        out.update(self.extra)
        return out


def check_graph_name(rel: Any, where: str, name: str = "") -> str:
    """A graph file named by ``zoo.json``: a plain ``NAME.onnx`` inside the artifact folder."""
    if not isinstance(rel, str) or not rel or len(rel) > 255:
        raise _fail(where, f"graph {name!r} must name a file")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or "\\" in rel or len(pure.parts) != 1 or pure.name in (".", "..") \
            or rel.startswith(".") or "\x00" in rel:
        raise _fail(where, f"graph {name!r} names {rel!r}: only a file inside the artifact folder is accepted")
    return rel


def check_manifest(manifest: Mapping[str, Any], where: str = "manifest") -> None:
    """A weights manifest: the same bounds (it becomes an artifact's metadata at export)."""
    check_json_bounds(dict(manifest), where)
    for key in ("config", "metrics", "preprocessing", "task_meta"):
        if key in manifest and manifest[key] is not None and not isinstance(manifest[key], Mapping):
            raise _fail(where, f"{key} must be an object")
    if "sha256" in manifest and not isinstance(manifest["sha256"], str):
        raise _fail(where, "sha256 must be a string")
    labels = manifest.get("labels")
    if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
        raise _fail(where, "labels must be a list of strings")
    if manifest.get("preprocessing"):
        Preprocessing.from_dict(manifest["preprocessing"], where)
    if manifest.get("config"):
        _check_config(manifest["config"], where)
