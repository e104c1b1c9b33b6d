"""Loading trained modules and exporting them (needs torch; never imported by `zoo run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zoo import store
from zoo.errors import ZooError
from zoo.registry import registry
from zoo.specs import ModelSpec, load_object


def load_trained(spec: ModelSpec, random_weights: bool = False, config: dict | None = None):
    """The module with its stored weights (verified against the manifest), and the manifest.
    ``config`` overrides the default config of random weights (a bench at another input size)."""
    from zoo.engine import load_weights

    if random_weights:
        return spec.build(config), {"config": spec.config(config), "labels": list(spec.labels), "sha256": "random",
                                    "preprocessing": spec.preprocessing_for(spec.config(config)),
                                    "dataset": spec.dataset}
    if config:
        raise ZooError("--config applies to --random-weights; trained weights keep the config they were trained with")
    entry = store.require(spec.name)
    entry.verify()
    module = spec.build(entry.manifest.get("config"))
    load_weights(module, entry.file)
    return module, entry.manifest


def dev_samples(spec: ModelSpec, manifest: dict[str, Any], data: str | None, limit: int = 64):
    """Real dev-split inputs, encoded by the task, for the parity check; None if unavailable."""
    reg = registry()
    name = manifest.get("dataset") or spec.dataset
    if not name:
        return None, "random inputs (model has no dataset)"
    try:
        splits = load_object(reg.dataset(name).loader)(data, seed=manifest.get("split_seed", 0))
    except ZooError as exc:
        return None, f"random inputs ({exc})"
    task = reg.task(spec.task).load()
    raw = splits.dev.inputs[:limit]
    # the loader's info (a vocabulary) stands in for task_meta when the weights are random
    meta = {**manifest, **splits.info, **manifest.get("task_meta", {})}
    try:
        return task.encode_inputs(raw, meta), f"{len(raw)} real samples from the {name} dev split"
    except ZooError as exc:
        return None, f"random inputs ({exc})"


def default_artifact_path(name: str, suffix: str = ".onnx") -> Path:
    return store.exports_dir() / f"{name}{suffix}"


def export_model(name: str, fmt: str = "onnx", out: str | None = None, opset: int | None = None,
                 data: str | None = None, random_weights: bool = False, fp16: bool = False,
                 config: dict | None = None):
    """Export NAME; with ``fp16`` also a half-precision ONNX variant beside it, whose report is
    returned in the report's ``fp16`` field."""
    reg = registry()
    if fp16 and fmt != "onnx":
        raise ZooError(f"--fp16 is offered for ONNX exports, not {fmt!r}")
    spec = reg.model(name)
    exporter = reg.exporter(fmt)
    module, manifest = load_trained(spec, random_weights, config)
    samples, source = dev_samples(spec, manifest, data)
    meta = {
        "task": spec.task, "model": spec.name, "family": spec.family,
        "labels": manifest.get("labels") or list(spec.labels),
        "preprocessing": manifest.get("preprocessing") or dict(spec.preprocessing),
        "config": manifest.get("config"), "weights_sha256": manifest.get("sha256"),
        "metrics": manifest.get("metrics", {}), "input_layout": "NCHW" if spec.input_shape else "",
        **manifest.get("task_meta", {}),
    }
    # an exporter without a file suffix writes into a folder (a Triton model repository, say)
    default = default_artifact_path(spec.name, exporter.suffix) if exporter.suffix else store.exports_dir() / fmt
    path = Path(out) if out else default
    if path.is_dir() and path.suffix != exporter.suffix and not (path / "zoo.json").exists():
        path = path / f"{spec.name}{exporter.suffix}"
    kwargs: dict[str, Any] = {"meta": meta, "samples": samples, "sample_source": source}
    if opset:
        kwargs["opset"] = opset
    report = load_object(exporter.export)(spec, module, path, **kwargs)
    if fp16:
        from zoo.exporters.fp16 import export_half
        from zoo.exporters.onnx import DEFAULT_OPSET

        report.fp16 = export_half(spec, module, report.path, meta=meta, samples=samples,
                                  opset=opset or DEFAULT_OPSET, sample_source=source)
    return report


def _state_from_file(spec: ModelSpec, module, path: Path) -> dict:
    import torch

    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise ZooError(f"{path}: not a readable safetensors file ({exc})") from exc
    if suffix in (".pt", ".pth", ".bin", ".ckpt"):
        try:
            # weights_only: tensors and plain containers only, never arbitrary pickled objects
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ZooError(f"{path}: not a loadable PyTorch state dict ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
            raise ZooError(f"{path}: does not hold a state dict of tensors")
        return state
    if suffix in spec.importers:
        return load_object(spec.importers[suffix])(spec, module, path)
    known = [".safetensors", ".pt", ".pth", *spec.importers]
    raise ZooError(f"{path}: unknown weights format {suffix or '(no suffix)'} for {spec.name}; known: {', '.join(known)}")


def check_state(module, state: dict, source: Path) -> None:
    """Every key present, no extra key, every shape equal; otherwise say which."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s) e.g. {', '.join(missing[:3])}")
    if extra:
        problems.append(f"{len(extra)} unexpected key(s) e.g. {', '.join(extra[:3])}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es) e.g. {'; '.join(wrong[:2])}")
    if problems:
        raise ZooError(f"{source}: weights do not fit this architecture: {'; '.join(problems)}")


def import_weights(name: str, file: str, config: dict | None = None) -> store.WeightsEntry:
    import shlex
    import sys
    import tempfile
    from datetime import datetime, timezone

    import zoo
    from zoo.engine import save_weights

    spec = registry().model(name)
    path = Path(file)
    if not path.is_file():
        raise ZooError(f"{path}: no such file")
    module = spec.build(config)
    state = _state_from_file(spec, module, path)
    if hasattr(module, "imported_state"):  # a module may drop what its published files carry beyond it
        state = module.imported_state(state)
    check_state(module, state, path)
    module.load_state_dict({k: v for k, v in state.items()}, strict=True)
    manifest = {
        "model": spec.name, "family": spec.family, "task": spec.task, "config": spec.config(config),
        "dataset": spec.dataset, "labels": list(spec.labels),
        "preprocessing": spec.preprocessing_for(spec.config(config)),
        "metrics": {}, "imported_from": str(path.resolve()), "source_sha256": store.sha256_file(path),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "zoo_version": zoo.__version__,
        "command": shlex.join(["zoo", *sys.argv[1:]]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model.safetensors"
        save_weights(module, staged)
        return store.install(spec.name, staged, manifest)
