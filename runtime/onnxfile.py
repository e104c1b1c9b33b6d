"""Reading what zoo must check in an ONNX file before onnxruntime opens it, without the ``onnx``
package (not installed on a deployment box) and without copying the file into memory.

An ONNX file is a protobuf ``ModelProto``. This module walks its wire format over a read-only
memory map and collects the two things zoo needs: the ``metadata_props`` (the artifact's
self-description) and every tensor's external-data entries (``location``, ``offset``,
``length``), wherever a tensor may sit: graph initializers, sparse initializers, ``Constant``
and other node attributes, subgraphs of ``If``/``Loop``/``Scan``, functions and training info.
The SHA-256 of the serialized graph (field 7) is what an artifact records of itself."""

from __future__ import annotations

import hashlib
import mmap
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from zoo.errors import ZooError

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
#: nesting of subgraphs deeper than this is refused (a real model nests a few levels)
MAX_NESTING = 64


class _Malformed(Exception):
    pass


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf, start: int, end: int):
    """``(field number, wire type, value)`` of one message; a length-delimited value is its
    ``(start, end)`` span in ``buf``."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
        elif wire == _I64:
            value, pos = None, pos + 8
        elif wire == _I32:
            value, pos = None, pos + 4
        elif wire == _LEN:
            length, pos = _varint(buf, pos, end)
            value, pos = (pos, pos + length), pos + length
        else:
            raise _Malformed(f"wire type {wire}")
        if pos > end:
            raise _Malformed("field runs past its message")
        yield number, wire, value


def _text(buf, span) -> str:
    return bytes(buf[span[0]: span[1]]).decode("utf-8", "replace")


@dataclass
class OnnxSummary:
    metadata: dict[str, str] = field(default_factory=dict)
    #: per external tensor: its entries (``location``, ``offset``, ``length``, ...)
    external: list[dict[str, str]] = field(default_factory=list)
    graph_span: tuple[int, int] | None = None
    ir_version: int = 0


def _pairs(buf, span) -> tuple[str, str]:
    key = value = ""
    for number, wire, v in _fields(buf, *span):
        if wire == _LEN and number == 1:
            key = _text(buf, v)
        elif wire == _LEN and number == 2:
            value = _text(buf, v)
    return key, value


def _tensor(buf, span, out: OnnxSummary) -> None:
    entries: dict[str, str] = {}
    external = False
    for number, wire, v in _fields(buf, *span):
        if number == 13 and wire == _LEN:
            key, value = _pairs(buf, v)
            entries[key] = value
        elif number == 14 and wire == _VARINT:
            external = v == 1
    if external or entries:
        out.external.append(entries)


def _sparse(buf, span, out: OnnxSummary) -> None:
    for number, wire, v in _fields(buf, *span):
        if number in (1, 2) and wire == _LEN:
            _tensor(buf, v, out)


def _attribute(buf, span, out: OnnxSummary, depth: int) -> None:
    for number, wire, v in _fields(buf, *span):
        if wire != _LEN:
            continue
        if number in (5, 10):  # t, tensors
            _tensor(buf, v, out)
        elif number in (22, 23):  # sparse_tensor, sparse_tensors
            _sparse(buf, v, out)
        elif number in (6, 11):  # g, graphs
            _graph(buf, v, out, depth + 1)


def _node(buf, span, out: OnnxSummary, depth: int, attribute_field: int = 5) -> None:
    for number, wire, v in _fields(buf, *span):
        if number == attribute_field and wire == _LEN:
            _attribute(buf, v, out, depth)


def _graph(buf, span, out: OnnxSummary, depth: int) -> None:
    if depth > MAX_NESTING:
        raise _Malformed("subgraphs nest too deeply")
    for number, wire, v in _fields(buf, *span):
        if wire != _LEN:
            continue
        if number == 1:
            _node(buf, v, out, depth)
        elif number == 5:
            _tensor(buf, v, out)
        elif number == 15:
            _sparse(buf, v, out)


def _function(buf, span, out: OnnxSummary) -> None:
    for number, wire, v in _fields(buf, *span):
        if number == 7 and wire == _LEN:
            _node(buf, v, out, 1)


def _regular_file(path: Path) -> os.stat_result:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ZooError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(info.st_mode):
        raise ZooError(f"{path}: not a plain file (a device, FIFO or folder is never read)")
    return info


def summarise(path: Path) -> OnnxSummary:
    """Metadata and external-data entries of the ONNX file at ``path`` (a plain file)."""
    info = _regular_file(path)
    out = OnnxSummary()
    if info.st_size == 0:
        raise ZooError(f"{path}: not an ONNX model file (empty)")
    try:
        fh = open(path, "rb")
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise ZooError(f"{path}: cannot read ({exc})") from exc
    with fh, buf:
        try:
            for number, wire, v in _fields(buf, 0, len(buf)):
                if number == 1 and wire == _VARINT:
                    out.ir_version = v
                elif number == 7 and wire == _LEN:
                    out.graph_span = v
                    _graph(buf, v, out, 0)
                elif number == 14 and wire == _LEN:
                    key, value = _pairs(buf, v)
                    out.metadata[key] = value
                elif number == 25 and wire == _LEN:
                    _function(buf, v, out)
                elif number == 20 and wire == _LEN:  # training_info: initialization, algorithm graphs
                    for n2, w2, v2 in _fields(buf, *v):
                        if n2 in (1, 2) and w2 == _LEN:
                            _graph(buf, v2, out, 1)
        except (_Malformed, IndexError, ValueError) as exc:
            raise ZooError(f"{path}: not a valid ONNX model file ({exc})") from exc
    if out.graph_span is None or not out.ir_version:
        raise ZooError(f"{path}: not an ONNX model file (no graph)")
    return out


def graph_sha256(path: Path, summary: OnnxSummary | None = None) -> str:
    """SHA-256 of the serialized graph (weights included, metadata excluded)."""
    summary = summary or summarise(path)
    assert summary.graph_span is not None
    start, end = summary.graph_span
    digest = hashlib.sha256()
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        for pos in range(start, end, 1 << 22):
            digest.update(buf[pos: min(end, pos + (1 << 22))])
    return digest.hexdigest()


def check_external_data(path: Path, summary: OnnxSummary) -> None:
    """Every external-data location must be a plain file inside the model's folder (no ``..``,
    no absolute path, no symlink out, no device or FIFO), with offset and length inside it."""
    folder = path.parent.resolve()
    for entries in summary.external:
        location = entries.get("location", "")
        where = f"{path}: external data {location!r}"
        if not location or "\x00" in location or os.path.isabs(location) or "\\" in location \
                or any(part == ".." for part in Path(location).parts):
            raise ZooError(f"{where} is not a file inside {folder}; refused")
        target = Path(os.path.realpath(folder / location))
        if target != folder and folder not in target.parents:
            raise ZooError(f"{where} leads outside {folder}; refused")
        info = _regular_file(target)
        try:
            offset = int(entries.get("offset", "0") or 0)
            length = int(entries["length"]) if entries.get("length") else info.st_size - offset
        except ValueError as exc:
            raise ZooError(f"{where} has a malformed offset or length") from exc
        if offset < 0 or length < 0 or offset + length > info.st_size:
            raise ZooError(f"{where}: offset {offset} + length {length} lies outside the {info.st_size}-byte file")
