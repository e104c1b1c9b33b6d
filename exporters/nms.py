"""A detector graph that stands alone: the network, YOLO's decoding and ONNX ``NonMaxSuppression``
in one ONNX file, so that plain onnxruntime, Triton or C++ users get boxes without zoo.

The graph takes what the plain export takes (``images``: (N, 3, S, S) float32, letterboxed,
pixel/255, grey 0.5 padding) and answers with four outputs, padded to ``max_det`` per image:

- ``num_detections`` (N, 1) int64: how many rows of the others are real;
- ``boxes`` (N, max_det, 4) float32: x1 y1 x2 y2 in pixels of the network input (undo the
  letterbox to reach the photo's pixels), zeros past ``num_detections``;
- ``scores`` (N, max_det) float32: p_c times the class probability, best first, zeros past it;
- ``classes`` (N, max_det) int64: indices into the metadata's ``labels``, -1 past it.

The thresholds are baked in (``conf``, ``iou``, ``max_det``) and written in the metadata's
``postprocess`` block with the output names and their meaning. Suppression is per class, as
``zoo run``'s default: a box only suppresses boxes of its own class, so one object may keep two
boxes of two classes; the ``onnx-nms-agnostic`` format bakes class-agnostic suppression instead
(``zoo run --agnostic``). A score threshold higher than the baked one can still be applied to
the outputs (``zoo run --conf`` does): suppression only ever removes a box in favour of a
better one, so filtering afterwards gives what a higher threshold inside would.

Every graph is checked before anything is written: the network part by the ONNX exporter's
parity test against PyTorch; the post-processing, alone, against the numpy decode and NMS of
``zoo.runtime.tasks.detection`` on synthetic raw outputs with many confident boxes, and then
the whole graph against the plain graph followed by the numpy path on the parity inputs."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.exporters.onnx import (DEFAULT_OPSET, TEMP_PREFIX, ExportReport, Parity, _stamp, check_replaceable,
                                clean_stale_temporaries, export as export_onnx)
from zoo.runtime.artifact import META_KEY
from zoo.runtime.tasks.detection import DEFAULT_CONF, NMS_OUTPUTS, decode, model_conf, read_nms_outputs
from zoo.store import atomic_path

MAX_DET = 100
OUTPUTS = {  # in the order of detection.NMS_OUTPUTS
    "num_detections": "(batch, 1) int64: the number of real rows in boxes, scores and classes",
    "boxes": "(batch, max_det, 4) float32: x1 y1 x2 y2 in network-input pixels (the letterboxed square); "
             "zeros past num_detections",
    "scores": "(batch, max_det) float32: p_c x class probability, highest first; zeros past num_detections",
    "classes": "(batch, max_det) int64: index into labels; -1 past num_detections",
}
#: box and score tolerances of the parity checks (float32 decoding against numpy's float64)
BOX_ATOL, SCORE_ATOL = 1e-2, 1e-4


def _run_default(option: str) -> float:
    """``zoo run``'s default for ``option`` of object detection (its TaskSpec's), which a graph
    with NMS inside bakes in unless told otherwise."""
    from zoo.registry import registry

    return float(registry().task("object-detection").defaults()[option])


@dataclass(frozen=True)
class Postprocess:
    """The decoding and suppression baked into the graph."""

    conf: float = DEFAULT_CONF
    iou: float = field(default_factory=lambda: _run_default("iou"))
    max_det: int = MAX_DET
    agnostic: bool = False

    def block(self) -> dict[str, Any]:
        """The metadata ``postprocess`` block readers (``zoo run``, a person) go by."""
        return {"kind": "yolo-nms", "conf": self.conf, "iou": self.iou, "max_det": self.max_det,
                "agnostic": self.agnostic, "box_format": "xyxy, network-input pixels", "outputs": dict(OUTPUTS)}


@dataclass
class NmsReport(ExportReport):
    post: Postprocess = field(default_factory=Postprocess)

    def lines(self) -> list[str]:
        out = []
        for line in super().lines():
            if line.startswith("parity ") and "nms" in line.split(":")[0]:
                continue
            out.append(line)
        checks = [p for p in self.parity if "nms" in p.graph]
        out[-1:-1] = [f"parity {p.graph} batch {p.batch}: same detections as the numpy decode and NMS, max box "
                      f"diff {p.max_abs:.3g} px (tolerance {BOX_ATOL:g} px, scores {SCORE_ATOL:g}) "
                      f"{'ok' if p.ok else 'FAILED'}" for p in checks]
        kind = "across classes" if self.post.agnostic else "per class"
        out.insert(-1, f"baked in: conf {self.post.conf:g}, iou {self.post.iou:g}, max_det {self.post.max_det}, "
                       f"NMS {kind}; outputs num_detections, boxes (xyxy, network-input pixels), scores, classes")
        return out


def _consts(config: dict[str, Any], post: Postprocess, prefix: str):
    from onnx import numpy_helper

    from zoo.runtime.tasks.detection import grid_cells

    cells, strides, anchors = grid_cells(config)
    classes = int(config["num_classes"])
    rows = len(cells)
    values = {
        "cells": cells[None].astype(np.float32), "strides": strides[None, :, None].astype(np.float32),
        "anchors": anchors[None].astype(np.float32), "half": np.array(0.5, np.float32),
        "lo": np.array(-10, np.float32), "hi": np.array(10, np.float32), "zero": np.array(0, np.float32),
        "axis2": np.array([2], np.int64), "last": np.array([-1], np.int64),
        "s0": np.array([0], np.int64), "s2": np.array([2], np.int64), "s4": np.array([4], np.int64),
        "s5": np.array([5], np.int64), "end": np.array([5 + classes], np.int64),
        "range": np.arange(classes, dtype=np.int64), "max_out": np.array([post.max_det], np.int64),
        "iou": np.array([post.iou], np.float32), "conf": np.array([post.conf], np.float32),
        "k": np.array([min(post.max_det, rows)], np.int64), "bi": np.array([0, 2], np.int64),
        "expand4": np.array([1, 1, 4], np.int64), "minus1": np.array(-1, np.int64),
    }
    if post.agnostic:
        del values["range"]  # only per-class suppression compares classes
    return [numpy_helper.from_array(v, f"{prefix}{k}") for k, v in values.items()], rows


def postprocess_nodes(predictions: str, config: dict[str, Any], post: Postprocess, prefix: str = "nms/"):
    """The nodes and initializers that turn ``predictions`` (N, P, 5 + C) into the four outputs,
    the same arithmetic as ``detection.decode`` (opset 18: reductions take their axes as inputs)."""
    from onnx import helper

    p = prefix
    initializers, rows = _consts(config, post, p)
    nodes = []

    def node(op: str, inputs: list[str], out: str | list[str], **attrs):
        outs = [out] if isinstance(out, str) else out
        nodes.append(helper.make_node(op, [i if i == predictions or i in OUTPUTS else f"{p}{i}" for i in inputs],
                                      [f"{p}{o}" if o not in OUTPUTS else o for o in outs], name=f"{p}{outs[0]}",
                                      **attrs))

    node("Slice", [predictions, "s0", "s2", "axis2"], "t_xy")
    node("Slice", [predictions, "s2", "s4", "axis2"], "t_wh")
    node("Slice", [predictions, "s4", "s5", "axis2"], "t_obj")
    node("Slice", [predictions, "s5", "end", "axis2"], "t_cls")
    node("Sigmoid", ["t_xy"], "xy01")
    node("Add", ["xy01", "cells"], "xy_cell")
    node("Mul", ["xy_cell", "strides"], "centre")
    node("Clip", ["t_wh", "lo", "hi"], "t_wh_clipped")
    node("Exp", ["t_wh_clipped"], "wh_scale")
    node("Mul", ["wh_scale", "anchors"], "wh")
    node("Mul", ["wh", "half"], "half_wh")
    node("Sub", ["centre", "half_wh"], "top_left")
    node("Add", ["centre", "half_wh"], "bottom_right")
    node("Concat", ["top_left", "bottom_right"], "all_boxes", axis=-1)
    if config.get("class_activation", "sigmoid") == "softmax":
        node("Softmax", ["t_cls"], "class_prob", axis=-1)
    else:
        node("Sigmoid", ["t_cls"], "class_prob")
    node("ReduceMax", ["class_prob", "last"], "best_prob", keepdims=1)
    node("ArgMax", ["class_prob"], "all_classes", axis=-1, keepdims=0)
    node("Sigmoid", ["t_obj"], "p_c")
    node("Mul", ["p_c", "best_prob"], "score3")
    node("Squeeze", ["score3", "last"], "score")
    if post.agnostic:
        node("Transpose", ["score3"], "nms_scores", perm=[0, 2, 1])
    else:  # a box scores only for its best class, so it is suppressed only by boxes of that class
        node("Unsqueeze", ["all_classes", "last"], "classes3")
        node("Equal", ["classes3", "range"], "one_hot_bool")
        node("Cast", ["one_hot_bool"], "one_hot", to=1)
        node("Mul", ["one_hot", "score3"], "class_scores")
        node("Transpose", ["class_scores"], "nms_scores", perm=[0, 2, 1])
    node("NonMaxSuppression", ["all_boxes", "nms_scores", "max_out", "iou", "conf"], "selected",
         center_point_box=0)
    node("Gather", ["selected", "bi"], "batch_box", axis=1)
    node("GatherND", ["score", "batch_box"], "kept_scores")
    node("Shape", ["score"], "score_shape")
    node("ConstantOfShape", ["score_shape"], "blank")
    node("ScatterND", ["blank", "batch_box", "kept_scores"], "kept")
    node("TopK", ["kept", "k"], ["scores", "order"], axis=-1, largest=1, sorted=1)
    node("Greater", ["scores", "zero"], "valid")
    node("Cast", ["valid"], "valid_count", to=7)
    node("ReduceSum", ["valid_count", "last"], "num_detections", keepdims=1)
    node("Unsqueeze", ["order", "last"], "order3")
    node("Expand", ["order3", "expand4"], "order4")
    node("GatherElements", ["all_boxes", "order4"], "picked_boxes", axis=1)
    node("Unsqueeze", ["valid", "last"], "valid3")
    node("Where", ["valid3", "picked_boxes", "zero"], "boxes")
    node("GatherElements", ["all_classes", "order"], "picked_classes", axis=1)
    node("Where", ["valid", "picked_classes", "minus1"], "classes")
    k = min(post.max_det, rows)
    outputs = [helper.make_tensor_value_info("num_detections", 7, ["batch", 1]),
               helper.make_tensor_value_info("boxes", 1, ["batch", k, 4]),
               helper.make_tensor_value_info("scores", 1, ["batch", k]),
               helper.make_tensor_value_info("classes", 7, ["batch", k])]
    return nodes, initializers, outputs, rows


def postprocess_model(config: dict[str, Any], post: Postprocess, opset: int = DEFAULT_OPSET):
    """The post-processing alone, as a graph from ``predictions`` (N, P, 5 + C)."""
    from onnx import helper

    nodes, initializers, outputs, rows = postprocess_nodes("predictions", config, post)
    inp = helper.make_tensor_value_info("predictions", 1, ["batch", rows, 5 + int(config["num_classes"])])
    graph = helper.make_graph(nodes, "yolo_postprocess", [inp], outputs, initializers)
    # IR 8 is the oldest that opset 18 allows, and what every onnxruntime that runs opset 18 reads
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="zoo", ir_version=8)


def attach(model, config: dict[str, Any], post: Postprocess):
    """The network ``model`` (output ``predictions``) with the post-processing appended: the raw
    output gives way to the four detection outputs."""
    graph = model.graph
    names = [o.name for o in graph.output]
    if names != ["predictions"]:
        raise ZooError(f"onnx-nms export: the detector graph answers {names}, not one 'predictions' output")
    nodes, initializers, outputs, _ = postprocess_nodes("predictions", config, post)
    graph.node.extend(nodes)
    graph.initializer.extend(initializers)
    del graph.output[:]
    graph.output.extend(outputs)
    return model


def compare(graph: list[dict[str, np.ndarray]], reference: list[dict[str, np.ndarray]], conf: float) -> tuple[float, bool]:
    """The largest box difference between the graph's detections and numpy's, and whether they
    agree: as many per image, each of numpy's paired with one of the graph's of the same class,
    score and box within tolerance. A detection scoring within the score tolerance of the
    threshold may fall either side of it (float32 against float64) and is left out."""
    worst = 0.0
    for g, r in zip(graph, reference):
        g_edge = np.abs(g["scores"] - conf) <= SCORE_ATOL
        r_edge = np.abs(r["scores"] - conf) <= SCORE_ATOL
        g_boxes, g_scores, g_classes = g["boxes"][~g_edge], g["scores"][~g_edge], g["classes"][~g_edge]
        r_boxes, r_scores, r_classes = r["boxes"][~r_edge], r["scores"][~r_edge], r["classes"][~r_edge]
        if len(g_scores) != len(r_scores):
            return float("inf"), False
        used = np.zeros(len(g_scores), bool)
        for box, score, cls in zip(r_boxes, r_scores, r_classes):
            diff = np.abs(g_boxes - box).max(1, initial=0) if len(g_boxes) else np.zeros(0)
            match = ~used & (g_classes == cls) & (np.abs(g_scores - score) <= SCORE_ATOL) & (diff <= BOX_ATOL)
            if not match.any():
                return float("inf"), False
            j = int(np.flatnonzero(match)[np.argmin(diff[match])])
            used[j] = True
            worst = max(worst, float(diff[j]))
    return worst, True


def synthetic_predictions(config: dict[str, Any], batch: int, seed: int, rows: int) -> np.ndarray:
    """Raw outputs shaped like a detector's: objects as blocks of neighbouring rows (the anchors
    of two or three cells side by side) that are confident and favour one class, so that boxes
    of a class overlap and suppression has work to do, within classes and across them; fewer
    objects in each image of the batch (the first fills ``max_det``, the last holds a few)."""
    rng = np.random.default_rng(seed)
    classes = int(config["num_classes"])
    x = rng.normal(0, 1, (batch, rows, 5 + classes)).astype(np.float32)
    block = np.arange(rows) // 6
    share = (0.2 * 0.4 ** np.arange(batch))[:, None]
    objects = (rng.random((batch, block[-1] + 1)) < share)[:, block]
    x[..., 4] = np.where(objects, rng.normal(1.5, 1.5, (batch, rows)), rng.normal(-6, 1.5, (batch, rows)))
    # an object's boxes are larger than their anchors, so that those of neighbouring cells overlap
    x[..., 2:4] = np.where(objects[..., None], rng.normal(1.2, 0.4, (batch, rows, 2)), x[..., 2:4])
    x[..., 5:] *= 2
    favoured = rng.integers(0, classes, (batch, block[-1] + 1))[:, block]
    np.put_along_axis(x[..., 5:], favoured[..., None], 5.0 + rng.normal(0, 1, (batch, rows, 1)), -1)
    return x


def _session(source: Path | bytes):
    import onnxruntime as ort

    return ort.InferenceSession(str(source) if isinstance(source, Path) else source, providers=["CPUExecutionProvider"])


def check_postprocess(config: dict[str, Any], post: Postprocess, opset: int) -> list[Parity]:
    """The post-processing graph against ``detection.decode`` on synthetic raw outputs."""
    import onnx

    model = postprocess_model(config, post, opset)
    onnx.checker.check_model(model, full_check=True)
    session = _session(model.SerializeToString())
    rows = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    results = []
    for seed, batch in ((1, 4), (2, 1)):
        x = synthetic_predictions(config, batch, seed, rows)
        got = dict(zip(NMS_OUTPUTS, session.run(list(NMS_OUTPUTS), {"predictions": x})))
        worst, ok = compare(read_nms_outputs(got), decode(x, config, post.conf, post.iou, post.max_det, post.agnostic),
                            post.conf)
        results.append(Parity("nms (synthetic outputs)", batch, worst, 0.0, ok))
    return results


def check_whole(path: Path, plain: Path, config: dict[str, Any], post: Postprocess,
                inputs: list[np.ndarray]) -> list[Parity]:
    """The whole graph against the plain graph followed by the numpy path, on ``inputs``."""
    whole, raw = _session(path), _session(plain)
    results = []
    for x in inputs:
        got = read_nms_outputs(dict(zip(NMS_OUTPUTS, whole.run(list(NMS_OUTPUTS), {"images": x}))))
        expected = decode(raw.run(None, {"images": x})[0], config, post.conf, post.iou, post.max_det, post.agnostic)
        worst, ok = compare(got, expected, post.conf)
        results.append(Parity("model+nms", len(x), worst, 0.0, ok))
    return results


def _parity_inputs(samples: np.ndarray | None, size: int) -> list[np.ndarray]:
    if samples is not None and len(samples) >= 5:
        return [np.ascontiguousarray(samples[:4], np.float32), np.ascontiguousarray(samples[4:5], np.float32)]
    rng = np.random.default_rng(3)
    return [rng.random((batch, 3, size, size), dtype=np.float32) for batch in (4, 1)]


def export(spec, module, out: Path, *, meta: dict[str, Any], samples: np.ndarray | None = None,
           opset: int = DEFAULT_OPSET, sample_source: str = "", force: bool = False,
           agnostic: bool = False) -> ExportReport:
    """``zoo export NAME --format onnx-nms``: the checked ONNX export of the detector with the
    post-processing attached, written to ``out`` (default ``NAME-nms.onnx``) only when every
    check passes."""
    import onnx

    if spec.task != "object-detection":
        raise ZooError(f"the onnx-nms format is for object-detection models; {spec.name} is {spec.task}")
    config = dict(meta.get("config") or {})
    post = Postprocess(conf=model_conf(meta, f"{spec.name} weights manifest"), agnostic=agnostic)
    out = Path(out)
    check_replaceable(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out.parent, TEMP_PREFIX)
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, dir=out.parent) as tmp:
        plain = Path(tmp) / "plain.onnx"
        report = export_onnx(spec, module, plain, meta=meta, samples=samples, opset=opset,
                             sample_source=sample_source, force=True)
        report.parity += check_postprocess(config, post, opset)
        model = onnx.load(str(plain))
        stamped = json.loads(next(p.value for p in model.metadata_props if p.key == META_KEY))
        del model.metadata_props[:]  # _stamp writes them again, the graph sha256 included
        staged = Path(tmp) / "nms.onnx"
        onnx.save(attach(model, config, post), str(staged))
        _stamp(staged, dict(stamped, postprocess=post.block()))
        report.parity += check_whole(staged, plain, config, post, _parity_inputs(samples, int(config["input_size"])))
        failed = [p for p in report.parity if not p.ok]
        if failed:
            raise ZooError(f"onnx-nms export of {spec.name}: the graph's detections differ from the numpy "
                           f"decode and NMS ({failed[0].graph}, batch {failed[0].batch}); nothing written")
        with atomic_path(out, ".onnx") as final:
            shutil.move(str(staged), final)
    return NmsReport(out, report.parity, report.parity_inputs, report.opset, out.stat().st_size,
                     exporters=report.exporters, post=post)


def export_agnostic(spec, module, out: Path, **kwargs: Any) -> ExportReport:
    """``--format onnx-nms-agnostic``: suppression across classes (one object, one box)."""
    return export(spec, module, out, agnostic=True, **kwargs)
