"""What a model's module may define beyond ``forward``: the optional hooks zoo's engine, importer
and exporters call, typed in one place.

A builder returns a ``torch.nn.Module``; ``forward(x)`` on the encoded inputs of the model's task
is all zoo needs. Everything in :class:`ZooModule` is optional: a module defines the members it
needs and zoo uses a default for the rest. The Protocol is the contract's single statement, for
plugin authors (``mypy`` checks a module class against it) and for zoo's core, which looks a hook
up only through :func:`hook`, so that a misspelt hook name in zoo is an error and a hook that is
not callable is refused with a message naming the module instead of failing somewhere deeper.

This module imports neither torch nor numpy at run time: the types are for readers and checkers.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from zoo.errors import ZooError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from zoo.specs import ModelSpec


@dataclass
class Graph:
    """One graph to export, as ``ZooModule.export_graphs`` returns them (also importable as
    ``zoo.exporters.onnx.Graph``): ``inputs(batch, seed)`` makes example inputs; the tracing call
    uses seed 0 and the parity checks other seeds and batch sizes. Defined here, not in the
    exporter, so that a model module names it without importing the exporter."""

    name: str
    module: Any
    inputs: Callable[[int, int], tuple]
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    #: "auto": TorchScript tracing first (a fraction of a second) and the torch.export-based
    #: exporter when that fails or its graph fails the checker or parity; "torch.export": that
    #: exporter only (for graphs that tracing is known to get wrong)
    exporter: str = "auto"


class ZooModule(Protocol):
    """The optional members of a model's ``torch.nn.Module`` (every one may be left out)."""

    #: (C, H, W) of one input when it differs from ``ModelSpec.input_shape`` (a config that sets
    #: ``image_size``, say); used to make the export's example inputs. Default: the spec's.
    input_shape: tuple[int, ...]

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch, a scalar tensor (``outputs`` as ``forward_train`` or
        ``forward`` returns them, ``targets`` as the task's ``encode_targets`` made them).
        Default: ``torch.nn.functional.cross_entropy(outputs, targets)``. Also used for the
        dev and test loss."""
        ...

    def forward_train(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The outputs when computing them needs the targets (teacher forcing in a decoder);
        used in training and in the dev/test evaluation. Default: ``self(x)``."""
        ...

    def freeze(self, upto: str) -> None:
        """``zoo train --freeze UPTO``: set ``requires_grad=False`` on what should not train
        (``"head"``: everything but the classifier, or a stage name the model documents), keeping
        the batch-norm statistics of frozen parts fixed. Raise ``ZooError`` for an unknown
        ``upto``. Training starts from the installed weights. Without it, ``--freeze`` is refused."""
        ...

    def export_graphs(self, samples: np.ndarray | None) -> list[Graph]:
        """The ONNX graphs of the artifact (:class:`Graph`: a module, an example
        input maker, input/output names and dynamic axes). ``samples`` are real encoded dev
        inputs (or None) to trace and check parity on. One graph makes an ``.onnx`` file, several
        (an encoder and a decoder step) a folder with ``zoo.json``. Default: one graph
        ``input`` (N, *input_shape) float32 -> ``logits``."""
        ...

    def imported_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``zoo weights import``: the published state dict -> this module's keys (rename, drop
        an auxiliary head the file carries). Default: the state dict as read. The result must
        then match the module's state dict exactly (keys, shapes, dtypes, finite values)."""
        ...

    def darknet_layers(self) -> list[tuple[str, str | None]]:
        """For Darknet ``.weights`` imports (``zoo.plugins.darknet``): the (conv, batch-norm or
        None) state-dict prefixes in the file's order. Without it a ``.weights`` file is refused."""
        ...


#: the names :func:`hook` accepts: every member ZooModule declares
HOOKS = frozenset(name for name in vars(ZooModule) if not name.startswith("_")) | {"input_shape"}
_ATTRIBUTES = frozenset({"input_shape"})


def hook(module: Any, name: str) -> Callable[..., Any] | None:
    """``module``'s hook ``name`` (a :class:`ZooModule` member), or None when it defines none."""
    if name not in HOOKS:
        raise KeyError(f"{name!r} is not a ZooModule hook; known: {', '.join(sorted(HOOKS))}")
    value = getattr(module, name, None)
    if value is None or name in _ATTRIBUTES:
        return value
    if not callable(value):
        raise ZooError(f"{type(module).__name__}.{name} is a zoo module hook and must be a method, "
                       f"not a {type(value).__name__} (see zoo.contracts.ZooModule)")
    return value


def signature_problems(module: Any) -> list[str]:
    """Each hook ``module`` defines whose parameters cannot take the arguments zoo passes (the
    ones :class:`ZooModule` declares, positionally); empty when all fit."""
    problems = []
    for name in sorted(HOOKS - _ATTRIBUTES):
        fn = hook(module, name)
        if fn is None:
            continue
        declared = list(inspect.signature(getattr(ZooModule, name)).parameters)[1:]  # less self
        wanted = len(declared)
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            continue  # a builtin or C callable: nothing to read
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        required = [p for p in positional if p.default is p.empty]
        varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
        if len(required) > wanted or len(positional) < wanted and not varargs:
            problems.append(f"{type(module).__name__}.{name}({', '.join(p.name for p in params)}) cannot be "
                            f"called as {name}({', '.join(declared)})")
    return problems


def input_shape(spec: ModelSpec, module: Any) -> tuple[int, ...]:
    """The shape of one input: the module's ``input_shape`` if it has one, else the spec's."""
    shape = hook(module, "input_shape") or spec.input_shape
    try:
        dims = tuple(shape)
    except TypeError:
        dims = ()
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 1 << 16 for d in dims):
        raise ZooError(f"{spec.name}: input shape {shape!r} must be positive ints (the module's input_shape "
                       f"or ModelSpec.input_shape), or the module must define export_graphs")
    return dims


def export_graphs(spec: ModelSpec, module: Any, samples: np.ndarray | None) -> list[Graph]:
    """The graphs an export of ``module`` writes: its own ``export_graphs``, else the single
    image graph ``input`` -> ``logits``."""
    own = hook(module, "export_graphs")
    if own is not None:
        graphs = own(samples)
        if not isinstance(graphs, (list, tuple)) or not graphs:
            raise ZooError(f"{spec.name}: export_graphs must return a non-empty list of Graph, "
                           f"got {type(graphs).__name__}")
        return list(graphs)
    return [image_graph(module, input_shape(spec, module), samples)]


def image_graph(module: Any, input_shape: tuple[int, ...], samples: np.ndarray | None) -> Graph:
    """The single graph of an image model: (N, C, H, W) float32 ``input`` -> ``logits``; the
    example inputs are ``samples`` when there are enough of them, else seeded noise."""
    import numpy as np
    import torch

    def inputs(batch: int, seed: int) -> tuple:
        if samples is not None and len(samples) >= 16:
            start = (seed * 7) % (len(samples) - batch)
            return (torch.from_numpy(np.ascontiguousarray(samples[start: start + batch])).float(),)
        return (torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(seed)),)

    return Graph("model", module, inputs, ["input"], ["logits"],
                 {"input": {0: "batch"}, "logits": {0: "batch"}})
