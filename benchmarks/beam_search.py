"""Decoding speed of a translation artifact through the runtime, torch-free: greedy search,
batched beam search, and beam search one input at a time (what the runtime did before beam
search was batched), on the same held-out sources, interleaved over several rounds. Prints
inputs per second and the ratios measured in this run.

    python benchmarks/beam_search.py seq2seq-dates --beam 5 --limit 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from zoo import store
from zoo.api import load
from zoo.registry import registry
from zoo.specs import load_object


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--limit", type=int, default=1000, help="held-out sources to decode")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    reg = registry()
    spec = reg.model(args.model)
    manifest = store.require(spec.name).manifest
    splits = load_object(reg.dataset(manifest["dataset"]).loader)(manifest["training"].get("data"),
                                                                  seed=manifest.get("split_seed", 0))
    sources = list(splits.test.inputs)[: args.limit]
    artifact = load(spec.name, "cpu").artifact
    task = reg.task(spec.task).load()
    ways = {"greedy": (1, args.batch_size), f"beam {args.beam} batched": (args.beam, args.batch_size),
            f"beam {args.beam} one at a time": (args.beam, 1)}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    outputs: dict[str, list[str]] = {}
    for _ in range(args.rounds):
        for name, (beam, batch) in ways.items():
            started = time.perf_counter()
            outputs[name] = [out for out, _, _ in task.translate(artifact, sources, beam, 0.7, batch)]
            seconds[name].append(time.perf_counter() - started)
    rate = {name: len(sources) / statistics.median(times) for name, times in seconds.items()}
    print(f"{spec.name}: {len(sources)} held-out sources, {args.rounds} interleaved rounds, median, CPU provider")
    for name in ways:
        print(f"  {name:<26} {rate[name]:8.1f} inputs/s")
    batched, single = f"beam {args.beam} batched", f"beam {args.beam} one at a time"
    print(f"  batched beam / greedy: {rate[batched] / rate['greedy']:.2f}x; "
          f"batched beam / one at a time: {rate[batched] / rate[single]:.2f}x; "
          f"same outputs batched and one at a time: {outputs[batched] == outputs[single]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
