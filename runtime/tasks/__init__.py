"""Tasks own everything around a network that is not the network: turning raw inputs into
arrays, outputs into answers, and the metric used in evaluation. One implementation per task is
shared by training evaluation, the export parity check and ``zoo run``; numpy and Pillow only."""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from zoo.errors import ZooError
from zoo.hookspecs import hookimpl
from zoo.runtime.results import Result
from zoo.specs import TaskOption, TaskSpec


@dataclass(frozen=True)
class Agreement:
    """How closely a reduced-precision variant (``zoo export --fp16``) answers as the float32
    artifact does on the same inputs: ``agree`` of ``total`` samples, ``what`` the criterion."""

    agree: int
    total: int
    what: str


def top1_agreement(reference: np.ndarray, candidate: np.ndarray) -> Agreement:
    """Samples whose highest-scoring class is the same in both (N, classes) outputs."""
    return Agreement(int((reference.argmax(-1) == candidate.argmax(-1)).sum()), len(reference), "top-1 agreement")


@dataclass
class Prepared:
    """One input made ready by ``Task.preprocess``: ``input`` names it in its result (a path,
    an in-memory image, a text), ``array`` is its row of the batch (``Task.collate`` stacks the
    rows), ``info`` is what ``postprocess`` needs besides the network's answer (the original
    size, the letterbox, the words left out)."""

    input: Any
    array: Any
    info: Any = None


@dataclass
class Batch:
    """What one step of ``Task.batches`` gives: the results of consecutive inputs, the inputs
    behind them (``sources``, for ``plot()``), and where the time went: ``preprocess_s`` is the
    sum of the inputs' own pre-processing times (measured on the worker threads, so it may
    overlap the previous batch's inference), ``predict_s`` and ``postprocess_s`` the wall time of
    ``predict`` and of the ``postprocess`` calls. A task that overrides ``run`` is timed by its
    caller instead, and leaves them None."""

    results: list[dict[str, Any]]
    sources: list[Any]
    preprocess_s: float | None = None
    predict_s: float | None = None
    postprocess_s: float | None = None


#: batches read ahead of the one being predicted (0: the serial path, decode then predict)
PREFETCH = 1


def default_workers() -> int:
    """Threads that pre-process the next batch: decoding in Pillow and numpy's array work
    release the GIL, so a few threads keep up with onnxruntime; more than the cores is waste."""
    return max(1, min(4, os.cpu_count() or 1))


def _timed(fn, *args) -> tuple[Any, float, BaseException | None]:
    """``fn(*args)``, its wall time and the exception it raised (kept for its input's turn)."""
    began = time.perf_counter()
    try:
        return fn(*args), time.perf_counter() - began, None
    except Exception as exc:  # reported when its input is reached, never ahead of earlier results
        return None, time.perf_counter() - began, exc


class _Now:
    """A finished ``Future`` look-alike: the serial path runs ``preprocess`` on the spot."""

    def __init__(self, value):
        self._value = value

    def result(self):
        return self._value


class Task:
    """Base class for a task implementation (see ``TaskSpec.impl``)."""

    name = ""
    #: the metric (a key of ``metric()``'s result) that early stopping and model choice follow
    primary_metric = "accuracy"
    higher_is_better = True
    #: what the Python API wraps each result dict in (``zoo.runtime.results``)
    result_type: type = Result
    #: the kinds of input the task reads, checked by the Python API before any work:
    #: ``path`` (a file name, str or Path), ``pil`` (a PIL image), ``array`` (a numpy array),
    #: ``str`` (a text); by default all of them
    input_kinds: tuple[str, ...] = ("path", "pil", "array", "str")
    #: the spec this task was loaded from (``TaskSpec.load`` sets it): its ``options`` hold the
    #: run options' defaults; None for a task made directly, which then has no defaults
    spec: TaskSpec | None = None

    def with_defaults(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` with every option the spec declares and the call left out (or gave as
        None) set to the spec's default: the one way a task gets its defaults, so that a task
        called directly (``run(artifact, inputs, {})``, ``begin``, ``val_report``) answers as
        ``zoo run`` and the Python API do. Keys the spec does not declare pass unchanged."""
        filled = dict(options)
        for key, default in (self.spec.defaults() if self.spec is not None else {}).items():
            if filled.get(key) is None:
                filled[key] = default
        return filled

    def encode_inputs(self, raw: Sequence[Any], meta: dict[str, Any]) -> np.ndarray:
        """Raw samples (images as uint8 arrays, strings, ...) -> the network's input array."""
        raise NotImplementedError

    def encode_targets(self, raw: Sequence[Any], targets: Any, meta: dict[str, Any]) -> np.ndarray:
        """Targets as the loss wants them; ``raw`` is given so that geometry can follow the
        inputs' preprocessing (boxes through a letterbox, say)."""
        return np.asarray(targets)

    def metric(self, outputs: np.ndarray, targets: np.ndarray, meta: dict[str, Any]) -> dict[str, float]:
        raise NotImplementedError

    def calibrate(self, outputs: np.ndarray, targets: np.ndarray, meta: dict[str, Any]) -> dict[str, Any]:
        """Run-time settings chosen on the dev split when training ends (``outputs`` are the best
        epoch's on it): they join the manifest's ``task_meta``, so every export carries them and
        ``zoo run`` uses them where the user gives no value. None by default; a detector's score
        threshold, say."""
        return {}

    # -- ``zoo run`` and the Python API -----------------------------------------------------------
    # A task writes the per-input pieces, and ``batches`` composes them: ``begin`` once, then for
    # each input ``preprocess`` (on a small thread pool, the next batch while the current one is
    # in onnxruntime), ``collate`` and ``predict`` a batch at a time, ``postprocess`` each input.
    # A task whose work is not one batched call per batch (decoding loops, sampling, face
    # pipelines, answers about the call as a whole) overrides ``run`` instead; ``batches`` then
    # hands it the inputs a batch at a time, as before the per-input pieces existed.
    default_batch_size = 32

    def begin(self, artifact, inputs: Sequence[Any] | None, options: dict[str, Any]) -> dict[str, Any]:
        """Once per call, before any input is read: refuse bad options and derive what every
        input shares (checked thresholds, where drawn images go); returns the options the other
        steps read. ``inputs`` is the call's list of inputs when it has one (``run``; a stream
        with a path option), None when they are streamed. By default the options with their
        defaults filled (``with_defaults``); an override starts from ``super().begin(...)``."""
        return self.with_defaults(options)

    def expand(self, inputs: Iterable[Any]) -> Iterator[Any]:
        """The inputs one by one as ``preprocess`` takes them, read lazily: image tasks replace
        folders and patterns by their files (``zoo.runtime.images.iter_images``)."""
        yield from inputs

    def preprocess(self, artifact, item: Any, options: dict[str, Any]) -> Prepared:
        """One input -> its ``Prepared`` row. Runs on a worker thread: read ``artifact.meta``,
        open no session. A ``ZooError`` here is that input's alone: the inputs before it are
        answered first, then the call fails naming it."""
        raise NotImplementedError

    def collate(self, prepared: Sequence[Prepared]) -> Any:
        """The rows of a batch -> what ``predict`` takes: by default stacked along a first axis."""
        return np.stack([p.array for p in prepared])

    def predict(self, artifact, batch: Any, options: dict[str, Any]) -> Sequence[Any]:
        """A collated batch -> one output per input, in order (the graph call, and what is
        cheaper on the whole batch than per input: softmax, box decoding)."""
        raise NotImplementedError

    def postprocess(self, artifact, prepared: Prepared, output: Any, options: dict[str, Any]) -> dict[str, Any]:
        """One input's output -> its JSON-able result dict (``zoo run --json``'s object)."""
        raise NotImplementedError

    def run(self, artifact, inputs: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        """Inputs as typed on the command line (or given to the Python API) -> one result dict
        per input: by default the per-input pieces composed by ``batches``. Overriding ``run``
        is the batch-level contract (and the one plugins written before the per-input pieces
        use): the override does everything for the inputs it is given, starting from
        ``self.with_defaults(options)``."""
        return [r for batch in self.batches(artifact, inputs, options) for r in batch.results]

    def format(self, result: dict[str, Any]) -> str:
        raise NotImplementedError

    @property
    def per_input(self) -> bool:
        """Whether this task is run through its per-input pieces (it does not override ``run``)."""
        return type(self).run is Task.run

    def batches(self, artifact, inputs: Iterable[Any], options: dict[str, Any], batch_size: int | None = None,
                prefetch: int = PREFETCH, workers: int | None = None) -> Iterator[Batch]:
        """The results of ``inputs`` (any iterable, read lazily) a batch at a time. Per-input
        tasks are pipelined: while ``predict`` runs on batch k, the inputs of batches k+1 ..
        k+``prefetch`` are pre-processed on ``workers`` threads, so at most ``prefetch`` + 1
        batches of inputs are read ahead of the results handed out (``prefetch=0``: the serial
        path). A list or tuple is the call's whole list (``begin`` sees it; a task that
        overrides ``run`` is called once with it); any other iterable is streamed."""
        options = self.with_defaults(options)
        size = max(1, int(batch_size or options.get("batch_size") or self.default_batch_size))
        prefetch = max(0, int(prefetch))
        if not self.per_input:
            yield from self._run_batches(artifact, inputs, options, size)
            return
        options = self.begin(artifact, list(inputs) if isinstance(inputs, (list, tuple)) else None, options)
        items = self.expand(inputs)
        pool = ThreadPoolExecutor(workers or default_workers(), thread_name_prefix="zoo-preprocess") \
            if prefetch > 0 else None
        pending: deque[list[Any]] = deque()
        exhausted = False

        def read_batch() -> bool:
            """Read the next batch of inputs and start pre-processing them; an input that
            cannot even be listed (a missing file, an empty folder) fails at its own turn."""
            nonlocal exhausted
            if exhausted:
                return False
            chunk: list[Any] = []
            try:
                for item in islice(items, size):
                    chunk.append(pool.submit(_timed, self.preprocess, artifact, item, options) if pool else
                                 _Now(_timed(self.preprocess, artifact, item, options)))
            except Exception as exc:
                chunk.append(_Now((None, 0.0, exc)))
                exhausted = True
            exhausted = exhausted or len(chunk) < size
            if chunk:
                pending.append(chunk)
            return bool(chunk)

        try:
            while True:
                while len(pending) <= prefetch and read_batch():
                    pass  # the next batches decode while this one is predicted
                if not pending:
                    return
                done = [future.result() for future in pending.popleft()]
                failed = next((i for i, (_, _, exc) in enumerate(done) if exc is not None), None)
                good = [p for p, _, _ in (done if failed is None else done[:failed])]
                if good:
                    yield self._answer(artifact, good, sum(s for _, s, _ in done[:len(good)]), options)
                if failed is not None:
                    raise done[failed][2]
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _answer(self, artifact, prepared: list[Prepared], preprocess_s: float, options: dict[str, Any]) -> Batch:
        began = time.perf_counter()
        outputs = list(self.predict(artifact, self.collate(prepared), options))
        predicted = time.perf_counter()
        if len(outputs) != len(prepared):
            raise ZooError(f"{self.name}: predict gave {len(outputs)} outputs for {len(prepared)} inputs")
        results = [self.postprocess(artifact, p, out, options) for p, out in zip(prepared, outputs)]
        return Batch(results, [p.input for p in prepared], preprocess_s, predicted - began,
                     time.perf_counter() - predicted)

    def _run_batches(self, artifact, inputs: Iterable[Any], options: dict[str, Any], size: int) -> Iterator[Batch]:
        """A task that overrides ``run``: called once with a list of inputs, or with a batch of
        streamed inputs at a time (once with none for a task that needs none, ``prime=...``);
        its results name their own inputs when a folder grew into several."""
        if isinstance(inputs, (list, tuple)):  # the call's whole list: one call, as run answers about it all
            results = self.run(artifact, list(inputs), options)
            yield Batch(results, list(inputs) if len(inputs) == len(results) else [r.get("input") for r in results])
            return
        items, called = iter(inputs), False
        while True:
            chunk = list(islice(items, size))
            if not chunk and called:
                return
            called = True
            results = self.run(artifact, chunk, options)
            yield Batch(results, chunk if len(chunk) == len(results) else [r.get("input") for r in results])
            if not chunk:
                return

    # -- scoring an artifact on a labelled set (``zoo val``) ------------------------------------
    def runtime_outputs(self, artifact, raw: Sequence[Any], targets: np.ndarray, meta: dict[str, Any],
                        batch_size: int = 64) -> np.ndarray:
        """What ``metric`` takes, computed through the artifact instead of PyTorch: by default
        the single graph's first output, a batch of encoded inputs at a time. Tasks with step
        graphs run them here (with the encoded ``targets`` for teacher forcing)."""
        session = artifact.session()
        name = session.get_inputs()[0].name
        return np.concatenate([session.run(None, {name: self.encode_inputs(raw[i: i + batch_size], meta)})[0]
                               for i in range(0, len(raw), batch_size)])

    def val_report(self, artifact, raw: Sequence[Any], targets: Any, outputs: np.ndarray,
                   encoded: np.ndarray, options: dict[str, Any]) -> dict[str, Any]:
        """Figures beyond ``metric`` for ``zoo val`` (per-class figures, a plot written to
        ``options["plot"]``); none by default."""
        return {}

    def compare_precision(self, reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray],
                          meta: dict[str, Any]) -> Agreement:
        """``zoo export --fp16``: does the half-precision graph answer as the float32 one? Both
        are the single graph's outputs (batch first) on the same inputs. By default a sample
        agrees when each of its output values lies within 1% of that output's largest float32
        magnitude; a task whose answer is a decision overrides this with the decision itself
        (classification: the top-1 class)."""
        agree = np.ones(len(reference[0]), bool)
        for ref, got in zip(reference, candidate):
            ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
            scale = max(float(np.abs(ref).max(initial=0)), 1e-6)
            agree &= (np.abs(ref - got) <= 0.01 * scale).reshape(len(ref), -1).all(axis=1)
        return Agreement(int(agree.sum()), len(agree),
                         "agreement (every output within 1% of its largest float32 value)")

    def relabel(self, targets: Any, index: np.ndarray) -> Any:
        """Targets numbered by a dataset's labels -> numbered by the model's (``index[i]`` is the
        model's number of the dataset's label ``i``); tasks without class targets refuse."""
        raise ZooError(f"{self.name}: the data's labels differ from the model's and this task cannot map them")


@hookimpl
def zoo_tasks() -> list[TaskSpec]:
    return [
        TaskSpec(
            name="image-classification",
            summary="one label per image: softmax and top-k over the artifact's labels",
            impl="zoo.runtime.tasks.classification:ImageClassification",
            options=(
                TaskOption("top-k", "int", 5, "how many classes to show per image"),
                TaskOption("batch-size", "int", 32, "images per onnxruntime call"),
            ),
        ),
    ]
