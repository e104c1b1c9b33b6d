"""The training engine every model shares: fixed-seed splits, mini-batches, SGD / momentum /
RMSprop / Adam, learning-rate decay, weight decay, early stopping on the dev metric, a progress
bar, per-epoch JSON-lines metrics and a training-curve PNG, atomic safetensors checkpoints with
``--resume``, and a final evaluation on the test split that no choice has looked at.

What a module may define to take part (all optional, typed in ``zoo.contracts.ZooModule``):

- ``loss(outputs, targets)``: the training loss (default: cross-entropy);
- ``forward_train(x, y)``: the outputs when the targets are needed to compute them (teacher
  forcing); used for training and for the dev/test loss and metric (default: ``module(x)``);
- ``freeze(upto)``: freeze parameters for transfer learning (``--freeze``, which starts from the
  installed weights), keeping batch-norm statistics of frozen stages fixed.

The task's numpy ``metric(outputs, targets, meta)`` scores the dev and test splits. A dataset's
``Splits.config`` adjusts the model config to the data (classes, vocabulary size) and
``Splits.info`` (a vocabulary, say) travels into the manifest and the exported artifact."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import zoo
from zoo import store
from zoo.contracts import hook
from zoo.errors import ZooError
from zoo.registry import registry
from zoo.specs import ModelSpec, load_object

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")


@dataclass
class TrainOptions:
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float = 0.9
    lr_decay: float | None = None  # multiplied into the learning rate after every epoch
    weight_decay: float | None = None
    patience: int | None = None  # epochs without dev improvement before stopping
    augment: str | None = None
    clip_grad: float | None = None  # clip the gradient norm to this (0 or None: no clipping)
    freeze: str | None = None  # passed to module.freeze(): "head" trains only the head, or a stage name
    device: str = "auto"
    seed: int = 0
    resume: bool = False
    data: str | None = None
    dataset: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    max_steps: int | None = None  # batches per epoch, for quick runs
    run_dir: str | None = None
    install: bool = True
    progress: bool = True
    tag: str | None = None  # the store tag (and run id) of this run; default: a fresh run id
    activate: bool = False  # make the run active even if it does not beat the active entry

    _DEFAULTS = {"epochs": 10, "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "lr_decay": 1.0,
                 "weight_decay": 0.0, "patience": 5, "augment": None, "clip_grad": None}

    def resolved(self, spec: ModelSpec) -> "TrainOptions":
        values = asdict(self)
        for key, default in self._DEFAULTS.items():
            if values[key] is None:
                values[key] = spec.train_defaults.get(key, default)
        if values["optimizer"] not in OPTIMIZERS:
            raise ZooError(f"unknown optimizer {values['optimizer']!r}; choose from {', '.join(OPTIMIZERS)}")
        return TrainOptions(**values)


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, float]
    entry: store.WeightsEntry | None
    decision: store.Decision | None = None


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ZooError("--device cuda: this torch build sees no CUDA device")
    if requested not in ("cpu", "cuda"):
        raise ZooError(f"unknown device {requested!r}; choose auto, cpu or cuda")
    return torch.device(requested)


@dataclass
class Distributed:
    """This process's place in a ``torchrun`` launch (DDP); one process when not launched so."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(requested: str) -> tuple[Distributed, torch.device]:
    """Under ``torchrun`` (WORLD_SIZE > 1) join the process group: NCCL with one GPU per process,
    gloo on CPUs. Each process then takes its share of every mini-batch and DDP averages the
    gradients, so the effective batch is the same as on one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed(), pick_device(requested)
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = requested != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Distributed(dist.get_rank(), world), torch.device(f"cuda:{local}" if cuda else "cpu")


class _TrainStep(torch.nn.Module):
    """``forward`` with the targets, as one module so that DDP sees the whole training step."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return forward(self.module, x, y)


def make_optimizer(name: str, params, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay) if weight_decay else \
        torch.optim.Adam(params, lr=lr)


def state_dict_for_save(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def save_weights(module: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    with store.atomic_path(path, ".safetensors") as tmp:
        save_file(state_dict_for_save(module), str(tmp), metadata=metadata)


def load_weights(module: torch.nn.Module, path: Path) -> None:
    state = load_file(str(path))
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ZooError(f"{path}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")


def start_from_installed(spec: ModelSpec, module: torch.nn.Module) -> None:
    """Transfer learning (``--freeze``) starts from the model's installed weights, imported or
    trained; tensors whose shape the new config changes (a head for the folder's classes) keep
    their fresh initialisation."""
    entry = store.find(spec.name)
    if entry is None:
        raise ZooError(f"--freeze: no weights installed for {spec.name} to start from; import them with "
                       f"`zoo weights import {spec.name} FILE` (or train without --freeze)")
    entry.verify()
    own = module.state_dict()
    fitting = {k: v for k, v in load_file(str(entry.file)).items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise ZooError(f"--freeze: the installed weights {entry.file} share no tensor with this {spec.name} config")
    module.load_state_dict(fitting, strict=False)
    print(f"starting from {entry.file} ({len(fitting)} of {len(own)} tensors; the others are new)", file=sys.stderr)


def _save_optimizer(opt: torch.optim.Optimizer, path: Path) -> dict[str, Any]:
    """Optimizer state as safetensors (tensors) plus a JSON-able remainder."""
    state = opt.state_dict()
    tensors, rest = {}, {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{idx}/{key}"] = value.detach().cpu().contiguous()
            else:
                rest.setdefault(str(idx), {})[key] = value
    with store.atomic_path(path, ".safetensors") as tmp:
        save_file(tensors, str(tmp))
    return {"param_groups": state["param_groups"], "scalars": rest}


def _load_optimizer(opt: torch.optim.Optimizer, path: Path, extra: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in load_file(str(path)).items():
        idx, name = key.split("/", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, values in extra["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    opt.load_state_dict({"state": state, "param_groups": extra["param_groups"]})


def _plot(history: list[dict[str, Any]], primary: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax1.plot(epochs, [h["dev_loss"] for h in history], label="dev")
    ax1.set_xlabel("epoch"), ax1.set_ylabel("loss"), ax1.legend(), ax1.grid(alpha=0.3)
    ax2.plot(epochs, [h[f"dev_{primary}"] for h in history], color="tab:green")
    ax2.set_xlabel("epoch"), ax2.set_ylabel(f"dev {primary}"), ax2.grid(alpha=0.3)
    fig.tight_layout()
    with store.atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffle of one epoch, a function of (seed, epoch) alone: a resumed run sees exactly
    the order the uninterrupted run would have seen."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def epoch_seed(seed: int, epoch: int) -> int:
    """The torch seed (augmentation, dropout) of one epoch, for the same reason."""
    return int(np.random.default_rng([seed, epoch, 1]).integers(0, 2**62))


def _batches(order: np.ndarray, size: int):
    for start in range(0, len(order), size):
        yield order[start: start + size]


CHECKPOINT = "checkpoint"


def write_checkpoint(run_dir: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     state: dict[str, Any]) -> None:
    """The last weights, the optimizer and ``state.json`` as one unit: filled in a staging folder
    and swapped in by renames; a crash leaves the previous checkpoint (or ``.checkpoint-old``)."""
    import shutil
    import tempfile

    staging = Path(tempfile.mkdtemp(prefix=".checkpoint-new-", dir=run_dir))
    try:
        os.chmod(staging, 0o777 & ~store._umask())
        save_file(state_dict_for_save(module), str(staging / "last.safetensors"))
        state = dict(state, optimizer=_save_optimizer(optimizer, staging / "optimizer.safetensors"))
        (staging / "state.json").write_text(json.dumps(state), encoding="utf-8")
        store.crash_point("checkpoint-staged")
        current, old = run_dir / CHECKPOINT, run_dir / ".checkpoint-old"
        if current.is_dir():
            shutil.rmtree(old, ignore_errors=True)
            os.rename(current, old)
            store.crash_point("checkpoint-swapping")
        os.rename(staging, current)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def read_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint folder to resume from (the previous one if a swap was interrupted)."""
    for name in (CHECKPOINT, ".checkpoint-old"):
        if (run_dir / name / "state.json").is_file():
            return run_dir / name
    return None


def _latest_run(model: str) -> Path | None:
    root = store.runs_dir() / model
    runs = [p for p in root.iterdir() if p.is_dir() and read_checkpoint(p)] if root.is_dir() else []
    return max(runs, key=lambda p: (read_checkpoint(p) / "state.json").stat().st_mtime) if runs else None


def default_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, targets)


def forward(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    forward_train = hook(module, "forward_train")
    return forward_train(x, y) if forward_train is not None else module(x)


@torch.no_grad()
def evaluate(module, task, loss_fn, x, y, batch_size, device, meta) -> dict[str, float]:
    module.eval()
    outputs = torch.cat([forward(module, x[i: i + batch_size].to(device), y[i: i + batch_size].to(device)).float().cpu()
                         for i in range(0, len(x), batch_size)])
    metrics = task.metric(outputs.numpy(), y.numpy(), meta)
    metrics["loss"] = float(loss_fn(outputs, y))
    return metrics


def train(name: str, opts: TrainOptions) -> TrainResult:
    own = registry().model(name)
    if own.trainer:  # a family with its own loop (ModelSpec.trainer) returns the same TrainResult
        return load_object(own.trainer)(own, opts)
    reg = registry()
    spec = reg.model(name)
    opts = opts.resolved(spec)
    if opts.tag:  # refused before any data is loaded
        store.check_tag(opts.tag)
        if opts.install and not opts.resume and store.find(f"{spec.name}@{opts.tag}") is not None:
            raise ZooError(f"{spec.name}@{opts.tag} is already installed; choose another --tag "
                           f"(or `zoo weights remove {spec.name}@{opts.tag}`)")
    task = reg.task(spec.task).load()
    dataset_name = opts.dataset or spec.dataset
    if not dataset_name:
        raise ZooError(f"{spec.name} declares no default dataset; pass --dataset NAME")
    dataset = reg.dataset(dataset_name)
    splits = load_object(dataset.loader)(opts.data, seed=opts.seed)
    labels = tuple(splits.labels) or tuple(spec.labels)
    config = spec.config({**splits.config, **opts.config})
    if splits.labels and "num_classes" in config:
        config["num_classes"] = len(labels)
    meta = {"preprocessing": spec.preprocessing_for(config), "labels": list(labels), "config": config, **splits.info}

    def tensors(part):
        x = task.encode_inputs(part.inputs, meta)
        y = task.encode_targets(part.inputs, part.targets, meta)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))

    (x_train, y_train), (x_dev, y_dev), (x_test, y_test) = map(tensors, (splits.train, splits.dev, splits.test))

    ctx, device = setup_distributed(opts.device)
    torch.manual_seed(opts.seed)
    module = spec.build(config).to(device)
    if opts.freeze:
        freeze = hook(module, "freeze")
        if freeze is None:
            raise ZooError(f"{spec.name} does not support --freeze")
        start_from_installed(spec, module)
        freeze(opts.freeze)
    loss_fn = hook(module, "loss") or default_loss
    trainable = [p for p in module.parameters() if p.requires_grad]
    optimizer = make_optimizer(opts.optimizer, trainable, opts.lr, opts.momentum, opts.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=opts.lr_decay)
    augment = load_object(opts.augment) if opts.augment else None
    step_fn: torch.nn.Module = _TrainStep(module)
    if ctx.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        step_fn = DistributedDataParallel(step_fn, device_ids=[device.index] if device.type == "cuda" else None)
    generator = torch.Generator().manual_seed(opts.seed)

    if opts.resume and not opts.run_dir and not opts.tag:
        latest = _latest_run(spec.name)
        if latest is None:
            raise ZooError(f"--resume: no checkpoint of {spec.name} in {store.runs_dir() / spec.name}; "
                           "start without --resume")
        run_dir = latest
    else:
        run_dir = Path(opts.run_dir) if opts.run_dir else store.runs_dir() / spec.name / (opts.tag or store.new_run_id())
    run_id = opts.tag or run_dir.name
    if not opts.tag and (not store.TAG_RE.match(run_id) or run_id in (store.SHIPPED, store.RANDOM, store.LEGACY)):
        run_id = store.new_run_id()  # a --run-dir whose name is no tag
    if opts.install and store.find(f"{spec.name}@{run_id}") is not None:
        if not opts.resume:
            raise ZooError(f"{spec.name}@{run_id} is already installed; choose another --tag "
                           f"(or `zoo weights remove {spec.name}@{run_id}`)")
        run_id = store.free_tag(spec.name, run_id)  # a finished run trained further
    claim = None
    if ctx.main:
        store._mkdir(run_dir)
        claim = store.claim_run(run_dir)  # two processes never train into one run folder
        if not opts.resume and read_checkpoint(run_dir) is not None:
            raise ZooError(f"{run_dir} holds a checkpoint of another run; use --resume or another --tag/--run-dir")
    primary, sign = task.primary_metric, (1 if task.higher_is_better else -1)
    history: list[dict[str, Any]] = []
    best_score, best_epoch, start_epoch = -float("inf"), 0, 1
    if opts.resume:
        checkpoint = read_checkpoint(run_dir)
        if checkpoint is None:
            raise ZooError(f"--resume: no checkpoint in {run_dir}; start without --resume")
        saved = json.loads((checkpoint / "state.json").read_text())
        if saved["model"] != spec.name or saved["config"] != config:
            raise ZooError(f"--resume: checkpoint in {run_dir} is for {saved['model']} with another config")
        load_weights(module, checkpoint / "last.safetensors")
        _load_optimizer(optimizer, checkpoint / "optimizer.safetensors", saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        history, best_score, best_epoch = saved["history"], saved["best_score"], saved["best_epoch"]
        start_epoch = saved["epoch"] + 1
        print(f"resuming {spec.name} from epoch {saved['epoch']} in {run_dir}", file=sys.stderr)

    from tqdm import tqdm

    started = time.perf_counter() - (history[-1]["seconds"] if history else 0.0)  # a resumed run's clock goes on
    n_batches = -(-len(y_train) // opts.batch_size)
    steps = min(n_batches, opts.max_steps) if opts.max_steps else n_batches
    log = (lambda *a: print(*a, file=sys.stderr)) if ctx.main else (lambda *a: None)  # noqa: E731
    log(f"training {spec.name} on {dataset.name} ({splits.sizes()}) with {opts.optimizer}, device {device}"
        + (f", {ctx.world} processes" if ctx.world > 1 else ""))
    epoch = start_epoch - 1
    for epoch in range(start_epoch, opts.epochs + 1):
        module.train()
        total, seen = 0.0, 0
        bar = tqdm(total=steps, desc=f"epoch {epoch}/{opts.epochs}", leave=False,
                   disable=True if not (opts.progress and ctx.main) else None,  # None: off when not a terminal
                   file=sys.stderr)
        generator.manual_seed(epoch_seed(opts.seed, epoch))
        torch.manual_seed(epoch_seed(opts.seed, epoch))
        for step, idx in enumerate(_batches(epoch_order(len(y_train), opts.seed, epoch), opts.batch_size)):
            if step >= steps:
                break
            if len(idx) < ctx.world:
                break  # a last batch too small to share
            idx = idx[ctx.rank::ctx.world]
            xb, yb = x_train[idx], y_train[idx]
            if augment is not None:
                xb, yb = augment(xb, yb, generator)
            xb, yb = xb.to(device), yb.to(device)
            loss = loss_fn(step_fn(xb, yb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if opts.clip_grad:
                torch.nn.utils.clip_grad_norm_(trainable, opts.clip_grad)
            optimizer.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{total / seen:.4f}")
            bar.update()
        bar.close()
        dev = evaluate(module, task, loss_fn, x_dev, y_dev, opts.batch_size * 4, device, meta)
        record = {"epoch": epoch, "train_loss": total / max(seen, 1), "dev_loss": dev.pop("loss"),
                  **{f"dev_{k}": v for k, v in dev.items()}, "lr": optimizer.param_groups[0]["lr"],
                  "seconds": round(time.perf_counter() - started, 2)}
        history.append(record)
        scheduler.step()
        score = sign * record[f"dev_{primary}"]
        improved = score > best_score
        if improved:
            best_score, best_epoch = score, epoch
        if ctx.main:  # every process holds the same weights; one writes
            if improved:
                save_weights(module, run_dir / "best.safetensors")
            write_checkpoint(run_dir, module, optimizer, {
                "model": spec.name, "config": config, "epoch": epoch, "history": history,
                "best_score": best_score, "best_epoch": best_epoch, "scheduler": scheduler.state_dict(),
            })
            store.crash_point("epoch-saved")
            store.atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
            _plot(history, primary, run_dir / "curve.png")
        log(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
        if epoch - best_epoch >= opts.patience:
            log(f"early stop: dev {primary} has not improved for {opts.patience} epochs")
            break

    if ctx.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
        if not ctx.main:
            return TrainResult(run_dir, {}, None)

    if not (run_dir / "best.safetensors").is_file():
        raise ZooError(f"no epoch finished; nothing to save (epochs={opts.epochs})")
    load_weights(module, run_dir / "best.safetensors")
    test = evaluate(module, task, loss_fn, x_test, y_test, opts.batch_size * 4, device, meta)
    best = next(h for h in history if h["epoch"] == best_epoch)
    metrics = {f"test_{k}": v for k, v in test.items()}
    metrics.update({k: v for k, v in best.items() if k.startswith("dev_")})
    metrics.update({"best_epoch": best_epoch, "epochs_run": epoch, "train_seconds": history[-1]["seconds"]})
    manifest = {
        "model": spec.name, "family": spec.family, "task": spec.task, "config": config,
        "dataset": dataset.name, "data_source": splits.source, "splits": splits.sizes(), "split_seed": opts.seed,
        "labels": list(labels), "preprocessing": meta["preprocessing"], "task_meta": splits.info,
        "metrics": metrics,
        "training": {k: v for k, v in asdict(opts).items() if k not in ("install", "progress", "run_dir")},
        "device": str(device), "processes": ctx.world, "torch_version": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "zoo_version": zoo.__version__,
        "command": shlex.join(["zoo", *sys.argv[1:]]),
    }
    store.write_json(run_dir / "manifest.json", manifest)
    if not opts.install:
        if claim is not None:
            claim.unlink(missing_ok=True)
        return TrainResult(run_dir, metrics, None)
    if opts.activate:
        decision = store.Decision(True, "--activate was given", store.find(spec.name))
    else:
        decision = store.should_activate(spec.name, metrics, primary, task.higher_is_better, dataset.name)
    entry = store.install(spec.name, run_dir / "best.safetensors", manifest, tag=run_id, activate=decision.activated)
    if claim is not None:
        claim.unlink(missing_ok=True)
    return TrainResult(run_dir, metrics, entry, decision)
