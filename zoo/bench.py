"""``zoo bench``: the same inputs through torch eager and onnxruntime, timed in one run.

Every graph the exporter produces is measured (an image model has one; a sequence model its
step graphs), so the figures describe exactly what ``zoo run`` executes."""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import torch

from zoo.contracts import export_graphs
from zoo.errors import ZooError
from zoo.registry import registry
from zoo.runtime.session import create_session


def _time(fn, iters: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def _providers(requested: tuple[str, ...]) -> list[str]:
    if requested:
        return list(requested)
    import onnxruntime as ort

    chosen = ["cpu"]
    if "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available():
        chosen.append("cuda")
    return chosen


def bench_model(name: str, batches: tuple[int, ...], iters: int, providers: tuple[str, ...],
                random_weights: bool, json_out: str | None, config: dict | None = None) -> list[dict[str, Any]]:
    from zoo.engine import TrainOptions
    from zoo.modelio import export_model, load_trained
    from zoo.store import split_ref

    model, tag = split_ref(name)
    spec = registry().model(model)
    module, _ = load_trained(spec, random_weights, config, tag)
    module.eval()
    batches = batches or tuple(TrainOptions.default(spec, "bench_batches"))
    if random_weights:
        click.echo("note: RANDOM weights (timing only)", err=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = export_model(f"{spec.name}@{tag}" if tag else spec.name, out=str(Path(tmp) / f"{spec.name}.onnx"),
                              random_weights=random_weights,
                              config=config)
        artifact = report.path
        graphs = export_graphs(spec, module, None)
        rows: list[dict[str, Any]] = []
        for graph in graphs:
            path = artifact if artifact.is_file() else artifact / f"{graph.name}.onnx"
            sessions = {}
            for provider in _providers(providers):
                session, rep = create_session(str(path), provider)
                sessions[provider] = (session, rep.used)
            for batch in batches:
                args = graph.inputs(batch, 1)
                feeds = {n: a.numpy() for n, a in zip(graph.input_names, args)}
                with torch.inference_mode():
                    torch_ms = _time(lambda: graph.module(*args), iters)
                row = {"model": spec.name, "graph": graph.name, "batch": batch, "torch_eager_cpu_ms": torch_ms}
                for provider, (session, used) in sessions.items():
                    ort_ms = _time(lambda: session.run(None, feeds), iters)
                    row[f"ort_{provider}_ms"] = ort_ms
                    row[f"ort_{provider}_used"] = used
                    row[f"speedup_{provider}"] = torch_ms / ort_ms
                rows.append(row)
    machine = {"machine": platform.machine(), "processor": platform.processor(), "cpus": torch.get_num_threads(),
               "torch": torch.__version__}
    click.echo(f"{spec.name}: torch eager (CPU, {machine['cpus']} threads) vs onnxruntime, median of {iters} runs")
    for row in rows:
        parts = [f"{row['graph']} batch {row['batch']:>4}: torch {row['torch_eager_cpu_ms']:8.3f} ms"]
        for provider in _providers(providers):
            ms = row[f"ort_{provider}_ms"]
            per_item = row["batch"] / ms * 1e3
            parts.append(f"ort-{provider} {ms:8.3f} ms ({per_item:,.0f}/s, x{row[f'speedup_{provider}']:.2f} vs torch)")
        click.echo("  ".join(parts))
    if json_out:
        from zoo.store import write_json

        write_json(Path(json_out), {"machine": machine, "iters": iters, "results": rows})
    if not rows:
        raise ZooError("nothing measured")
    return rows
