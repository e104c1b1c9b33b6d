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
``Splits.info`` (a vocabulary, say) travels into the manifest and the exported artifact.

``train`` is the steps in order: ``load_data`` (the splits, encoded in memory or, for a large
folder of files, streamed from disk), ``build_module`` (seeded, frozen with ``--freeze``),
``Fit.make`` (loss, optimizer, schedule, augmentation, DDP), a ``Checkpointer`` (the run folder:
claim, ``--resume``, per-epoch saves), ``fit_epochs`` (the loop and early stopping) and
``finalize`` (test score, manifest, store entry)."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import zoo
from zoo import store
from zoo.contracts import hook
from zoo.errors import ZooError
from zoo.registry import registry
from zoo.data import LazySamples, Splits
from zoo.specs import DatasetSpec, ModelSpec, load_object

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

    #: the engine's default of every ``ModelSpec.train_defaults`` key, in one place (the values a
    #: model declares are checked by ``zoo.specs.TRAIN_DEFAULTS``); a model's own value and then a
    #: command-line flag override it
    _DEFAULTS = {"epochs": 10, "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "lr_decay": 1.0,
                 "weight_decay": 0.0, "patience": 5, "augment": None, "clip_grad": None, "bench_batches": (1, 64)}

    @classmethod
    def default(cls, spec: ModelSpec, key: str) -> Any:
        """``spec``'s value of a ``train_defaults`` key: its own, else the engine's."""
        return spec.train_defaults.get(key, cls._DEFAULTS[key])

    def resolved(self, spec: ModelSpec) -> "TrainOptions":
        values = asdict(self)
        for key in self._DEFAULTS.keys() & values.keys():
            if values[key] is None:
                values[key] = self.default(spec, key)
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


def epoch_batches(n: int, seed: int, epoch: int, size: int, steps: int, ctx: "Distributed") -> Iterator[np.ndarray]:
    """The sample indices of this process's batches in one epoch: the (seed, epoch) shuffle cut
    into ``size`` batches, at most ``steps`` of them, each shared out between the processes (a
    last batch too small to share is dropped)."""
    for step, idx in enumerate(_batches(epoch_order(n, seed, epoch), size)):
        if step >= steps or len(idx) < ctx.world:
            return
        yield idx[ctx.rank::ctx.world]


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
def predict_split(module, split: "InMemory | Streamed", batch_size, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The module's outputs on a whole split, in order, with the split's targets."""
    module.eval()
    outputs, targets = [], []
    for xb, yb in split.in_order(batch_size):
        outputs.append(forward(module, xb.to(device), yb.to(device)).float().cpu())
        targets.append(yb)
    return torch.cat(outputs), torch.cat(targets)


def evaluate(module, task, loss_fn, split: "InMemory | Streamed", batch_size, device, meta) -> dict[str, float]:
    outputs, y = predict_split(module, split, batch_size, device)
    metrics = task.metric(outputs.numpy(), y.numpy(), meta)
    metrics["loss"] = float(loss_fn(outputs, y))
    return metrics


# -- the steps of a run -------------------------------------------------------------------------
#: file-backed splits (``zoo.data.LazySamples``, an image folder's) are encoded whole into memory
#: while their encodings together stay under this many bytes, and streamed from disk beyond it
STREAM_BYTES = 512 * 2**20
#: the data-loading worker processes of a streamed split (0: decode in the training process)
STREAM_WORKERS = min(4, max(0, (os.cpu_count() or 1) - 1))


@dataclass
class InMemory:
    """A split encoded once into two tensors, the fast path of every dataset that fits in memory."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, indices: Iterable[np.ndarray]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in indices:
            yield self.x[idx], self.y[idx]

    def in_order(self, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.y), size):
            yield self.x[start: start + size], self.y[start: start + size]


@dataclass
class Streamed:
    """A split read from its files batch by batch: a ``DataLoader`` whose workers decode the
    samples of each batch and encode them with the task (the same ``encode_inputs`` and
    ``encode_targets`` as the in-memory path, on a batch of raw inputs). The batches are the
    ones asked for, in that order, so a (seed, epoch) gives the same batches as in memory;
    memory holds a few batches, whatever the size of the dataset."""

    inputs: Sequence[Any]
    targets: np.ndarray
    task: Any
    meta: dict[str, Any]
    workers: int = 0

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | str:
        """One batch, encoded (in a worker); a ``ZooError`` (an unreadable image) comes back as
        its message, raised again in the training process."""
        try:
            raw = [self.inputs[i] for i in idx]
            x = self.task.encode_inputs(raw, self.meta)
            y = self.task.encode_targets(raw, self.targets[idx], self.meta)
        except ZooError as exc:
            return str(exc)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))

    def batches(self, indices: Iterable[np.ndarray]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from torch.utils.data import DataLoader

        order = list(indices)
        # a generator of its own: the loader draws its workers' base seed from it, which would
        # otherwise come from (and move) the global torch RNG that dropout follows
        loader = DataLoader(self, batch_size=None, sampler=order, num_workers=min(self.workers, len(order)),
                            generator=torch.Generator().manual_seed(0))
        for batch in loader:
            if isinstance(batch, str):
                raise ZooError(batch)
            yield batch

    def in_order(self, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches(_batches(np.arange(len(self)), size))


@dataclass
class TrainData:
    """The encoded splits of a run, and what travels with them into the manifest and the artifact."""

    dataset: DatasetSpec
    splits: Splits
    labels: tuple[str, ...]
    config: dict[str, Any]  # the model config, adjusted to the data (classes, vocabulary size)
    meta: dict[str, Any]  # what the task's encode and metric read
    train: InMemory | Streamed
    dev: InMemory | Streamed
    test: InMemory | Streamed


def load_data(spec: ModelSpec, task: Any, opts: TrainOptions) -> TrainData:
    """The dataset's fixed-seed splits, encoded once by the task into tensors; file-backed splits
    whose encodings would together pass ``STREAM_BYTES`` are streamed from disk instead."""
    dataset_name = opts.dataset or spec.dataset
    if not dataset_name:
        raise ZooError(f"{spec.name} declares no default dataset; pass --dataset NAME")
    dataset = registry().dataset(dataset_name)
    splits = load_object(dataset.loader)(opts.data, seed=opts.seed)
    labels = tuple(splits.labels) or tuple(spec.labels)
    config = spec.config({**splits.config, **opts.config})
    if splits.labels and "num_classes" in config:
        config["num_classes"] = len(labels)
    meta = {"preprocessing": spec.preprocessing_for(config), "labels": list(labels), "config": config, **splits.info}

    parts = (splits.train, splits.dev, splits.test)
    lazy = [part for part in parts if isinstance(part.inputs, LazySamples) and len(part)]
    # one encoded sample says what a whole split would take
    stream = bool(lazy) and sum(task.encode_inputs([part.inputs[0]], meta).nbytes * len(part)
                                for part in lazy) > STREAM_BYTES

    def prepare(part) -> InMemory | Streamed:
        if stream and isinstance(part.inputs, LazySamples):
            return Streamed(part.inputs, np.asarray(part.targets), task, meta, STREAM_WORKERS)
        x = task.encode_inputs(part.inputs, meta)
        y = task.encode_targets(part.inputs, part.targets, meta)
        return InMemory(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y)))

    return TrainData(dataset, splits, labels, config, meta, *map(prepare, parts))


def build_module(spec: ModelSpec, config: dict[str, Any], opts: TrainOptions, device: torch.device) -> torch.nn.Module:
    """The module at the run's seed on ``device``; with ``--freeze``, started from the installed
    weights and frozen through the module's ``freeze`` hook."""
    torch.manual_seed(opts.seed)
    module = spec.build(config).to(device)
    if opts.freeze:
        freeze = hook(module, "freeze")
        if freeze is None and opts.freeze != "none":
            raise ZooError(f"{spec.name} does not support --freeze {opts.freeze} (only 'none': fine-tune every "
                           "tensor from the installed weights)")
        start_from_installed(spec, module)
        if freeze is not None:
            freeze(opts.freeze)
    return module


@dataclass
class Fit:
    """What an optimisation step needs: the module (inside DDP when launched so), its loss, the
    optimizer over the trainable parameters, the learning-rate schedule and the augmentation."""

    module: torch.nn.Module
    step_fn: torch.nn.Module
    loss_fn: Any
    trainable: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    augment: Any
    clip_grad: float | None

    @classmethod
    def make(cls, module: torch.nn.Module, opts: TrainOptions, ctx: Distributed, device: torch.device) -> "Fit":
        trainable = [p for p in module.parameters() if p.requires_grad]
        optimizer = make_optimizer(opts.optimizer, trainable, opts.lr, opts.momentum, opts.weight_decay)
        step_fn: torch.nn.Module = _TrainStep(module)
        if ctx.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            step_fn = DistributedDataParallel(step_fn, device_ids=[device.index] if device.type == "cuda" else None)
        return cls(module, step_fn, hook(module, "loss") or default_loss, trainable, optimizer,
                   torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=opts.lr_decay),
                   load_object(opts.augment) if opts.augment else None, opts.clip_grad)

    def step(self, xb: torch.Tensor, yb: torch.Tensor, generator: torch.Generator, device: torch.device) -> float:
        """One mini-batch: augment (on the CPU), forward, backward, clip, update; the batch loss."""
        if self.augment is not None:
            xb, yb = self.augment(xb, yb, generator)
        xb, yb = xb.to(device), yb.to(device)
        loss = self.loss_fn(self.step_fn(xb, yb), yb)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.trainable, self.clip_grad)
        self.optimizer.step()
        return loss.item()


@dataclass
class Progress:
    """Where a run stands: the per-epoch records and the best dev epoch so far."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float = -float("inf")
    best_epoch: int = 0
    epoch: int = 0  # the last epoch finished

    def record(self, record: dict[str, Any], score: float) -> bool:
        """Add an epoch's record; whether its dev score is the best yet."""
        self.history.append(record)
        self.epoch = record["epoch"]
        if score > self.best_score:
            self.best_score, self.best_epoch = score, self.epoch
            return True
        return False


class Checkpointer:
    """The run folder: chosen (a fresh run id, ``--tag``, ``--run-dir``, or the latest run for a
    bare ``--resume``) and claimed by the main process; each epoch it receives the best weights,
    the checkpoint ``--resume`` reads, ``metrics.jsonl`` and the training curve."""

    #: seconds between two drawings of ``curve.png`` while training (drawing takes most of a
    #: second, as long as a whole epoch of a small model); the first drawing comes after that
    #: long, and the last epoch is always drawn
    CURVE_EVERY = 30.0

    def __init__(self, spec: ModelSpec, opts: TrainOptions, config: dict[str, Any], ctx: Distributed):
        self.spec, self.config, self.ctx = spec, config, ctx
        if opts.resume and not opts.run_dir and not opts.tag:
            latest = _latest_run(spec.name)
            if latest is None:
                raise ZooError(f"--resume: no checkpoint of {spec.name} in {store.runs_dir() / spec.name}; "
                               "start without --resume")
            run_dir = latest
        else:
            run_dir = Path(opts.run_dir) if opts.run_dir else \
                store.runs_dir() / spec.name / (opts.tag or store.new_run_id())
        run_id = opts.tag or run_dir.name
        if not opts.tag and (not store.TAG_RE.match(run_id) or run_id in (store.SHIPPED, store.RANDOM, store.LEGACY)):
            run_id = store.new_run_id()  # a --run-dir whose name is no tag
        if opts.install and store.find(f"{spec.name}@{run_id}") is not None:
            if not opts.resume:
                raise ZooError(f"{spec.name}@{run_id} is already installed; choose another --tag "
                               f"(or `zoo weights remove {spec.name}@{run_id}`)")
            run_id = store.free_tag(spec.name, run_id)  # a finished run trained further
        self.run_dir, self.run_id = run_dir, run_id
        self.claim: Path | None = None
        # (epoch, time) of the last drawing; the clock starts now, so that a run shorter than
        # CURVE_EVERY draws its curve once, after the last epoch, not also inside the first one
        self._curve_drawn = (0, time.perf_counter())
        if ctx.main:
            store._mkdir(run_dir)
            self.claim = store.claim_run(run_dir)  # two processes never train into one run folder
            if not opts.resume and read_checkpoint(run_dir) is not None:
                raise ZooError(f"{run_dir} holds a checkpoint of another run; use --resume or another --tag/--run-dir")

    def resume(self, fit: Fit) -> Progress:
        """The progress saved in the run's checkpoint, with the weights, optimizer and schedule
        put back into ``fit``."""
        checkpoint = read_checkpoint(self.run_dir)
        if checkpoint is None:
            raise ZooError(f"--resume: no checkpoint in {self.run_dir}; start without --resume")
        saved = json.loads((checkpoint / "state.json").read_text())
        if saved["model"] != self.spec.name or saved["config"] != self.config:
            raise ZooError(f"--resume: checkpoint in {self.run_dir} is for {saved['model']} with another config")
        load_weights(fit.module, checkpoint / "last.safetensors")
        _load_optimizer(fit.optimizer, checkpoint / "optimizer.safetensors", saved["optimizer"])
        fit.scheduler.load_state_dict(saved["scheduler"])
        print(f"resuming {self.spec.name} from epoch {saved['epoch']} in {self.run_dir}", file=sys.stderr)
        return Progress(saved["history"], saved["best_score"], saved["best_epoch"], saved["epoch"])

    def save(self, fit: Fit, progress: Progress, improved: bool, primary: str) -> None:
        """After an epoch (main process only: every process holds the same weights)."""
        if not self.ctx.main:
            return
        if improved:
            save_weights(fit.module, self.best)
        write_checkpoint(self.run_dir, fit.module, fit.optimizer, {
            "model": self.spec.name, "config": self.config, "epoch": progress.epoch, "history": progress.history,
            "best_score": progress.best_score, "best_epoch": progress.best_epoch,
            "scheduler": fit.scheduler.state_dict(),
        })
        store.crash_point("epoch-saved")
        store.atomic_write_text(self.run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in progress.history))
        if time.perf_counter() - self._curve_drawn[1] >= self.CURVE_EVERY:
            self.draw_curve(progress, primary)

    def draw_curve(self, progress: Progress, primary: str) -> None:
        """``curve.png`` of the history, unless it already shows the last epoch."""
        if self.ctx.main and progress.history and self._curve_drawn[0] != progress.epoch:
            _plot(progress.history, primary, self.run_dir / "curve.png")
            self._curve_drawn = (progress.epoch, time.perf_counter())

    @property
    def best(self) -> Path:
        return self.run_dir / "best.safetensors"

    def release(self) -> None:
        if self.claim is not None:
            self.claim.unlink(missing_ok=True)


def fit_epochs(spec: ModelSpec, task: Any, data: TrainData, fit: Fit, checkpointer: Checkpointer,
               progress: Progress, opts: TrainOptions, ctx: Distributed, device: torch.device) -> Progress:
    """The epochs from the one after ``progress`` on: train, score the dev split, save, stop early
    when the dev metric has not improved for ``patience`` epochs."""
    from tqdm import tqdm

    primary, sign = task.primary_metric, (1 if task.higher_is_better else -1)
    generator = torch.Generator().manual_seed(opts.seed)
    history = progress.history
    started = time.perf_counter() - (history[-1]["seconds"] if history else 0.0)  # a resumed run's clock goes on
    n_batches = -(-len(data.train) // opts.batch_size)
    steps = min(n_batches, opts.max_steps) if opts.max_steps else n_batches
    log = _logger(ctx)
    log(f"training {spec.name} on {data.dataset.name} ({data.splits.sizes()}) with {opts.optimizer}, device {device}"
        + (f", {ctx.world} processes" if ctx.world > 1 else "")
        + (f", streamed from disk by {data.train.workers or 'no'} worker processes" if isinstance(data.train, Streamed) else ""))
    for epoch in range(progress.epoch + 1, opts.epochs + 1):
        fit.module.train()
        total, seen = 0.0, 0
        bar = tqdm(total=steps, desc=f"epoch {epoch}/{opts.epochs}", leave=False,
                   disable=True if not (opts.progress and ctx.main) else None,  # None: off when not a terminal
                   file=sys.stderr)
        generator.manual_seed(epoch_seed(opts.seed, epoch))
        torch.manual_seed(epoch_seed(opts.seed, epoch))
        for xb, yb in data.train.batches(epoch_batches(len(data.train), opts.seed, epoch, opts.batch_size, steps, ctx)):
            total += fit.step(xb, yb, generator, device) * len(yb)
            seen += len(yb)
            if not bar.disable:
                bar.set_postfix(loss=f"{total / seen:.4f}")
                bar.update()
        bar.close()
        dev = evaluate(fit.module, task, fit.loss_fn, data.dev, opts.batch_size * 4, device, data.meta)
        record = {"epoch": epoch, "train_loss": total / max(seen, 1), "dev_loss": dev.pop("loss"),
                  **{f"dev_{k}": v for k, v in dev.items()}, "lr": fit.optimizer.param_groups[0]["lr"],
                  "seconds": round(time.perf_counter() - started, 2)}
        fit.scheduler.step()
        improved = progress.record(record, sign * record[f"dev_{primary}"])
        checkpointer.save(fit, progress, improved, primary)
        log(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
        if epoch - progress.best_epoch >= opts.patience:
            log(f"early stop: dev {primary} has not improved for {opts.patience} epochs")
            break
    checkpointer.draw_curve(progress, primary)
    return progress


def _calibrate(task: Any, module, data: TrainData, batch_size: int, device: torch.device) -> dict[str, Any]:
    """``task.calibrate`` on the dev split's outputs; the dev split is run again only for a task
    that chooses something (one that overrides the base class's, which chooses nothing)."""
    from zoo.runtime.tasks import Task

    if getattr(type(task), "calibrate", Task.calibrate) is Task.calibrate:
        return {}
    outputs, targets = predict_split(module, data.dev, batch_size, device)
    return task.calibrate(outputs.numpy(), targets.numpy(), data.meta)


def finalize(spec: ModelSpec, task: Any, data: TrainData, fit: Fit, checkpointer: Checkpointer, progress: Progress,
             opts: TrainOptions, ctx: Distributed, device: torch.device) -> TrainResult:
    """The best epoch scored once on the test split, its manifest written, and (unless
    ``install`` is off) installed in the store, active if it beats the active entry."""
    if ctx.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
        if not ctx.main:
            return TrainResult(checkpointer.run_dir, {}, None)
    run_dir = checkpointer.run_dir
    if not checkpointer.best.is_file():
        raise ZooError(f"no epoch finished; nothing to save (epochs={opts.epochs})")
    load_weights(fit.module, checkpointer.best)
    test = evaluate(fit.module, task, fit.loss_fn, data.test, opts.batch_size * 4, device, data.meta)
    chosen = _calibrate(task, fit.module, data, opts.batch_size * 4, device)
    if chosen:
        _logger(ctx)("chosen on the dev split for zoo run: " + ", ".join(f"{k} {v}" for k, v in chosen.items()))
    best = next(h for h in progress.history if h["epoch"] == progress.best_epoch)
    metrics = {f"test_{k}": v for k, v in test.items()}
    metrics.update({k: v for k, v in best.items() if k.startswith("dev_")})
    metrics.update({"best_epoch": progress.best_epoch, "epochs_run": progress.epoch,
                    "train_seconds": progress.history[-1]["seconds"]})
    manifest = {
        "model": spec.name, "family": spec.family, "task": spec.task, "config": data.config,
        "dataset": data.dataset.name, "data_source": data.splits.source, "splits": data.splits.sizes(),
        "split_seed": opts.seed, "labels": list(data.labels), "preprocessing": data.meta["preprocessing"],
        "task_meta": {**data.splits.info, **chosen}, "metrics": metrics,
        "training": {k: v for k, v in asdict(opts).items() if k not in ("install", "progress", "run_dir")},
        "device": str(device), "processes": ctx.world, "torch_version": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "zoo_version": zoo.__version__,
        "command": shlex.join(["zoo", *sys.argv[1:]]),
    }
    store.write_json(run_dir / "manifest.json", manifest)
    if not opts.install:
        checkpointer.release()
        return TrainResult(run_dir, metrics, None)
    if opts.activate:
        decision = store.Decision(True, "--activate was given", store.find(spec.name))
    else:
        decision = store.should_activate(spec.name, metrics, task.primary_metric, task.higher_is_better,
                                         data.dataset.name)
    entry = store.install(spec.name, checkpointer.best, manifest, tag=checkpointer.run_id,
                          activate=decision.activated)
    checkpointer.release()
    return TrainResult(run_dir, metrics, entry, decision)


def _logger(ctx: Distributed):
    return (lambda *a: print(*a, file=sys.stderr)) if ctx.main else (lambda *a: None)


def _check_tag(spec: ModelSpec, opts: TrainOptions) -> None:
    """A bad or taken ``--tag`` is refused before any data is loaded."""
    if opts.tag:
        store.check_tag(opts.tag)
        if opts.install and not opts.resume and store.find(f"{spec.name}@{opts.tag}") is not None:
            raise ZooError(f"{spec.name}@{opts.tag} is already installed; choose another --tag "
                           f"(or `zoo weights remove {spec.name}@{opts.tag}`)")


def train(name: str, opts: TrainOptions) -> TrainResult:
    """``zoo train NAME``: data, module, optimizer, run folder, epochs, then the test score and the
    store entry. A family with a loop of its own (``ModelSpec.trainer``, word vectors) is handed
    the options instead and returns the same ``TrainResult``."""
    reg = registry()
    spec = reg.model(name)
    if spec.trainer:
        return load_object(spec.trainer)(spec, opts)
    opts = opts.resolved(spec)
    _check_tag(spec, opts)
    task = reg.task(spec.task).load()
    data = load_data(spec, task, opts)
    ctx, device = setup_distributed(opts.device)
    fit = Fit.make(build_module(spec, data.config, opts, device), opts, ctx, device)
    checkpointer = Checkpointer(spec, opts, data.config, ctx)
    progress = checkpointer.resume(fit) if opts.resume else Progress()
    progress = fit_epochs(spec, task, data, fit, checkpointer, progress, opts, ctx, device)
    return finalize(spec, task, data, fit, checkpointer, progress, opts, ctx, device)
