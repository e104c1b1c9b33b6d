"""The character-level language model (Karpathy's char-rnn; the seed's "sampling novel sequences"):

    character x<t> -> embedding (vocab x embed)
                   -> `layers` stacked cells (rnn | gru | lstm, hidden units each, dropout between)
                   -> linear (hidden -> vocab) -> softmax over the next character

The cells are ``zoo.plugins.recurrent``'s, with their gates explicit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from zoo.contracts import Graph
from zoo.plugins.recurrent import StackedRNN, sequence_loss


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

    def export_graphs(self, samples: np.ndarray | None = None) -> list[Graph]:
        return [Graph("step", self, lambda batch, seed: self.warm_inputs(batch, seed, samples),
                      ["token", "state"], ["logits", "state_out"],
                      {name: {0: "batch"} for name in ("token", "state", "logits", "state_out")})]
