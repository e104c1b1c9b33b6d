"""How much slower is `zoo train lenet5` per epoch than a plain PyTorch loop doing the same work?

    python benchmarks/train_speed.py [--rounds 3] [--epochs 4] [--threads 1] [--profile]

In one process, interleaved (zoo, plain, zoo, plain, ...): zoo's own training path
(``zoo.engine.train`` with a temporary ``ZOO_HOME``, no progress bar, nothing installed) against
a plain loop with the same model class (``zoo.plugins.lenet.model.LeNet5``), the same encoded
``digits`` splits (the task's ``encode_inputs``, done once outside the clock), batch size,
optimizer (Adam at the card's learning rate, the same exponential decay), no augmentation on
either side, and the dev split scored every epoch. zoo's epoch also holds what makes it zoo:
the best weights and the ``--resume`` checkpoint saved, ``metrics.jsonl`` written. Reported:
samples/s and seconds per epoch of each, and the per-epoch ratio zoo/plain (medians over all
epochs of all rounds). ``--profile`` runs one more zoo training under cProfile and prints the
functions that take the most cumulative time inside ``fit_epochs``.

    python benchmarks/train_speed.py rss --images 2000 --side 224 [--mode before|in-ram|stream]
        [--model resnet18 --config image_size=160 --max-steps 4]

Builds (once, under ``--folder``, default a temporary folder) an image folder of ``--images``
generated JPEGs in 10 class sub-folders and trains one epoch of ``--model`` (lenet5 reads them
grayscale at 32x32) on it in a fresh process per mode, scoring dev and test, and reports each
process's peak RSS (``resource.getrusage``; the data-loading workers' largest peak separately):
``before`` decodes every image in the loader and encodes whole splits (the path before
streaming), ``in-ram`` encodes the file-backed splits whole, ``stream`` reads them through a
``DataLoader`` with workers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ZOO_HOME", tempfile.mkdtemp(prefix="zoo-train-speed-"))


def plain_loop(data, spec, epochs: int, seed: int) -> list[float]:
    """The textbook loop: shuffle, forward, loss, backward, step; score dev each epoch."""
    import torch
    import torch.nn.functional as F

    from zoo.plugins.lenet.model import LeNet5

    defaults = spec.train_defaults
    config = data.config
    torch.manual_seed(seed)
    model = LeNet5(config["in_channels"], config["num_classes"], config["dropout"])
    optimizer = torch.optim.Adam(model.parameters(), lr=defaults["lr"])
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=defaults["lr_decay"])
    (x, y), (x_dev, y_dev) = (data.train.x, data.train.y), (data.dev.x, data.dev.y)
    batch = defaults["batch_size"]
    generator = torch.Generator().manual_seed(seed)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        total = 0.0
        order = torch.randperm(len(y), generator=generator)
        for i in range(0, len(y), batch):
            idx = order[i: i + batch]
            xb, yb = x[idx], y[idx]
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        scheduler.step()
        model.eval()
        with torch.no_grad():
            out = torch.cat([model(x_dev[i: i + 4 * batch]) for i in range(0, len(y_dev), 4 * batch)])
            accuracy = float((out.argmax(1) == y_dev).float().mean())
            dev_loss = float(F.cross_entropy(out, y_dev))
        times.append(time.perf_counter() - start)
        assert 0.0 <= accuracy <= 1.0 and dev_loss == dev_loss
    return times


def zoo_run(epochs: int, seed: int, run_dir: Path) -> tuple[list[float], float, list[dict]]:
    """zoo's own path; per-epoch seconds from its history (its clock starts at the first epoch)."""
    from zoo.engine import TrainOptions, train

    start = time.perf_counter()
    result = train("lenet5", TrainOptions(epochs=epochs, augment="", patience=10_000, seed=seed, install=False,
                                          progress=False, run_dir=str(run_dir)))
    whole = time.perf_counter() - start
    history = json.loads((result.run_dir / "checkpoint" / "state.json").read_text())["history"]
    clock = [h["seconds"] for h in history]
    return [b - a for a, b in zip([0.0] + clock[:-1], clock)], whole, history


def speed(args) -> None:
    import cProfile
    import pstats

    import torch

    from zoo import engine
    from zoo.registry import registry

    torch.set_num_threads(args.threads)
    spec = registry().model("lenet5")
    task = registry().task(spec.task).load()
    opts = engine.TrainOptions(augment="", seed=args.seed).resolved(spec)
    data = engine.load_data(spec, task, opts)  # the encoding both sides use, outside the clock
    n_train = len(data.train)
    root = Path(os.environ["ZOO_HOME"])
    zoo_epochs, plain_epochs, wholes = [], [], []
    plain_loop(data, spec, 1, args.seed)  # warm-up of both paths
    zoo_run(1, args.seed, root / "warm")
    for r in range(args.rounds):
        epochs, whole, _ = zoo_run(args.epochs, args.seed, root / f"round{r}")
        zoo_epochs += epochs
        wholes.append(whole)
        plain_epochs += plain_loop(data, spec, args.epochs, args.seed)
        print(f"round {r + 1}: zoo epochs {' '.join(f'{t:.3f}' for t in epochs)} s (whole run {whole:.2f} s); "
              f"plain {' '.join(f'{t:.3f}' for t in plain_epochs[-args.epochs:])} s", file=sys.stderr)
    z, p = statistics.median(zoo_epochs), statistics.median(plain_epochs)
    ratios = sorted(a / b for a, b in zip(zoo_epochs, plain_epochs))
    report = {
        "train_samples": n_train, "batch_size": opts.batch_size, "epochs_per_round": args.epochs,
        "rounds": args.rounds, "threads": args.threads,
        "zoo_epoch_s": round(z, 4), "plain_epoch_s": round(p, 4),
        "zoo_samples_per_s": round(n_train / z), "plain_samples_per_s": round(n_train / p),
        "ratio_zoo_over_plain": round(z / p, 3),
        "paired_ratio_min_median_max": [round(ratios[0], 3), round(statistics.median(ratios), 3), round(ratios[-1], 3)],
        "zoo_whole_run_s_median": round(statistics.median(wholes), 3),
    }
    print(json.dumps(report, indent=1))
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        zoo_run(args.epochs, args.seed, root / "profile")
        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative")
        stats.print_stats(35)


# -- memory of image folders ---------------------------------------------------------------------
def make_folder(folder: Path, images: int, side: int) -> None:
    """``images`` JPEGs in 10 class folders: gradients and noise, a bright disc whose place is
    the class (so that something is learnable)."""
    import numpy as np
    from PIL import Image

    if (folder / ".complete").is_file():
        return
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    for i in range(images):
        cls = i % 10
        (folder / f"c{cls}").mkdir(parents=True, exist_ok=True)
        base = 80 * (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) + rng.normal(100, 30, (side, side))
        cy, cx = 0.2 + 0.06 * cls, 0.8 - 0.06 * cls
        base += 120 * (((yy - cy) ** 2 + (xx - cx) ** 2) < 0.02)
        rgb = np.clip(np.stack([base, base * 0.9, base * 1.1], -1), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"c{cls}" / f"{i:05d}.jpg", quality=90)
    (folder / ".complete").write_text("")


def rss_child(args) -> None:
    """One mode in this (fresh) process: load, train one epoch, report peak RSS."""
    import resource

    import torch

    from zoo import data as zoo_data
    from zoo import engine

    torch.set_num_threads(args.threads)
    if args.mode == "before":  # every image decoded by the loader, as the loader did before streaming
        eager = zoo_data.load_image_folder

        def load_decoded(*a, **k):
            splits = eager(*a, **k)
            for part in (splits.train, splits.dev, splits.test):
                part.inputs = list(part.inputs)
            return splits
        zoo_data.load_image_folder = load_decoded
    if args.mode in ("before", "in-ram"):
        engine.STREAM_BYTES = float("inf")
    else:
        engine.STREAM_BYTES = 0
    start = time.perf_counter()
    config = dict(item.split("=", 1) for item in args.config)
    config = {k: int(v) if v.isdigit() else v for k, v in config.items()}
    result = engine.train(args.model, engine.TrainOptions(
        epochs=1, dataset="image-folder", data=args.folder, augment="", install=False, progress=False,
        config=config, max_steps=args.max_steps, batch_size=args.batch_size,
        run_dir=str(Path(os.environ["ZOO_HOME"]) / f"rss-{args.mode}")))
    seconds = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"model": args.model, "mode": args.mode, "peak_rss_mib": round(own), "largest_worker_peak_rss_mib": round(children),
                      "seconds": round(seconds, 2), "test_accuracy": result.metrics["test_accuracy"]}))


def rss(args) -> None:
    folder = Path(args.folder) if args.folder else Path(tempfile.gettempdir()) / f"zoo-folder-{args.images}-{args.side}"
    make_folder(folder, args.images, args.side)
    modes = [args.mode] if args.mode else ["before", "in-ram", "stream"]
    for mode in modes:
        extra = [f"--config={c}" for c in args.config] + (["--max-steps", str(args.max_steps)] if args.max_steps else [])
        extra += ["--batch-size", str(args.batch_size)] if args.batch_size else []
        out = subprocess.run([sys.executable, __file__, "rss-child", "--mode", mode, "--folder", str(folder),
                              "--threads", str(args.threads), "--model", args.model, *extra],
                             capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        print(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", default="speed", choices=("speed", "rss", "rss-child"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--side", type=int, default=224)
    parser.add_argument("--folder")
    parser.add_argument("--mode", choices=("before", "in-ram", "stream"))
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--config", action="append", default=[], help="KEY=VALUE of the model config (rss)")
    parser.add_argument("--max-steps", type=int, help="training batches of the epoch (rss; default all)")
    parser.add_argument("--batch-size", type=int)
    args = parser.parse_args()
    {"speed": speed, "rss": rss, "rss-child": rss_child}[args.what](args)


if __name__ == "__main__":
    main()
