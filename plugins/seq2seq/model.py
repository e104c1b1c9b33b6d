"""The sequence-to-sequence network with additive attention (Bahdanau, Cho and Bengio, 2015), as
the seed draws it:

    source characters -> embedding -> bidirectional GRU (or LSTM) -> annotations a<t'> = [a->, a<-]
    decoder step t:  e<t,t'> = v . tanh(W s<t-1> + U a<t'>)      alpha<t,t'> = softmax_t'(e<t,t'>)
                     c<t> = sum_t' alpha<t,t'> a<t'>
                     s<t> = cell([y<t-1>, c<t>], s<t-1>)          P(y<t>) = softmax(W_o [s<t>, c<t>, y<t-1>])

Exported as an ``encoder`` graph and a ``decoder_step`` graph; the cells are
``zoo.plugins.recurrent``'s, with their gates explicit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from zoo.contracts import Graph
from zoo.errors import ZooError
from zoo.plugins.recurrent import CELLS, make_cell, run_cell, sequence_loss


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

    def freeze(self, upto: str) -> None:
        """``--freeze``: fine-tune from the installed weights. ``none`` trains every tensor (the
        weights are only the starting point); ``encoder`` freezes the source embedding and both
        encoder directions and trains the bridge, attention and decoder."""
        if upto == "none":
            return
        if upto != "encoder":
            raise ZooError(f"--freeze {upto!r}: use 'none' (fine-tune every tensor) or 'encoder'")
        for name, param in self.named_parameters():
            if name.split(".")[0] in ("src_embed", "fwd", "bwd"):
                param.requires_grad_(False)

    def export_graphs(self, samples: np.ndarray | None = None) -> list[Graph]:
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
