"""Recurrent cells written with the gates explicit, as the seed writes them: the layers of the
char-rnn and seq2seq networks (``zoo.plugins.charrnn.model``, ``zoo.plugins.seq2seq.model``).

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
