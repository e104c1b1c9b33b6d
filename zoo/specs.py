"""The data a plugin hands to the registry: plain, frozen, and importable without torch."""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*$")
#: ``ModelSpec.weights``: a package (dotted module name), a colon, a relative folder inside it
RESOURCE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:"
                         r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def _import_string(v: Any) -> bool:
    return v is None or isinstance(v, str) and ":" in v


#: every key ``ModelSpec.train_defaults`` may hold: what it sets, and the check its value must
#: pass. The engine's own defaults (``zoo.engine.TrainOptions``) fill in any key a model leaves
#: out; a command-line flag overrides both.
TRAIN_DEFAULTS: dict[str, tuple[str, Any]] = {
    "epochs": ("epochs to train (a positive int)", _positive_int),
    "batch_size": ("samples per mini-batch (a positive int)", _positive_int),
    "optimizer": (f"one of {', '.join(OPTIMIZERS)}", lambda v: v in OPTIMIZERS),
    "lr": ("learning rate (a positive number)", lambda v: _number(v) and v > 0),
    "lr_decay": ("factor applied to the learning rate after every epoch, in (0, 1]",
                 lambda v: _number(v) and 0 < v <= 1),
    "weight_decay": ("L2 weight decay (a number >= 0)", lambda v: _number(v) and v >= 0),
    "patience": ("epochs without dev improvement before early stopping (a positive int)", _positive_int),
    "augment": ("import string of ``augment(x, y, generator) -> (x, y)``, or None", _import_string),
    "clip_grad": ("largest gradient norm (a number > 0), or None", lambda v: v is None or _number(v) and v > 0),
    "bench_batches": ("batch sizes `zoo bench` times (a list of positive ints)",
                      lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(map(_positive_int, v))),
}


def load_object(ref: str) -> Any:
    """Import ``"package.module:attribute"``; the registry stores only these strings so that
    listing models never imports torch."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not attr:
        raise ValueError(f"import string {ref!r} must look like 'package.module:attribute'")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class ModelSpec:
    """One trainable, exportable architecture.

    ``builder`` is called with the merged config (``default_config`` updated by the user's
    overrides) and returns a ``torch.nn.Module``. ``params`` is the declared parameter count of
    the default config; the conformance kit checks it against the built module.
    """

    name: str
    family: str
    task: str
    summary: str
    builder: str
    params: int
    paper: str = ""
    default_config: Mapping[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    input_shape: tuple[int, ...] = ()
    preprocessing: Mapping[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    family_default: bool = False
    aliases: tuple[str, ...] = ()
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    #: weights-file converters by file suffix (".weights": "pkg.mod:read_darknet"), called as
    #: ``converter(spec, module, path) -> state_dict``; .safetensors/.pt/.pth need none
    importers: Mapping[str, str] = field(default_factory=dict)
    #: optional import string of a family's own training loop, called as ``trainer(spec, opts)`` and
    #: returning a ``zoo.engine.TrainResult`` (word vectors: corpus streams, not per-sample batches)
    trainer: str = ""
    #: trained weights the plugin ships as package data: ``"package:folder"``, a folder inside an
    #: importable package (found with ``importlib.resources``) holding ``model.safetensors`` and
    #: ``manifest.json`` exactly as zoo's own ``weights/NAME/``; the store lists them as
    #: ``NAME@shipped``, read-only and verified by their sha256 like zoo's
    weights: str = ""

    def validate(self) -> None:
        for attr in ("name", "family", "task"):
            value = getattr(self, attr)
            if not isinstance(value, str) or not NAME_RE.match(value):
                raise ValueError(f"{attr} {value!r} must be lower-case letters, digits and -_.")
        if ":" not in self.builder:
            raise ValueError(f"builder {self.builder!r} must be an import string 'module:function'")
        if not isinstance(self.params, int) or self.params <= 0:
            raise ValueError(f"params must be a positive int, got {self.params!r}")
        if not self.summary:
            raise ValueError("summary is empty")
        if not isinstance(self.train_defaults, Mapping):
            raise ValueError(f"model {self.name!r}: train_defaults must be a dict")
        unknown = sorted(str(k) for k in self.train_defaults if k not in TRAIN_DEFAULTS)
        if unknown:
            close = [m for k in unknown for m in difflib.get_close_matches(k, TRAIN_DEFAULTS, n=1)]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(f"model {self.name!r}: unknown train_defaults key(s) {', '.join(unknown)}{hint}; "
                             f"known: {', '.join(TRAIN_DEFAULTS)}")
        for key, value in self.train_defaults.items():
            what, check = TRAIN_DEFAULTS[key]
            if not check(value):
                raise ValueError(f"model {self.name!r}: train_defaults[{key!r}] is {value!r}; it must be {what}")
        if self.weights and (not isinstance(self.weights, str) or not RESOURCE_RE.match(self.weights)):
            raise ValueError(f"model {self.name!r}: weights {self.weights!r} must name a folder inside a package, "
                             f"as 'package:relative/folder' (e.g. 'mypkg:weights/{self.name}')")

    def config(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        merged = dict(self.default_config)
        if overrides:
            unknown = set(overrides) - set(merged)
            if unknown:
                raise ValueError(
                    f"unknown config key(s) {sorted(unknown)} for {self.name}; "
                    f"known: {sorted(merged) or 'none'}"
                )
            merged.update(overrides)
        return merged

    def build(self, overrides: Mapping[str, Any] | None = None):
        return load_object(self.builder)(self.config(overrides))

    def preprocessing_for(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The preprocessing for a merged config: a config that sets ``image_size`` (a smaller
        input so that a large network trains on a CPU) gets a crop of that size, and any
        ``resize`` before the crop scaled in proportion."""
        pre = dict(self.preprocessing)
        size = (config or {}).get("image_size")
        if size and "size" in pre and list(pre["size"]) != [size, size]:
            if "resize" in pre:
                pre["resize"] = round(pre["resize"] * size / pre["size"][0])
            pre["size"] = [size, size]
        return pre


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset that loads offline. ``loader`` is called as ``loader(path=None, seed=0, **options)``
    and returns a ``zoo.data.Splits``; ``source`` says where the data comes from."""

    name: str
    task: str
    summary: str
    loader: str
    source: str

    def validate(self) -> None:
        if not NAME_RE.match(self.name):
            raise ValueError(f"dataset name {self.name!r} is not valid")
        if ":" not in self.loader:
            raise ValueError(f"loader {self.loader!r} must be an import string")


@dataclass(frozen=True)
class TaskOption:
    """A ``zoo run`` option a task understands, declared as data so ``--help`` imports nothing."""

    name: str  # the long flag without dashes, e.g. "top-k"
    type: str  # "int", "float", "str", "path" or "flag"
    default: Any
    help: str

    @property
    def key(self) -> str:
        """The option's name in a task's ``options`` dict (``top-k`` -> ``top_k``)."""
        return self.name.replace("-", "_")


@dataclass(frozen=True)
class TaskSpec:
    """A task owns its pre/post-processing and metric; ``impl`` names a ``zoo.runtime.tasks.Task``
    subclass written with numpy and Pillow only. ``options`` are the only place a run option's
    default is written: the task reads them through ``Task.with_defaults``."""

    name: str
    summary: str
    impl: str
    options: tuple[TaskOption, ...] = ()

    def validate(self) -> None:
        if not NAME_RE.match(self.name):
            raise ValueError(f"task name {self.name!r} is not valid")
        if ":" not in self.impl:
            raise ValueError(f"impl {self.impl!r} must be an import string")

    def defaults(self) -> dict[str, Any]:
        """Each option's default, keyed as tasks read them (``{"top_k": 5, ...}``)."""
        return {option.key: option.default for option in self.options}

    def load(self):
        """An instance of ``impl`` that knows this spec (``Task.spec``), so that it fills the
        options it is given with their defaults however it is called."""
        task = load_object(self.impl)()
        task.spec = self
        return task


@dataclass(frozen=True)
class ExporterSpec:
    """An export format: ``export`` is called as ``export(spec, module, out, **options)``;
    ``suffix`` is the file suffix of what it writes, or "" for a folder."""

    name: str
    summary: str
    export: str
    suffix: str

    def validate(self) -> None:
        if not NAME_RE.match(self.name):
            raise ValueError(f"exporter name {self.name!r} is not valid")
