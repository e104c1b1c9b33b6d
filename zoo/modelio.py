"""Loading trained modules and exporting them (needs torch; never imported by `zoo run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zoo import store
from zoo.contracts import hook
from zoo.data import call_loader
from zoo.errors import ZooError
from zoo.registry import registry
from zoo.specs import ModelSpec, load_object


def load_trained(spec: ModelSpec, random_weights: bool = False, config: dict | None = None,
                 tag: str | None = None):
    """The module with its stored weights (verified against the manifest), and the manifest.
    ``tag`` picks the entry (default: the active one); ``config`` overrides the default config
    of random weights (a bench at another input size)."""
    from zoo.engine import load_weights

    if random_weights:
        if tag:
            raise ZooError(f"--random-weights uses no stored weights; drop @{tag}")
        merged = spec.config(config)
        classes = merged.get("num_classes")  # labels only when the head has one output per label
        labels = list(spec.labels) if classes is None or len(spec.labels) == classes else []
        return spec.build(config), {"config": merged, "labels": labels, "sha256": "random",
                                    "tag": store.RANDOM,
                                    "preprocessing": spec.preprocessing_for(spec.config(config)),
                                    "dataset": spec.dataset}
    if config:
        raise ZooError("--config applies to --random-weights; trained weights keep the config they were trained with")
    entry = store.require(f"{spec.name}@{tag}" if tag else spec.name)
    entry.verify()
    module = spec.build(entry.manifest.get("config"))
    load_weights(module, entry.file)
    return module, dict(entry.manifest, tag=entry.tag)


def _splits(spec: ModelSpec, manifest: dict[str, Any], data: str | None, only: str | None = None):
    """The splits the weights were trained on (the same seed), or None with the reason; ``only``
    asks for one split (``zoo.data.call_loader``)."""
    name = manifest.get("dataset") or spec.dataset
    if not name:
        return None, "model has no dataset"
    try:
        return call_loader(load_object(registry().dataset(name).loader), data, seed=manifest.get("split_seed", 0),
                           only=only), name
    except ZooError as exc:
        return None, str(exc)


def dev_samples(spec: ModelSpec, manifest: dict[str, Any], data: str | None, limit: int = 64):
    """Real dev-split inputs, encoded by the task, for the parity check; None if unavailable."""
    splits, name = _splits(spec, manifest, data, only="dev")
    if splits is None:
        return None, f"random inputs ({name})"
    task = registry().task(spec.task).load()
    raw = splits.dev.inputs[:limit]
    # the loader's info (a vocabulary) stands in for task_meta when the weights are random
    meta = {**manifest, **splits.info, **manifest.get("task_meta", {})}
    try:
        return task.encode_inputs(raw, meta), f"{len(raw)} real samples from the {name} dev split"
    except ZooError as exc:
        return None, f"random inputs ({exc})"


def default_artifact_path(name: str, suffix: str = ".onnx") -> Path:
    """Where ``zoo export NAME`` writes; ``name`` may carry a tag (``lenet5@shipped``), and the
    random-weights export of NAME is ``NAME@random``, so it never shadows a trained one."""
    return store.exports_dir() / f"{name}{suffix}"


def artifact_meta(spec: ModelSpec, manifest: dict[str, Any]) -> dict[str, Any]:
    """The artifact's self-description, built once through the typed schema that readers check."""
    from zoo.runtime.meta import ArtifactMeta, Preprocessing

    task_meta = manifest.get("task_meta") or {}
    typed = ArtifactMeta.from_dict({
        **task_meta,
        "task": spec.task, "model": spec.name, "family": spec.family,
        "labels": manifest["labels"] if isinstance(manifest.get("labels"), list) else list(spec.labels),
        "preprocessing": manifest.get("preprocessing") or dict(spec.preprocessing),
        "config": manifest.get("config") or {}, "weights_sha256": manifest.get("sha256") or "",
        "weights_tag": manifest.get("tag") or "",
        "metrics": manifest.get("metrics", {}), "input_layout": "NCHW" if spec.input_shape else "",
    }, f"{spec.name} weights manifest")
    assert isinstance(typed.preprocessing, Preprocessing)
    return typed.to_dict()


def _accepts(fn, name: str) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def export_model(name: str, fmt: str = "onnx", out: str | None = None, opset: int | None = None,
                 data: str | None = None, random_weights: bool = False, fp16: bool = False,
                 config: dict | None = None, force: bool = False, int8: bool = False):
    """Export NAME (or NAME@TAG); with ``fp16`` also a half-precision ONNX variant beside it,
    with ``int8`` an int8 one (calibrated on the dev split, scored on the test split), whose
    reports are returned in the report's ``fp16`` and ``int8`` fields. An existing destination
    is replaced only when zoo wrote it (or with ``force``)."""
    from zoo.exporters.onnx import check_replaceable

    reg = registry()
    for flag, wanted in (("--fp16", fp16), ("--int8", int8)):
        if wanted and fmt != "onnx":
            raise ZooError(f"{flag} is offered for ONNX exports, not {fmt!r}")
    model_name, tag = store.split_ref(name)
    spec = reg.model(model_name)
    exporter = reg.exporter(fmt)
    from zoo.exporters.onnx import progress

    progress(f"{name}: loading the weights and the dev samples for the parity check")
    module, manifest = load_trained(spec, random_weights, config, tag)
    samples, source = dev_samples(spec, manifest, data)
    meta = artifact_meta(spec, manifest)
    stem = f"{spec.name}@{store.RANDOM}" if random_weights else f"{spec.name}@{tag}" if tag else spec.name
    # an exporter without a file suffix writes into a folder (a Triton model repository, say)
    default = default_artifact_path(stem, exporter.suffix) if exporter.suffix else store.exports_dir() / fmt
    if out is None:
        store.exports_dir().mkdir(parents=True, exist_ok=True)
    path = Path(out) if out else default
    if exporter.suffix and path.is_dir() and path.suffix != exporter.suffix and not (path / "zoo.json").exists():
        path = path / f"{stem}{exporter.suffix}"
    if exporter.suffix:
        check_replaceable(path, force)
    if fp16:
        from zoo.exporters.fp16 import check_half, half_path

        check_half(spec, module, samples)  # several graphs: refused before anything is written
        check_replaceable(half_path(path), force)
    if int8:
        from zoo.exporters.int8 import int8_path

        if random_weights:
            raise ZooError("--int8 is judged on held-out data, which random weights make meaningless")
        check_replaceable(int8_path(path), force)
    kwargs: dict[str, Any] = {"meta": meta, "samples": samples, "sample_source": source}
    if opset:
        kwargs["opset"] = opset
    export_fn = load_object(exporter.export)
    if _accepts(export_fn, "force"):
        kwargs["force"] = force
    report = export_fn(spec, module, path, **kwargs)
    if fp16:
        from zoo.exporters.fp16 import export_half
        from zoo.exporters.onnx import DEFAULT_OPSET

        report.fp16 = export_half(spec, module, report.path, meta=meta, samples=samples,
                                  opset=opset or DEFAULT_OPSET, sample_source=source, force=force)
    if int8:
        report.int8 = _export_int8(spec, manifest, data, report.path, force)
    return report


def _export_int8(spec: ModelSpec, manifest: dict[str, Any], data: str | None, fp32_path: Path, force: bool):
    """The int8 variant, calibrated on up to 256 dev samples and scored on the whole test split."""
    from zoo.exporters.int8 import export_int8
    from zoo.runtime.artifact import open_artifact

    splits, why = _splits(spec, manifest, data)
    if splits is None:
        raise ZooError(f"--int8 needs the model's own data to calibrate and judge on ({why})")
    task = registry().task(spec.task).load()
    calibration = task.encode_inputs(splits.dev.inputs[:256], open_artifact(fp32_path, "cpu").meta)
    return export_int8(fp32_path, task, calibration, list(splits.test.inputs), splits.test.targets, force=force)


#: slack above the model's own size that a weights file may have (headers, an optimizer's
#: moments, EMA copies or auxiliary heads a published checkpoint carries beside the weights)
SIZE_FACTOR, SIZE_SLACK = 4, 64 << 20


def max_file_bytes(module) -> int:
    """The largest weights file this module could need, checked before a byte is read."""
    own = sum(t.numel() * 4 for t in module.state_dict().values())
    return SIZE_FACTOR * own + SIZE_SLACK


def _check_size(path: Path, module, name: str, limit: int | None = None) -> None:
    size = path.stat().st_size
    limit = max_file_bytes(module) if limit is None else limit
    if size > limit:
        raise ZooError(f"{path}: {size / 1e6:,.1f} MB is more than {name} could need (at most {limit / 1e6:,.1f} MB); "
                       "refused unread")
    if path.suffix.lower() in (".pt", ".pth", ".bin", ".ckpt"):
        import zipfile

        if zipfile.is_zipfile(path):  # torch.save's format: what it inflates to is declared up front
            try:
                with zipfile.ZipFile(path) as archive:
                    inflated = sum(info.file_size for info in archive.infolist())
            except (zipfile.BadZipFile, OSError) as exc:
                raise ZooError(f"{path}: a damaged PyTorch file ({exc})") from exc
            if inflated > limit:
                raise ZooError(f"{path}: unpacks to {inflated / 1e6:,.1f} MB, more than {name} could need "
                               f"(at most {limit / 1e6:,.1f} MB); refused unread")


def _state_from_file(spec: ModelSpec, module, path: Path) -> dict:
    import torch

    suffix = path.suffix.lower()
    if suffix in spec.importers and suffix not in (".safetensors", ".pt", ".pth", ".bin", ".ckpt"):
        converter = load_object(spec.importers[suffix])
        # a converter of a format whose size is not the model's (a text vocabulary file, say)
        # names its own bound: converter.max_bytes(module) -> int
        bound = getattr(converter, "max_bytes", None)
        _check_size(path, module, spec.name, bound(module) if callable(bound) else None)
        return converter(spec, module, path)
    _check_size(path, module, spec.name)
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise ZooError(f"{path}: not a readable safetensors file ({type(exc).__name__})") from exc
    if suffix in (".pt", ".pth", ".bin", ".ckpt"):
        try:
            # weights_only: tensors and plain containers only, never arbitrary pickled objects
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            why = "it holds pickled objects other than tensors, which zoo never unpickles" \
                if "weights_only" in str(exc) or "Unsupported" in str(exc) else "unreadable or damaged"
            raise ZooError(f"{path}: not a loadable PyTorch state dict ({why})") from exc
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


def check_values(module, state: dict, source: Path, cast: bool = False) -> dict:
    """Every tensor finite and of the model's own dtype (a cast only when asked for)."""
    import torch

    expected = module.state_dict()
    out = {}
    for key, value in state.items():
        want = expected[key].dtype
        if value.dtype != want:
            if not cast or not (value.is_floating_point() and want.is_floating_point):
                raise ZooError(f"{source}: {key} is {str(value.dtype).removeprefix('torch.')}, the model's is "
                               f"{str(want).removeprefix('torch.')}" + ("" if cast else "; pass --cast to convert"))
            value = value.to(want)
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ZooError(f"{source}: {key} holds NaN or infinite values; refused")
        out[key] = value
    return out


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


def import_weights(name: str, file: str, config: dict | None = None, tag: str | None = None,
                   activate: bool = True, cast: bool = False) -> store.WeightsEntry:
    import shlex
    import sys
    import tempfile
    from datetime import datetime, timezone

    import zoo
    from zoo.engine import save_weights

    spec = registry().model(name)
    path = Path(file)
    if not path.is_file():
        raise ZooError(f"{path}: no such file" if not path.exists() else f"{path}: not a plain file")
    if tag:
        store.check_tag(tag)
        if store.find(f"{spec.name}@{tag}") is not None:
            raise ZooError(f"{spec.name}@{tag} exists; choose another --tag")
    module = spec.build(config)
    state = _state_from_file(spec, module, path)
    imported_state = hook(module, "imported_state")
    if imported_state is not None:  # a module may drop what its published files carry beyond it
        state = imported_state(state)
    check_state(module, state, path)
    state = check_values(module, state, path, cast)
    module.load_state_dict(state, strict=True)
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
        if tag:
            store.check_tag(tag)
        return store.install(spec.name, staged, manifest, tag=tag or store.free_tag(spec.name, "imported"),
                             activate=activate)
