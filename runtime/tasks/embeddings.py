"""The ``word-embedding`` task: what ``zoo run`` does with an exported word-vector artifact.

The artifact is a folder with two graphs: ``vocab`` (a constant: the vocabulary as UTF-8 bytes,
one word per line, in row order) and ``lookup`` (word ids -> L2-normalised vectors, a gather).
The runtime reads the vocabulary, looks every row up once (in chunks), and answers in numpy with
``zoo.runtime.wordvec``: an analogy or arithmetic query per INPUT (``"king - man + woman"``, the
query words excluded from the answer), ``--similar WORD``, ``--similarity A B``, ``--plot
FILE.png WORDS...`` and ``--debias WORDS...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zoo.errors import ZooError
from zoo.runtime.tasks import Agreement, Prepared, Task, top1_agreement
from zoo.runtime.wordvec import (EQUALIZE_PAIRS, GENDER_PAIRS, WordVectors, bias_direction, equalize,
                                 evaluate_vectors, neutralize, parse_query, pca_2d)

LOOKUP_CHUNK = 65_536
DEBIAS_DEFAULT = ("receptionist", "engineer", "nurse", "doctor", "homemaker", "programmer", "babysitter",
                  "architect", "grandmother", "grandfather", "girl", "boy")
MAX_TOP_K = 1000


def load_vectors(artifact) -> WordVectors:
    """The artifact's vocabulary and its whole (normalised) matrix, looked up through the graph."""
    cached = getattr(artifact, "_word_vectors", None)
    if cached is not None:
        return cached
    utf8 = artifact.session("vocab").run(None, {"start": np.zeros(1, np.int64)})[0]
    try:
        words = bytes(np.asarray(utf8, np.uint8).tobytes()).decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise ZooError(f"{artifact.path}: the vocabulary graph does not hold UTF-8 text") from exc
    lookup = artifact.session("lookup")
    rows = [lookup.run(None, {"ids": np.arange(s, min(s + LOOKUP_CHUNK, len(words)), dtype=np.int64)})[0]
            for s in range(0, len(words), LOOKUP_CHUNK)]
    wv = WordVectors(words, np.concatenate(rows))
    artifact._word_vectors = wv
    return wv


def _words(inputs: Sequence[str]) -> list[str]:
    out = [w.strip().lower() for text in inputs for w in text.split()]
    if not out:
        raise ZooError("no words given: list the words as INPUT arguments")
    return out


def debias_report(wv: WordVectors, words: Sequence[str]) -> list[dict[str, Any]]:
    """Each word's cosine with the gender direction g before and after debiasing: words of an
    equalize pair are equalized, every other word is neutralized. Each row also gives the word's
    cosine with each side of the first equalize pair (woman/man) after debiasing: equal for a
    neutralized word."""
    units = wv.unit_matrix()
    pairs = [(wv.index[a], wv.index[b]) for a, b in GENDER_PAIRS if a in wv.index and b in wv.index]
    g = bias_direction(units, pairs, "pca")
    partner: dict[str, tuple[str, str]] = {}
    for a, b in EQUALIZE_PAIRS:
        if a in wv.index and b in wv.index:
            partner[a], partner[b] = (a, b), (a, b)
    anchor = next(((a, b) for a, b in EQUALIZE_PAIRS if a in wv.index and b in wv.index), None)
    anchor_vecs = equalize(units[wv.index[anchor[0]]], units[wv.index[anchor[1]]], g) if anchor else None
    rows = []
    for word in words:
        e = units[wv.id_of(word)].astype(np.float64)
        if word in partner:
            a, b = partner[word]
            ea, eb = equalize(units[wv.index[a]], units[wv.index[b]], g)
            after = ea if word == a else eb
            how = f"equalized with {b if word == a else a}"
        else:
            after = neutralize(e, g)
            how = "neutralized"
        row = {"word": word, "projection_before": float(e @ g / np.linalg.norm(e)),
               "projection_after": float(after @ g / max(np.linalg.norm(after), 1e-12)), "method": how}
        if anchor_vecs is not None:
            norm = max(float(np.linalg.norm(after)), 1e-12)
            row[f"cos_{anchor[0]}"] = float(after @ anchor_vecs[0] / norm)
            row[f"cos_{anchor[1]}"] = float(after @ anchor_vecs[1] / norm)
        rows.append(row)
    return rows


def save_plot(points: np.ndarray, labels: Sequence[str], path: str) -> None:
    """Labelled scatter plot as a PNG, drawn with Pillow (the runtime has no matplotlib)."""
    from PIL import Image, ImageDraw

    from zoo.store import atomic_path

    width, height, margin = 900, 700, 60
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    xy = margin + (points - lo) / span * np.array([width - 2 * margin, height - 2 * margin])
    xy[:, 1] = height - xy[:, 1]
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 10), "PCA of word vectors (first two components)", fill="black")
    for (x, y), label in zip(xy, labels):
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=(31, 119, 180))
        draw.text((x + 6, y - 6), label, fill="black")
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ZooError(f"--plot {path}: give a .png file name")
    with atomic_path(target, ".png") as tmp:
        image.save(tmp, format="PNG")


class WordEmbeddingTask(Task):
    input_kinds = ("str",)
    name = "word-embedding"
    primary_metric = "ws353_spearman"

    def encode_inputs(self, raw: Sequence[Any], meta: dict[str, Any]) -> np.ndarray:
        raise ZooError("word vectors are scored on similarity and analogy sets, not on corpus samples")

    # ``zoo val``: the corpus split is not what word vectors are judged on; the artifact's own
    # vectors go through the same evaluation sets as training's figures
    def encode_targets(self, raw: Sequence[Any], targets: Any, meta: dict[str, Any]) -> np.ndarray:
        return np.zeros(0)

    def runtime_outputs(self, artifact, raw: Sequence[Any], targets: np.ndarray, meta: dict[str, Any],
                        batch_size: int = 64) -> WordVectors:
        return load_vectors(artifact)

    def metric(self, outputs: WordVectors, targets: np.ndarray, meta: dict[str, Any]) -> dict[str, float]:
        scores = evaluate_vectors(outputs.words, outputs.vectors, more=True)
        if not scores:
            raise ZooError("no evaluation sets found: WordSim-353, SimLex-999 and Google's analogies come with "
                           "gensim's test data (pip install gensim)")
        return scores

    def run(self, artifact, inputs: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
        options = self.with_defaults(options)
        k = int(options["top_k"])
        if not 1 <= k <= MAX_TOP_K:
            raise ZooError(f"--top-k {k}: give 1 to {MAX_TOP_K}")
        similar = options["similar"]
        modes = [m for m in ("similar", "similarity", "plot", "debias") if options[m]]
        if len(modes) > 1:
            raise ZooError(f"choose one of --{', --'.join(modes)}")
        if similar is not None and not similar.strip():
            raise ZooError("empty --similar: give a word")
        wv = load_vectors(artifact)
        if similar:
            word = similar.strip().lower()
            return [{"kind": "similar", "query": word,
                     "neighbours": [{"word": w, "cosine": s} for w, s in wv.most_similar([word], k=k)]}]
        if options["similarity"]:
            words = _words(inputs)
            if len(words) != 2:
                raise ZooError(f"--similarity takes exactly two words, got {len(words)}")
            return [{"kind": "similarity", "a": words[0], "b": words[1], "cosine": wv.similarity(*words)}]
        if options["plot"]:
            words = _words(inputs)
            if len(words) < 2:
                raise ZooError("--plot needs at least two words")
            units = np.stack([wv.unit(wv.id_of(w)) for w in words])
            points = pca_2d(units)
            save_plot(points, words, options["plot"])
            return [{"kind": "plot", "path": str(options["plot"]),
                     "points": [{"word": w, "x": float(x), "y": float(y)} for w, (x, y) in zip(words, points)]}]
        if options["debias"]:
            words = _words(inputs) if inputs else [w for w in DEBIAS_DEFAULT if w in wv.index]
            return [{"kind": "debias", **row} for row in debias_report(wv, words)]
        if not inputs:
            raise ZooError("empty query: give words such as \"king - man + woman\", or --similar WORD")
        results = []
        for text in inputs:
            positive, negative = parse_query(text)
            hits = wv.most_similar(positive, negative, k=k)
            results.append({"kind": "query", "query": text, "positive": positive, "negative": negative,
                            "neighbours": [{"word": w, "cosine": s} for w, s in hits]})
        return results

    def format(self, result: dict[str, Any]) -> str:
        kind = result["kind"]
        if kind in ("query", "similar"):
            best = "  ".join(f"{n['word']} {n['cosine']:.3f}" for n in result["neighbours"])
            return f"{result['query']}: {best}"
        if kind == "similarity":
            return f"cos({result['a']}, {result['b']}) = {result['cosine']:.4f}"
        if kind == "plot":
            return f"wrote {result['path']} ({len(result['points'])} words)"
        extra = "  ".join(f"{k} {v:.3f}" for k, v in result.items() if k.startswith("cos_"))
        return (f"{result['word']:<14} projection on g {result['projection_before']:+.4f} -> "
                f"{result['projection_after']:+.4f} ({result['method']})  {extra}")


# -- sentiment ------------------------------------------------------------------------------------------------
def encode_sentences(texts: Sequence[str], vocab: Sequence[str], max_len: int) -> tuple[np.ndarray, list[list[str]]]:
    """Sentences -> (N, max_len) word ids (1-based rows of ``vocab``; 0 pads after the words),
    and each sentence's words the vocabulary lacks (skipped)."""
    from zoo.runtime.wordvec import tokenize

    index = {w: i + 1 for i, w in enumerate(vocab)}
    ids = np.zeros((len(texts), max_len), np.int64)
    unknown = []
    for row, text in enumerate(texts):
        words = tokenize(text)
        known = [index[w] for w in words if w in index][:max_len]
        unknown.append([w for w in words if w not in index])
        ids[row, :len(known)] = known
    return ids, unknown


class TextClassification(Task):
    input_kinds = ("str",)
    name = "text-classification"
    primary_metric = "accuracy"

    def encode_inputs(self, raw: Sequence[str], meta: dict[str, Any]) -> np.ndarray:
        config = meta["config"]
        return encode_sentences(list(raw), config["vocab"], int(config["max_len"]))[0]

    def metric(self, outputs: np.ndarray, targets: np.ndarray, meta: dict[str, Any]) -> dict[str, float]:
        return {"accuracy": float((outputs.argmax(-1) == targets).mean()) if len(targets) else 0.0}

    def compare_precision(self, reference, candidate, meta: dict[str, Any]) -> Agreement:
        return top1_agreement(reference[0], candidate[0])

    def expand(self, inputs):
        given = False
        for text in inputs:
            given = True
            yield text
        if not given:
            raise ZooError("empty text: give a sentence such as \"the dessert is excellent\"")

    def preprocess(self, artifact, item, options: dict[str, Any]) -> Prepared:
        if not item.strip():
            raise ZooError("empty text: give a sentence such as \"the dessert is excellent\"")
        config = artifact.meta["config"]
        ids, (unknown,) = encode_sentences([item], config["vocab"], int(config["max_len"]))
        if not ids.any():
            raise ZooError(f"{item[:40]!r}: none of its words is in the model's vocabulary")
        return Prepared(item, ids[0], unknown)

    def predict(self, artifact, batch: np.ndarray, options: dict[str, Any]) -> np.ndarray:
        from zoo.runtime.tasks.classification import softmax

        return softmax(artifact.session().run(None, {"ids": batch})[0].astype(np.float64))

    def postprocess(self, artifact, prepared: Prepared, output: np.ndarray, options: dict[str, Any]) -> dict[str, Any]:
        labels = artifact.meta.get("labels") or ["negative", "positive"]
        return {"text": prepared.input, "label": labels[int(output.argmax())], "prob": float(output.max()),
                "probs": {labels[i]: float(v) for i, v in enumerate(output)}, "unknown_words": prepared.info}

    def format(self, result: dict[str, Any]) -> str:
        note = f"  (not in the vocabulary, skipped: {', '.join(result['unknown_words'])})" \
            if result["unknown_words"] else ""
        return f"{result['text']}: {result['label']} ({result['prob']:.1%}){note}"
