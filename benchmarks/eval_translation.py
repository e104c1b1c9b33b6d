"""Held-out evaluation of a translation model's exported artifact with the runtime's own search:
exact match, BLEU (sacrebleu) and token error rate (word or phoneme error rate) for greedy and
beam search on the test split of the dataset the weights were trained on. Torch-free.

    python benchmarks/eval_translation.py seq2seq-dates --beam 1 --beam 5 --json-out results.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from zoo import store
from zoo.api import load
from zoo.data import call_loader
from zoo.registry import registry
from zoo.runtime.tasks.text import score_translations
from zoo.specs import load_object


def unstress(phonemes: str) -> str:
    return " ".join(t.rstrip("012") for t in phonemes.split())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--beam", type=int, action="append", help="beam widths (1 = greedy); default 1 and 5")
    parser.add_argument("--length-norm", type=float, default=0.7)
    parser.add_argument("--limit", type=int, help="only the first N test pairs")
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)

    reg = registry()
    spec = reg.model(args.model)
    entry = store.require(spec.name)
    manifest = entry.manifest
    loader = load_object(reg.dataset(manifest["dataset"]).loader)
    splits = call_loader(loader, manifest["training"].get("data"), seed=manifest.get("split_seed", 0), only="test")
    sources = list(splits.test.inputs)[: args.limit]
    references = [str(t) for t in splits.test.targets][: args.limit]
    artifact = load(spec.name, "cpu").artifact
    task = reg.task(spec.task).load()
    rows = []
    unit = artifact.meta["target_unit"]
    # ARPAbet with stress (AH0, EY1): also scored with the stress marks removed, as published
    # grapheme-to-phoneme figures are
    stressed = unit == "word" and any(t[-1:] in "012" and t[:-1].isalpha() for r in references[:50] for t in r.split())
    for beam in args.beam or [1, 5]:
        started = time.perf_counter()
        hyps = [out for out, _, _ in task.translate(artifact, sources, beam, args.length_norm)]
        seconds = time.perf_counter() - started
        metrics = score_translations(hyps, references, unit)
        if stressed:
            metrics.update({f"{k}_without_stress": v for k, v in
                            score_translations([unstress(h) for h in hyps], [unstress(r) for r in references],
                                               unit).items()})
        rows.append({"beam": beam, "length_norm": args.length_norm, "pairs": len(sources), "seconds": round(seconds, 1),
                     **metrics})
        print(f"{spec.name} test ({len(sources)} pairs), beam {beam}: exact match {metrics['exact_match']:.4f}, "
              f"BLEU {metrics.get('bleu', float('nan')):.2f}, token error rate {metrics['token_error_rate']:.4f} "
              + (f"(without stress: exact match {metrics['exact_match_without_stress']:.4f}, token error rate "
                 f"{metrics['token_error_rate_without_stress']:.4f}) " if stressed else "")
              + f"({seconds:.0f} s)")
    if args.json_out:
        store.write_json(Path(args.json_out),
                         {"model": spec.name, "weights_sha256": manifest.get("sha256"), "dataset": manifest["dataset"],
                          "split": "test", "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
