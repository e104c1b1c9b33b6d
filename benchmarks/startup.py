"""Wall time of the torch-free commands against merely importing torch.

    python benchmarks/startup.py [--runs 10] [--json-out FILE]

Each command runs as a fresh process, as a user types it; the figure is the median of ``--runs``.
``zoo run`` needs an exported lenet5 (made here in a temporary ZOO_HOME from the shipped weights).
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIGIT = ROOT / "zoo" / "samples" / "digit7.png"


def timed(cmd: list[str], env: dict[str, str], runs: int) -> float:
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # warm the file cache
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, ZOO_HOME=home)
        zoo = [sys.executable, "-m", "zoo"]
        subprocess.run([*zoo, "export", "lenet5", "--onnx"], env=env, check=True, capture_output=True)
        commands = {
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "zoo list": [*zoo, "list"],
            "zoo info lenet5": [*zoo, "info", "lenet5"],
            "zoo run lenet5 digit7.png": [*zoo, "run", "lenet5", str(DIGIT)],
            "python -c 'pass'": [sys.executable, "-c", "pass"],
        }
        results = {name: timed(cmd, env, args.runs) for name, cmd in commands.items()}
    reference = results["python -c 'import torch'"]
    print(f"median of {args.runs} fresh processes on {platform.machine()} ({os.cpu_count()} CPUs), Python {platform.python_version()}")
    for name, ms in results.items():
        print(f"  {name:<28} {ms:8.1f} ms   {ms / reference:5.2f} x import torch")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"runs": args.runs, "machine": platform.machine(),
                                                   "cpus": os.cpu_count(), "median_ms": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
