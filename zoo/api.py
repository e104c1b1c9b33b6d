"""The Python API: what ``zoo list``, ``zoo run``, ``zoo train`` and ``zoo export`` do, callable
from Python with Python objects.

    import zoo
    zoo.list_models("res*", task="image-classification")
    m = zoo.load("lenet5")                  # a name, NAME@TAG, or an artifact path
    m("digit.png").top                      # also a PIL image, a uint8 array, a folder, a list
    for r in m.stream(paths): ...           # a generator: inputs are read a batch at a time

Inference (``list_models``, ``load``, ``Model``) never imports torch; ``train`` and ``export``
import it when called. Results are the task's ``result_type`` (``zoo.runtime.results``), whose
``to_json()`` is exactly what ``zoo run --json`` prints for the same input."""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from zoo.errors import ZooError
from zoo.registry import registry
from zoo.runtime.results import Result
from zoo.runtime.tasks import PREFETCH

PRECISIONS = ("fp32", "fp16", "int8")


def list_models(pattern: str | None = None, task: str | None = None) -> list[dict[str, Any]]:
    """The installed models as ``zoo list --json`` shows them. ``pattern`` is a substring of the
    name or family, or a glob (``res*``) over either."""
    reg = registry()
    specs = sorted(reg.models.values(), key=lambda s: (s.family, _natural(s.name)))
    if pattern:
        pat = pattern.lower()
        if any(c in pat for c in "*?["):
            specs = [s for s in specs if fnmatch.fnmatch(s.name, pat) or fnmatch.fnmatch(s.family, pat)]
        else:
            specs = [s for s in specs if pat in s.name or pat in s.family]
    if task:
        if task not in reg.tasks:
            raise ZooError(f"unknown task {task!r}; tasks: {', '.join(sorted(reg.tasks))}")
        specs = [s for s in specs if s.task == task]
    return [{"name": s.name, "family": s.family, "task": s.task, "params": s.params,
             "input": "x".join(map(str, s.input_shape)) or "-", "weights": _weights_label(s.name),
             "plugin": reg.owner[("model", s.name)]} for s in specs]


def _weights_label(name: str) -> str:
    """The active entry's tag (``shipped``, ``imported``, a run id), ``broken``, or ``-``."""
    from zoo import store

    try:
        entry = store.find(name)
    except ZooError:  # a broken entry must not hide the other models
        return "broken"
    if entry is None:
        return "-"
    return "broken" if entry.broken else entry.tag


def _natural(name: str) -> list[Any]:
    """resnet18 before resnet101."""
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _env_count(name: str, default: int) -> int:
    """A whole number of 0 or more from the environment, else ``default``; anything else is
    refused naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ZooError(f"{name}={raw!r}: give a whole number (0 or more)")
    return int(raw)


class _Clock:
    """Where one task call's time goes. The graph calls (``session.run``) are inference; what
    comes before the first of them is pre-processing (reading, decoding, resizing, encoding);
    the rest is post-processing (decoding outputs, search and sampling between step-graph
    calls, drawing). Opening a session on first use is a one-off cost of loading and is left
    out."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []
        self.opened: list[tuple[float, float]] = []
        self.start = self.stop = 0.0

    def per_result(self, results: int) -> dict[str, Any]:
        """Milliseconds per result: the call's time shared equally among the ``results`` it
        gave (a batch is timed as one), unrounded."""
        total = self.stop - self.start - sum(b - a for a, b in self.opened)
        infer = sum(b - a for a, b in self.calls)
        first = self.calls[0][0] if self.calls else self.stop
        pre = first - self.start - sum(b - a for a, b in self.opened if b <= first) if self.calls else 0.0
        post = max(total - pre - infer, 0.0)
        return self._shared(pre, infer, post, results)

    def per_result_pipelined(self, batch) -> dict[str, Any]:
        """The same for a pipelined batch (``Task.batches``): pre-processing is its inputs' own
        time on the worker threads (overlapping the previous batch's inference), inference the
        graph calls within ``predict``, post-processing the rest of ``predict`` and the
        ``postprocess`` calls."""
        infer = sum(b - a for a, b in self.calls)
        opened = sum(b - a for a, b in self.opened)
        post = max(batch.predict_s - infer - opened, 0.0) + batch.postprocess_s
        return self._shared(batch.preprocess_s, infer, post, len(batch.results))

    @staticmethod
    def _shared(pre: float, infer: float, post: float, results: int) -> dict[str, Any]:
        n = max(results, 1)
        return {"preprocess_ms": pre * 1e3 / n, "inference_ms": infer * 1e3 / n, "postprocess_ms": post * 1e3 / n,
                "batch": results}


class _TimedSession:
    """An onnxruntime session whose ``run`` calls are clocked as inference."""

    def __init__(self, session, clock: _Clock):
        self._session, self._clock = session, clock

    def run(self, *args: Any, **kwargs: Any):
        began = time.perf_counter()
        try:
            return self._session.run(*args, **kwargs)
        finally:
            self._clock.calls.append((began, time.perf_counter()))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


class _TimedArtifact:
    """The artifact as a task sees it during one timed call: the same object in every respect
    (what a task caches on it stays there) except that its sessions are clocked."""

    def __init__(self, artifact, clock: _Clock):
        object.__setattr__(self, "_artifact", artifact)
        object.__setattr__(self, "_clock", clock)

    def session(self, name: str = "model"):
        began = time.perf_counter()
        session = self._artifact.session(name)
        self._clock.opened.append((began, time.perf_counter()))
        return _TimedSession(session, self._clock)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._artifact, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._artifact, name, value)


class Model:
    """An exported model opened for inference, with its task's pre- and post-processing."""

    #: batches pre-processed ahead of the one in onnxruntime (0: decode, then infer, serially);
    #: ``ZOO_PREFETCH`` sets it for a process (``zoo run`` included)
    prefetch: int = PREFETCH
    #: threads that pre-process them (None: ``zoo.runtime.tasks.default_workers()``)
    workers: int | None = None

    def __init__(self, artifact, ref: str | None = None):
        self.artifact = artifact
        self.ref = ref  # the store reference (NAME or NAME@TAG) it was loaded by, if any
        self.prefetch = _env_count("ZOO_PREFETCH", PREFETCH)
        self._spec = registry().task(artifact.task)
        self._task = self._spec.load()

    @property
    def name(self) -> str:
        return self.artifact.model

    @property
    def task(self) -> str:
        return self.artifact.task

    @property
    def meta(self) -> dict[str, Any]:
        return self.artifact.meta

    @property
    def provider(self) -> str:
        """The execution provider the session really uses (after the first call)."""
        return self.artifact.report.used if self.artifact.report else "?"

    @property
    def reads_images(self) -> bool:
        """Whether inputs are images: the artifact declares how an image is preprocessed. Only
        then are folders and glob patterns expanded into files (a text is never a pattern)."""
        return bool(self.meta.get("preprocessing"))

    def __repr__(self) -> str:
        return f"Model({self.name!r}, task={self.task!r}, artifact={str(self.artifact.path)!r})"

    def options(self, **given: Any) -> dict[str, Any]:
        """The task's options with their defaults, updated by ``given`` (``top_k=3``); an option
        the task does not have is refused."""
        known = self._spec.defaults()
        unknown = sorted(set(given) - set(known))
        if unknown:
            near = similar_options(unknown, known)
            hint = f"did you mean {near}? " if near else ""
            raise ZooError(f"{', '.join(unknown)}: not an option of {self.task} "
                           f"({hint}its options: {', '.join(sorted(known)) or 'none'})")
        return {**known, **{k: v for k, v in given.items() if v is not None}}

    def run(self, inputs: Iterable[Any], recursive: bool = False, **options: Any) -> list[Result]:
        """Every input's result, in order; inputs are what the task reads (paths, folders, glob
        patterns, PIL images, uint8 arrays, texts); ``recursive`` reads folders' sub-folders too.
        Each result carries its ``timings`` (milliseconds of pre-processing, inference and
        post-processing, a batch's time shared among its results)."""
        merged = self.options(**options)
        inputs = list(self.expand(inputs, recursive)) if self.reads_images or recursive else \
            [str(x) if isinstance(x, Path) else x for x in inputs]
        self.check_kinds(inputs)
        return list(self._results(inputs, merged))

    def _results(self, inputs: Iterable[Any], merged: dict[str, Any]) -> Iterator[Result]:
        """The task's batches (``Task.batches``: pipelined for a per-input task) as results,
        each with its batch's timings. A list is the call's whole list; any other iterable is
        read lazily."""
        clock = _Clock()
        batches = self._task.batches(_TimedArtifact(self.artifact, clock), inputs, merged,
                                     prefetch=self.prefetch, workers=self.workers)
        while True:
            clock.calls.clear(), clock.opened.clear()
            clock.start = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            clock.stop = time.perf_counter()
            timings = clock.per_result(len(batch.results)) if batch.preprocess_s is None else \
                clock.per_result_pipelined(batch)
            for data, source in zip(batch.results, batch.sources):
                result = self._task.result_type(data, source)
                data["timings"] = dict(timings)
                yield result

    def input_kind(self, item: Any) -> str:
        """``path``, ``pil``, ``array`` or ``str`` (the kinds a task declares), else the type's name."""
        if isinstance(item, (str, Path)):
            return "path" if self.reads_images else "str"
        if type(item).__module__.split(".")[0] == "PIL" or type(item).__name__ == "ImageInput":
            return "pil"
        if type(item).__module__ == "numpy" and type(item).__name__ == "ndarray":
            return "array"
        return type(item).__name__

    def check_kinds(self, inputs: Sequence[Any]) -> None:
        """Refuse, before any work, an input of a kind the task does not read (an image for a
        translator, a number for a classifier), naming it and what the task takes."""
        for number, item in enumerate(inputs):
            self._check_kind(number, item)

    def _check_kind(self, number: int, item: Any) -> None:
        accepted = tuple(getattr(self._task, "input_kinds", ()) or ())
        kind = self.input_kind(item)
        if accepted and kind not in accepted:
            raise ZooError(f"input {number}: {self.name} ({self.task}) reads {', '.join(accepted)} inputs, "
                           f"not {kind}")

    def __call__(self, *inputs: Any, **options: Any) -> Result | list[Result]:
        """``m(x)`` for one input gives its result, as does ``m(prime="The ")`` for a task that
        needs no input; several inputs, a list or a folder give a list."""
        single = not inputs or (len(inputs) == 1 and not isinstance(inputs[0], (list, tuple)))
        items = list(inputs[0]) if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)) else list(inputs)
        results = self.run(items, **options)
        return results[0] if single and len(results) == 1 else results

    def format(self, result: Result) -> str:
        """The result as ``zoo run`` prints it."""
        return self._task.format(result.to_json())

    def stream(self, inputs: Iterable[Any], recursive: bool = False, **options: Any) -> Iterator[Result]:
        """Results as they are ready, reading ``inputs`` (any iterable, folders and patterns
        expanded) a batch at a time (``batch_size``, else the task's default), so memory stays
        bounded however many there are. With a path option (one file to save or read, say) the
        task sees all the inputs in one call, as it numbers its outputs per call; a task that
        takes no inputs (``prime=...``) is called once."""
        merged = self.options(**options)
        paths = {opt.key for opt in self._spec.options if opt.type == "path"}
        if any(options.get(key) for key in paths):
            yield from self.run(list(inputs), recursive, **options)
            return
        yield from self._results(self._checked(self.expand(inputs, recursive)), merged)

    def _checked(self, items: Iterable[Any]) -> Iterator[Any]:
        """``check_kinds`` for a stream: each input as it is read, numbered in the stream."""
        for number, item in enumerate(items):
            self._check_kind(number, item)
            yield item

    def expand(self, inputs: Iterable[Any], recursive: bool = False) -> Iterator[Any]:
        """The inputs one by one, with folders and glob patterns replaced by the image files
        they hold when the model reads images (``recursive``: sub-folders too)."""
        from zoo.runtime.images import collect_images, is_pattern

        if recursive and not self.reads_images:
            raise ZooError(f"--recursive: {self.name} ({self.task}) does not read image folders")
        for item in inputs:
            if isinstance(item, Path):
                item = str(item)
            if self.reads_images and isinstance(item, str) and (is_pattern(item) or Path(item).is_dir()):
                yield from (str(p) for p in collect_images([item], recursive))
            else:
                yield item


def similar_options(unknown: Iterable[str], known: Iterable[str], sep: str = "_") -> str:
    """Known options whose name holds an unknown one as a word (``top_k`` -> ``sample_top_k``),
    for the error that refuses it."""
    near = [k for k in sorted(known) for u in unknown
            if k != u and (k.endswith(sep + u) or k.startswith(u + sep) or (sep + u + sep) in k)]
    return ", ".join(dict.fromkeys(near))


def load(target: str | Path, provider: str = "auto", export_missing: bool = True,
         precision: str = "fp32", threads: int | None = None) -> Model:
    """Open a model for inference: an artifact path, or a model name (``NAME``, ``NAME@TAG``)
    whose export is in the user store; ``precision`` "fp16" or "int8" takes the variant
    ``zoo export --fp16/--int8`` wrote beside it; ``threads`` is onnxruntime's intra-op thread
    count (None: onnxruntime's default, one per physical core). A model with weights but no
    export yet is exported first (``export_missing``) when the ``train`` extra (torch) is
    installed; without it the error says what to install."""
    from zoo.runtime.artifact import open_artifact
    from zoo.runtime.session import check_threads

    check_threads(threads)
    target = str(target)
    if precision != "fp32":
        if precision not in PRECISIONS:
            raise ZooError(f"precision {precision!r}: choose {', '.join(PRECISIONS)}")
        path, ref = resolve_artifact(target)
        variant = path.with_name(f"{path.stem}-{precision}{path.suffix}")
        if not variant.is_file():
            raise ZooError(f"no {precision} variant of {target} ({variant}): `zoo export {target} --{precision}`")
        return Model(open_artifact(variant, provider, threads), None)
    try:
        path, ref = resolve_artifact(target)
    except ZooError:
        if not export_missing or not _has_weights_only(target):
            raise
        if importlib.util.find_spec("torch") is None:
            raise ZooError(f"{target} has weights but no exported artifact, and exporting needs PyTorch: "
                           f"pip install 'zoo[train]', then `zoo export {target}`") from None
        export(target)
        path, ref = resolve_artifact(target)
    artifact = open_artifact(path, provider, threads)
    if ref:
        _warn_if_stale(ref, artifact)
    return Model(artifact, ref)


def resolve_artifact(target: str) -> tuple[Path, str | None]:
    """A path to an artifact, or a model name (``NAME``, ``NAME@TAG``, ``NAME@random``) whose
    export lives in the user store; with the store reference the artifact was made from."""
    from zoo import store

    path = Path(target)
    if path.exists() or path.suffix == ".onnx" or os.sep in target:
        if not path.exists():
            raise ZooError(f"{path}: no such artifact")
        return path, None
    model, tag = store.split_ref(target)
    spec = registry().model(model)
    stem = f"{spec.name}@{tag}" if tag else spec.name
    for candidate in (store.exports_dir() / f"{stem}.onnx", store.exports_dir() / stem):
        if candidate.exists():
            return candidate, (None if tag == store.RANDOM else stem)
    if tag == store.RANDOM:
        raise ZooError(f"no random-weights export of {spec.name}: `zoo export {spec.name} --random-weights`")
    if (store.require(stem) if tag else store.find(stem)) is None:
        raise ZooError(f"no weights for {spec.name}: train with `zoo train {spec.name}` or import with "
                       f"`zoo weights import {spec.name} FILE`, then `zoo export {spec.name} --onnx`")
    needs = "" if importlib.util.find_spec("torch") else " (exporting needs PyTorch: pip install 'zoo[train]')"
    raise ZooError(f"{stem} has weights but no exported artifact: run `zoo export {stem} --onnx` first{needs}")


def _warn_if_stale(ref: str, artifact) -> None:
    """``zoo run NAME`` runs the export of NAME's active weights: say so when they changed since."""
    from zoo import store
    from zoo.runtime.session import warn

    try:
        entry = store.find(ref)
    except ZooError:
        return
    made_from = artifact.meta.get("weights_sha256") or ""
    if entry is None or entry.broken or not made_from or made_from == entry.sha256:
        return
    was = artifact.meta.get("weights_tag")
    was = f"{entry.model}@{was}, weights {made_from[:12]}" if was else f"weights {made_from[:12]}"
    warn(f"{artifact.path} was exported from {was}, but {ref} is now {entry.ref}, weights {entry.sha256[:12]}; "
         f"`zoo export {ref}` to refresh it")


def _has_weights_only(target: str) -> bool:
    from zoo import store

    if Path(target).exists() or target.endswith(".onnx"):
        return False
    try:
        return store.find(target) is not None
    except ZooError:
        return False


def val(target: str | Path, data: str | None = None, dataset: str | None = None, split: str | None = None,
        provider: str = "auto", batch_size: int = 64, **options: Any) -> dict[str, Any]:
    """``zoo val``: score a model's artifact through the runtime, as users will run it, on a
    labelled set: by default the test split of the dataset its weights were trained on (so the
    figure must equal the manifest's), or ``data`` (your folder or file, read as ``dataset``:
    ``image-folder``, ``yolo-txt``, ``coco-json``, ``parallel-tsv``...), all of it unless
    ``split`` says otherwise. ``options`` go to the task's report (``plot="confusion.png"``,
    ``beam=5``)."""
    from zoo.data import call_loader
    from zoo.specs import load_object

    model = load(target, provider)
    reg = registry()
    manifest = _manifest(model)
    name = dataset or manifest.get("dataset")
    if not name:
        raise ZooError(f"{model.name}: no dataset recorded for these weights; give one (`--dataset NAME`, "
                       f"datasets: {', '.join(sorted(reg.datasets))})")
    spec = reg.dataset(name)
    if spec.task != model.task:
        raise ZooError(f"dataset {name!r} is for {spec.task}, but {model.name} is {model.task}")
    own = data is None and name == manifest.get("dataset")
    if data is None and own:
        data = (manifest.get("training") or {}).get("data")
    split = split or ("test" if own else "all")
    if split not in ("train", "dev", "test", "all"):
        raise ZooError(f"split {split!r}: choose train, dev, test or all")
    splits = call_loader(load_object(spec.loader), data, seed=manifest.get("split_seed", 0),
                         only=None if split == "all" else split)
    parts = (splits.train, splits.dev, splits.test) if split == "all" else (getattr(splits, split),)
    raw = [x for part in parts for x in part.inputs]
    targets = [t for part in parts for t in part.targets]
    if not raw:
        raise ZooError(f"{name}: the {split} split is empty")
    task, meta = model._task, model.meta
    targets = _model_numbering(task, targets, list(splits.labels), list(meta.get("labels") or []), name)
    encoded = task.encode_targets(raw, np.asarray(targets) if not isinstance(targets[0], np.ndarray) else targets,
                                  meta)
    outputs = task.runtime_outputs(model.artifact, raw, encoded, meta, batch_size)
    metrics = task.metric(outputs, encoded, meta)
    recorded = {key[len(split) + 1:]: value for key, value in (meta.get("metrics") or {}).items()
                if own and key.startswith(f"{split}_")}
    # weights stored in float16 were scored both ways when they were stored: what these stored
    # weights give is the float16 figure
    half = (meta.get("metrics") or {}).get("fp16_check") or {}
    recorded.update({k: v["float16"] for k, v in half.items() if k in recorded and isinstance(v, dict)})
    report = task.val_report(model.artifact, raw, targets, outputs, encoded, options)
    return {"model": model.name, "artifact": str(model.artifact.path), "provider": model.provider,
            "dataset": name, "data": data, "split": split, "samples": len(raw), "metrics": metrics,
            "recorded": {k: v for k, v in recorded.items() if k in metrics}, **report}


def _manifest(model: Model) -> dict[str, Any]:
    """The weights entry behind a model loaded by name, for its dataset and split seed."""
    from zoo import store

    if not model.ref:
        return {}
    try:
        entry = store.find(model.ref)
    except ZooError:
        return {}
    return dict(entry.manifest) if entry else {}


def _model_numbering(task, targets: list[Any], data_labels: list[str], model_labels: list[str], name: str):
    """A folder's classes are numbered in its own (sorted) order: renumber them as the model's."""
    if not data_labels or not model_labels or data_labels == model_labels:
        return targets
    unknown = [label for label in data_labels if label not in model_labels]
    if unknown:
        raise ZooError(f"{name}: class(es) {', '.join(unknown[:5])} are not among the model's labels "
                       f"({', '.join(model_labels[:10])}{', ...' if len(model_labels) > 10 else ''})")
    return task.relabel(targets, np.asarray([model_labels.index(label) for label in data_labels]))


def train(name: str, **options: Any):
    """``zoo train NAME``: options are ``zoo.engine.TrainOptions`` fields (``epochs=3``,
    ``lr=1e-3``, ``data="folder/"``); returns the engine's ``TrainResult``."""
    from zoo.engine import TrainOptions, train as run_training

    try:
        opts = TrainOptions(progress=options.pop("progress", False), **options)
    except TypeError as exc:
        raise ZooError(f"zoo.train: {exc}") from None
    return run_training(name, opts)


def export(name: str, **options: Any):
    """``zoo export NAME``: options are ``zoo.modelio.export_model``'s (``fp16=True``,
    ``out="model.onnx"``); returns the export report (checker and parity figures)."""
    from zoo.modelio import export_model

    return export_model(name, **options)

