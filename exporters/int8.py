"""An int8 variant of an exported single-graph model (``zoo export NAME --int8``), made with
onnxruntime's own static quantisation (QDQ, per-channel int8 weights, uint8 activations) and
calibrated on real dev samples; a step graph that carries a state (char-rnn) is quantised
dynamically instead (int8 weights, activations quantised at run time).

Quantisation changes the answers, so the variant is judged the way the model is: its task's
metric on held-out samples, through the runtime, beside the float32 artifact's on the same
samples (plus top-1 agreement for classifiers). Below ``max_drop`` of the primary metric it is
refused and nothing is written, unless forced.

Two choices keep the accuracy, each measured on half of yolo-nano's dev split (the other half
calibrating; mAP@0.5 0.837 in float32) on a 2-core x86 machine with AVX2 and no VNNI:

- the graph's outputs stay float32: the last weighted layer before each output (a classifier's
  final Gemm, a detector's 1x1 head convolutions) and every node after it. Quantised, those
  outputs share one 8-bit scale across quantities of very different ranges (box offsets,
  objectness and class logits side by side): 0.615 with the tail quantised too, 0.835 with
  it in float;
- weights use 7 bits (``reduce_range``): without VNNI, onnxruntime multiplies uint8 activations
  by int8 weights in pairs summed into 16 bits (VPMADDUBSW), which can saturate with full-range
  weights (its documentation gives ``reduce_range`` as the remedy): 0.675 with 8-bit weights
  and the tail in float, whether activations are uint8 or int8. A variant may run on another
  machine than the one that made it, so it is always made this way.

onnxruntime's quantiser re-infers shapes and stops at any stored ``value_info`` that disagrees
with them. The float32 artifact's ``value_info`` is only a cache of shape inference; the
exporter's own rewriting (a Gemm's weight transposed in place, say) can leave entries that no
longer describe the tensor they name, so the copy given to the quantiser carries none and has
its shapes inferred afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zoo.errors import ZooError
from zoo.runtime.artifact import GRAPH_SHA_KEY, META_KEY
from zoo.store import atomic_path

#: the largest drop of the primary metric (absolute: 0.005 = half a point of accuracy) accepted
#: without --force
MAX_DROP = 0.005


@dataclass
class Int8Report:
    path: Path | None
    metric: str
    fp32: float
    int8: float
    agreement: float | None
    samples: int
    speedup: float
    size_bytes: int
    written: bool
    method: str = "static"  # or "dynamic": activations quantised at run time

    def lines(self) -> list[str]:
        agree = f", top-1 agreement with fp32 {self.agreement:.1%}" if self.agreement is not None else ""
        out = [f"int8: {self.metric} {self.int8:.4f} vs fp32 {self.fp32:.4f} ({self.int8 - self.fp32:+.4f}) on "
               f"{self.samples} held-out samples{agree}; {self.speedup:.2f}x fp32's speed on this machine"]
        if self.written:
            out.append(f"wrote {self.path} ({self.size_bytes / 1e6:.2f} MB, int8 weights and activations, "
                       f"{self.method} quantisation)")
        return out


def int8_path(fp32_path: Path) -> Path:
    return fp32_path.with_name(f"{fp32_path.stem}-int8{fp32_path.suffix}")


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over encoded dev samples."""

    def __init__(self, name: str, samples: np.ndarray, batch: int = 16):
        self._batches = iter([{name: samples[i: i + batch]} for i in range(0, len(samples), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


#: operators that carry weights: the last of them before each graph output stays float32
WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def float_tail(graph) -> list[str]:
    """The names of the nodes from each of ``graph``'s outputs back to the nearest weighted
    layers, those layers included: the part of the graph left in float32."""
    producer = {out: node for node in graph.node for out in node.output}
    tail: dict[str, None] = {}
    stack = [out.name for out in graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in tail:
            continue
        tail[node.name] = None
        if node.op_type not in WEIGHTED:
            stack.extend(name for name in node.input if name in producer)
    return list(tail)


def _prepared(src: Path, dst: Path) -> list[str]:
    """A copy for the quantiser without ``value_info``, every node named; returns its float tail."""
    import onnx

    model = onnx.load(str(src))
    del model.graph.value_info[:]
    for i, node in enumerate(model.graph.node):
        node.name = node.name or f"{node.op_type}_{i}"
    onnx.save(onnx.shape_inference.infer_shapes(model), str(dst))
    return float_tail(model.graph)


_DTYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def _seconds(session, sample: np.ndarray, rounds: int = 5) -> float:
    """Median seconds of a call on a batch of ``len(sample)``: ``sample`` itself where it fits
    the first input, zeros elsewhere (a step graph's token and state)."""
    feeds = {}
    for i, arg in enumerate(session.get_inputs()):
        if i == 0 and len(arg.shape) == sample.ndim:
            feeds[arg.name] = sample
        else:
            shape = [d if isinstance(d, int) else len(sample) for d in arg.shape]
            feeds[arg.name] = np.zeros(shape, _DTYPES.get(arg.type, np.float32))
    session.run(None, feeds)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def export_int8(fp32_path: Path, task, calibration: np.ndarray, held_raw: Sequence[Any], held_targets: Any,
                max_drop: float = MAX_DROP, force: bool = False) -> Int8Report:
    """Quantise the single-graph artifact at ``fp32_path``, calibrated on ``calibration`` (encoded
    dev inputs), and score both on the held-out samples with ``task``; write the variant beside
    it only if the primary metric drops by at most ``max_drop`` (or ``force``)."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    from zoo.runtime.artifact import open_artifact

    fp32 = open_artifact(fp32_path, "cpu")
    if fp32_path.is_dir():
        raise ZooError(f"--int8 is offered for single-graph models; {fp32.model} exports several graphs")
    if calibration is None or len(calibration) < 8:
        raise ZooError(f"--int8 needs real dev samples to calibrate on, and {fp32.model}'s dataset gave none")
    inputs = fp32.session().get_inputs()
    # a step graph (char-rnn) takes its state in beside the token: static calibration would need
    # every input, and a state's range changes with each step, so its weights are quantised ahead
    # and its activations at run time (dynamic quantisation)
    dynamic = len(inputs) > 1
    out = int8_path(fp32_path)
    with tempfile.TemporaryDirectory(prefix=".zoo-int8-") as tmp:
        plain, quantised = Path(tmp) / "plain.onnx", Path(tmp) / "int8.onnx"
        tail = _prepared(fp32_path, plain)
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # the quantiser's advice goes to the root logger
        try:
            if dynamic:
                quantize_dynamic(str(plain), str(quantised), per_channel=True, reduce_range=True,
                                 weight_type=QuantType.QInt8)
            else:
                quantize_static(str(plain), str(quantised),
                                _Calibration(inputs[0].name, np.ascontiguousarray(calibration)),
                                quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                                weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, nodes_to_exclude=tail)
        except Exception as exc:
            raise ZooError(f"int8 quantisation of {fp32.model} failed: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        finally:
            logging.getLogger().setLevel(quiet)
        model = onnx.load(str(quantised))
        meta = dict(fp32.meta, precision="int8", quantized_from=fp32.meta.get("weights_sha256"))
        del model.metadata_props[:]
        for prop in onnx.load(str(fp32_path), load_external_data=False).metadata_props:
            if prop.key != GRAPH_SHA_KEY:  # the int8 graph records its own sha256, below
                model.metadata_props.add(key=prop.key, value=json.dumps(meta) if prop.key == META_KEY else prop.value)
        model.metadata_props.add(key=GRAPH_SHA_KEY, value=hashlib.sha256(model.graph.SerializeToString()).hexdigest())
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(quantised))

        int8 = open_artifact(quantised, "cpu")
        targets = task.encode_targets(held_raw, held_targets, fp32.meta)
        out_fp32 = task.runtime_outputs(fp32, held_raw, targets, fp32.meta)
        out_int8 = task.runtime_outputs(int8, held_raw, targets, int8.meta)
        metric = task.primary_metric
        before, after = (task.metric(o, targets, fp32.meta)[metric] for o in (out_fp32, out_int8))
        agreement = (float((out_fp32.argmax(-1) == out_int8.argmax(-1)).mean())
                     if out_fp32.ndim == 2 else None)
        x = np.ascontiguousarray(calibration[:8])
        options = ort.SessionOptions()
        speedup = (_seconds(ort.InferenceSession(str(fp32_path), options, providers=["CPUExecutionProvider"]), x)
                   / _seconds(ort.InferenceSession(str(quantised), options, providers=["CPUExecutionProvider"]), x))
        drop = (before - after) if task.higher_is_better else (after - before)
        report = Int8Report(out, metric, before, after, agreement, len(held_raw), speedup,
                            quantised.stat().st_size, False, "dynamic" if dynamic else "static")
        if drop > max_drop and not force:
            raise ZooError(f"int8 {metric} {after:.4f} is {drop:.4f} worse than fp32's {before:.4f} on "
                           f"{len(held_raw)} held-out samples (more than {max_drop}); the int8 variant was not "
                           f"written (--force to write it anyway)")
        with atomic_path(out, ".onnx") as final:
            final.write_bytes(quantised.read_bytes())
        report.written = True
    return report
