"""A conformance kit for plugin authors: call these from your plugin's own tests.

    from zoo.testing import check_plugin_specs, check_model

    def test_specs():
        check_plugin_specs("my-plugin")          # the entry-point name in group zoo.plugins

    def test_tiny_model(tmp_path):
        check_model("mynet", tmp_path, config={"width": 4})

``check_model`` builds the module, checks the declared parameter count (default config only),
runs a forward pass, exports through the same exporter ``zoo export`` uses and checks parity
against PyTorch. ``check_plugin_specs`` also checks the weights a model declares it ships
(``ModelSpec.weights``) against their sha256, and ``check_shipped_weights`` loads them into the
built module. ``check_dataset`` loads a dataset and checks its splits; ``check_task`` drives a
task through a model of it: encode, metric (with its primary metric), the same metric through an
exported artifact, ``run`` and ``format``, and a torch-free import. Every failure is an
AssertionError saying what is wrong.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from zoo.contracts import export_graphs, hook, signature_problems
from zoo.errors import ZooError
from zoo.registry import load_registry
from zoo.specs import load_object


def check_plugin_specs(plugin: str) -> None:
    """The plugin loaded without errors, provides something, and every spec it provides is valid
    and resolvable (builders, loaders and task implementations import)."""
    reg = load_registry()
    assert plugin in reg.plugins, f"plugin {plugin!r} is not installed (entry points: {sorted(reg.plugins)})"
    info = reg.plugins[plugin]
    assert not info.errors, f"plugin {plugin!r} has errors: {info.errors}"
    assert info.provides, f"plugin {plugin!r} provides nothing"
    for name in info.provides.get("model", []):
        spec = reg.models[name]
        assert spec.task in reg.tasks, f"{name}: task {spec.task!r} is not provided by any plugin"
        assert callable(load_object(spec.builder)), f"{name}: builder {spec.builder} is not callable"
        if spec.dataset:
            assert spec.dataset in reg.datasets, f"{name}: dataset {spec.dataset!r} is not provided by any plugin"
        if spec.weights:
            _shipped(name)
    for name in info.provides.get("dataset", []):
        assert callable(load_object(reg.datasets[name].loader)), f"dataset {name}: loader is not callable"
    for name in info.provides.get("task", []):
        reg.tasks[name].load()


def _shipped(name: str):
    from zoo import store

    entry = next((e for e in store.model_entries(name) if e.shipped), None)
    assert entry is not None, f"{name}: its shipped weights are not found"
    assert not entry.broken, f"{name}: {entry.broken}"
    try:
        entry.verify()
    except ZooError as exc:
        raise AssertionError(f"{name}: {exc}") from exc
    return entry


def check_shipped_weights(name: str):
    """The weights ``name`` ships (``ModelSpec.weights``) are found, match their sha256, and load
    strictly (every key, shape and dtype) into the module built with their manifest's config.
    Returns the loaded module, in eval mode."""
    from zoo.engine import load_weights

    spec = load_registry().model(name)
    assert spec.weights, f"{name}: the spec declares no shipped weights (ModelSpec.weights)"
    entry = _shipped(spec.name)
    module = spec.build(entry.manifest.get("config"))
    try:
        load_weights(module, entry.file)
    except (ZooError, RuntimeError) as exc:
        raise AssertionError(f"{name}: its shipped weights do not load into the module: {exc}") from exc
    return module.eval()


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def check_model(name: str, tmp_path: str | Path, config: dict[str, Any] | None = None,
                check_params: bool = True) -> dict[str, Any]:
    """Build, count, forward, export, checker and parity for one model; returns the export report
    and the artifact's metadata for further assertions."""
    import torch

    from zoo.exporters.onnx import export
    from zoo.runtime.artifact import open_artifact

    reg = load_registry()
    spec = reg.model(name)
    if check_params:
        declared = count_parameters(spec.build())
        assert declared == spec.params, f"{name}: spec declares {spec.params:,} parameters, module has {declared:,}"
    module = spec.build(config).eval()
    problems = signature_problems(module)
    assert not problems, f"{name}: hooks that do not fit zoo.contracts.ZooModule: {'; '.join(problems)}"
    try:
        graphs = export_graphs(spec, module, None)
    except ZooError as exc:
        raise AssertionError(f"{name}: {exc}") from exc
    for graph in graphs:
        with torch.no_grad():
            out = graph.module(*graph.inputs(2, 0))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        for o in outs:
            assert torch.isfinite(o.float()).all(), f"{name}/{graph.name}: forward pass gave non-finite values"
    merged = spec.config(config)
    classes = merged.get("num_classes")
    labels = list(spec.labels) if classes is None or len(spec.labels) == classes else []  # a head of another size
    meta = {"task": spec.task, "model": spec.name, "family": spec.family, "labels": labels,
            "preprocessing": spec.preprocessing_for(merged), "config": merged, "weights_sha256": "untrained"}
    report = export(spec, module, Path(tmp_path) / f"{name}.onnx", meta=meta)
    assert all(p.ok for p in report.parity), f"{name}: parity failed {report.parity}"
    artifact = open_artifact(report.path, "cpu")
    assert artifact.task == spec.task and artifact.model == spec.name
    return {"report": report, "meta": artifact.meta}


def _fingerprint(sample: Any) -> bytes:
    return np.ascontiguousarray(sample).tobytes() if isinstance(sample, np.ndarray) else repr(sample).encode()


def check_dataset(name: str, path: str | None = None, seed: int = 0):
    """The loader returns ``zoo.data.Splits`` whose parts are non-empty, as long as their
    targets, disjoint (no sample in two parts), JSON-able in ``info`` and ``config``, and whose
    samples the dataset's task can encode. Returns the splits."""
    from zoo.data import Splits

    reg = load_registry()
    assert name in reg.datasets, f"dataset {name!r} is not registered (datasets: {sorted(reg.datasets)})"
    spec = reg.datasets[name]
    assert spec.task in reg.tasks, f"dataset {name}: task {spec.task!r} is not provided by any plugin"
    splits = load_object(spec.loader)(path, seed=seed)
    assert isinstance(splits, Splits), f"dataset {name}: loader returned {type(splits).__name__}, not Splits"
    seen: dict[bytes, str] = {}
    for part in ("train", "dev", "test"):
        split = getattr(splits, part)
        assert len(split.inputs) == len(split.targets) > 0, \
            f"dataset {name}: {part} has {len(split.inputs)} inputs and {len(split.targets)} targets"
        for sample in split.inputs:
            key = _fingerprint(sample)
            assert seen.get(key, part) == part, f"dataset {name}: a sample is in both {seen[key]} and {part}"
            seen[key] = part
    json.dumps(splits.info), json.dumps(splits.config)  # both travel into manifests and artifacts
    return splits


def check_task(task: str, model: str, tmp_path: str | Path, config: dict[str, Any] | None = None,
               samples: int = 8) -> dict[str, Any]:
    """Drive ``task`` through ``model`` (one of its models, with a default dataset) at random
    weights: the dev samples encode; ``metric`` on PyTorch's outputs gives finite figures,
    ``primary_metric`` among them; the exported artifact's ``runtime_outputs`` give the same
    figures; ``run`` answers one result per input and ``format`` prints each; and importing
    the task's implementation does not import torch. Returns the metrics."""
    import torch

    from zoo.engine import forward
    from zoo.runtime.artifact import open_artifact
    from zoo.runtime.tasks import Task

    reg = load_registry()
    assert task in reg.tasks, f"task {task!r} is not registered"
    spec = reg.model(model)
    assert spec.task == task, f"{model} is a model of {spec.task}, not {task}"
    assert spec.dataset, f"{model} names no default dataset to check {task} with"
    impl = reg.tasks[task].load()
    assert isinstance(impl, Task), f"task {task}: {reg.tasks[task].impl} is not a zoo.runtime.tasks.Task"
    splits = load_object(reg.dataset(spec.dataset).loader)(None, seed=0)
    raw, targets = list(splits.dev.inputs[:samples]), splits.dev.targets[:samples]
    merged = spec.config({**splits.config, **(config or {})})
    meta = {"preprocessing": spec.preprocessing_for(merged), "labels": list(splits.labels or spec.labels),
            "config": merged, **splits.info}
    x, y = impl.encode_inputs(raw, meta), impl.encode_targets(raw, targets, meta)
    module = spec.build({**splits.config, **(config or {})}).eval()
    with torch.no_grad():
        outputs = forward(module, torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y)))
    metrics = impl.metric(outputs.float().numpy(), np.asarray(y), meta)
    assert impl.primary_metric in metrics, f"task {task}: metric() lacks its primary metric {impl.primary_metric!r}"
    assert all(np.isfinite(v) for v in metrics.values()), f"task {task}: non-finite metric {metrics}"

    from zoo.exporters.onnx import export

    if hook(module, "export_graphs") is None:
        module.input_shape = tuple(x.shape[1:])  # the encoded samples' shape, whatever the config
    out = Path(tmp_path) / f"{spec.name}.onnx"
    export(spec, module, out, meta={"task": task, "model": spec.name, "family": spec.family,
                                    "weights_sha256": "untrained", **meta}, samples=x)
    artifact = open_artifact(out if out.exists() else out.with_suffix(""), "cpu")
    through = impl.metric(impl.runtime_outputs(artifact, raw, np.asarray(y), artifact.meta), np.asarray(y),
                          artifact.meta)
    for key, value in metrics.items():
        assert abs(through[key] - value) <= 1e-3 * max(1.0, abs(value)), \
            f"task {task}: {key} is {value} through PyTorch but {through[key]} through the artifact"
    inputs = _run_inputs(raw, Path(tmp_path))
    results = impl.run(artifact, inputs, reg.tasks[task].defaults())
    assert isinstance(results, list) and results, f"task {task}: run() returned {results!r}"
    for result in results:
        json.dumps(result)
        assert isinstance(impl.format(result), str), f"task {task}: format() must return a string"
    module_name = reg.tasks[task].impl.partition(":")[0]
    code = f"import sys, {module_name}; assert 'torch' not in sys.modules, 'imports torch'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"task {task}: importing {module_name} imports torch: {done.stderr[-300:]}"
    return metrics


def _run_inputs(raw: list[Any], folder: Path) -> list[str]:
    """Dataset samples as ``zoo run`` takes them: images written as PNG files, texts as they are."""
    from PIL import Image

    inputs = []
    for i, sample in enumerate(raw[:2]):
        if isinstance(sample, np.ndarray) and sample.dtype == np.uint8 and sample.ndim in (2, 3):
            path = folder / f"sample-{i}.png"
            Image.fromarray(sample).save(path)
            inputs.append(str(path))
        else:
            inputs.append(str(sample))
    return inputs
