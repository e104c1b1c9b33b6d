"""A conformance kit for plugin authors: call these from your plugin's own tests.

    from zoo.testing import check_plugin_specs, check_model

    def test_specs():
        check_plugin_specs("my-plugin")          # the entry-point name in group zoo.plugins

    def test_tiny_model(tmp_path):
        check_model("mynet", tmp_path, config={"width": 4})

``check_model`` builds the module, checks the declared parameter count (default config only),
runs a forward pass, exports through the same exporter ``zoo export`` uses and checks parity
against PyTorch; every failure is an AssertionError saying what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    for name in info.provides.get("dataset", []):
        assert callable(load_object(reg.datasets[name].loader)), f"dataset {name}: loader is not callable"
    for name in info.provides.get("task", []):
        reg.tasks[name].load()


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def check_model(name: str, tmp_path: str | Path, config: dict[str, Any] | None = None,
                check_params: bool = True) -> dict[str, Any]:
    """Build, count, forward, export, checker and parity for one model; returns the export report
    and the artifact's metadata for further assertions."""
    import torch

    from zoo.exporters.onnx import export, image_graph
    from zoo.runtime.artifact import open_artifact

    reg = load_registry()
    spec = reg.model(name)
    if check_params:
        declared = count_parameters(spec.build())
        assert declared == spec.params, f"{name}: spec declares {spec.params:,} parameters, module has {declared:,}"
    module = spec.build(config).eval()
    if hasattr(module, "export_graphs"):
        graphs = module.export_graphs(None)
    else:
        shape = tuple(getattr(module, "input_shape", None) or spec.input_shape)
        assert shape, f"{name}: spec has no input_shape and the module defines no export_graphs()"
        graphs = [image_graph(module, shape, None)]
    for graph in graphs:
        with torch.no_grad():
            out = graph.module(*graph.inputs(2, 0))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        for o in outs:
            assert torch.isfinite(o.float()).all(), f"{name}/{graph.name}: forward pass gave non-finite values"
    meta = {"task": spec.task, "model": spec.name, "family": spec.family, "labels": list(spec.labels),
            "preprocessing": dict(spec.preprocessing), "config": spec.config(config), "weights_sha256": "untrained"}
    report = export(spec, module, Path(tmp_path) / f"{name}.onnx", meta=meta)
    assert all(p.ok for p in report.parity), f"{name}: parity failed {report.parity}"
    artifact = open_artifact(report.path, "cpu")
    assert artifact.task == spec.task and artifact.model == spec.name
    return {"report": report, "meta": artifact.meta}
