"""Character-level language model (Karpathy's char-rnn; the seed's "sampling novel sequences"):

    character x<t> -> embedding (vocab x embed)
                   -> `layers` stacked cells (rnn | gru | lstm, hidden units each, dropout between)
                   -> linear (hidden -> vocab) -> softmax over the next character

The network is ``zoo.plugins.charrnn.model`` (this card is torch-free), its cells written with
their gates explicit (``zoo.plugins.recurrent``); ``--config cell=gru`` picks another. Training reads fixed 100-character chunks from a zero state
(truncated backpropagation through time) with gradient-norm clipping; the exported artifact is
one step graph ``(token, state) -> (logits, state')`` and the runtime samples from it with
temperature and a top-k cut-off (``--sample-top-k``: its own name, as ``--top-k`` means how
many answers to show in the other tasks).
"""

from __future__ import annotations

from zoo.hookspecs import hookimpl
from zoo.specs import ModelSpec, TaskOption, TaskSpec


@hookimpl
def zoo_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="char-rnn",
            family="char-rnn",
            task="text-generation",
            summary="character language model: embedding, 2 stacked LSTM (or GRU/RNN) layers of 256, softmax; "
                    "exported as a step graph",
            paper="Karpathy, The Unreasonable Effectiveness of Recurrent Neural Networks, 2015; "
                  "Hochreiter and Schmidhuber, Long Short-Term Memory, 1997",
            builder="zoo.plugins.charrnn.model:CharRNN",
            params=851_015,
            default_config={"cell": "lstm", "vocab_size": 103, "embed": 32, "hidden": 256, "layers": 2,
                            "dropout": 0.3},
            dataset="char-text",
            family_default=True,
            train_defaults={"epochs": 25, "batch_size": 32, "optimizer": "adam", "lr": 3e-3, "lr_decay": 0.93,
                            "patience": 3, "clip_grad": 5.0, "bench_batches": (1, 64)},
        )
    ]


@hookimpl
def zoo_tasks() -> list[TaskSpec]:
    return [
        TaskSpec(
            name="text-generation",
            summary="sample text from a character model's step graph: prime, temperature, sampling cut-off, seed",
            impl="zoo.runtime.tasks.text:TextGeneration",
            options=(
                TaskOption("prime", "str", None, "text to start from (default: a new line)"),
                TaskOption("length", "int", 200, "characters to generate"),
                TaskOption("temperature", "float", 1.0, "divide the logits by this (0: always the likeliest)"),
                TaskOption("sample-top-k", "int", 0, "sample among the k likeliest characters only (0: all)"),
                TaskOption("seed", "int", 0, "seed of the sampler, for reproducible text"),
                TaskOption("file", "path", None, "read inputs from this UTF-8 file, one per line"),
            ),
        )
    ]
