"""The ``zoo`` command. ``list``, ``info``, ``plugins`` and ``run`` never import torch; the
commands that need it (``train``, ``export``, ``bench``, ``weights import``) import it lazily."""

from __future__ import annotations

import fnmatch
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

import zoo
from zoo.errors import ZooError
from zoo.registry import registry
from zoo.runtime.session import PROVIDER_CHOICES

_TYPES = {"int": int, "float": float, "str": str, "path": click.Path()}


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}K" if n >= 1e3 else str(n)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(zoo.__version__, prog_name="zoo")
def cli() -> None:
    """A model zoo: classic architectures trained in PyTorch, exported to ONNX, run with ONNX Runtime.

    Add --debug to any command to see tracebacks.
    """


# -- list / info / plugins --------------------------------------------------------------------
def _weights_label(name: str) -> str:
    from zoo import store

    entry = store.find(name)
    return entry.where if entry else "-"


@cli.command("list")
@click.argument("pattern", required=False)
@click.option("--task", help="only models of this task")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def list_models(pattern: str | None, task: str | None, as_json: bool) -> None:
    """List models (PATTERN: a substring or glob over name and family)."""
    reg = registry()
    specs = sorted(reg.models.values(), key=lambda s: (s.family, s.name))
    if pattern:
        pat = pattern.lower()
        glob = any(c in pat for c in "*?[")
        specs = [s for s in specs if (fnmatch.fnmatch(s.name, pat) or fnmatch.fnmatch(s.family, pat)) if glob
                 or pat in s.name or pat in s.family]
    if task:
        if task not in reg.tasks:
            raise ZooError(f"unknown task {task!r}; tasks: {', '.join(sorted(reg.tasks))}")
        specs = [s for s in specs if s.task == task]
    rows = [{"name": s.name, "family": s.family, "task": s.task, "params": s.params,
             "input": "x".join(map(str, s.input_shape)) or "-", "weights": _weights_label(s.name),
             "plugin": reg.owner[("model", s.name)]} for s in specs]
    if reg.errors():
        click.echo(f"({len(reg.errors())} plugin error(s); see `zoo plugins`)", err=True)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no models match", err=True)
        return
    header = ("NAME", "FAMILY", "TASK", "PARAMS", "INPUT", "WEIGHTS")
    table = [header] + [(r["name"], r["family"], r["task"], _fmt_params(r["params"]), r["input"], r["weights"])
                        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


@cli.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def info(name: str, as_json: bool) -> None:
    """Describe one model: paper, config, preprocessing, weights and their metrics."""
    from dataclasses import asdict

    from zoo import store
    from zoo.modelio import default_artifact_path

    reg = registry()
    spec = reg.model(name)
    entry = store.find(spec.name)
    artifact = next((p for p in (default_artifact_path(spec.name), default_artifact_path(spec.name, ""))
                     if p.exists()), None)
    data = asdict(spec)
    data["plugin"] = reg.owner[("model", spec.name)]
    data["weights"] = None if entry is None else {
        "where": entry.where, "path": str(entry.file), "sha256": entry.manifest.get("sha256"),
        "metrics": entry.manifest.get("metrics", {}), "dataset": entry.manifest.get("dataset"),
        "created": entry.manifest.get("created"), "command": entry.manifest.get("command")}
    data["artifact"] = str(artifact) if artifact else None
    if as_json:
        _echo_json(data)
        return
    click.echo(f"{spec.name}  ({spec.family} family, {spec.task})")
    click.echo(f"  {spec.summary}")
    if spec.paper:
        click.echo(f"  paper:         {spec.paper}")
    click.echo(f"  parameters:    {spec.params:,}")
    if spec.input_shape:
        click.echo(f"  input:         {'x'.join(map(str, spec.input_shape))}")
    click.echo(f"  config:        {json.dumps(dict(spec.default_config))}")
    if spec.preprocessing:
        click.echo(f"  preprocessing: {json.dumps(dict(spec.preprocessing))}")
    if spec.dataset:
        click.echo(f"  dataset:       {spec.dataset}")
    click.echo(f"  plugin:        {data['plugin']}")
    if entry is None:
        click.echo(f"  weights:       none (train with `zoo train {spec.name}` or "
                   f"`zoo weights import {spec.name} FILE`)")
    else:
        click.echo(f"  weights:       {entry.where}, {entry.file}")
        for key, value in entry.manifest.get("metrics", {}).items():
            click.echo(f"    {key}: {value:.4f}" if isinstance(value, float) else f"    {key}: {value}")
    click.echo(f"  artifact:      {artifact or f'none (`zoo export {spec.name} --onnx`)'}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def plugins(as_json: bool) -> None:
    """Installed plugins, what each provides, and any errors (shown under ZOO_STRICT_PLUGINS too)."""
    reg = registry(strict=False)
    rows = [{"plugin": p.name, "distribution": p.dist, "version": p.version, "builtin": p.builtin,
             "provides": p.provides, "errors": p.errors} for p in reg.plugins.values()]
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        provided = "; ".join(f"{kind}s: {', '.join(names)}" for kind, names in r["provides"].items()) or "nothing"
        origin = "built-in" if r["builtin"] else f"{r['distribution']} {r['version']}"
        click.echo(f"{r['plugin']} ({origin}): {provided}")
        for err in r["errors"]:
            click.echo(f"  error: {err}")


# -- train / export ----------------------------------------------------------------------------
def _parse_config(items: tuple[str, ...]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ZooError(f"--config {item!r}: expected KEY=VALUE")
        try:
            config[key] = json.loads(value)
        except ValueError:
            config[key] = value
    return config


@cli.command()
@click.argument("name")
@click.option("--epochs", type=int, help="maximum epochs (early stopping may end sooner)")
@click.option("--batch-size", type=int, help="mini-batch size")
@click.option("--optimizer", type=click.Choice(["sgd", "momentum", "rmsprop", "adam"]))
@click.option("--lr", type=float, help="learning rate")
@click.option("--momentum", type=float, default=0.9, show_default=True, help="for --optimizer momentum")
@click.option("--lr-decay", type=float, help="learning rate multiplied by this after each epoch")
@click.option("--weight-decay", type=float, help="L2 weight decay")
@click.option("--patience", type=int, help="stop after this many epochs without dev improvement")
@click.option("--augment", metavar="MODULE:FUNCTION", help="another augmentation, e.g. zoo.augment:random_elastic")
@click.option("--no-augment", is_flag=True, help="train without the model's data augmentation")
@click.option("--clip-grad", type=float, help="clip the gradient norm to this value")
@click.option("--freeze", help="transfer learning from the installed (imported) weights: 'head' trains only the "
              "new head, or a stage name to freeze up to")
@click.option("--dataset", help="dataset name (default: the model's)")
@click.option("--data", type=click.Path(), help="a folder or file with your own data")
@click.option("--config", "config", multiple=True, metavar="KEY=VALUE", help="override a model config value")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="seed for splits, init and shuffling")
@click.option("--max-steps", type=int, help="at most this many batches per epoch (quick runs)")
@click.option("--run-dir", type=click.Path(), help="where checkpoints, metrics.jsonl and curve.png go")
@click.option("--resume", is_flag=True, help="continue from the run folder's last checkpoint")
@click.option("--no-progress", is_flag=True, help="no progress bar")
def train(name: str, **kw: Any) -> None:
    """Train NAME and store its best weights (by the dev metric) in the user store."""
    from zoo.engine import TrainOptions, train as run_training

    opts = TrainOptions(
        epochs=kw["epochs"], batch_size=kw["batch_size"], optimizer=kw["optimizer"], lr=kw["lr"],
        momentum=kw["momentum"], lr_decay=kw["lr_decay"], weight_decay=kw["weight_decay"],
        patience=kw["patience"], augment="" if kw["no_augment"] else kw["augment"], clip_grad=kw["clip_grad"],
        freeze=kw["freeze"], device=kw["device"],
        seed=kw["seed"], resume=kw["resume"], data=kw["data"], dataset=kw["dataset"],
        config=_parse_config(kw["config"]), max_steps=kw["max_steps"], run_dir=kw["run_dir"],
        progress=not kw["no_progress"])
    result = run_training(name, opts)
    if not result.metrics:  # a secondary process of a torchrun launch: the main one reports
        return
    for key, value in result.metrics.items():
        click.echo(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    click.echo(f"run folder: {result.run_dir} (metrics.jsonl, curve.png)")
    if result.entry:
        click.echo(f"weights: {result.entry.file}")


@cli.command()
@click.argument("name")
@click.option("--onnx", "fmt", flag_value="onnx", default=True, help="export to ONNX (the default)")
@click.option("--format", "fmt", help="another export format provided by a plugin")
@click.option("--out", type=click.Path(), help="output file or folder (default: the user store's exports)")
@click.option("--opset", type=int, help="ONNX opset (default 18)")
@click.option("--data", type=click.Path(), help="data folder for the parity check's real samples")
@click.option("--random-weights", is_flag=True, help="export untrained weights (for benchmarking only)")
@click.option("--fp16", is_flag=True, help="also write a half-precision variant NAME-fp16.onnx and report its "
              "top-1 agreement with fp32")
def export(name: str, fmt: str, out: str | None, opset: int | None, data: str | None, random_weights: bool,
           fp16: bool) -> None:
    """Export NAME's trained weights, checked by onnx.checker and compared with PyTorch."""
    from zoo.modelio import export_model

    if random_weights:
        click.echo("note: exporting RANDOM weights; the artifact is for benchmarking only", err=True)
    report = export_model(name, fmt, out, opset, data, random_weights, fp16=fp16)
    for line in report.lines():
        click.echo(line)
    for line in report.fp16.lines() if report.fp16 else ():
        click.echo(line)


# -- run ---------------------------------------------------------------------------------------
class RunCommand(click.Command):
    """Adds the options that installed tasks declare (``TaskSpec.options``) when first asked."""

    _added = False

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not self._added:
            self._added = True
            declared: dict[str, list[tuple[str, Any]]] = {}  # one flag may serve several tasks
            for spec in registry().tasks.values():
                for opt in spec.options:
                    declared.setdefault(opt.name, []).append((spec.name, opt))
            taken = {p.name for p in self.params}
            for name, users in declared.items():
                if name.replace("-", "_") in taken:
                    continue
                first = users[0][1]
                helps = " / ".join(dict.fromkeys(opt.help for _, opt in users))
                if first.type == "flag":
                    where = ", ".join(task for task, _ in users)
                    self.params.append(click.Option([f"--{name}"], is_flag=True, help=f"{helps} [{where}]"))
                else:
                    where = "; ".join(f"{task}: default {opt.default}" for task, opt in users)
                    self.params.append(click.Option([f"--{name}"], type=_TYPES.get(first.type, str), default=None,
                                                    help=f"{helps} [{where}]"))
        return super().get_params(ctx)


def resolve_artifact(target: str) -> Path:
    """A path to an artifact, or a model name whose export lives in the user store."""
    from zoo import store

    path = Path(target)
    if path.exists() or path.suffix == ".onnx" or os.sep in target:
        if not path.exists():
            raise ZooError(f"{path}: no such artifact")
        return path
    spec = registry().model(target)
    for candidate in (store.exports_dir() / f"{spec.name}.onnx", store.exports_dir() / spec.name):
        if candidate.exists():
            return candidate
    if store.find(spec.name) is None:
        raise ZooError(f"no weights for {spec.name}: train with `zoo train {spec.name}` or import with "
                       f"`zoo weights import {spec.name} FILE`, then `zoo export {spec.name} --onnx`")
    raise ZooError(f"{spec.name} has weights but no exported artifact: run `zoo export {spec.name} --onnx` first")


@cli.command(cls=RunCommand)
@click.argument("target", metavar="NAME|ARTIFACT")
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
@click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default="auto", show_default=True,
              help="onnxruntime execution provider")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def run(target: str, inputs: tuple[str, ...], provider: str, as_json: bool, **options: Any) -> None:
    """Run an exported model on INPUT... (files, folders or text, as the model's task reads them)."""
    from zoo.runtime.artifact import open_artifact

    artifact = open_artifact(resolve_artifact(target), provider)
    reg = registry()
    task_spec = reg.task(artifact.task)
    for opt in task_spec.options:
        key = opt.name.replace("-", "_")
        if options.get(key) is None:
            options[key] = opt.default
    task = task_spec.load()
    results = task.run(artifact, list(inputs), options)
    used = artifact.report.used if artifact.report else "?"
    if as_json:
        _echo_json({"model": artifact.model, "task": artifact.task, "artifact": str(artifact.path),
                    "provider": used, "results": results})
        return
    for result in results:
        click.echo(task.format(result))
    click.echo(f"({artifact.model} on {used})", err=True)


# -- weights -----------------------------------------------------------------------------------
@cli.group()
def weights() -> None:
    """Shipped and user weights: list, verify, import."""


@weights.command("list")
@click.option("--json", "as_json", is_flag=True)
def weights_list(as_json: bool) -> None:
    """Every weights entry with its metrics."""
    from zoo import store

    rows = [{"model": e.model, "where": e.where, "path": str(e.file), "sha256": e.manifest.get("sha256"),
             "metrics": e.manifest.get("metrics", {}), "created": e.manifest.get("created")} for e in store.entries()]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no weights; train with `zoo train NAME`", err=True)
    for r in rows:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in r["metrics"].items() if k.startswith("test_") and
                            isinstance(v, float))
        click.echo(f"{r['model']:<16} {r['where']:<8} {r['sha256'][:12]}  {metrics}  {r['path']}")


@weights.command("verify")
@click.argument("names", nargs=-1)
def weights_verify(names: tuple[str, ...]) -> None:
    """Check each weights file against the sha256 in its manifest (all entries by default)."""
    from zoo import store

    chosen = [e for e in store.entries() if not names or e.model in names]
    if names and not chosen:
        raise ZooError(f"no weights entries for {', '.join(names)}")
    bad = 0
    for entry in chosen:
        try:
            entry.verify()
            click.echo(f"ok      {entry.model} ({entry.where}) {entry.file}")
        except ZooError as exc:
            bad += 1
            click.echo(f"FAILED  {entry.model} ({entry.where}): {exc}")
    if bad:
        raise ZooError(f"{bad} weights file(s) failed verification")


@weights.command("import")
@click.argument("name")
@click.argument("file", type=click.Path())
@click.option("--config", "config", multiple=True, metavar="KEY=VALUE", help="override a model config value")
def weights_import(name: str, file: str, config: tuple[str, ...]) -> None:
    """Import FILE (safetensors, a PyTorch state dict read with weights_only=True, or a format
    the model's plugin converts) into the user store after checking every key and shape."""
    from zoo.modelio import import_weights

    entry = import_weights(name, file, _parse_config(config) or None)
    click.echo(f"imported {file} as {entry.model}: {entry.file} (sha256 {entry.manifest['sha256'][:12]}…)")


# -- bench ---------------------------------------------------------------------------------------
@cli.command()
@click.argument("name")
@click.option("--batch", "batches", type=int, multiple=True, help="batch sizes (default: the model's)")
@click.option("--iters", type=int, default=30, show_default=True, help="timed runs per measurement")
@click.option("--provider", "providers", type=click.Choice(PROVIDER_CHOICES[1:]), multiple=True,
              help="onnxruntime providers to measure (default: cpu, plus cuda when usable)")
@click.option("--random-weights", is_flag=True, help="use untrained weights (timing only)")
@click.option("--json-out", type=click.Path(), help="also write the results as JSON here")
@click.option("--config", "config", multiple=True, metavar="KEY=VALUE",
              help="override a model config value, e.g. input_size=640 (with --random-weights)")
def bench(name: str, batches: tuple[int, ...], iters: int, providers: tuple[str, ...], random_weights: bool,
          json_out: str | None, config: tuple[str, ...]) -> None:
    """Latency of torch eager vs onnxruntime on the same inputs, as ratios measured in one run."""
    from zoo.bench import bench_model

    bench_model(name, batches, iters, providers, random_weights, json_out, _parse_config(config) or None)


# -- entry point ---------------------------------------------------------------------------------
from zoo.faces import faces as _faces  # noqa: E402
cli.add_command(_faces)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("ZOO_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    try:
        cli.main(args=args, prog_name="zoo", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        if debug:
            raise
        click.echo(f"zoo: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("zoo: aborted", err=True)
        sys.exit(130)
    except ZooError as exc:
        if debug:
            raise
        click.echo(f"zoo: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("zoo: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # one line, never a traceback, unless --debug
        if debug:
            raise
        click.echo(f"zoo: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                   err=True)
        sys.exit(1)
