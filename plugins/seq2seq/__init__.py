"""Sequence to sequence with additive attention (Bahdanau, Cho and Bengio, 2015), as the seed
draws it:

    source characters -> embedding -> bidirectional GRU (or LSTM) -> annotations a<t'> = [a->, a<-]
    decoder step t:  e<t,t'> = v . tanh(W s<t-1> + U a<t'>)      alpha<t,t'> = softmax_t'(e<t,t'>)
                     c<t> = sum_t' alpha<t,t'> a<t'>
                     s<t> = cell([y<t-1>, c<t>], s<t-1>)          P(y<t>) = softmax(W_o [s<t>, c<t>, y<t-1>])

Two models: ``seq2seq-dates`` (the seed's assignment: human-readable dates in eight languages
to ISO 8601) and ``seq2seq-g2p`` (spelling to ARPAbet with CMUdict). Exported as an
``encoder`` graph and a ``decoder_step`` graph; the runtime decodes greedily or with beam search
and length normalisation, and can draw the attention as a heatmap. This is the family's card,
torch-free; the network is ``zoo.plugins.seq2seq.model``.
"""

from __future__ import annotations

from zoo.hookspecs import hookimpl
from zoo.specs import ModelSpec, TaskOption, TaskSpec

PAPER = ("Bahdanau, Cho and Bengio, Neural Machine Translation by Jointly Learning to Align and Translate, "
         "ICLR 2015")


@hookimpl
def zoo_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="seq2seq-dates",
            family="seq2seq",
            task="translation",
            summary="human-readable dates (8 languages, many formats) -> ISO 8601; bidirectional GRU "
                    "encoder, GRU decoder with additive attention",
            paper=PAPER,
            builder="zoo.plugins.seq2seq.model:Seq2SeqAttention",
            params=187_630,
            default_config={"cell": "gru", "embed": 32, "enc_hidden": 64, "dec_hidden": 128, "attention": 64,
                            "dropout": 0.1, "src_vocab": 59, "tgt_vocab": 14, "max_src_len": 40,
                            "max_tgt_len": 11},
            dataset="dates-wide",
            family_default=True,
            train_defaults={"epochs": 12, "batch_size": 64, "optimizer": "adam", "lr": 3e-3, "lr_decay": 0.8,
                            "patience": 3, "clip_grad": 5.0, "bench_batches": (1, 64)},
        ),
        ModelSpec(
            name="seq2seq-g2p",
            family="seq2seq",
            task="translation",
            summary="spelling -> pronunciation (ARPAbet with stress, CMUdict); bidirectional LSTM encoder, LSTM decoder "
                    "with additive attention",
            paper=PAPER,
            builder="zoo.plugins.seq2seq.model:Seq2SeqAttention",
            params=745_416,
            default_config={"cell": "lstm", "embed": 48, "enc_hidden": 128, "dec_hidden": 192, "attention": 96,
                            "dropout": 0.1, "src_vocab": 28, "tgt_vocab": 72, "max_src_len": 20,
                            "max_tgt_len": 20},
            dataset="cmudict-stress",
            train_defaults={"epochs": 4, "batch_size": 64, "optimizer": "adam", "lr": 3e-3, "lr_decay": 0.7,
                            "patience": 2, "clip_grad": 5.0, "bench_batches": (1, 64)},
        ),
    ]


@hookimpl
def zoo_tasks() -> list[TaskSpec]:
    return [
        TaskSpec(
            name="translation",
            summary="sequence to sequence: greedy or beam search over encoder and decoder-step graphs",
            impl="zoo.runtime.tasks.text:Translation",
            options=(
                TaskOption("beam", "int", 1, "beam width (1: greedy search)"),
                TaskOption("length-norm", "float", 0.7, "beam search: score = log P / length**this"),
                TaskOption("attention", "path", None, "draw the attention matrix as a heatmap PNG here"),
                TaskOption("file", "path", None, "read inputs from this UTF-8 file, one per line"),
                TaskOption("batch-size", "int", 64, "inputs per onnxruntime call (greedy search)"),
                TaskOption("unchecked", "flag", False, "print what was decoded even when it is not what the model's "
                           "targets are declared to be (a date model's impossible date)"),
            ),
        )
    ]
