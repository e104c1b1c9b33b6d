"""Darknet's ``.weights`` format, so that the published YOLO weights load into zoo's modules.

The file is a header (three int32: major, minor, revision; then the count of images seen, an
int64 from version 0.2 on, an int32 before) followed by raw little-endian float32 values, layer
after layer in the cfg's order. A convolution with batch norm stores its batch-norm beta, gamma,
running mean and running variance, one value per filter each, then its kernels; one without stores
its biases, then its kernels. Kernels are (filters, channels, k, k) in C order, as PyTorch's.

Nothing in the file names its layers, so the size is the only check that a file belongs to an
architecture: anything but the exact byte count is refused, saying both counts."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from zoo.contracts import hook
from zoo.errors import ZooError
from zoo.store import atomic_path


def _layers(module) -> list[tuple[str, str | None]]:
    layers = hook(module, "darknet_layers")
    if layers is None:
        raise ZooError(f"{type(module).__name__} has no Darknet layer order; .weights files do not fit it")
    return layers()


def _order(module) -> list[str]:
    """State-dict keys in file order."""
    keys = []
    for conv, bn in _layers(module):
        keys += [f"{bn}.bias", f"{bn}.weight", f"{bn}.running_mean", f"{bn}.running_var"] if bn else [f"{conv}.bias"]
        keys.append(f"{conv}.weight")
    return keys


def header_size(data: bytes) -> int:
    major, minor, _ = struct.unpack("<3i", data[:12])
    return 20 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 16


def read_darknet(spec, module, path: str | Path) -> dict:
    """A Darknet ``.weights`` file -> a state dict for ``module`` (``ModelSpec.importers``)."""
    import torch

    path = Path(path)
    data = path.read_bytes()
    state = module.state_dict()
    keys = _order(module)
    values = sum(state[k].numel() for k in keys)
    if len(data) < 16:
        raise ZooError(f"{path}: {len(data)} bytes is too short for a Darknet .weights header")
    header = header_size(data)
    expected = header + 4 * values
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "larger than the architecture"
        raise ZooError(f"{path}: {len(data):,} bytes, but {spec.name} with this config needs {expected:,} "
                       f"({header}-byte header + {values:,} float32 values); the file is {what} "
                       "(weights of another architecture or class count?)")
    floats = np.frombuffer(data, "<f4", offset=header)
    out, at = {}, 0
    for key in keys:
        n = state[key].numel()
        out[key] = torch.from_numpy(floats[at: at + n].copy()).view_as(state[key])
        at += n
    for key, value in state.items():  # batch-norm counters are not in the file
        out.setdefault(key, torch.zeros_like(value))
    return out


def write_darknet(module, path: str | Path, seen: int = 0) -> int:
    """Write ``module``'s weights as a Darknet 0.2 ``.weights`` file; returns its size."""
    state = module.state_dict()
    body = np.concatenate([state[k].detach().cpu().numpy().astype("<f4").ravel() for k in _order(module)])
    data = struct.pack("<3iq", 0, 2, 0, seen) + body.tobytes()
    with atomic_path(Path(path), ".weights") as tmp:
        tmp.write_bytes(data)
    return len(data)
