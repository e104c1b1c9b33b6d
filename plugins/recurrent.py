"""Recurrent networks written with the gates explicit, as the seed writes them (imported by the
char-rnn and seq2seq builders only: this module needs torch).

Explicit cells rather than ``torch.nn.GRU``/``LSTM``: the step a cell takes in training is the
very code the exported step graph runs (parity is literal, not between two implementations), the
gates read like the seed's equations, and a state can be masked per step (padded sources in a
bidirectional encoder). The input projection of a whole sequence is one matrix product; only
the recurrent part loops over time.

Every cell keeps its state as one tensor ``(batch, state_size)``: ``a`` for RNN and GRU (``c``
in the seed's GRU notation), ``[a, c]`` for the LSTM.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RNNCell(nn.Module):
    """a<t> = tanh(W_aa a<t-1> + W_ax x<t> + b_a)."""

    gates = 1
    state_factor = 1

    def __init__(self, input_size: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.wx = nn.Linear(input_size, self.gates * hidden)
        self.wa = nn.Linear(hidden, self.gates * hidden, bias=False)

    @property
    def state_size(self) -> int:
        return self.state_factor * self.hidden

    def output(self, state: torch.Tensor) -> torch.Tensor:
        return state[:, : self.hidden]

    def step(self, xp: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One step from the projected input ``xp = wx(x<t>)``."""
        return torch.tanh(xp + self.wa(state))


class GRUCell(RNNCell):
    """The full GRU of the seed, memory cell c = a:

        Γr = σ(W_r [c<t-1>, x<t>] + b_r)            relevance gate
        Γu = σ(W_u [c<t-1>, x<t>] + b_u)            update gate
        c~ = tanh(W_c [Γr * c<t-1>, x<t>] + b_c)
        c<t> = Γu * c~ + (1 - Γu) * c<t-1>
    """

    gates = 3

    def __init__(self, input_size: int, hidden: int):
        super().__init__(input_size, hidden)
        self.wa = nn.Linear(hidden, 2 * hidden, bias=False)  # relevance and update gates
        self.wc = nn.Linear(hidden, hidden, bias=False)  # candidate, applied to Γr * c

    def step(self, xp: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        x_r, x_u, x_c = xp.chunk(3, dim=-1)
        a_r, a_u = self.wa(state).chunk(2, dim=-1)
        relevance = torch.sigmoid(x_r + a_r)
        update = torch.sigmoid(x_u + a_u)
        candidate = torch.tanh(x_c + self.wc(relevance * state))
        return update * candidate + (1 - update) * state


class LSTMCell(RNNCell):
    """The LSTM of the seed, state [a, c]:

        c~ = tanh(W_c [a<t-1>, x<t>] + b_c)
        Γu, Γf, Γo = σ(W_{u,f,o} [a<t-1>, x<t>] + b_{u,f,o})
        c<t> = Γu * c~ + Γf * c<t-1>
        a<t> = Γo * tanh(c<t>)
    """

    gates = 4
    state_factor = 2

    def __init__(self, input_size: int, hidden: int):
        super().__init__(input_size, hidden)
        with torch.no_grad():  # forget gate open at the start, the usual remedy for early forgetting
            self.wx.bias[2 * hidden: 3 * hidden].fill_(1.0)

    def step(self, xp: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        a, c = state[:, : self.hidden], state[:, self.hidden:]
        x_c, x_u, x_f, x_o = xp.chunk(4, dim=-1)
        a_c, a_u, a_f, a_o = self.wa(a).chunk(4, dim=-1)
        candidate = torch.tanh(x_c + a_c)
        c = torch.sigmoid(x_u + a_u) * candidate + torch.sigmoid(x_f + a_f) * c
        a = torch.sigmoid(x_o + a_o) * torch.tanh(c)
        return torch.cat([a, c], dim=-1)


CELLS = {"rnn": RNNCell, "gru": GRUCell, "lstm": LSTMCell}


def make_cell(kind: str, input_size: int, hidden: int) -> RNNCell:
    if kind not in CELLS:
        raise ValueError(f"unknown cell {kind!r}; choose from {', '.join(CELLS)}")
    return CELLS[kind](input_size, hidden)


def run_cell(cell: RNNCell, x: torch.Tensor, state: torch.Tensor, mask: torch.Tensor | None = None,
             reverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``cell`` over ``x`` (batch, time, features); where ``mask`` (batch, time) is false the
    state is carried unchanged, so padding neither moves a state nor starts a backward pass
    early. Returns outputs (batch, time, hidden) and the last state."""
    xp = cell.wx(x)
    steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
    outputs: list[torch.Tensor] = [x.new_zeros(())] * x.shape[1]
    for t in steps:
        new = cell.step(xp[:, t], state)
        state = new if mask is None else torch.where(mask[:, t, None], new, state)
        outputs[t] = cell.output(state)
    return torch.stack(outputs, dim=1), state


class StackedRNN(nn.Module):
    """Layers of one cell kind; the state is (batch, layers, state_size), with dropout between
    layers."""

    def __init__(self, kind: str, input_size: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.cells = nn.ModuleList(make_cell(kind, input_size if i == 0 else hidden, hidden) for i in range(layers))
        self.dropout = nn.Dropout(dropout)

    @property
    def state_size(self) -> int:
        return self.cells[0].state_size

    def init_state(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch, len(self.cells), self.state_size, dtype=torch.float32)

    def forward_sequence(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        finals = []
        for i, cell in enumerate(self.cells):
            x, last = run_cell(cell, x if i == 0 else self.dropout(x), state[:, i])
            finals.append(last)
        return x, torch.stack(finals, dim=1)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states = []
        for i, cell in enumerate(self.cells):
            s = cell.step(cell.wx(x if i == 0 else self.dropout(x)), state[:, i])
            states.append(s)
            x = cell.output(s)
        return x, torch.stack(states, dim=1)


def sequence_loss(outputs: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy over every (sequence, step) that is not padding."""
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1), ignore_index=ignore_index)


# -- char-RNN ---------------------------------------------------------------------------------------
class CharRNN(nn.Module):
    """Embedding -> stacked cells -> linear head over the vocabulary. ``forward`` is the exported
    step ``(x<t>, state) -> (logits, state')``; ``forward_train`` reads whole chunks from a zero
    state (truncated BPTT: the gradient stops at the chunk's start)."""

    def __init__(self, config: dict):
        super().__init__()
        self.embed = nn.Embedding(config["vocab_size"], config["embed"])
        self.rnn = StackedRNN(config["cell"], config["embed"], config["hidden"], config["layers"],
                              config["dropout"])
        self.dropout = nn.Dropout(config["dropout"])
        self.head = nn.Linear(config["hidden"], config["vocab_size"])

    def forward(self, token: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, state = self.rnn.step(self.embed(token), state)
        return self.head(out), state

    def forward_train(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn.forward_sequence(self.embed(x), self.rnn.init_state(x.shape[0], x))
        return self.head(self.dropout(out))

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return sequence_loss(outputs, targets)

    def warm_inputs(self, batch: int, seed: int, tokens=None, steps: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        """A token and a state reached by ``steps`` real steps (from real text when ``tokens``
        are given), so that parity covers states the model actually produces."""
        vocab = self.embed.num_embeddings
        gen = torch.Generator().manual_seed(seed)
        if tokens is not None and len(tokens) >= batch:
            rows = torch.as_tensor(tokens[(seed * 3) % (len(tokens) - batch + 1):][:batch]).long() % vocab
            seq = rows[:, : steps + 1]
        else:
            seq = torch.randint(0, vocab, (batch, steps + 1), generator=gen)
        state = self.rnn.init_state(batch, seq)
        with torch.no_grad():
            for t in range(steps):
                _, state = self(seq[:, t], state)
        return seq[:, steps].contiguous(), state

    def export_graphs(self, samples=None) -> list:
        from zoo.exporters.onnx import Graph

        return [Graph("step", self, lambda batch, seed: self.warm_inputs(batch, seed, samples),
                      ["token", "state"], ["logits", "state_out"],
                      {name: {0: "batch"} for name in ("token", "state", "logits", "state_out")})]


# -- sequence to sequence with attention -----------------------------------------------------------
class Seq2SeqAttention(nn.Module):
    """Bahdanau, Cho and Bengio (2015) as the seed draws it: a bidirectional encoder gives
    annotations a<t'> = [a->, a<-]; at output step t the decoder scores every annotation with a
    small network, e<t,t'> = v . tanh(W s<t-1> + U a<t'>), takes alpha<t,t'> = softmax over t' of
    e<t,t'>, the context c<t> = sum over t' of alpha<t,t'> a<t'>, and feeds [y<t-1>, c<t>] to its
    cell; the output layer reads [s<t>, c<t>, y<t-1>]. ``U a`` is computed once per input by the
    encoder (the ``keys``). Padding (id 0) is masked out of the encoder's steps and the
    attention."""

    def __init__(self, config: dict):
        super().__init__()
        cell, emb, enc, dec, att = (config[k] for k in ("cell", "embed", "enc_hidden", "dec_hidden", "attention"))
        self.src_embed = nn.Embedding(config["src_vocab"], emb, padding_idx=0)
        self.fwd = make_cell(cell, emb, enc)
        self.bwd = make_cell(cell, emb, enc)
        self.bridge = nn.Linear(2 * enc, CELLS[cell].state_factor * dec)  # s<0> from both directions
        self.keys = nn.Linear(2 * enc, att, bias=False)  # U
        self.query = nn.Linear(dec, att)  # W
        self.score = nn.Linear(att, 1, bias=False)  # v
        self.tgt_embed = nn.Embedding(config["tgt_vocab"], emb, padding_idx=0)
        self.decoder = make_cell(cell, emb + 2 * enc, dec)
        self.dropout = nn.Dropout(config["dropout"])
        self.out = nn.Linear(dec + 2 * enc + emb, config["tgt_vocab"])
        self.max_src_len, self.max_tgt_len = config["max_src_len"], config["max_tgt_len"]

    def encode(self, source: torch.Tensor):
        """source (B, T) ids -> annotations (B, T, 2E), keys (B, T, A), mask (B, T) float, s<0>."""
        mask = source != 0
        x = self.dropout(self.src_embed(source))
        zeros = x.new_zeros(source.shape[0], self.fwd.state_size)
        fwd, fwd_last = run_cell(self.fwd, x, zeros, mask)
        bwd, bwd_first = run_cell(self.bwd, x, zeros, mask, reverse=True)
        annotations = torch.cat([fwd, bwd], dim=-1)
        ends = torch.cat([self.fwd.output(fwd_last), self.bwd.output(bwd_first)], dim=-1)
        return annotations, self.keys(annotations), mask.float(), torch.tanh(self.bridge(ends))

    def step(self, token, state, annotations, keys, mask):
        """One decoder step -> (logits, state', alpha)."""
        y = self.dropout(self.tgt_embed(token))
        e = self.score(torch.tanh(keys + self.query(self.decoder.output(state))[:, None])).squeeze(-1)
        alpha = torch.softmax(e.masked_fill(mask == 0, -1e9), dim=-1)
        context = (alpha[:, :, None] * annotations).sum(dim=1)
        state = self.decoder.step(self.decoder.wx(torch.cat([y, context], dim=-1)), state)
        features = torch.cat([self.decoder.output(state), context, y], dim=-1)
        return self.out(self.dropout(features)), state, alpha

    def forward_train(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: the decoder reads <s> then the true previous tokens. Columns of pure
        padding at the end of the batch's sources are dropped first (exact: they are masked)."""
        width = max(int((x != 0).sum(1).max()), 1)
        annotations, keys, mask, state = self.encode(x[:, :width])
        previous = torch.cat([torch.full_like(y[:, :1], 1), y[:, :-1]], dim=1)  # 1 = <s>
        logits = []
        for t in range(y.shape[1]):
            out, state, _ = self.step(previous[:, t], state, annotations, keys, mask)
            logits.append(out)
        return torch.stack(logits, dim=1)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return sequence_loss(outputs, targets, ignore_index=0)

    def example_sources(self, batch: int, seed: int, samples=None) -> torch.Tensor:
        """Real sources when given, else random ids with random lengths (padding at the end)."""
        vocab = self.src_embed.num_embeddings
        if samples is not None and len(samples) >= batch:
            start = (seed * 5) % (len(samples) - batch + 1)
            return torch.as_tensor(samples[start: start + batch]).long().clamp(0, vocab - 1)
        gen = torch.Generator().manual_seed(seed)
        src = torch.randint(2, vocab, (batch, self.max_src_len), generator=gen)
        lengths = torch.randint(1, self.max_src_len + 1, (batch,), generator=gen)
        return src.masked_fill(torch.arange(self.max_src_len)[None] >= lengths[:, None], 0)

    def decoder_inputs(self, batch: int, seed: int, samples=None, steps: int = 3):
        """Decoder-step inputs after ``steps`` greedy steps, so parity covers a carried state."""
        with torch.no_grad():
            annotations, keys, mask, state = self.encode(self.example_sources(batch, seed, samples))
            token = torch.full((batch,), 1, dtype=torch.long)
            for _ in range(steps):
                logits, state, _ = self.step(token, state, annotations, keys, mask)
                token = logits.argmax(-1)
        return token, state, annotations, keys, mask

    def export_graphs(self, samples=None) -> list:
        from zoo.exporters.onnx import Graph

        batch = {0: "batch"}
        return [
            Graph("encoder", _Encoder(self), lambda b, seed: (self.example_sources(b, seed, samples),),
                  ["source"], ["annotations", "keys", "mask", "state"],
                  {n: batch for n in ("source", "annotations", "keys", "mask", "state")}),
            Graph("decoder_step", _DecoderStep(self), lambda b, seed: self.decoder_inputs(b, seed, samples),
                  ["token", "state", "annotations", "keys", "mask"], ["logits", "state_out", "alpha"],
                  {n: batch for n in ("token", "state", "annotations", "keys", "mask", "logits", "state_out",
                                      "alpha")}),
        ]


class _Encoder(nn.Module):
    def __init__(self, model: Seq2SeqAttention):
        super().__init__()
        self.model = model

    def forward(self, source: torch.Tensor):
        return self.model.encode(source)


class _DecoderStep(nn.Module):
    def __init__(self, model: Seq2SeqAttention):
        super().__init__()
        self.model = model

    def forward(self, token, state, annotations, keys, mask):
        return self.model.step(token, state, annotations, keys, mask)
