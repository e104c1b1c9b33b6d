"""Exported models that describe themselves.

An artifact is either one ``.onnx`` file whose ``metadata_props`` hold the key ``zoo`` (a JSON
object: task, model, labels, preprocessing, zoo version, weights sha256, graphs) or a folder
holding ``zoo.json`` (the same object) beside several graphs, for models that export more than
one graph (an encoder and a decoder step, say).

An artifact is untrusted input. Before onnxruntime sees a file, zoo reads its metadata and
external-data entries itself (``zoo.runtime.onnxfile``), checks the metadata against the typed
schema (``zoo.runtime.meta.ArtifactMeta``) and accepts graph files and external data only as
plain files inside the artifact's folder."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.runtime.meta import FORMAT, ArtifactMeta, check_graph_name
from zoo.runtime.onnxfile import check_external_data, graph_sha256, summarise
from zoo.runtime.session import ProviderReport, create_session

META_KEY = "zoo"
META_FILE = "zoo.json"
GRAPH_SHA_KEY = "zoo.graph_sha256"
#: zoo.json is a few kB (a vocabulary makes it larger); anything above this is refused unread
MAX_META_BYTES = 64 << 20
__all__ = ["FORMAT", "META_FILE", "META_KEY", "Artifact", "open_artifact", "verify_artifact"]


@dataclass
class Artifact:
    path: Path
    meta: dict[str, Any]
    provider: str = "auto"
    _sessions: dict[str, Any] = field(default_factory=dict)
    report: ProviderReport | None = None
    typed: ArtifactMeta | None = None
    threads: int | None = None  # onnxruntime intra-op threads of its sessions (None: its default)
    spin: bool = False  # whether their threads spin-wait between calls (``create_session``)

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def model(self) -> str:
        return self.meta.get("model", "?")

    def graph_path(self, name: str) -> Path:
        if self.path.is_file():
            if name != "model":
                raise ZooError(f"{self.path}: single-graph artifact has no graph {name!r}")
            return self.path
        graphs = self.meta.get("graphs", {})
        if name not in graphs:
            raise ZooError(f"{self.path}: artifact has no graph {name!r} (it has {', '.join(graphs)})")
        return _graph_file(self.path, graphs[name])

    def session(self, name: str = "model"):
        if name not in self._sessions:
            path = self.graph_path(name)
            check_external_data(path, summarise(path))
            session, report = create_session(str(path), self.provider, threads=self.threads, spin=self.spin)
            self._sessions[name] = session
            self.report = self.report or report
        return self._sessions[name]


def _graph_file(folder: Path, rel: str) -> Path:
    """A graph named by zoo.json: a plain file inside the folder, never a link out, FIFO or device."""
    check_graph_name(rel, str(folder))
    path = folder / rel
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise ZooError(f"{folder}: graph file {rel} is missing") from exc
    if stat.S_ISLNK(info.st_mode):
        real = Path(os.path.realpath(path))
        if folder.resolve() not in real.parents:
            raise ZooError(f"{folder}: graph file {rel} links outside the artifact folder; refused")
        info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ZooError(f"{folder}: graph file {rel} is not a plain file; refused")
    return path


def _decode(raw: str, where: Path) -> ArtifactMeta:
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise ZooError(f"{where}: zoo metadata is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or "task" not in meta:
        raise ZooError(f"{where}: zoo metadata lacks a task")
    return ArtifactMeta.from_dict(meta, str(where))


def _read_meta_file(meta_file: Path) -> str:
    try:
        info = os.lstat(meta_file)
    except OSError as exc:
        raise ZooError(f"{meta_file.parent}: folder is not a zoo artifact (no {META_FILE})") from exc
    if not stat.S_ISREG(info.st_mode):
        raise ZooError(f"{meta_file}: not a plain file; refused")
    if info.st_size > MAX_META_BYTES:
        raise ZooError(f"{meta_file}: {info.st_size} bytes is more than zoo metadata can be; refused")
    try:
        return meta_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ZooError(f"{meta_file}: unreadable ({exc})") from exc


def _sniff(path: Path) -> None:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ZooError(f"{path}: no such artifact") from exc
    if not stat.S_ISREG(info.st_mode):
        raise ZooError(f"{path}: not a plain file (a device or FIFO is never read)")
    with open(path, "rb") as fh:
        head = fh.read(64)  # only what the sniff needs, whatever the file's size
    if not head or head.lstrip()[:1] in (b"{", b"<") or b"PNG" in head[:8] or head[:1] != b"\x08":
        raise ZooError(f"{path}: not an ONNX model file")


def open_artifact(path: str | Path, provider: str = "auto", threads: int | None = None,
                  spin: bool = False) -> Artifact:
    path = Path(path)
    if path.is_dir():
        meta_file = path / META_FILE
        typed = _decode(_read_meta_file(meta_file), meta_file)
        for name, rel in typed.graphs.items():
            _graph_file(path, rel)
        return Artifact(path, typed.to_dict(), provider, typed=typed, threads=threads, spin=spin)
    if not path.exists():
        raise ZooError(f"{path}: no such artifact")
    _sniff(path)
    summary = summarise(path)
    if META_KEY not in summary.metadata:
        raise ZooError(f"{path}: ONNX model has no zoo metadata (was it exported by `zoo export`?)")
    typed = _decode(summary.metadata[META_KEY], path)
    check_external_data(path, summary)
    artifact = Artifact(path, typed.to_dict(), provider, typed=typed, threads=threads, spin=spin)
    session, report = create_session(str(path), provider, threads=threads, spin=spin)
    _check_against_graph(path, typed, session)
    artifact._sessions["model"] = session
    artifact.report = report
    return artifact


def _check_against_graph(path: Path, typed: ArtifactMeta, session) -> None:
    """What the metadata claims and the graph declares must agree where both are known: an
    image input of the preprocessing's size, a label per output class."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    size = typed.preprocessing.size
    if size and len(inputs) == 1 and len(inputs[0].shape) == 4:
        declared = inputs[0].shape[2:]
        if all(isinstance(d, int) for d in declared) and tuple(declared) != tuple(size):
            raise ZooError(f"{path}: artifact metadata preprocessing.size {list(size)} does not match the graph's "
                           f"input {list(declared)}")
    if typed.labels and len(outputs) == 1 and len(outputs[0].shape) == 2:
        classes = outputs[0].shape[1]
        if isinstance(classes, int) and classes != len(typed.labels):
            raise ZooError(f"{path}: artifact metadata has {len(typed.labels)} labels for the graph's {classes} outputs")


def _verify_graph(path: Path) -> None:
    summary = summarise(path)
    recorded = summary.metadata.get(GRAPH_SHA_KEY)
    if not recorded:
        raise ZooError(f"{path} records no graph sha256 (exported by an older zoo); re-export it to verify it")
    actual = graph_sha256(path, summary)
    if actual != recorded:
        raise ZooError(f"{path}: graph sha256 {actual[:12]}… does not match the {recorded[:12]}… it records "
                       "(modified since export); re-export it")
    if META_KEY in summary.metadata:
        _decode(summary.metadata[META_KEY], path)
    check_external_data(path, summary)


def verify_artifact(path: str | Path) -> None:
    """Raise ZooError unless every graph of the artifact matches the sha256 it records."""
    path = Path(path)
    if path.is_dir():
        meta_file = path / META_FILE
        if meta_file.exists():
            typed = _decode(_read_meta_file(meta_file), meta_file)
            for rel in typed.graphs.values():
                _verify_graph(_graph_file(path, rel))
            return
        # a Triton model repository entry: NAME/1/model.onnx
        graphs = sorted([*path.glob("*/model.onnx"), *path.glob("*/*/model.onnx")])
        if not graphs:
            raise ZooError(f"{path}: folder is not a zoo artifact (no {META_FILE})")
        for graph in graphs:
            _verify_graph(graph)
        return
    _sniff(path)
    _verify_graph(path)
