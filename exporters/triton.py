"""An NVIDIA Triton model repository entry: ``NAME/config.pbtxt`` + ``NAME/1/model.onnx``.

The ONNX file is the one the ONNX exporter writes (checker, parity and metadata included); the
config declares its inputs and outputs with the batch axis left to Triton (``max_batch_size``)
and turns on dynamic batching. A model with labels gets ``NAME/labels.txt`` (one label a line, in
class order), named by ``label_filename`` on each output that scores one value per label, so that
Triton's classification extension (``class_count`` in a request) answers with class names.
Several-graph models (a decoder step driven by a loop) need a client-side loop or an ensemble,
so they are refused here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from zoo.contracts import export_graphs
from zoo.errors import ZooError
from zoo.exporters.onnx import TEMP_PREFIX, ExportReport, clean_stale_temporaries, export as export_onnx, is_zoo_onnx

MAX_BATCH = 64
_TYPES = {1: "TYPE_FP32", 10: "TYPE_FP16", 11: "TYPE_FP64", 6: "TYPE_INT32", 7: "TYPE_INT64", 2: "TYPE_UINT8",
          9: "TYPE_BOOL"}


LABELS_FILE = "labels.txt"


def _tensors(values, labels: int = 0) -> list[str]:
    """Config blocks; an output of one float per label (``labels`` of them) names the labels file."""
    blocks = []
    for v in values:
        shape = v.type.tensor_type.shape.dim
        if not shape or not shape[0].dim_param:
            raise ZooError(f"triton export: {v.name} has no dynamic batch axis")
        dims = ", ".join(str(d.dim_value) if d.dim_value else "-1" for d in shape[1:])
        kind = _TYPES.get(v.type.tensor_type.elem_type)
        if kind is None:
            raise ZooError(f"triton export: {v.name} has an element type Triton's config cannot name here")
        labelled = labels > 0 and kind in ("TYPE_FP32", "TYPE_FP16", "TYPE_FP64") and len(shape) == 2 \
            and shape[1].dim_value == labels
        label_line = f'\n    label_filename: "{LABELS_FILE}"' if labelled else ""
        blocks.append(f'  {{\n    name: "{v.name}"\n    data_type: {kind}\n    dims: [ {dims} ]{label_line}\n  }}')
    return blocks


def config_pbtxt(name: str, model_path: Path, max_batch: int = MAX_BATCH, labels: int = 0) -> str:
    """``labels``: how many labels ``labels.txt`` holds (0: none written)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    inputs, outputs = ",\n".join(_tensors(graph.input)), ",\n".join(_tensors(graph.output, labels))
    return (f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {max_batch}\n'
            f"input [\n{inputs}\n]\noutput [\n{outputs}\n]\ndynamic_batching {{ }}\n")


def is_zoo_entry(entry: Path) -> bool:
    """A repository entry zoo wrote: ``config.pbtxt`` and version folders holding only a zoo ONNX."""
    try:
        if entry.is_symlink() or not entry.is_dir():
            return False
        for child in entry.iterdir():
            if child.name in ("config.pbtxt", LABELS_FILE) and child.is_file() and not child.is_symlink():
                continue
            if not (child.name.isdigit() and child.is_dir() and not child.is_symlink()):
                return False
            if [p.name for p in child.iterdir()] != ["model.onnx"] or not is_zoo_onnx(child / "model.onnx"):
                return False
    except OSError:
        return False
    return True


def export(spec, module, out: Path, *, force: bool = False, write_graph=None, entry_suffix: str = "",
           **kwargs: Any) -> ExportReport:
    """``out`` is the model repository (created if needed); the entry is ``out/NAME`` (plus
    ``entry_suffix``), its graph written by ``write_graph`` (the ONNX exporter by default). An
    existing entry is replaced only when zoo wrote it (or with ``force``): a model repository
    holds other people's models and files."""
    if len(export_graphs(spec, module, None)) > 1:
        raise ZooError(f"triton export: {spec.name} exports several graphs driven by a loop; "
                       "use `zoo export --onnx` and run it with `zoo run`")
    out = Path(out)
    repository = out.parent if out.suffix else out
    name = f"{spec.name}{entry_suffix}"
    entry = repository / name
    if (entry.exists() or entry.is_symlink()) and not force and not is_zoo_entry(entry):
        raise ZooError(f"{entry} holds files zoo did not write; choose another --out (or --force to replace it)")
    repository.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(repository, TEMP_PREFIX)
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, dir=repository) as tmp:
        staged = Path(tmp) / name
        (staged / "1").mkdir(parents=True)
        report = (write_graph or export_onnx)(spec, module, staged / "1" / "model.onnx", **kwargs)
        # a graph with detections inside scores detections, not labels: no labels file for it
        labels = [] if write_graph else [" ".join(str(label).split())
                                         for label in (kwargs.get("meta") or {}).get("labels") or []]
        config = config_pbtxt(name, report.path, labels=len(labels))
        if LABELS_FILE in config:
            (staged / LABELS_FILE).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
        (staged / "config.pbtxt").write_text(config)
        if entry.exists() or entry.is_symlink():
            old = Path(tmp) / "old"
            entry.rename(old)  # removed with the temporary folder
        staged.rename(entry)
    report.path = entry
    return report


def export_nms(spec, module, out: Path, **kwargs: Any) -> ExportReport:
    """``--format triton-nms``: the entry ``NAME-nms`` serves the onnx-nms graph (decoding and
    NonMaxSuppression inside), so Triton answers with boxes, scores and classes."""
    from zoo.exporters.nms import export as export_nms_graph

    return export(spec, module, out, write_graph=export_nms_graph, entry_suffix="-nms", **kwargs)
