"""A half-precision variant of an exported image model (``zoo export NAME --fp16``).

The variant is ``module.half()`` exported through the same exporter, wrapped so that the graph
casts its float32 input to float16 on entry and its logits back to float32 on exit: the file is
half the size and runs in half precision where the provider supports it, while its inputs,
outputs, preprocessing and task code stay exactly those of the float32 artifact. (Converting the
float32 ONNX file with onnxconverter-common's ``keep_io_types`` would give the same interface at
the cost of one more dependency and a second graph rewrite the exporter never checked.)

Half precision cannot meet the float32 parity tolerance, so the report gives what matters for a
classifier instead: how often the top-1 class agrees with the float32 artifact's on the parity
inputs, and the largest logit difference.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import zoo
from zoo.errors import ZooError
from zoo.exporters.onnx import TEMP_PREFIX, _export_graph, _stamp, check_replaceable, image_graph
from zoo.runtime.artifact import FORMAT
from zoo.store import atomic_path

#: parity inputs for the agreement figure: (seed, batch) pairs, 16 images in all
AGREEMENT_INPUTS = ((1, 8), (2, 8))


@dataclass
class HalfReport:
    path: Path
    agree: int
    total: int
    max_abs: float
    size_bytes: int
    inputs: str

    def lines(self) -> list[str]:
        return [f"fp16: top-1 agreement with fp32 {self.agree}/{self.total} ({self.agree / self.total:.1%}) on "
                f"{self.inputs}; max abs logit diff {self.max_abs:.3g}",
                f"wrote {self.path} ({self.size_bytes / 1e6:.2f} MB, float16 weights, float32 input and output)"]


def half_path(fp32_path: Path) -> Path:
    return fp32_path.with_name(f"{fp32_path.stem}-fp16{fp32_path.suffix}")


def export_half(spec, module, fp32_path: Path, *, meta: dict[str, Any], samples: np.ndarray | None,
                opset: int, sample_source: str, force: bool = False) -> HalfReport:
    """Export ``module`` in half precision beside the float32 artifact at ``fp32_path`` and
    compare the two on the parity inputs. ``module`` is converted in place (callers pass a module
    they no longer need, so that a large network is not held twice)."""
    import onnxruntime as ort
    import torch

    if hasattr(module, "export_graphs") or not fp32_path.is_file():
        raise ZooError(f"--fp16: {spec.name} exports several graphs; half precision is offered for "
                       "single-graph image models")

    class HalfPrecision(torch.nn.Module):
        def __init__(self, net: torch.nn.Module):
            super().__init__()
            self.net = net.half()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x.half()).float()

    shape = tuple(getattr(module, "input_shape", None) or spec.input_shape)
    graph = image_graph(HalfPrecision(module.eval().cpu()).eval(), shape, samples)
    out = half_path(fp32_path)
    check_replaceable(out, force)
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, dir=out.parent) as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            _export_graph(graph, path, opset)
        except Exception as exc:
            raise ZooError(f"torch.onnx.export failed for {spec.name} in half precision: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        _stamp(path, dict(meta, format=FORMAT, zoo_version=zoo.__version__, opset=opset, graph="model",
                          graphs={"model": "model.onnx"}, precision="float16"))
        fp32 = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"])
        fp16 = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        agree = total = 0
        max_abs = 0.0
        for seed, batch in AGREEMENT_INPUTS:
            x = graph.inputs(batch, seed)[0].float().numpy()
            want = fp32.run(None, {"input": x})[0]
            got = fp16.run(None, {"input": x})[0]
            if not np.isfinite(got).all():
                raise ZooError(f"--fp16: {spec.name} overflows in half precision (non-finite logits); nothing written")
            agree += int((want.argmax(-1) == got.argmax(-1)).sum())
            total += len(x)
            max_abs = max(max_abs, float(np.abs(want.astype(np.float64) - got).max()))
        del fp16
        with atomic_path(out, ".onnx") as final:
            shutil.move(str(path), final)
    return HalfReport(out, agree, total, max_abs, out.stat().st_size,
                      sample_source or ("real samples" if samples is not None else "random inputs"))
