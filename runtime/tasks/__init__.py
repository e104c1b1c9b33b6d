"""Tasks own everything around a network that is not the network: turning raw inputs into
arrays, outputs into answers, and the metric used in evaluation. One implementation per task is
shared by training evaluation, the export parity check and ``zoo run``; numpy and Pillow only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

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


class Task:
    """Base class for a task implementation (see ``TaskSpec.impl``)."""

    name = ""
    #: the metric (a key of ``metric()``'s result) that early stopping and model choice follow
    primary_metric = "accuracy"
    higher_is_better = True
    #: what the Python API wraps each of ``run``'s result dicts in (``zoo.runtime.results``)
    result_type: type = Result
    #: the kinds of input ``run`` accepts, checked by the Python API before it calls ``run``:
    #: ``path`` (a file name, str or Path), ``pil`` (a PIL image), ``array`` (a numpy array),
    #: ``str`` (a text); by default all of them
    input_kinds: tuple[str, ...] = ("path", "pil", "array", "str")

    def encode_inputs(self, raw: Sequence[Any], meta: dict[str, Any]) -> np.ndarray:
        """Raw samples (images as uint8 arrays, strings, ...) -> the network's input array."""
        raise NotImplementedError

    def encode_targets(self, raw: Sequence[Any], targets: Any, meta: dict[str, Any]) -> np.ndarray:
        """Targets as the loss wants them; ``raw`` is given so that geometry can follow the
        inputs' preprocessing (boxes through a letterbox, say)."""
        return np.asarray(targets)

    def metric(self, outputs: np.ndarray, targets: np.ndarray, meta: dict[str, Any]) -> dict[str, float]:
        raise NotImplementedError

    def run(self, artifact, inputs: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
        """``zoo run``: inputs as typed on the command line -> one result dict per input."""
        raise NotImplementedError

    def format(self, result: dict[str, Any]) -> str:
        raise NotImplementedError

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
