"""Images/s of ``zoo run`` with the serial runtime (decode a batch, then infer it) against the
pipelined one (the next batch decodes on a thread pool while onnxruntime runs the current one).

    python benchmarks/pipeline_bench.py [--photos 200] [--folder 64] [--rounds 3] [--against REF]
                                        [--threads N ...] [--json-out FILE]

yolo-nano (shipped weights) over ``--photos`` generated photos, and resnet50 (random weights)
over a folder of ``--folder`` of them, each exported here into a temporary ZOO_HOME (or give
``--home`` with the exports made already). Each way is one pass in a fresh process, timed
inside it from the first result asked to the last one (``Model.stream`` over the folder, the
API ``zoo run`` is built on; loading and the first session call are left out), and the ways
take turns, round after round: ``zoo at REF`` (``--against``: the code of that commit, the
runtime before the pipeline), ``serial`` (today's code with ``ZOO_PREFETCH=0``), ``pipelined``
(today's defaults), and with ``--threads`` both again with onnxruntime's intra-op threads set. The figure is the
median of the rounds, the ratio is against the first way, and every pass's answers must equal
the first way's, or the run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent


def make_photos(folder: Path, count: int, seed: int = 0) -> None:
    """Photo-like JPEGs (smooth gradients, shapes and sensor noise, 800x600 to 1600x1200, quality
    90): what decoding costs for a camera's pictures, not for a flat test card."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = [(800, 600), (1024, 768), (1280, 960), (1600, 1200), (768, 1024)]
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        base = np.stack([(x / w) * rng.uniform(80, 255), (y / h) * rng.uniform(80, 255),
                         np.full_like(x, rng.uniform(0, 255))], -1)
        image = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
        pen = ImageDraw.Draw(image)
        for _ in range(6):
            x0, y0 = rng.integers(0, w - 60), rng.integers(0, h - 60)
            pen.ellipse((x0, y0, x0 + rng.integers(40, w // 3), y0 + rng.integers(40, h // 3)),
                        fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        image.save(folder / f"photo{i:04d}.jpg", quality=90)


def export(name: str, home: str, *extra: str) -> None:
    subprocess.run([sys.executable, "-m", "zoo", "export", name, *extra], env=dict(os.environ, ZOO_HOME=home),
                   check=True, capture_output=True, text=True)


#: one timed pass, run in a fresh process so that zoo at another commit can take the same one
PASS = """
import json, sys, time
import zoo
target, folder, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = zoo.load(target, provider="cpu", **({"threads": threads} if threads else {}))
list(model.stream([sorted(__import__("pathlib").Path(folder).iterdir())[0]]))  # the session, warm
began = time.perf_counter()
results = list(model.stream([folder]))
rate = len(results) / (time.perf_counter() - began)
print(json.dumps({"rate": rate, "answers": [{k: v for k, v in r.to_json().items() if k != "timings"}
                                            for r in results]}, default=str))
"""


def old_tree(ref: str, scratch: Path) -> Path:
    """zoo as it was at ``ref``, importable with PYTHONPATH (its folders linked into the package
    the way the installed distribution maps them)."""
    root = scratch / f"zoo-{ref}"
    root.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    for folder in ("runtime", "plugins", "exporters", "weights"):
        (root / "zoo" / folder).symlink_to(Path("..") / folder)
    return root


def one_pass(target: str, folder: Path, threads: int, env: dict[str, str], cwd: Path) -> tuple[float, list]:
    done = subprocess.run([sys.executable, "-c", PASS, target, str(folder), str(threads)], env=env, cwd=cwd,
                          check=True, capture_output=True, text=True)
    data = json.loads(done.stdout)
    return data["rate"], data["answers"]


def bench(label: str, target: str, folder: Path, rounds: int, threads: list[int], before: Path | None,
          ref: str, cwd: Path) -> list[dict]:
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ZOO_PREFETCH")}
    ways = []  # (name, intra-op threads, environment)
    if before is not None:
        ways.append((f"zoo at {ref} (before)", 0, {**base, "PYTHONPATH": str(before)}))
    ways += [("serial (ZOO_PREFETCH=0)", 0, {**base, "ZOO_PREFETCH": "0"}), ("pipelined", 0, base)]
    for t in threads:
        ways += [(f"serial, --threads {t}", t, {**base, "ZOO_PREFETCH": "0"}), (f"pipelined, --threads {t}", t, base)]
    reference = None
    rates: dict[str, list[float]] = {name: [] for name, *_ in ways}
    for _ in range(rounds):
        for name, t, env in ways:
            rate, got = one_pass(target, folder, t, env, cwd)
            reference = reference if reference is not None else got
            if got != reference:
                raise SystemExit(f"{label} {name}: results differ from the first way's")
            rates[name].append(rate)
    first = statistics.median(rates[ways[0][0]])
    rows = []
    for name, *_ in ways:
        median = statistics.median(rates[name])
        rows.append({"model": label, "way": name, "images_per_s": median, "vs_first": median / first,
                     "rounds": rates[name]})
        print(f"  {label:<30} {name:<28} {median:7.1f} images/s   x{median / first:.2f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200, help="generated photos for yolo-nano")
    parser.add_argument("--folder", type=int, default=64, help="of them, in the classifier's folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="*", default=[], help="intra-op thread counts to add")
    parser.add_argument("--classifier", default="resnet50", help="resnet50 (random weights) or a shipped one")
    parser.add_argument("--home", help="a ZOO_HOME with yolo-nano and the classifier exported already")
    parser.add_argument("--against", metavar="REF", help="also time zoo as it was at this git commit (the "
                        "runtime before the pipeline), first in each round; ratios are against it")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = args.home or str(Path(scratch) / "home")
        os.environ["ZOO_HOME"] = home
        classifier = args.classifier
        if not args.home:
            export("yolo-nano", home)
            if classifier == "resnet50":
                export("resnet50", home, "--random-weights")
            else:
                export(classifier, home)
        if classifier == "resnet50":
            classifier = "resnet50@random"
        photos, folder = Path(scratch) / "photos", Path(scratch) / "folder"
        make_photos(photos, args.photos)
        folder.mkdir()
        for p in sorted(photos.iterdir())[: args.folder]:
            (folder / p.name).symlink_to(p)
        before = old_tree(args.against, Path(scratch)) if args.against else None
        print(f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
              f"load average {os.getloadavg()[0]:.1f}; median of {args.rounds} interleaved rounds", flush=True)
        common = (args.rounds, args.threads, before, args.against, Path(scratch))
        rows = bench(f"yolo-nano, {args.photos} photos", "yolo-nano", photos, *common)
        rows += bench(f"{classifier}, folder of {args.folder}", classifier, folder, *common)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(),
                                                   "against": args.against, "rounds": args.rounds, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
