"""torch -> ONNX, validated before anything is written where the user will look.

Every graph is exported with a dynamic batch axis, passes ``onnx.checker`` (full check), and its
onnxruntime outputs are compared with PyTorch's on inputs other than the tracing input, at two
batch sizes, under ``|ort - torch| <= atol + rtol * |torch|``. The artifact carries its own
description (task, labels, preprocessing, zoo version, weights sha256) in ``metadata_props`` so
that a plain onnxruntime user can run it.

A module that needs more than one graph (an encoder and a decoder step) defines
``export_graphs(samples) -> list[Graph]``; the artifact is then a folder with ``zoo.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import zoo
# Graph and image_graph are the module contract's (zoo.contracts); importable from here too
from zoo.contracts import Graph, export_graphs, image_graph  # noqa: F401
from zoo.errors import ZooError
from zoo.runtime.artifact import FORMAT, GRAPH_SHA_KEY, META_FILE, META_KEY
from zoo.runtime.meta import ArtifactMeta
from zoo.runtime.onnxfile import graph_sha256
from zoo.store import atomic_path, clean_stale_temporaries

TEMP_PREFIX = ".zoo-export-"

DEFAULT_OPSET = 18  # the torch.export-based exporter writes opset 18 or newer
ATOL, RTOL = 1e-4, 1e-3


@dataclass
class Parity:
    graph: str
    batch: int
    max_abs: float
    max_rel: float
    ok: bool


@dataclass
class ExportReport:
    path: Path
    parity: list[Parity]
    parity_inputs: str
    opset: int
    size_bytes: int
    fp16: Any = None  # the half-precision variant's report, when one was asked for
    int8: Any = None  # the int8 variant's report, likewise
    #: per graph: the exporter that wrote it and the seconds it took
    exporters: dict[str, tuple[str, float]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"exported {name} with the {way} exporter in {seconds:.1f} s"
               for name, (way, seconds) in self.exporters.items()]
        out += [f"onnx.checker: ok (full check, opset {self.opset})", f"parity inputs: {self.parity_inputs}"]
        for p in self.parity:
            out.append(f"parity {p.graph} batch {p.batch}: max abs diff {p.max_abs:.3g}, "
                       f"max rel diff {p.max_rel:.3g} (tolerance atol {ATOL:g} + rtol {RTOL:g}) "
                       f"{'ok' if p.ok else 'FAILED'}")
        out.append(f"wrote {self.path} ({self.size_bytes / 1e6:.2f} MB)")
        return out


def _export_graph(graph: Graph, path: Path, opset: int, dynamo: bool = True) -> None:
    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    graph.module.eval()
    args = graph.inputs(2, 0)
    extra = {"external_data": False} if dynamo else {}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph.module, args, str(path), input_names=graph.input_names,
                              output_names=graph.output_names, dynamic_axes=graph.dynamic_axes,
                              opset_version=opset, dynamo=dynamo, verbose=False, **extra)
    finally:
        # the TorchScript exporter restores the mode the module had: a wrapper built for the
        # graph starts in training mode, and restoring it would switch dropout on in the model
        # it wraps, so PyTorch's side of the parity check would be noise
        graph.module.eval()


def progress(message: str) -> None:
    """A line on a terminal's stderr as each export stage starts, so a long export is never
    silent; stdout keeps the report (or the JSON), and a pipe or a log gets only those."""
    if sys.stderr.isatty():
        print(f"... {message}", file=sys.stderr, flush=True)


def _export_checked(spec, graph: Graph, path: Path, opset: int, meta: dict[str, Any]) -> tuple[list[Parity], str]:
    """Export one graph, stamp it (full checker) and compare it with PyTorch; a traced graph that
    fails any of that is exported again with the torch.export-based exporter, whose result is
    final. Returns the parity figures and the exporter that wrote the file."""
    ways = ("TorchScript", "torch.export") if graph.exporter == "auto" else (graph.exporter,)
    for way in ways:
        final = way == ways[-1]
        try:
            progress(f"{spec.name}/{graph.name}: exporting with the {way} exporter")
            _export_graph(graph, path, opset, dynamo=way == "torch.export")
            progress(f"{spec.name}/{graph.name}: onnx.checker, then parity against PyTorch")
            written = _stamp(path, meta)
        except ZooError:
            raise
        except Exception as exc:
            if not final:
                continue
            raise ZooError(f"torch.onnx.export failed for {spec.name}/{graph.name}: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        if written != opset:
            if not final:
                continue
            raise ZooError(f"asked for opset {opset}, the exporter wrote opset {written}; nothing written")
        parity = _parity(graph, path)
        if final or all(p.ok for p in parity):
            return parity, way
    raise AssertionError("unreachable: the last exporter's result is returned")


def _parity(graph: Graph, path: Path) -> list[Parity]:
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    results = []
    batch_sizes = (4, 1) if "batch" in json.dumps(graph.dynamic_axes) else (2,)
    for seed, batch in enumerate(batch_sizes, start=1):
        args = graph.inputs(batch, seed)
        with torch.no_grad():
            expected = graph.module(*args)
        expected = expected if isinstance(expected, (tuple, list)) else (expected,)
        feeds = {name: a.numpy() for name, a in zip(graph.input_names, args)}
        got = session.run(graph.output_names, feeds)
        max_abs = max_rel = 0.0
        ok = True
        for e, g in zip(expected, got):
            e = e.detach().float().numpy() if e.is_floating_point() else e.numpy()
            if e.shape != g.shape:
                raise ZooError(f"export parity: {graph.name} output shape {g.shape} != PyTorch's {e.shape}")
            diff = np.abs(g.astype(np.float64) - e.astype(np.float64))
            max_abs = max(max_abs, float(diff.max(initial=0)))
            max_rel = max(max_rel, float((diff / (np.abs(e) + ATOL)).max(initial=0)))
            ok &= bool(np.all(diff <= ATOL + RTOL * np.abs(e)))
        results.append(Parity(graph.name, batch, max_abs, max_rel, ok))
    return results


def _stamp(path: Path, meta: dict[str, Any]) -> int:
    """Embed the metadata (checked by the schema every reader applies), run the full checker,
    and return the opset the file really has."""
    import onnx

    meta = ArtifactMeta.from_dict(meta, "export").to_dict()
    model = onnx.load(str(path))
    flat = {META_KEY: json.dumps(meta), "zoo.task": meta["task"], "zoo.model": meta["model"],
            "zoo.version": meta["zoo_version"], "zoo.weights_sha256": meta.get("weights_sha256", "")}
    del model.metadata_props[:]
    for key, value in flat.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "zoo"
    model.producer_version = meta["zoo_version"]
    model.doc_string = f"{meta['model']} ({meta['task']}) exported by zoo; see metadata_props['zoo']"
    onnx.checker.check_model(model, full_check=True)
    # the artifact records the sha256 of its own graph (weights included) for `zoo weights verify`
    recorded = hashlib.sha256(model.graph.SerializeToString()).hexdigest()
    model.metadata_props.add(key=GRAPH_SHA_KEY, value=recorded)
    onnx.save(model, str(path))
    if graph_sha256(path) != recorded:
        raise ZooError(f"{path.name}: the saved graph does not hash to the sha256 it records; nothing written")
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def is_zoo_onnx(path: Path) -> bool:
    """True when ``path`` is an ONNX file that carries zoo's metadata (so zoo wrote it)."""
    import onnx

    try:
        if not path.is_file() or path.is_symlink():
            return False
        with open(path, "rb") as fh:
            if fh.read(1) != b"\x08":  # every ONNX ModelProto starts with field 1 (ir_version)
                return False
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return False
    return any(p.key == META_KEY for p in model.metadata_props)


def is_zoo_folder(path: Path) -> bool:
    """A folder artifact zoo wrote: its ``zoo.json`` names every graph file it holds."""
    try:
        spec = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        graphs = set(spec.get("graphs", {}).values())
        children = {p.name for p in path.iterdir()}
    except (OSError, ValueError, AttributeError):
        return False
    return not path.is_symlink() and children <= graphs | {META_FILE}


def check_replaceable(path: Path, force: bool = False) -> None:
    """Refuse to replace what zoo cannot prove it wrote (a user's file or folder)."""
    path = Path(path)
    if force or not (path.exists() or path.is_symlink()):
        return
    if path.is_dir() and not path.is_symlink():
        if is_zoo_folder(path):
            return
        raise ZooError(f"{path} is a folder zoo did not write; choose another --out (or --force to replace it)")
    if path.suffix == ".onnx" and is_zoo_onnx(path):
        return
    raise ZooError(f"{path} exists and is not an artifact zoo wrote; choose another --out (or --force to replace it)")


def _replace_folder(staged: Path, out: Path) -> None:
    if out.exists() or out.is_symlink():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if out.is_dir() and not out.is_symlink():
            out.rename(old)
            staged.rename(out)
            shutil.rmtree(old, ignore_errors=True)
            return
        out.unlink()  # --force over a file
    staged.rename(out)


def export(spec, module, out: Path, *, meta: dict[str, Any], samples: np.ndarray | None = None,
           opset: int = DEFAULT_OPSET, sample_source: str = "", force: bool = False) -> ExportReport:
    """Export ``module`` (eval mode, CPU) to ``out``; nothing appears at ``out`` unless every
    graph passes the checker and the parity test, and an existing ``out`` is replaced only when
    zoo wrote it (or with ``force``)."""
    if opset < DEFAULT_OPSET:
        raise ZooError(f"--opset {opset}: the exporter writes opset {DEFAULT_OPSET} or newer")
    module = module.eval().cpu()
    graphs = export_graphs(spec, module, samples)
    meta = dict(meta, format=FORMAT, zoo_version=zoo.__version__, opset=opset)
    out = Path(out)
    if len(graphs) > 1 and out.suffix == ".onnx":
        out = out.with_suffix("")  # several graphs make a folder artifact
    check_replaceable(out, force)
    if out.parent.is_dir():
        clean_stale_temporaries(out.parent, TEMP_PREFIX)
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, dir=out.parent if out.parent.exists() else None) as tmp:
        tmp = Path(tmp)
        parity: list[Parity] = []
        exporters: dict[str, tuple[str, float]] = {}
        for graph in graphs:
            started = time.perf_counter()
            graph_meta = dict(meta, graph=graph.name, graphs={g.name: f"{g.name}.onnx" for g in graphs})
            results, way = _export_checked(spec, graph, tmp / f"{graph.name}.onnx", opset, graph_meta)
            parity += results
            exporters[graph.name] = (way, time.perf_counter() - started)
        failed = [p for p in parity if not p.ok]
        if failed:
            worst = max(failed, key=lambda p: p.max_abs)
            raise ZooError(f"export parity failed for {spec.name}/{worst.graph} at batch {worst.batch}: "
                           f"max abs diff {worst.max_abs:.3g} exceeds atol {ATOL:g} + rtol {RTOL:g}; nothing written")
        out.parent.mkdir(parents=True, exist_ok=True)
        if len(graphs) == 1:
            if out.is_dir() and not out.is_symlink():  # --force over a folder
                shutil.rmtree(out)
            with atomic_path(out, ".onnx") as final:
                shutil.move(str(tmp / f"{graphs[0].name}.onnx"), final)
            size = out.stat().st_size
        else:
            folder_meta = ArtifactMeta.from_dict(dict(meta, graphs={g.name: f"{g.name}.onnx" for g in graphs}),
                                                 "export").to_dict()
            (tmp / META_FILE).write_text(json.dumps(folder_meta, indent=2))
            staged = out.with_name(f".{out.name}.new")
            shutil.rmtree(staged, ignore_errors=True)
            shutil.copytree(tmp, staged)
            _replace_folder(staged, out)
            size = sum(p.stat().st_size for p in out.iterdir())
    return ExportReport(out, parity, sample_source or ("real samples" if samples is not None else "random inputs"),
                        opset, size, exporters=exporters)
