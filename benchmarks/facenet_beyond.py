"""facenet-small beyond its test split: the open-set figures (verification, recall@1, one-shot)
on digits from a source its training never saw, scikit-learn's 1,797 UCI digits (other writers,
scanned at 8 x 8, scaled here to 28 x 28 bilinear as MNIST's size), through the exported artifact
and the runtime. Digits 7-9 are classes it never trained on, as in its own test split; 0-6 are
the classes it trained on, from the new source.

    zoo export facenet-small && python benchmarks/facenet_beyond.py [--json OUT]
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def uci_digits() -> tuple[list[np.ndarray], np.ndarray]:
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    images = [np.asarray(Image.fromarray((img * 255 / 16).astype(np.uint8)).resize((28, 28), Image.Resampling.BILINEAR))
              for img in data.images]
    return images, data.target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="facenet-small")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    import zoo
    from zoo.registry import registry
    from zoo.runtime.tasks.faces import balanced_pairs, squared_distances, threshold_of, verification_metrics

    artifact = zoo.load(args.model, "cpu").artifact
    task = registry().task("face-embedding").load()
    images, labels = uci_digits()
    own = threshold_of(artifact.meta)  # the shipped threshold, chosen on its MNIST dev split
    report = {"model": args.model, "source": "scikit-learn's UCI digits, 8x8 scaled to 28x28"}
    for name, keep in (("unseen classes 7-9", (7, 8, 9)), ("trained classes 0-6", tuple(range(7))),
                       ("all ten", tuple(range(10)))):
        pick = np.isin(labels, keep)
        raw = [img for img, p in zip(images, pick) if p]
        emb = task.runtime_outputs(artifact, raw, labels[pick], artifact.meta)
        figures = verification_metrics(emb, labels[pick])
        # what a user of the shipped threshold gets: the same balanced pairs, judged at it
        i, j, same = balanced_pairs(labels[pick], 3000, 0)
        figures["pair_accuracy_at_own_tau"] = float(np.mean((squared_distances(emb, emb)[i, j] <= own) == same))
        report[name] = {"images": int(pick.sum()), "own_tau": own, **figures}
        shown = ", ".join(f"{k} {v:.3f}" for k, v in figures.items() if k != "pairs")
        print(f"{name} ({int(pick.sum())} images; own tau {own:.4f}): {shown}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
