"""Exported models that describe themselves.

An artifact is either one ``.onnx`` file whose ``metadata_props`` hold the key ``zoo`` (a JSON
object: task, model, labels, preprocessing, zoo version, weights sha256, graphs) or a folder
holding ``zoo.json`` (the same object) beside several graphs, for models that export more than
one graph (an encoder and a decoder step, say)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.runtime.session import ProviderReport, create_session

META_KEY = "zoo"
META_FILE = "zoo.json"
FORMAT = 1


@dataclass
class Artifact:
    path: Path
    meta: dict[str, Any]
    provider: str = "auto"
    _sessions: dict[str, Any] = field(default_factory=dict)
    report: ProviderReport | None = None

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
        return self.path / graphs[name]

    def session(self, name: str = "model"):
        if name not in self._sessions:
            session, report = create_session(str(self.graph_path(name)), self.provider)
            self._sessions[name] = session
            self.report = self.report or report
        return self._sessions[name]


def _decode(raw: str, where: Path) -> dict[str, Any]:
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise ZooError(f"{where}: zoo metadata is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or "task" not in meta:
        raise ZooError(f"{where}: zoo metadata lacks a task")
    if meta.get("format", FORMAT) > FORMAT:
        raise ZooError(f"{where}: artifact format {meta['format']} is newer than this zoo understands ({FORMAT})")
    return meta


def open_artifact(path: str | Path, provider: str = "auto") -> Artifact:
    path = Path(path)
    if path.is_dir():
        meta_file = path / META_FILE
        if not meta_file.is_file():
            raise ZooError(f"{path}: folder is not a zoo artifact (no {META_FILE})")
        return Artifact(path, _decode(meta_file.read_text(encoding="utf-8"), meta_file), provider)
    if not path.is_file():
        raise ZooError(f"{path}: no such artifact")
    head = path.read_bytes()[:64]
    if not head or head.lstrip()[:1] in (b"{", b"<") or b"PNG" in head[:8]:
        raise ZooError(f"{path}: not an ONNX model file")
    artifact = Artifact(path, {}, provider)
    session, report = create_session(str(path), provider)
    custom = session.get_modelmeta().custom_metadata_map
    if META_KEY not in custom:
        raise ZooError(f"{path}: ONNX model has no zoo metadata (was it exported by `zoo export`?)")
    artifact.meta = _decode(custom[META_KEY], path)
    artifact._sessions["model"] = session
    artifact.report = report
    return artifact
