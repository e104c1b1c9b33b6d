"""A half-precision variant of a single-graph artifact (``zoo export NAME --fp16``).

The variant is the model's one export graph (its ``export_graphs``, else the image graph) with
the module in half precision, wrapped so that floating-point inputs are cast to float16 on entry
and floating-point outputs back to float32 on exit (integer inputs, token ids say, pass as they
are): the file is half the size and runs in half precision where the provider supports it, while
its inputs, outputs, preprocessing and task code stay exactly those of the float32 artifact.
(Converting the float32 ONNX file with onnxconverter-common's ``keep_io_types`` would give the
same interface at the cost of one more dependency and a second graph rewrite the exporter never
checked.)

Half precision cannot meet the float32 parity tolerance, so the report gives what matters for
the model's task instead, through ``Task.compare_precision`` on the parity inputs: how often the
variant answers as the float32 artifact does (classification: the top-1 class; a task may supply
its own criterion), and the largest output difference.

A model of several graphs is refused by :func:`check_half` before anything is written (the
caller runs it before the float32 export); a variant that overflows or that onnxruntime cannot
run is refused before its file is written.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import zoo
from zoo.contracts import export_graphs
from zoo.errors import ZooError
from zoo.exporters.onnx import TEMP_PREFIX, Graph, _export_graph, _stamp, check_replaceable
from zoo.runtime.artifact import FORMAT
from zoo.store import atomic_path

#: parity inputs for the agreement figure: (seed, batch) pairs, 16 samples in all
AGREEMENT_INPUTS = ((1, 8), (2, 8))


@dataclass
class HalfReport:
    path: Path
    agree: int
    total: int
    max_abs: float
    size_bytes: int
    inputs: str
    #: the task's criterion (``Agreement.what``), e.g. "top-1 agreement"
    what: str = "top-1 agreement"

    def lines(self) -> list[str]:
        return [f"fp16: {self.what} with fp32 {self.agree}/{self.total} ({self.agree / self.total:.1%}) on "
                f"{self.inputs}; max abs output diff {self.max_abs:.3g}",
                f"wrote {self.path} ({self.size_bytes / 1e6:.2f} MB, float16 weights, float32 input and output)"]


def half_path(fp32_path: Path) -> Path:
    return fp32_path.with_name(f"{fp32_path.stem}-fp16{fp32_path.suffix}")


def check_half(spec, module, samples: np.ndarray | None = None) -> Graph:
    """The one graph a half-precision variant is made of; a ZooError, before anything is
    written, for a model whose export has several graphs."""
    graphs = export_graphs(spec, module, samples)
    if len(graphs) != 1:
        names = ", ".join(g.name for g in graphs)
        raise ZooError(f"--fp16: {spec.name} exports {len(graphs)} graphs ({names}); half precision is offered "
                       "for single-graph models; nothing written")
    return graphs[0]


def _half_module(net, inputs: int):
    """``net`` in float16 behind float32 inputs and outputs, as a module whose ``forward`` takes
    exactly the graph's ``inputs`` arguments (the torch.export-based exporter maps dynamic axes
    onto the signature, which ``*args`` would hide)."""
    import torch

    def cast(value, dtype):
        if isinstance(value, torch.Tensor):
            return value.to(dtype) if value.is_floating_point() else value
        if isinstance(value, (tuple, list)):
            return type(value)(cast(v, dtype) for v in value)
        return value

    class HalfPrecision(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.net = inner.half()

        def run(self, *args):
            return cast(self.net(*cast(args, torch.float16)), torch.float32)

    class One(HalfPrecision):
        def forward(self, a):
            return self.run(a)

    class Two(HalfPrecision):
        def forward(self, a, b):
            return self.run(a, b)

    class Three(HalfPrecision):
        def forward(self, a, b, c):
            return self.run(a, b, c)

    arity = {1: One, 2: Two, 3: Three}
    if inputs not in arity:
        raise ZooError(f"--fp16 is offered for graphs of 1 to 3 inputs, not {inputs}; nothing written")
    return arity[inputs](net).eval()


def _session(path: Path, what: str, name: str):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ZooError(f"--fp16: onnxruntime cannot run {name}'s {what} graph on the CPU ({first[:300]}); "
                       "nothing written") from exc


def export_half(spec, module, fp32_path: Path, *, meta: dict[str, Any], samples: np.ndarray | None,
                opset: int, sample_source: str, force: bool = False) -> HalfReport:
    """Export ``module`` in half precision beside the float32 artifact at ``fp32_path`` and
    compare the two on the parity inputs with the task's own criterion. ``module`` is converted
    in place (callers pass a module they no longer need, so that a large network is not held
    twice)."""
    from zoo.registry import registry

    graph = check_half(spec, module.eval().cpu(), samples)
    if not fp32_path.is_file():
        raise ZooError(f"--fp16: {spec.name}'s float32 artifact {fp32_path} is not a single .onnx file; nothing written")
    task = registry().task(spec.task).load()
    half = replace(graph, module=_half_module(graph.module, len(graph.input_names)))
    out = half_path(fp32_path)
    check_replaceable(out, force)
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, dir=out.parent) as tmp:
        path = Path(tmp) / "model.onnx"
        ways = (False, True) if graph.exporter == "auto" else (True,)  # TorchScript first, as for float32
        for dynamo in ways:
            try:
                _export_graph(half, path, opset, dynamo=dynamo)
                break
            except Exception as exc:
                if dynamo != ways[-1]:
                    continue
                raise ZooError(f"torch.onnx.export failed for {spec.name} in half precision: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''} (the float32 artifact is written; "
                               "no fp16 variant)") from exc
        _stamp(path, dict(meta, format=FORMAT, zoo_version=zoo.__version__, opset=opset, graph=graph.name,
                          graphs={graph.name: f"{graph.name}.onnx"}, precision="float16"))
        fp32 = _session(fp32_path, "float32", spec.name)
        fp16 = _session(path, "half-precision", spec.name)
        agree = total = 0
        max_abs = 0.0
        what = ""
        for seed, batch in AGREEMENT_INPUTS:
            feeds = {name: value.numpy() for name, value in zip(graph.input_names, graph.inputs(batch, seed))}
            want = fp32.run(graph.output_names, feeds)
            got = fp16.run(graph.output_names, feeds)
            for g in got:
                if np.issubdtype(g.dtype, np.floating) and not np.isfinite(g).all():
                    raise ZooError(f"--fp16: {spec.name} overflows in half precision (non-finite outputs); "
                                   "nothing written")
            judged = task.compare_precision(want, got, meta)
            agree, total, what = agree + judged.agree, total + judged.total, judged.what
            max_abs = max([max_abs] + [float(np.abs(w.astype(np.float64) - g).max(initial=0))
                                       for w, g in zip(want, got) if np.issubdtype(w.dtype, np.floating)])
        del fp16
        with atomic_path(out, ".onnx") as final:
            shutil.move(str(path), final)
    return HalfReport(out, agree, total, max_abs, out.stat().st_size,
                      sample_source or ("real samples" if samples is not None else "random inputs"), what)
