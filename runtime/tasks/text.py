"""Text tasks: character generation and sequence-to-sequence translation, numpy only.

Tokenisation uses the vocabulary the artifact carries (``vocab`` for a character model;
``src_vocab``, ``tgt_vocab`` and ``target_unit`` for a translation model). The generation
loops are written once, here: sampling with temperature and a top-k cut-off for text generation; greedy
and beam search with length normalisation for translation, driven by the exported step graphs.
"""

from __future__ import annotations

import datetime
import math
import re
import unicodedata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from zoo.errors import ZooError
from zoo.runtime.results import GenerationResult, TranslationResult
from zoo.runtime.tasks import Task

PAD, SOS, EOS = 0, 1, 2  # target ids; the source vocabulary also starts with <pad> (0)
MAX_GENERATE = 100_000


# -- shared helpers -----------------------------------------------------------------------------------
def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def char_ids(text: str, index: dict[str, int], what: str) -> list[int]:
    """Characters -> ids; characters outside the vocabulary are an error that names them."""
    unknown = sorted({c for c in text if c not in index})
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:10])
        raise ZooError(f"{what}: character(s) {shown} are not in the model's vocabulary")
    return [index[c] for c in text]


def read_lines(path: str) -> list[str]:
    """Non-empty lines of a UTF-8 file."""
    p = Path(path)
    if not p.is_file():
        raise ZooError(f"{p}: no such file")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ZooError(f"{p}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    if not lines:
        raise ZooError(f"{p}: file holds no text")
    return lines


def gather_inputs(inputs: list[str], options: dict[str, Any]) -> list[str]:
    texts = list(inputs) + (read_lines(options["file"]) if options["file"] else [])
    for text in texts:
        if not text.strip():
            raise ZooError("empty text: give a non-empty input")
    return texts


# -- text generation -------------------------------------------------------------------------------
def sample_next(logits: np.ndarray, temperature: float, top_k: int, rng: np.random.Generator) -> np.ndarray:
    """One token per row: argmax at temperature 0, else a draw from softmax(logits / T) restricted
    to the k likeliest tokens when ``top_k`` > 0."""
    if temperature <= 0:
        return logits.argmax(axis=-1)
    scaled = logits.astype(np.float64) / temperature
    if 0 < top_k < scaled.shape[-1]:
        kth = np.sort(scaled, axis=-1)[:, -top_k][:, None]
        scaled = np.where(scaled >= kth, scaled, -np.inf)
    probs = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    cdf = np.cumsum(probs / probs.sum(axis=-1, keepdims=True), axis=-1)
    u = rng.random(len(logits))[:, None]
    return np.minimum((cdf < u).sum(axis=-1), logits.shape[-1] - 1)


def generate(step: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]], state: np.ndarray,
             primes: list[list[int]], length: int, temperature: float, top_k: int, seed: int) -> np.ndarray:
    """Feed each prime through ``step`` (token, state) -> (logits, state'), then sample ``length``
    tokens for all rows together; returns (rows, length) ids."""
    rng = np.random.default_rng(seed)
    logits_rows, states = [], []
    for prime in primes:  # primes differ in length: feed each alone, then go on as one batch
        s = state[:1]
        for token in prime:
            logits, s = step(np.asarray([token], np.int64), s)
        logits_rows.append(logits)
        states.append(s)
    logits, state = np.concatenate(logits_rows), np.concatenate(states)
    out = np.zeros((len(primes), length), np.int64)
    for t in range(length):
        token = sample_next(logits, temperature, top_k, rng).astype(np.int64)
        out[:, t] = token
        logits, state = step(token, state)
    return out


class TextGeneration(Task):
    input_kinds = ("str",)
    name = "text-generation"
    result_type = GenerationResult
    primary_metric = "bpc"
    higher_is_better = False

    def encode_inputs(self, raw: Sequence[str], meta: dict[str, Any]) -> np.ndarray:
        index = {c: i for i, c in enumerate(meta["vocab"])}
        return np.asarray([char_ids(s[:-1], index, "text") for s in raw], np.int64)

    def encode_targets(self, raw: Sequence[str], targets: Any, meta: dict[str, Any]) -> np.ndarray:
        index = {c: i for i, c in enumerate(meta["vocab"])}
        return np.asarray([char_ids(s[1:], index, "text") for s in raw], np.int64)

    def metric(self, outputs: np.ndarray, targets: np.ndarray, meta: dict[str, Any]) -> dict[str, float]:
        """Bits per character (mean negative log2-likelihood of the next character) and the
        accuracy of the likeliest next character."""
        logp = log_softmax(outputs)
        picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
        return {"bpc": float(-picked.mean() / math.log(2)),
                "accuracy": float((outputs.argmax(-1) == targets).mean())}

    def runtime_outputs(self, artifact, raw, targets, meta, batch_size: int = 64) -> np.ndarray:
        """Teacher forcing through the step graph: each chunk read from a zero state, one step
        per character, as training reads it."""
        session = artifact.session("step" if artifact.path.is_dir() else "model")
        _, layers, size = session.get_inputs()[1].shape
        ids = self.encode_inputs(raw, meta)
        out = []
        for start in range(0, len(ids), batch_size):
            x = ids[start: start + batch_size]
            state = np.zeros((len(x), layers, size), np.float32)
            steps = []
            for t in range(x.shape[1]):
                logits, state = session.run(["logits", "state_out"], {"token": x[:, t], "state": state})
                steps.append(logits)
            out.append(np.stack(steps, 1))
        return np.concatenate(out)

    def run(self, artifact, inputs: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
        vocab = artifact.meta["vocab"]
        index = {c: i for i, c in enumerate(vocab)}
        options = self.with_defaults(options)
        texts = gather_inputs(inputs, options)
        if not texts:
            prime = options["prime"]
            if prime is None:
                if "\n" not in index:
                    raise ZooError("this model has no new-line character to start from: give --prime TEXT")
                prime = "\n"
            if not prime:
                raise ZooError("empty --prime: give some text to start from, or leave --prime out")
            texts = [prime]
        length = int(options["length"])
        if not 1 <= length <= MAX_GENERATE:
            raise ZooError(f"--length {length}: give 1 to {MAX_GENERATE:,} characters")
        primes = [char_ids(t, index, f"prime {t[:30]!r}") for t in texts]
        session = artifact.session("step" if artifact.path.is_dir() else "model")
        _, layers, size = session.get_inputs()[1].shape

        def step(token: np.ndarray, state: np.ndarray):
            logits, new = session.run(["logits", "state_out"], {"token": token, "state": state})
            return logits, new

        ids = generate(step, np.zeros((1, layers, size), np.float32), primes, length,
                       float(options["temperature"]), int(options["sample_top_k"]), int(options["seed"]))
        return [{"prime": text, "generated": "".join(vocab[i] for i in row), "text": text + "".join(vocab[i] for i in row)}
                for text, row in zip(texts, ids)]

    def format(self, result: dict[str, Any]) -> str:
        return result["text"]


# -- translation ----------------------------------------------------------------------------------
def target_tokens(text: str, unit: str) -> list[str]:
    return text.split() if unit == "word" else list(text)


def join_tokens(tokens: list[str], unit: str) -> str:
    return (" " if unit == "word" else "").join(tokens)


class Decoder:
    """The encoder and decoder-step graphs behind numpy calls. ``step`` maps (tokens, state,
    annotations, keys, mask) to (log-probabilities, state', attention)."""

    def __init__(self, encoder: Callable[..., Any], step: Callable[..., Any]):
        self.encoder, self._step = encoder, step

    @classmethod
    def from_artifact(cls, artifact) -> "Decoder":
        enc, dec = artifact.session("encoder"), artifact.session("decoder_step")
        return cls(lambda src: enc.run(None, {"source": src}),
                   lambda tok, state, ann, keys, mask: dec.run(None, {"token": tok, "state": state,
                                                                      "annotations": ann, "keys": keys,
                                                                      "mask": mask}))

    def step(self, tokens, state, ann, keys, mask):
        logits, state, alpha = self._step(tokens, state, ann, keys, mask)
        return log_softmax(logits), state, alpha


def greedy(decoder: Decoder, src: np.ndarray, max_len: int) -> list[tuple[list[int], np.ndarray]]:
    """The likeliest token at every step, for a batch; returns ids (without </s>) and the
    attention rows (output steps x source positions) of each input."""
    ann, keys, mask, state = decoder.encoder(src)
    batch = len(src)
    tokens = np.full(batch, SOS, np.int64)
    out = np.zeros((batch, max_len), np.int64)
    alphas = np.zeros((batch, max_len, src.shape[1]), np.float32)
    done = np.zeros(batch, bool)
    for t in range(max_len):
        logp, state, alpha = decoder.step(tokens, state, ann, keys, mask)
        tokens = logp.argmax(-1).astype(np.int64)
        out[:, t], alphas[:, t] = tokens, alpha
        done |= tokens == EOS
        if done.all():
            break
    results = []
    for row, att in zip(out, alphas):
        end = int(np.argmax(row == EOS)) if (row == EOS).any() else max_len
        results.append((row[:end].tolist(), att[: end + 1]))
    return results


def beam_search(decoder: Decoder, src: np.ndarray, max_len: int, beam: int,
                alpha: float) -> list[tuple[list[int], np.ndarray]]:
    """Beam search for a batch of inputs (``src`` of shape (B, T)): each input keeps the ``beam``
    best partial outputs by summed log-probability; a finished hypothesis is scored by
    log P / length**alpha (the seed's length normalisation), and the best finished one wins. An
    input's search stops at ``max_len`` or once ``beam`` hypotheses have ended and the best of
    them scores at least as well as every open one would if it ended now.

    Every open hypothesis of every unfinished input goes through one decoder call per step
    (inputs x beams rows), and each step's choice is made for all inputs at once in numpy:
    an input's 2 x beam best continuations in score order (ties by hypothesis, then token);
    those that end join its finished ones until ``beam`` are open again and ``beam`` have
    ended. Inputs that are done drop out, so each input's result is the one it would get
    searched on its own. Hypotheses are kept as back-pointers into each step's rows."""
    ann, keys, mask, state = decoder.encoder(src)
    n_inputs = len(src)
    owner = np.arange(n_inputs)  # the input of each open hypothesis (row)
    scores = np.zeros(n_inputs)  # summed log-probability of each row
    tokens = np.full(n_inputs, SOS, np.int64)  # the token each row feeds the next call
    parents: list[np.ndarray] = []  # per call: each row's row in the call before (-1 at the first)
    fed: list[np.ndarray] = []  # per call: the token each row fed it
    attention: list[np.ndarray] = []  # per call: each row's attention
    parent = np.full(n_inputs, -1)
    fin_count = np.zeros(n_inputs, np.int64)
    fin_best = np.full(n_inputs, -np.inf)
    fin_at = np.full((n_inputs, 2), -1)  # (call, row) of the best finished hypothesis: it ended there
    lane = np.arange(2 * beam)
    for step in range(max_len):
        if not len(owner):
            break
        logp, state, att = decoder.step(tokens, state, ann[owner], keys[owner], mask[owner])
        parents.append(parent)
        fed.append(tokens)
        attention.append(att)
        vocab = logp.shape[1]
        # each active input's rows side by side, padded to ``beam`` rows: (inputs, beam * vocab)
        inputs, first, counts = np.unique(owner, return_index=True, return_counts=True)
        slot = np.arange(len(owner)) - np.repeat(first, counts)
        totals = np.full((len(inputs), beam, vocab), -np.inf)
        totals[np.repeat(np.arange(len(inputs)), counts), slot] = scores[:, None] + logp
        order = np.argsort(-totals.reshape(len(inputs), -1), axis=1, kind="stable")[:, : 2 * beam]
        source_row = first[:, None] + order // vocab  # (inputs, 2 beam): the row each continues
        token = order % vocab
        total = np.take_along_axis(totals.reshape(len(inputs), -1), order, 1)
        real = np.isfinite(total)  # not a padding row (an input with fewer rows than beam x vocab)
        ends = (token == EOS) & real
        # taken in order until beam are open and beam have ended (those before included)
        open_rank = np.cumsum(~ends & real, 1)
        ended_count = fin_count[inputs][:, None] + np.cumsum(ends, 1)
        full = (open_rank >= beam) & (ended_count >= beam)
        stop = np.where(full.any(1), full.argmax(1), 2 * beam - 1)
        taken = lane[None, :] <= stop[:, None]
        keep = taken & real & ~ends & (open_rank <= beam)
        finish = taken & ends
        # finished: scored with length normalisation (every hypothesis here has step + 1 tokens
        # with </s>); the first best stays best on a tie, as in the order they ended
        normalised = np.where(finish, total / (step + 1) ** alpha, -np.inf)
        best = normalised.argmax(1)
        better = normalised[np.arange(len(inputs)), best] > fin_best[inputs]
        fin_best[inputs[better]] = normalised[better, best[better]]
        fin_at[inputs[better]] = np.stack([np.full(better.sum(), step), source_row[better, best[better]]], 1)
        fin_count[inputs] += finish.sum(1)
        best_open = np.where(keep, total / (step + 2) ** alpha, -np.inf).max(1)
        done = ~keep.any(1) | ((fin_count[inputs] >= beam) & (fin_best[inputs] >= best_open))
        keep &= ~done[:, None]
        pick = np.nonzero(keep)  # row-major: inputs in order, each one's continuations in rank order
        parent, tokens, scores = source_row[pick], token[pick], total[pick]
        owner = inputs[pick[0]]
        state = state[parent]
    # where each input's answer ends: its best finished hypothesis (the call where </s> came),
    # else, nothing having ended within max_len, its best open one (the first of equals)
    last, extra = fin_at[:, 0].copy(), np.full(n_inputs, -1)
    row = fin_at[:, 1].copy()
    for b in np.flatnonzero(last < 0):
        mine = np.flatnonzero(owner == b)
        best_row = mine[int(np.argmax(scores[mine]))]
        last[b], row[b], extra[b] = len(fed) - 1, parent[best_row], tokens[best_row]
    # back along the pointers, every input at once: the tokens fed and the attention of each call
    calls = len(fed)
    seqs = np.zeros((n_inputs, calls), np.int64)
    rows = np.zeros((n_inputs, calls, src.shape[1]), np.float32)
    at = np.full(n_inputs, -1)
    for call in range(calls - 1, -1, -1):
        at = np.where(last == call, row, at)
        on = np.flatnonzero(at >= 0)
        rows[on, call] = attention[call][at[on]]
        seqs[on, call] = fed[call][at[on]]
        at[on] = parents[call][at[on]]
    return [(seqs[b, 1: last[b] + 1].tolist() + ([int(extra[b])] if extra[b] >= 0 else []), rows[b, : last[b] + 1])
            for b in range(n_inputs)]


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


#: apostrophe-like marks: read as the vocabulary's apostrophe, or dropped when it has none
APOSTROPHES = "'\u2019\u2018\u02bc\u02b9\u0060\u00b4\u2032"
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
NOT_A_DATE = "not a date"


def strip_marks(text: str) -> str:
    """Compatibility decomposition (NFKD) without the combining marks: "é" -> "e", "ﬁ" -> "fi"."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def source_case(vocab: Sequence[str], declared: str | None = None) -> str:
    """How a source's letter case is read: what the dataset declared (``source_case`` in its
    info: "lower", "upper" or "keep"), else what the vocabulary holds: "lower" when it has
    lower-case letters only, "upper" for upper-case only, otherwise "fallback" (keep the text's
    case unless it holds a letter the vocabulary has only in the other case; then lower-case
    it all, the way the training data's lower-cased renderings read)."""
    if declared:
        if declared not in ("lower", "upper", "keep"):
            raise ZooError(f"the model declares source_case {declared!r}; this runtime knows lower, upper and keep")
        return declared
    letters = [t for t in vocab if len(t) == 1 and t.isalpha() and t.lower() != t.upper()]
    if letters and all(t.islower() for t in letters):
        return "lower"
    if letters and all(t.isupper() for t in letters):
        return "upper"
    return "fallback"


def normalise_source(text: str, vocab: set[str] | dict[str, int], case: str) -> str:
    """A source text as the model's vocabulary can read it, changing only what it must:
    Unicode NFC, outer white space stripped (runs of white space made one space when the
    vocabulary has a space), letter case as ``source_case`` says, then each character still
    outside the vocabulary replaced by its case-folded form ("ß" -> "ss") or its letters
    without accents ("ü" -> "u") when those are in the vocabulary, and apostrophes read as the
    vocabulary's own or dropped ("don't" -> "dont"). Characters left over stay, for the caller
    to report."""
    text = unicodedata.normalize("NFC", text).strip()
    if " " in vocab:
        text = " ".join(text.split())
    if case == "lower":
        text = text.lower()
    elif case == "upper":
        text = text.upper()
    elif case == "fallback" and any(c not in vocab and c.lower() != c and c.lower() in vocab for c in text):
        text = text.lower()
    out = []
    for c in text:
        if c in vocab:
            out.append(c)
        elif c in APOSTROPHES:
            out.append("'" if "'" in vocab else "")
        else:
            bare = strip_marks(c)
            for alt in (c.casefold(), bare, bare.lower() if case != "upper" else bare.upper()):
                if alt and all(a in vocab for a in alt):
                    out.append(alt)
                    break
            else:
                out.append(c)
    return "".join(out)


def check_iso_date(text: str) -> bool:
    """A real calendar date written YYYY-MM-DD (proleptic Gregorian, years 0001-9999)."""
    if not ISO_DATE.fullmatch(text):
        return False
    try:
        datetime.date(int(text[:4]), int(text[5:7]), int(text[8:]))
    except ValueError:
        return False
    return True


class Translation(Task):
    """Sources are read through ``normalise_source``; an input the model still cannot read is
    reported on its own (``zoo run``: its line says ``error: ...``, JSON has ``"output": null``
    and ``"error"``), and so is an output that is not what the dataset declares its targets
    to be (``target_format`` "iso-date": a real calendar date, else ``not a date``). ``zoo
    run`` fails (one line, non-zero exit) only when no input gave an answer."""
    input_kinds = ("str",)

    name = "translation"
    result_type = TranslationResult
    primary_metric = "token_accuracy"

    @staticmethod
    def _index(meta: dict[str, Any], key: str) -> dict[str, int]:
        return {t: i for i, t in enumerate(meta[key])}

    def normalise(self, texts: Sequence[str], meta: dict[str, Any]) -> list[str]:
        index = self._index(meta, "src_vocab")
        case = source_case(meta["src_vocab"], meta.get("source_case"))
        return [normalise_source(str(t), index, case) for t in texts]

    def source_problem(self, text: str, read: str, meta: dict[str, Any]) -> str | None:
        """Why the model cannot read ``text`` (normalised to ``read``), or None."""
        max_len, index = meta["config"]["max_src_len"], self._index(meta, "src_vocab")
        unknown = sorted({c for c in read if c not in index})
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:10])
            return f"input {text[:30]!r}: character(s) {shown} are not in the model's vocabulary"
        if not read:
            return f"input {text[:30]!r}: nothing left to read once normalised"
        if len(read) > max_len:
            return f"input {text[:30]!r}... has {len(read)} characters; this model reads at most {max_len}"
        return None

    def source_ids(self, texts: Sequence[str], meta: dict[str, Any]) -> np.ndarray:
        index, max_len = self._index(meta, "src_vocab"), meta["config"]["max_src_len"]
        out = np.zeros((len(texts), max_len), np.int64)
        for row, (text, read) in enumerate(zip(texts, self.normalise(texts, meta))):
            problem = self.source_problem(str(text), read, meta)
            if problem:
                raise ZooError(problem)
            ids = [index[c] for c in read]
            out[row, : len(ids)] = ids
        return out

    def encode_inputs(self, raw: Sequence[str], meta: dict[str, Any]) -> np.ndarray:
        return self.source_ids(raw, meta)

    def encode_targets(self, raw: Sequence[str], targets: Any, meta: dict[str, Any]) -> np.ndarray:
        index, max_len, unit = self._index(meta, "tgt_vocab"), meta["config"]["max_tgt_len"], meta["target_unit"]
        out = np.zeros((len(targets), max_len), np.int64)
        for row, text in enumerate(targets):
            ids = [index[t] for t in target_tokens(str(text), unit)][: max_len - 1] + [EOS]
            out[row, : len(ids)] = ids
        return out

    def metric(self, outputs: np.ndarray, targets: np.ndarray, meta: dict[str, Any]) -> dict[str, float]:
        """Teacher-forced accuracy over the non-padding target tokens (</s> included), and the
        share of sequences with every token right."""
        real = targets != PAD
        right = (outputs.argmax(-1) == targets) | ~real
        return {"token_accuracy": float(right[real].mean()) if real.any() else 0.0,
                "sequence_accuracy": float(right.all(-1).mean()) if len(targets) else 0.0}

    def runtime_outputs(self, artifact, raw, targets, meta, batch_size: int = 64) -> np.ndarray:
        """Teacher forcing through the exported graphs, as training scores dev and test: the
        decoder step reads <s>, then the true previous tokens."""
        decoder = Decoder.from_artifact(artifact)
        src = self.source_ids(raw, meta)
        targets = np.asarray(targets, np.int64)
        out = []
        for start in range(0, len(src), batch_size):
            ann, keys, mask, state = decoder.encoder(src[start: start + batch_size])
            y = targets[start: start + batch_size]
            previous = np.concatenate([np.full((len(y), 1), SOS, np.int64), y[:, :-1]], 1)
            steps = []
            for t in range(y.shape[1]):
                logits, state, _ = decoder.step(previous[:, t], state, ann, keys, mask)  # log-probabilities
                steps.append(logits)
            out.append(np.stack(steps, 1))
        return np.concatenate(out)

    def val_report(self, artifact, raw, targets, outputs, encoded, options) -> dict[str, Any]:
        """Decoded the way users get it (``options["beam"]``, by default the run option's:
        greedy): exact match, token error rate and BLEU."""
        options = self.with_defaults(options)
        beam = int(options["beam"])
        return {f"decoded_beam{beam}": self.evaluate(artifact, list(raw), [str(t) for t in targets], beam,
                                                     float(options["length_norm"]))}

    def translate(self, artifact, texts: list[str], beam: int, alpha: float,
                  batch_size: int = 64) -> list[tuple[str, list[str], np.ndarray]]:
        """Each text -> (translation, output tokens, attention matrix)."""
        meta = artifact.meta
        src = self.source_ids(texts, meta)
        vocab, unit, max_len = meta["tgt_vocab"], meta["target_unit"], meta["config"]["max_tgt_len"]
        decoder = Decoder.from_artifact(artifact)
        decoded: list[tuple[list[int], np.ndarray]] = []
        for start in range(0, len(src), batch_size):
            chunk = src[start: start + batch_size]
            decoded += greedy(decoder, chunk, max_len) if beam <= 1 else beam_search(decoder, chunk, max_len, beam,
                                                                                       alpha)
        results = []
        for ids, att in decoded:
            tokens = [vocab[i] for i in ids]
            results.append((join_tokens(tokens, unit), tokens, att))
        return results

    def run(self, artifact, inputs: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
        options = self.with_defaults(options)
        texts = gather_inputs(inputs, options)
        if not texts:
            raise ZooError("nothing to translate: give text, several texts, or --file FILE (one per line)")
        beam = int(options["beam"])
        if beam < 1:
            raise ZooError(f"--beam {beam}: give 1 (greedy) or more")
        meta = artifact.meta
        read = self.normalise(texts, meta)
        problems = [self.source_problem(t, r, meta) for t, r in zip(texts, read)]
        good = [i for i, p in enumerate(problems) if p is None]
        translated = dict(zip(good, self.translate(artifact, [texts[i] for i in good], beam,
                                                   float(options["length_norm"]),
                                                   int(options["batch_size"])) if good else []))
        dates = meta.get("target_format") == "iso-date" and not options["unchecked"]
        results = []
        for i, text in enumerate(texts):
            if i not in translated:
                results.append({"input": text, "output": None, "tokens": [], "error": problems[i]})
                continue
            out, tokens, att = translated[i]
            result: dict[str, Any] = {"input": text, "output": out, "tokens": tokens}
            if read[i] != text:
                result["read_as"] = read[i]
            if dates and not check_iso_date(out):
                result.update(output=None, error=NOT_A_DATE, decoded=out)
            if options["attention"]:
                path = Path(options["attention"])
                if len(texts) > 1:
                    path = path.with_name(f"{path.stem}-{i + 1}{path.suffix or '.png'}")
                draw_attention(att[:, : len(read[i])], list(read[i]), tokens + ["</s>"], path)
                result["attention"] = str(path)
            results.append(result)
        failed = [r for r in results if r["output"] is None]
        if failed and len(failed) == len(results):
            first = failed[0]["error"]
            if first == NOT_A_DATE:
                first = f"{failed[0]['input'][:30]!r}: {NOT_A_DATE}"
            more = f" (and {len(failed) - 1} more input(s): no input gave an answer)" if len(failed) > 1 else ""
            raise ZooError(first + more)
        return results

    def format(self, result: dict[str, Any]) -> str:
        if result.get("output") is None:
            error = result.get("error") or "no answer"
            return error if error == NOT_A_DATE else f"error: {error}"
        return result["output"]

    def evaluate(self, artifact, sources: Sequence[str], references: Sequence[str], beam: int,
                 alpha: float) -> dict[str, float]:
        """Exact match, token error rate (word or phoneme error rate: edit distance over reference
        length) and, when sacrebleu is installed, corpus BLEU on a held-out split."""
        hyps = [out for out, _, _ in self.translate(artifact, list(sources), beam, alpha)]
        return score_translations(hyps, references, artifact.meta["target_unit"])


def score_translations(hyps: Sequence[str], references: Sequence[str], unit: str) -> dict[str, float]:
    """Exact match, token error rate and (with sacrebleu installed) corpus BLEU of ``hyps``."""
    errors = sum(edit_distance(target_tokens(h, unit), target_tokens(r, unit)) for h, r in zip(hyps, references))
    length = sum(len(target_tokens(r, unit)) for r in references)
    metrics = {"exact_match": float(np.mean([h == r for h, r in zip(hyps, references)])),
               "token_error_rate": errors / max(length, 1)}
    try:
        import sacrebleu
    except ImportError:
        return metrics
    tokenize = "char" if unit == "char" else "none"
    metrics["bleu"] = float(sacrebleu.corpus_bleu(list(hyps), [list(references)], tokenize=tokenize).score)
    return metrics


def draw_attention(matrix: np.ndarray, source: list[str], output: list[str], path: Path, cell: int = 18) -> None:
    """The attention weights as a grey heatmap (dark = high), output tokens down the left and
    source characters along the top, written with Pillow."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    left = 8 + max((int(font.getlength(t)) for t in output), default=0)
    top = 8 + max((int(font.getlength(t)) for t in source), default=0)
    rows, cols = matrix.shape[0], len(source)
    image = Image.new("RGB", (left + cols * cell + 8, top + rows * cell + 8), "white")
    draw = ImageDraw.Draw(image)
    peak = float(matrix.max()) or 1.0
    for r in range(rows):
        draw.text((4, top + r * cell + 3), output[r] if r < len(output) else "", fill="black", font=font)
        for c in range(cols):
            shade = int(255 * (1 - float(matrix[r, c]) / peak))
            x, y = left + c * cell, top + r * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(shade, shade, 255 if shade > 0 else 128))
    for c, token in enumerate(source):
        label = Image.new("RGB", (max(1, int(font.getlength(token))) + 2, cell), "white")
        ImageDraw.Draw(label).text((1, 3), token, fill="black", font=font)
        rotated = label.rotate(90, expand=True)
        image.paste(rotated, (left + c * cell, top - rotated.height - 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
