"""Word embeddings in PyTorch: the embedding matrix, word2vec and GloVe training, and readers for
the published vector formats.

The embedding matrix E (vocab x d) maps a one-hot o_w to e_w = E o_w; it is never a matmul here,
always a gather (``F.embedding``). The exported ``lookup`` graph is that gather followed by L2
normalisation, e_w / |e_w|, so that cosine similarity is a dot product; nearest neighbours,
analogies and debiasing then run in numpy (``zoo.runtime.wordvec``). The vocabulary travels
inside the weights file (``vocab_utf8``: the words, UTF-8, one per line, in row order) and in
the artifact's second graph ``vocab``, so an imported file and a trained one describe
themselves the same way.

word2vec (Mikolov et al. 2013), skip-gram with negative sampling: for a context word c and a
target t within a window,

    P(y = 1 | c, t) = sigma(theta_t . e_c)
    loss = -log sigma(theta_t . e_c) - sum_{i=1..k} log sigma(-theta_{n_i} . e_c),
    n_i ~ P(w) = count(w)^0.75 / sum_v count(v)^0.75

instead of the softmax p(t | c) = exp(theta_t . e_c) / sum_j exp(theta_j . e_c) over the whole
vocabulary. Frequent words are sub-sampled (kept with probability (sqrt(f / (s T)) + 1) s T / f,
word2vec.c's formula, s = ``sample``), each centre word draws its window size uniformly from
1..window, and plain SGD runs with a learning rate falling linearly from ``lr`` to ``lr`` / 250
over all epochs. CBOW (``--config architecture=cbow``) predicts the centre word from the mean of
its context vectors. Gradients are written out by hand and applied with ``index_add_`` to the
rows a mini-batch of consecutive centre words touches, which is what makes it fast on a CPU.

GloVe (Pennington et al. 2014): co-occurrence counts X_ij over a symmetric window, each pair at
distance d adding 1/d, then

    J = sum_{ij, X_ij > 0} f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2,
    f(x) = (x / x_max)^alpha if x < x_max else 1   (x_max = 100, alpha = 3/4)

minimised with AdaGrad (learning rate 0.05, as in the paper's code) over shuffled non-zero
entries; the final vectors are W + W~.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.runtime.wordvec import evaluate_vectors

MAX_WORDS = 4_000_000  # largest vocabulary a vectors file may declare
MAX_DIM = 4096
NOISE_TABLE = 10_000_000  # slots of the negative-sampling table
MAX_REPEATS = 16  # updates of one row per mini-batch before they are scaled down (see SGNS._damping)


# -- the vocabulary inside the weights ------------------------------------------------------------------
def encode_vocab(words: list[str]) -> torch.Tensor:
    return torch.frombuffer(bytearray("\n".join(words).encode("utf-8")), dtype=torch.uint8).clone() \
        if words else torch.zeros(0, dtype=torch.uint8)


def decode_vocab(data: np.ndarray | torch.Tensor) -> list[str]:
    raw = bytes(np.asarray(data, np.uint8).tobytes())
    return raw.decode("utf-8").split("\n") if raw else []


class WordEmbedding(nn.Module):
    """E (vocab x dim) and its vocabulary; ``forward(ids)`` = E[ids] / |E[ids]|.

    The vocabulary size follows the weights it loads (``load_state_dict`` resizes E), because a
    corpus or a published file decides it, not the config."""

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        vocab, dim = int(config["vocab_size"]), int(config["dim"])
        self.embedding = nn.Embedding(vocab, dim)
        nn.init.uniform_(self.embedding.weight, -0.5 / dim, 0.5 / dim)
        self.register_buffer("vocab_utf8", encode_vocab([f"<w{i}>" for i in range(vocab)]))

    @property
    def words(self) -> list[str]:
        return decode_vocab(self.vocab_utf8.numpy())

    def set_vectors(self, words: list[str], vectors: torch.Tensor | np.ndarray) -> None:
        vectors = torch.as_tensor(np.asarray(vectors, np.float32))
        if len(words) != len(vectors):
            raise ZooError(f"{len(words)} words for {len(vectors)} vectors")
        self.embedding = nn.Embedding(len(words), vectors.shape[1], _weight=vectors.clone())
        self.vocab_utf8 = encode_vocab(words)

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        weight = state.get("embedding.weight")
        if weight is not None and tuple(weight.shape) != tuple(self.embedding.weight.shape):
            self.embedding = nn.Embedding(*weight.shape)
        if "vocab_utf8" in state:
            self.vocab_utf8 = torch.zeros_like(state["vocab_utf8"])
        return super().load_state_dict(state, strict=strict, assign=assign)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(F.embedding(ids, self.embedding.weight), dim=-1, eps=1e-12)

    def export_graphs(self, samples=None):
        from zoo.contracts import Graph

        n = self.embedding.num_embeddings

        def ids(batch: int, seed: int) -> tuple:
            return (torch.randint(0, n, (batch,), generator=torch.Generator().manual_seed(seed)),)

        return [
            Graph("lookup", self, ids, ["ids"], ["vectors"], {"ids": {0: "batch"}, "vectors": {0: "batch"}}),
            Graph("vocab", VocabGraph(self.vocab_utf8), lambda batch, seed: (torch.zeros(1, dtype=torch.int64),),
                  ["start"], ["utf8"]),
        ]


class VocabGraph(nn.Module):
    """A constant graph: the vocabulary's UTF-8 bytes (words joined by new lines), so that the
    artifact carries its vocabulary for any onnxruntime user."""

    def __init__(self, utf8: torch.Tensor):
        super().__init__()
        self.register_buffer("vocabulary", utf8.clone())

    def forward(self, start: torch.Tensor) -> torch.Tensor:
        return self.vocabulary + (start * 0).to(torch.uint8)


# -- corpus -> ids ----------------------------------------------------------------------------------------
def build_vocab(sentences: list[list[str]], min_count: int, max_words: int) -> tuple[list[str], np.ndarray]:
    """Words seen at least ``min_count`` times, most frequent first (ties by first appearance),
    at most ``max_words``."""
    counts: dict[str, int] = {}
    for sentence in sentences:
        for w in sentence:
            counts[w] = counts.get(w, 0) + 1
    kept = [(w, c) for w, c in counts.items() if c >= min_count]
    kept.sort(key=lambda wc: -wc[1])  # stable: ties keep first-appearance order
    kept = kept[:max_words]
    if len(kept) < 10:
        raise ZooError(f"only {len(kept)} words occur {min_count}+ times; give more text or --config min_count=1")
    return [w for w, _ in kept], np.asarray([c for _, c in kept], np.int64)


def encode_corpus(sentences: list[list[str]], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flat word ids (out-of-vocabulary words dropped, as word2vec does) and each one's sentence."""
    ids, sid = [], []
    for n, sentence in enumerate(sentences):
        row = [index[w] for w in sentence if w in index]
        ids.extend(row)
        sid.extend([n] * len(row))
    return np.asarray(ids, np.int64), np.asarray(sid, np.int64)


def keep_probability(counts: np.ndarray, sample: float) -> np.ndarray:
    """word2vec.c's sub-sampling: P(keep w) = (sqrt(f / (s T)) + 1) s T / f."""
    if sample <= 0:
        return np.ones(len(counts))
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1) * threshold / counts)


# -- word2vec ---------------------------------------------------------------------------------------------
class SGNS:
    """Skip-gram (or CBOW) with negative sampling; E = ``self.input``, theta = ``self.output``."""

    def __init__(self, counts: np.ndarray, dim: int, window: int, negative: int, sample: float,
                 architecture: str, seed: int):
        if architecture not in ("skipgram", "cbow"):
            raise ZooError(f"architecture {architecture!r}: choose skipgram or cbow")
        self.counts, self.window, self.negative, self.sample = counts, window, negative, sample
        self.cbow = architecture == "cbow"
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)
        vocab = len(counts)
        self.input = (torch.rand(vocab, dim, generator=self.gen) - 0.5) / dim
        self.output = torch.zeros(vocab, dim)
        # word2vec.c's unigram table: word w fills a share count(w)^0.75 / Z of its slots, so a
        # uniform slot is a draw from the noise distribution
        noise = counts.astype(np.float64) ** 0.75
        slots = np.maximum(1, np.round(noise / noise.sum() * NOISE_TABLE)).astype(np.int64)
        self.noise_table = torch.from_numpy(np.repeat(np.arange(vocab, dtype=np.int64), slots))
        self.keep = keep_probability(counts.astype(np.float64), sample)

    def draw_negatives(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return self.noise_table[torch.randint(0, len(self.noise_table), (n,), generator=gen)]

    def _contexts(self, sid: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """(centres, 2 * window) positions of each centre's context words inside its reduced
        window and its sentence; -1 where there is none."""
        ctx = np.full((len(pos), 2 * self.window), -1, np.int64)
        col = 0
        for offset in range(1, self.window + 1):
            for other in (pos - offset, pos + offset):
                valid = (self._reduced[pos] >= offset) & (other >= 0) & (other < len(sid))
                valid[valid] &= sid[other[valid]] == sid[pos[valid]]
                ctx[valid, col] = other[valid]
                col += 1
        return ctx

    def _damping(self, rows: torch.Tensor) -> torch.Tensor:
        """1 for a row a mini-batch updates at most ``MAX_REPEATS`` times, else MAX_REPEATS /
        repeats. Sequential SGD sees each update of a frequent word before the next; a batch
        sums them all from the same stale vector, which diverges for the few words (negatives
        like "the") drawn hundreds of times per batch. Rare words are untouched."""
        repeats = torch.bincount(rows, minlength=len(self.counts)).float()[rows]
        return torch.clamp(MAX_REPEATS / repeats, max=1.0)

    def train_chunk(self, ids: torch.Tensor, sid: np.ndarray, start: int, stop: int, lr: float,
                    gen: torch.Generator) -> tuple[float, int]:
        """One SGD step for the centre words at positions start..stop.

        Each centre word t (its theta_t and k negatives theta_n, drawn once per centre) is the
        target of every context word c in its window: skip-gram scores each (c, t) pair,
        sigma(theta_t . e_c) against sigma(-theta_n . e_c); CBOW scores the mean of the context
        vectors once (word2vec's cbow_mean, the full error going back to every context word).
        Returns the summed loss and the number of (input, target) examples."""
        pos = np.arange(start, stop)
        ctx = self._contexts(sid, pos)
        has = (ctx >= 0).any(1)
        ctx, pos = ctx[has], pos[has]
        if len(pos) == 0:
            return 0.0, 0
        ctx_mask = torch.from_numpy(ctx >= 0).float()  # (b, w)
        ctx_words = ids[torch.from_numpy(np.maximum(ctx, 0))]  # (b, w)
        targets = ids[torch.from_numpy(pos)]
        b, k = len(pos), self.negative
        negs = self.draw_negatives(b * k, gen).view(b, k)
        out_words = torch.cat([targets[:, None], negs], 1)  # (b, 1 + k)
        out_mask = torch.ones(b, 1 + k)
        out_mask[:, 1:] = (negs != targets[:, None]).float()  # a negative equal to the target is skipped
        theta = self.output[out_words]  # (b, 1 + k, d)
        e = self.input[ctx_words]  # (b, w, d)
        if self.cbow:
            count = ctx_mask.sum(1, keepdim=True)
            h = torch.bmm(ctx_mask[:, None, :], e) / count[:, :, None]  # (b, 1, d)
            pair_mask = out_mask[:, None, :]
        else:
            h = e
            pair_mask = ctx_mask[:, :, None] * out_mask[:, None, :]  # (b, w, 1 + k)
        scores = torch.bmm(h, theta.transpose(1, 2))  # (b, rows, 1 + k)
        signed = scores.clone()
        signed[:, :, 1:] = -signed[:, :, 1:]
        loss = -(F.logsigmoid(signed) * pair_mask).sum().item()
        label = torch.zeros(1, 1, 1 + k)
        label[..., 0] = 1
        g = (label - torch.sigmoid(scores)) * pair_mask * lr  # ascent on the log-likelihood
        grad_h = torch.bmm(g, theta)  # (b, rows, d)
        flat_out = out_words.reshape(-1)
        grad_theta = torch.bmm(g.transpose(1, 2), h).reshape(-1, h.shape[2])
        self.output.index_add_(0, flat_out, grad_theta * self._damping(flat_out)[:, None])
        if self.cbow:
            grad_h = grad_h.expand(-1, ctx.shape[1], -1) * ctx_mask[:, :, None]
        flat_in = ctx_words.reshape(-1)
        self.input.index_add_(0, flat_in, grad_h.reshape(-1, h.shape[2]) * self._damping(flat_in)[:, None])
        return loss, int(pair_mask[..., 0].sum().item() if self.cbow else ctx_mask.sum().item())

    def epoch(self, ids_np: np.ndarray, sid_np: np.ndarray, lr_at: Callable[[int], float], batch_words: int,
              done_before: int, threads: int = 1) -> dict[str, float]:
        """One pass: sub-sample, then mini-batches of ``batch_words`` consecutive centre words.

        With ``threads`` > 1 the batches are shared among that many Python threads that update
        E and theta without locks (Hogwild, as word2vec's and gensim's worker threads do); each
        torch call runs single-threaded and releases the GIL, which on a busy machine is far
        faster than torch's own intra-op threads."""
        import threading

        keep = self.rng.random(len(ids_np)) < self.keep[ids_np]
        ids_e, sid_e = ids_np[keep], sid_np[keep]
        self._reduced = self.rng.integers(1, self.window + 1, size=len(ids_e))
        ids = torch.from_numpy(ids_e)
        starts = list(range(0, len(ids_e), batch_words))
        totals = [[0.0, 0] for _ in range(threads)]
        seeds = self.rng.integers(0, 2**31, size=threads)
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            gen = torch.Generator().manual_seed(int(seeds[worker]))
            try:
                for start in starts[worker::threads]:
                    stop = min(len(ids_e), start + batch_words)
                    # the learning rate follows the raw words processed, as word2vec's does
                    progress = done_before + int(len(ids_np) * stop / max(len(ids_e), 1))
                    loss, n = self.train_chunk(ids, sid_e, start, stop, lr_at(progress), gen)
                    totals[worker][0] += loss
                    totals[worker][1] += n
            except BaseException as exc:  # re-raised in the calling thread
                errors.append(exc)

        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        started = time.perf_counter()
        try:
            if threads == 1:
                work(0)
            else:
                pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
                for t in pool:
                    t.start()
                for t in pool:
                    t.join()
        finally:
            torch.set_num_threads(previous)
        if errors:
            raise errors[0]
        seconds = time.perf_counter() - started
        total_loss, examples = sum(t[0] for t in totals), sum(t[1] for t in totals)
        return {"loss": total_loss / max(examples, 1) / (1 + self.negative), "examples": examples,
                "words_kept": int(len(ids_e)), "seconds": seconds, "words_per_second": len(ids_np) / seconds}


# -- GloVe ------------------------------------------------------------------------------------------------
def cooccurrence(ids: np.ndarray, sid: np.ndarray, vocab: int, window: int):
    """Symmetric X (scipy CSR, float64): a pair at distance d in the same sentence adds 1/d to
    X_ij and to X_ji."""
    from scipy import sparse

    rows, cols, vals = [], [], []
    for d in range(1, window + 1):
        same = sid[d:] == sid[:-d]
        rows.append(ids[:-d][same])
        cols.append(ids[d:][same])
        vals.append(np.full(int(same.sum()), 1.0 / d))
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    x = sparse.coo_matrix((v, (r, c)), shape=(vocab, vocab)).tocsr()
    return (x + x.T).tocoo()


class GloVe:
    """W, W~ and the biases b, b~ with AdaGrad written out as in the paper's code: per entry
    (i, j), with d = w_i . w~_j + b_i + b~_j - log X_ij, the gradients are f(X_ij) d w~_j,
    f(X_ij) d w_i and f(X_ij) d, and each parameter moves by -lr g / sqrt(G) where G (from 1)
    accumulates the squared steps (lr g)^2, as glove.c accumulates them (the learning rate inside
    the square: accumulating g^2 alone shrinks the steps 1/lr^2 times faster and leaves the
    vectors near their random start while the biases fit log X). A mini-batch of shuffled entries is applied at once with
    ``index_add_``; rows it updates more than MAX_REPEATS times are damped as in word2vec."""

    def __init__(self, vocab: int, dim: int, seed: int):
        gen = torch.Generator().manual_seed(seed)
        self.vocab = vocab
        self.w, self.w_tilde = ((torch.rand(vocab, dim, generator=gen) - 0.5) / dim for _ in range(2))
        self.b, self.b_tilde = ((torch.rand(vocab, generator=gen) - 0.5) / dim for _ in range(2))
        self.g_w, self.g_w_tilde = torch.ones(vocab, dim), torch.ones(vocab, dim)
        self.g_b, self.g_b_tilde = torch.ones(vocab), torch.ones(vocab)

    def step(self, i: torch.Tensor, j: torch.Tensor, log_x: torch.Tensor, weight: torch.Tensor, lr: float) -> float:
        wi, wj = self.w[i], self.w_tilde[j]
        diff = (wi * wj).sum(1) + self.b[i] + self.b_tilde[j] - log_x
        fdiff = weight * diff
        loss = 0.5 * float((fdiff * diff).sum())
        damp_i = torch.clamp(MAX_REPEATS / torch.bincount(i, minlength=self.vocab).float()[i], max=1.0)
        damp_j = torch.clamp(MAX_REPEATS / torch.bincount(j, minlength=self.vocab).float()[j], max=1.0)
        for rows, damp, grad, param, acc in (
                (i, damp_i, fdiff[:, None] * wj, self.w, self.g_w),
                (j, damp_j, fdiff[:, None] * wi, self.w_tilde, self.g_w_tilde),
                (i, damp_i, fdiff, self.b, self.g_b),
                (j, damp_j, fdiff, self.b_tilde, self.g_b_tilde)):
            scale = damp if grad.dim() == 1 else damp[:, None]
            step = lr * grad
            param.index_add_(0, rows, -scale * step / torch.sqrt(acc[rows]))
            acc.index_add_(0, rows, scale * step * step)
        return loss

    def vectors(self) -> torch.Tensor:
        return self.w + self.w_tilde


def glove_weight(x: np.ndarray, x_max: float, alpha: float) -> np.ndarray:
    return np.where(x < x_max, (x / x_max) ** alpha, 1.0)


# -- the trainer (ModelSpec.trainer) ------------------------------------------------------------------------
def _log(message: str) -> None:
    print(message, file=sys.stderr)


def train_word_vectors(spec, opts):
    """``zoo train word2vec|glove``: corpus -> vocabulary -> vectors -> evaluation -> store."""
    import zoo
    from zoo import store
    from zoo.engine import TrainResult, save_weights
    from zoo.registry import registry
    from zoo.specs import load_object

    opts = opts.resolved(spec)
    if opts.resume or opts.freeze:
        raise ZooError(f"{spec.name} trains from scratch in one go: --resume and --freeze do not apply")
    config = spec.config(opts.config)
    dataset_name = opts.dataset or spec.dataset
    dataset = registry().dataset(dataset_name)
    splits = load_object(dataset.loader)(opts.data, seed=opts.seed)
    threads = int(config.get("threads") or torch.get_num_threads())
    config["threads"] = threads
    torch.set_num_threads(threads)
    torch.manual_seed(opts.seed)
    started = time.perf_counter()
    words, counts = build_vocab(list(splits.train.inputs), int(config["min_count"]), int(config["vocab_size"]))
    index = {w: i for i, w in enumerate(words)}
    ids, sid = encode_corpus(list(splits.train.inputs), index)
    dev_ids, dev_sid = encode_corpus(list(splits.dev.inputs), index)
    config.update(vocab_size=len(words))
    run_dir = Path(opts.run_dir) if opts.run_dir else store.runs_dir() / spec.name
    run_dir.mkdir(parents=True, exist_ok=True)
    _log(f"training {spec.name} on {dataset.name}: {splits.source}; {len(ids):,} training tokens, "
         f"vocabulary {len(words):,}, {threads} thread(s)")
    history: list[dict[str, Any]] = []
    algorithm = config.get("algorithm", "word2vec")
    trainer = _train_glove if algorithm == "glove" else _train_sgns
    vectors, summary = trainer(ids, sid, dev_ids, dev_sid, counts, config, opts, history, run_dir, words)
    module = spec.build(config)
    module.set_vectors(words, vectors)
    quality = evaluate_vectors(words, vectors.numpy(), more=True)
    last = history[-1] if history else {}
    metrics = {**{f"test_{k}": v for k, v in quality.items()}, **{k: v for k, v in last.items() if k.startswith("dev_")},
               **summary,
               "train_seconds": round(time.perf_counter() - started, 2), "epochs_run": len(history)}
    store.atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    save_weights(module, run_dir / "best.safetensors")
    manifest = {
        "model": spec.name, "family": spec.family, "task": spec.task, "config": config,
        "dataset": dataset.name, "data_source": splits.source, "splits": splits.sizes(), "split_seed": opts.seed,
        "labels": [], "preprocessing": {}, "task_meta": {"tokens": int(len(ids))},
        "metrics": metrics,
        "training": {k: v for k, v in asdict(opts).items() if k not in ("install", "progress", "run_dir")},
        "device": "cpu", "processes": 1, "threads": threads, "torch_version": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "zoo_version": zoo.__version__,
        "command": shlex.join(["zoo", *sys.argv[1:]]),
    }
    store.write_json(run_dir / "manifest.json", manifest)
    if not opts.install:
        return TrainResult(run_dir, metrics, None)
    # as the shared engine does: a run becomes active only if it beats the active entry on the dev
    # metric (WS353 Spearman), or with --activate; it is installed under its own tag either way
    if opts.activate:
        decision = store.Decision(True, "--activate was given", store.find(spec.name))
    else:
        decision = store.should_activate(spec.name, metrics, "ws353_spearman", True, dataset.name)
    entry = store.install(spec.name, run_dir / "best.safetensors", manifest, tag=opts.tag or store.new_run_id(),
                          activate=decision.activated)
    return TrainResult(run_dir, metrics, entry, decision)


def _train_sgns(ids, sid, dev_ids, dev_sid, counts, config, opts, history, run_dir, words):
    model = SGNS(counts, int(config["dim"]), int(config["window"]), int(config["negative"]),
                 float(config["sample"]), str(config["architecture"]), opts.seed)
    total = opts.epochs * len(ids)
    lr0, lr_min = float(opts.lr), float(opts.lr) / 250

    def lr_at(done: int) -> float:
        return max(lr_min, lr0 - (lr0 - lr_min) * done / total)

    seconds = 0.0
    for epoch in range(1, opts.epochs + 1):
        stats = model.epoch(ids, sid, lr_at, int(opts.batch_size), (epoch - 1) * len(ids), int(config["threads"]))
        seconds += stats["seconds"]
        quality = evaluate_vectors(words, model.input.numpy(), analogies=False)
        record = {"epoch": epoch, "train_loss": stats["loss"], "words_per_second": round(stats["words_per_second"]),
                  **{f"dev_{k}": v for k, v in quality.items()}, "lr": lr_at(epoch * len(ids)),
                  "seconds": round(seconds, 2)}
        history.append(record)
        store_progress(history, run_dir)
        _log(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
    return model.input.clone(), {"words_per_second": round(opts.epochs * len(ids) / seconds), "train_tokens": len(ids)}


def _train_glove(ids, sid, dev_ids, dev_sid, counts, config, opts, history, run_dir, words):
    started = time.perf_counter()
    x = cooccurrence(ids, sid, len(counts), int(config["window"]))
    _log(f"co-occurrence matrix: {x.nnz:,} non-zero entries in {time.perf_counter() - started:.1f} s")
    i_all = torch.from_numpy(x.row.astype(np.int64))
    j_all = torch.from_numpy(x.col.astype(np.int64))
    log_x = torch.from_numpy(np.log(x.data).astype(np.float32))
    weight = torch.from_numpy(glove_weight(x.data, float(config["x_max"]), float(config["alpha"])).astype(np.float32))
    model = GloVe(len(counts), int(config["dim"]), opts.seed)
    gen = torch.Generator().manual_seed(opts.seed)
    seconds = 0.0
    for epoch in range(1, opts.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(len(i_all), generator=gen)
        total = 0.0
        for start in range(0, len(order), int(opts.batch_size)):
            b = order[start: start + int(opts.batch_size)]
            total += model.step(i_all[b], j_all[b], log_x[b], weight[b], float(opts.lr))
        seconds += time.perf_counter() - t0
        quality = evaluate_vectors(words, model.vectors().numpy(), analogies=False)
        record = {"epoch": epoch, "train_loss": total / len(order), **{f"dev_{k}": v for k, v in quality.items()},
                  "seconds": round(seconds, 2)}
        history.append(record)
        store_progress(history, run_dir)
        _log(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
    return model.vectors(), {"nonzero_cooccurrences": int(x.nnz), "train_tokens": len(ids),
                             "words_per_second": round(opts.epochs * len(ids) / seconds)}


def store_progress(history: list[dict[str, Any]], run_dir: Path) -> None:
    from zoo import store

    store.atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))


# -- published vector files ---------------------------------------------------------------------------------
def _finish(path: Path, words: list[str], vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
    seen: dict[str, int] = {}
    for n, w in enumerate(words):
        if w in seen:
            raise ZooError(f"{path}: word {w!r} appears twice (entries {seen[w] + 1} and {n + 1}); nothing installed")
        seen[w] = n
    if not words:
        raise ZooError(f"{path}: holds no vectors")
    if not np.isfinite(vectors).all():
        raise ZooError(f"{path}: holds non-finite values (nan or inf); nothing installed")
    return words, vectors


def read_text_vectors(path: str | Path) -> tuple[list[str], np.ndarray]:
    """GloVe's text format (``word v1 ... vd`` per line) or word2vec's text format (the same with
    a first line ``count dim``). Wrong column counts, non-numeric values and duplicate words are
    refused, naming the line."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ZooError(f"{path}: not UTF-8 text (byte {exc.start}); for word2vec's binary format use a .w2v file") from exc
    lines = text.splitlines()
    first = 0
    declared = None
    head = lines[0].split() if lines else []
    if len(head) == 2 and all(p.isdigit() for p in head):
        declared = (int(head[0]), int(head[1]))
        if not (0 < declared[0] <= MAX_WORDS and 0 < declared[1] <= MAX_DIM):
            raise ZooError(f"{path}: header declares {declared[0]} x {declared[1]}, outside 1..{MAX_WORDS} x 1..{MAX_DIM}")
        first = 1
    words: list[str] = []
    flat: list[str] = []
    dim = declared[1] if declared else None
    for number, line in enumerate(lines[first:], start=first + 1):
        parts = line.rstrip().split(" ")
        if not line.strip():
            continue
        if dim is None:
            dim = len(parts) - 1
            if not 0 < dim <= MAX_DIM:
                raise ZooError(f"{path}:{number}: expected 'word v1 ... vd', got {len(parts)} column(s)")
        if len(parts) != dim + 1:
            raise ZooError(f"{path}:{number}: {len(parts)} columns, expected {dim + 1} (a word and {dim} numbers); "
                           "nothing installed")
        words.append(parts[0])
        flat.extend(parts[1:])
    if declared and len(words) != declared[0]:
        raise ZooError(f"{path}: header declares {declared[0]} words, the file holds {len(words)}; nothing installed")
    try:
        vectors = np.asarray(flat, dtype=np.float32).reshape(len(words), dim or 0)
    except ValueError:
        for n in range(len(words)):
            for value in flat[n * dim:(n + 1) * dim]:
                try:
                    float(value)
                except ValueError:
                    raise ZooError(f"{path}: word {words[n]!r} (entry {n + 1}) has a non-numeric value "
                                   f"{value[:20]!r}; nothing installed") from None
        raise
    return _finish(path, words, vectors)


def read_word2vec_binary(path: str | Path) -> tuple[list[str], np.ndarray]:
    """word2vec's binary format: ``count dim\\n`` then per word ``word<space>`` and dim
    little-endian float32 values (an optional new line after each vector)."""
    path = Path(path)
    data = path.read_bytes()
    end = data.find(b"\n")
    try:
        count, dim = (int(v) for v in data[:end].split())
    except ValueError:
        raise ZooError(f"{path}: no 'count dim' header line; not a word2vec binary file") from None
    if not (0 < count <= MAX_WORDS and 0 < dim <= MAX_DIM):
        raise ZooError(f"{path}: header declares {count} x {dim}, outside 1..{MAX_WORDS} x 1..{MAX_DIM}")
    pos = end + 1
    words, vectors = [], np.empty((count, dim), np.float32)
    width = 4 * dim
    for n in range(count):
        while pos < len(data) and data[pos:pos + 1] in (b"\n", b" "):
            pos += 1
        space = data.find(b" ", pos)
        if space < 0 or space + 1 + width > len(data):
            raise ZooError(f"{path}: truncated at entry {n + 1} of {count}; nothing installed")
        try:
            words.append(data[pos:space].decode("utf-8"))
        except UnicodeDecodeError:
            raise ZooError(f"{path}: entry {n + 1}: the word is not UTF-8; nothing installed") from None
        vectors[n] = np.frombuffer(data, "<f4", dim, space + 1)
        pos = space + 1 + width
    return _finish(path, words, vectors)


def _as_state(module: WordEmbedding, path: Path, words: list[str], vectors: np.ndarray) -> dict[str, torch.Tensor]:
    module.set_vectors(words, vectors)
    return {"embedding.weight": module.embedding.weight.detach().clone(), "vocab_utf8": module.vocab_utf8.clone()}


def import_text(spec, module: WordEmbedding, path: Path) -> dict[str, torch.Tensor]:
    """``zoo weights import glove vectors.txt`` (GloVe or word2vec text format)."""
    return _as_state(module, path, *read_text_vectors(path))


def import_binary(spec, module: WordEmbedding, path: Path) -> dict[str, torch.Tensor]:
    """``zoo weights import word2vec vectors.w2v`` (word2vec's binary format)."""
    return _as_state(module, path, *read_word2vec_binary(path))


def write_text_vectors(path: str | Path, words: list[str], vectors: np.ndarray, header: bool = False) -> None:
    from zoo.store import atomic_write_text

    rows = (f"{w} " + " ".join(f"{v:.6g}" for v in row) for w, row in zip(words, vectors))
    head = [f"{len(words)} {vectors.shape[1]}"] if header else []
    atomic_write_text(Path(path), "\n".join([*head, *rows]) + "\n")


def write_word2vec_binary(path: str | Path, words: list[str], vectors: np.ndarray) -> None:
    from zoo.store import atomic_path

    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
        fh.write(f"{len(words)} {vectors.shape[1]}\n".encode())
        for w, row in zip(words, np.asarray(vectors, "<f4")):
            fh.write(w.encode("utf-8") + b" " + row.tobytes() + b"\n")



# -- sentiment on top of word vectors ------------------------------------------------------------------------
def pretrained_rows(name: str, vocab: list[str], dim: int, seed: int) -> tuple[torch.Tensor, int]:
    """An embedding table for ``vocab`` (row 0: padding) from the installed vectors of model
    ``name`` (rows of words it lacks stay random), and how many words it covered."""
    from safetensors.torch import load_file

    from zoo import store

    entry = store.require(name)
    entry.verify()
    state = load_file(str(entry.file))
    words = decode_vocab(state["vocab_utf8"].numpy())
    vectors = state["embedding.weight"].float()
    index = {w: i for i, w in enumerate(words)}
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(len(vocab) + 1, vectors.shape[1], generator=gen) * float(vectors.std())
    table[0] = 0
    found = 0
    for row, word in enumerate(vocab, start=1):
        if word in index:
            table[row] = vectors[index[word]]
            found += 1
    return table, found


class SentimentClassifier(nn.Module):
    """The course notes' two sentiment models over word ids (0 = padding):

    - ``average``: the mean of the sentence's word vectors -> linear -> softmax;
    - ``lstm``: the word vectors through an LSTM; its state at the last word -> linear -> softmax.

    With ``embeddings`` naming installed word vectors (``word2vec``, ``glove-6b-50d``, ...) the
    table starts from them and stays frozen, so a word never seen in the small labelled set still
    carries what the corpus taught; ``none`` learns the table from the labelled set alone."""

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        vocab = list(config["vocab"]) or [f"<w{i}>" for i in range(int(config["vocab_size"]) - 1)]
        self.max_len = int(config["max_len"])
        self.architecture = config["architecture"]
        source = config["embeddings"]
        if source != "none":
            table, _ = pretrained_rows(source, vocab, int(config["dim"]), 0)
            self.embedding = nn.Embedding.from_pretrained(table, freeze=True, padding_idx=0)
        else:
            self.embedding = nn.Embedding(len(vocab) + 1, int(config["dim"]), padding_idx=0)
        dim = self.embedding.embedding_dim
        if self.architecture == "lstm":
            self.lstm = nn.LSTM(dim, int(config["hidden"]), batch_first=True)
            self.head = nn.Linear(int(config["hidden"]), int(config["num_classes"]))
        elif self.architecture == "average":
            self.head = nn.Linear(dim, int(config["num_classes"]))
        else:
            raise ZooError(f"architecture {self.architecture!r}: choose average or lstm")
        self.dropout = nn.Dropout(float(config["dropout"]))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids > 0).float()
        e = self.dropout(self.embedding(ids))
        if self.architecture == "average":
            h = (e * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        else:
            out, _ = self.lstm(e)  # words are left-aligned, padding after them
            last = (mask.sum(1).long() - 1).clamp(min=0)
            h = out.gather(1, last[:, None, None].expand(-1, 1, out.shape[2]))[:, 0]
        return self.head(self.dropout(h))

    def export_graphs(self, samples=None):
        from zoo.contracts import Graph

        n = self.embedding.num_embeddings

        def inputs(batch: int, seed: int) -> tuple:
            if samples is not None and len(samples) >= batch:
                return (torch.from_numpy(np.ascontiguousarray(samples[seed: seed + batch])),)
            gen = torch.Generator().manual_seed(seed)
            ids = torch.randint(1, n, (batch, self.max_len), generator=gen)
            lengths = torch.randint(1, self.max_len + 1, (batch, 1), generator=gen)
            return (torch.where(torch.arange(self.max_len)[None, :] < lengths, ids, 0),)

        return [Graph("model", self, inputs, ["ids"], ["logits"], {"ids": {0: "batch"}, "logits": {0: "batch"}})]
