"""seq2seq with attention: data held out as promised, masking, the two graphs against PyTorch
over whole decodes, greedy and beam search, the CLI end to end and bad input."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from zoo.registry import registry
from zoo.runtime.tasks.text import EOS, Decoder, beam_search, edit_distance, greedy
from zoo.testing import check_model, check_plugin_specs

TINY = {"embed": 8, "enc_hidden": 8, "dec_hidden": 12, "attention": 8}
TINY_ARGS = [a for k, v in TINY.items() for a in ("--config", f"{k}={v}")]


def test_specs():
    check_plugin_specs("seq2seq")


def test_check_model(tmp_path):
    """The conformance kit on a tiny LSTM variant (short sequences keep the unrolled encoder
    small); the GRU variant is exported end to end below."""
    result = check_model("seq2seq-g2p", tmp_path, config={**TINY, "cell": "lstm", "max_src_len": 6, "max_tgt_len": 5})
    assert sorted({p.graph for p in result["report"].parity}) == ["decoder_step", "encoder"]


def test_declared_parameter_counts():
    from zoo.registry import load_registry

    for name in ("seq2seq-dates", "seq2seq-g2p"):
        spec = load_registry().model(name)
        assert sum(p.numel() for p in spec.build().parameters()) == spec.params


def test_dates_hold_out_whole_days():
    from zoo.plugins.text_data import load_dates

    splits = load_dates()
    days = {part: {t[5:] for t in getattr(splits, part).targets} for part in ("train", "dev", "test")}
    assert not days["test"] & days["train"] and not days["dev"] & days["train"] and not days["test"] & days["dev"]
    assert len(splits.test) == 3000 and len(splits.train) > 50_000
    sources = list(splits.train.inputs) + list(splits.test.inputs)
    targets = list(splits.train.targets) + list(splits.test.targets)
    seen: dict[str, str] = {}
    for s, t in zip(sources, targets):
        assert seen.setdefault(s, t) == t, f"{s!r} maps to {seen[s]} and {t}"
    assert all(len(t) == 10 and t[4] == "-" for t in targets[:100])


def test_parallel_tsv(tmp_path):
    from zoo.errors import ZooError
    from zoo.plugins.text_data import load_parallel_tsv

    good = tmp_path / "pairs.tsv"
    good.write_text("".join(f"{w}\t{w[::-1]}\n" for w in ("abc", "hello", "world", "zoo", "tab") * 8), encoding="utf-8")
    splits = load_parallel_tsv(str(good))
    assert sum(splits.sizes().values()) == 40 and splits.info["target_unit"] == "char"
    bad = tmp_path / "bad.tsv"
    bad.write_text("no tab here\n", encoding="utf-8")
    with pytest.raises(ZooError, match="expected 'source<TAB>target'"):
        load_parallel_tsv(str(bad))
    latin = tmp_path / "latin1.tsv"
    latin.write_bytes(b"caf\xe9\tcoffee\n")
    with pytest.raises(ZooError, match="not UTF-8"):
        load_parallel_tsv(str(latin))


def test_padding_changes_nothing():
    """The same source padded to two widths gives the same annotations and initial state: the
    masked steps carry the state unchanged in both directions."""
    import torch

    from zoo.registry import load_registry

    torch.manual_seed(0)
    model = load_registry().model("seq2seq-dates").build({**TINY, "cell": "lstm"}).eval()
    src = torch.tensor([[5, 6, 7, 8]])
    padded = torch.tensor([[5, 6, 7, 8, 0, 0, 0]])
    with torch.no_grad():
        a1, _, _, s1 = model.encode(src)
        a2, _, m2, s2 = model.encode(padded)
    torch.testing.assert_close(a1, a2[:, :4])
    torch.testing.assert_close(s1, s2)
    assert m2.tolist() == [[1, 1, 1, 1, 0, 0, 0]]


def _torch_decoder(model):
    import torch

    def enc(src):
        with torch.no_grad():
            return [t.numpy() for t in model.encode(torch.from_numpy(src))]

    def step(tok, state, ann, keys, mask):
        with torch.no_grad():
            out = model.step(*(torch.from_numpy(np.asarray(a)) for a in (tok, state, ann, keys, mask)))
        return [t.numpy() for t in out]

    return Decoder(enc, step)


def test_exported_graphs_decode_like_pytorch(trained, monkeypatch):
    """Greedy and beam decoding through the exported graphs and through the PyTorch module, with
    the same numpy loops, agree token for token and in attention over every step."""
    from zoo.modelio import load_trained
    from zoo.registry import load_registry
    from zoo.runtime.artifact import open_artifact

    _, home = trained
    monkeypatch.setenv("ZOO_HOME", str(home))
    model, _ = load_trained(load_registry().model("seq2seq-dates"))
    model.eval()
    artifact = open_artifact(home / "exports" / "seq2seq-dates", "cpu")
    src = model.example_sources(6, 9).numpy()
    ort_out = greedy(Decoder.from_artifact(artifact), src, 11)
    torch_out = greedy(_torch_decoder(model), src, 11)
    for (ids_o, att_o), (ids_t, att_t) in zip(ort_out, torch_out):
        assert ids_o == ids_t
        np.testing.assert_allclose(att_o, att_t, atol=1e-5)
    beam_o = beam_search(Decoder.from_artifact(artifact), src, 11, 3, 0.7)
    beam_t = beam_search(_torch_decoder(model), src, 11, 3, 0.7)
    assert [ids for ids, _ in beam_o] == [ids for ids, _ in beam_t]


def _table_decoder() -> Decoder:
    """Next-token probabilities that depend only on the previous token, chosen so that greedy
    search's first choice (A) leads to a worse sequence than B </s>:
    P(A C </s>) = .55 * .6 * .6 = .198, P(A </s>) = .22, P(B </s>) = .45 * .9 = .405."""
    pad, sos, eos, a, b, c = range(6)
    rows = {sos: {a: .55, b: .45}, a: {eos: .4, c: .6}, b: {eos: .9, c: .1}, c: {eos: .6, a: .4}}

    def enc(src):
        n = len(src)
        return (np.zeros((n, 1, 1), np.float32), np.zeros((n, 1, 1), np.float32), np.ones((n, 1), np.float32),
                np.zeros((n, 1), np.float32))

    def step(tok, state, ann, keys, mask):
        probs = np.full((len(tok), 6), 1e-9)
        for i, t in enumerate(tok):
            for nxt, p in rows[int(t)].items():
                probs[i, nxt] = p
        return np.log(probs), state, np.ones((len(tok), 1), np.float32)

    return Decoder(enc, step)


def test_greedy_and_beam_search_on_a_known_table():
    src = np.ones((1, 1), np.int64)
    ids, attention = greedy(_table_decoder(), src, 5)[0]
    assert ids == [3, 5] and attention.shape == (3, 1)  # A C, then </s>
    assert beam_search(_table_decoder(), src, 5, 1, 0.7)[0][0] == [3, 5]  # beam 1 is greedy
    ((best, history),) = beam_search(_table_decoder(), src, 5, 2, 0.7)
    assert best == [4] and history.shape == (2, 1)  # B </s>


def _random_decoder(vocab: int = 9, hidden: int = 6, seed: int = 1) -> Decoder:
    """A decoder whose next-token distribution depends on the input (through the annotations),
    the state and the previous token, so that inputs in one batch would disturb each other if
    rows were mixed up; with these seeds, the inputs end at different lengths."""
    rng = np.random.default_rng(seed)
    w_tok, w_state, w_out, w_in = (rng.normal(size=shape) for shape in
                                   ((vocab, hidden), (hidden, hidden), (hidden, vocab), (1, hidden)))

    def enc(src):
        ann = np.tanh(src[:, :, None] / 10.0 * w_in[None]).astype(np.float32)
        return ann, ann, np.ones(src.shape, np.float32), ann.mean(1)

    def step(tok, state, ann, keys, mask):
        state = np.tanh(state @ w_state + w_tok[tok] + 3 * ann.mean(1))
        return 2 * state @ w_out, state, np.full(ann.shape[:2], 1 / ann.shape[1], np.float32)

    return Decoder(enc, step)


@pytest.mark.parametrize("beam", [2, 5])
def test_batched_beam_search_gives_each_input_what_it_gets_alone(beam):
    src = np.random.default_rng(1).integers(1, 20, size=(7, 6))
    together = beam_search(_random_decoder(), src, 12, beam, 0.7)
    alone = [beam_search(_random_decoder(), src[i: i + 1], 12, beam, 0.7)[0] for i in range(len(src))]
    assert [ids for ids, _ in together] == [ids for ids, _ in alone]
    assert len({len(ids) for ids, _ in together}) > 1  # the inputs really differ, and end at different steps
    for (_, a), (_, b) in zip(together, alone):
        np.testing.assert_array_equal(a, b)


def test_an_input_whose_hypotheses_never_end_gets_its_best_open_one_in_full():
    src = np.random.default_rng(1).integers(1, 20, size=(7, 6))
    # decoder seed 2 never says </s> within two steps: every answer is cut off at max_len, with
    # one attention row per step; seed 6 ends each input by itself, </s> taking a row of its own
    for seed, max_len, ended in ((2, 2, False), (6, 4, True)):
        for ids, attention in beam_search(_random_decoder(seed=seed), src, max_len, 3, 0.7):
            assert EOS not in ids
            assert attention.shape == (len(ids) + ended, src.shape[1])
            assert len(ids) == max_len if not ended else len(ids) < max_len


def test_edit_distance_and_evaluation_metrics():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance(["HH", "AH", "L", "OW"], ["HH", "EH", "L", "OW"]) == 1
    assert edit_distance([], ["A"]) == 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny seq2seq-dates trained for two steps through the real CLI, exported."""
    from conftest import run_zoo

    home = tmp_path_factory.mktemp("zoo-home")
    env = {"ZOO_HOME": str(home), "OMP_NUM_THREADS": "1"}
    r = run_zoo("train", "seq2seq-dates", "--epochs", "1", "--max-steps", "2", *TINY_ARGS, "--no-progress",
                "--activate", env=env)
    assert r.returncode == 0, r.stderr
    assert "test_token_accuracy" in r.stdout
    r = run_zoo("export", "seq2seq-dates", env=env)
    assert r.returncode == 0, r.stderr
    assert "parity decoder_step batch 4" in r.stdout and "FAILED" not in r.stdout
    return env, home


def test_translation_through_cli(trained, tmp_path):
    from conftest import run_zoo

    env, _ = trained
    # --unchecked: two training steps do not make a date model, so its outputs are not dates yet
    one = run_zoo("run", "seq2seq-dates", "10 juin 1994", "--unchecked", env=env)
    assert one.returncode == 0, one.stderr
    assert len(one.stdout.splitlines()) == 1
    lines = tmp_path / "lines.txt"
    lines.write_text("10 juin 1994\nFriday, June 10th 1994\n\n10.06.94\n", encoding="utf-8")
    many = run_zoo("run", "seq2seq-dates", "3 mars 2001", "--file", str(lines), "--beam", "3", "--json", "--unchecked",
                   "--attention", str(tmp_path / "att.png"), env=env)
    assert many.returncode == 0, many.stderr
    results = json.loads(many.stdout)["results"]
    assert [r["input"] for r in results] == ["3 mars 2001", "10 juin 1994", "Friday, June 10th 1994", "10.06.94"]
    from PIL import Image

    for i in range(1, 5):
        with Image.open(tmp_path / f"att-{i}.png") as image:
            assert image.width > 18 * len(results[i - 1]["input"])


def test_run_does_not_import_torch(trained):
    env, _ = trained
    code = ("import sys, runpy; sys.argv = ['zoo', 'run', 'seq2seq-dates', '10 juin 1994', '--beam', '2']\n"
            "try:\n    runpy.run_module('zoo', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert r.stdout.strip().endswith("NO-TORCH"), r.stdout + r.stderr


@pytest.mark.parametrize("args, message", [
    ([""], "empty text"),
    (["x" * 60], "reads at most"),
    (["10 juin 1994 \u2603"], "not in the model's vocabulary"),
    ([], "nothing to translate"),
    (["10 juin 1994", "--beam", "0"], "--beam"),  # refused by the CLI's range, or by the task
])
def test_bad_input_is_one_line(trained, args, message):
    from conftest import assert_one_line_error, run_zoo

    env, _ = trained
    assert_one_line_error(run_zoo("run", "seq2seq-dates", *args, env=env), message)


def test_non_utf8_file_is_one_line(trained, tmp_path):
    from conftest import run_zoo

    env, _ = trained
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"10 f\xe9vrier 1994\n")
    r = run_zoo("run", "seq2seq-dates", "--file", str(bad), env=env)
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0 and "not UTF-8" in r.stderr, r.stderr


def test_evaluate_reports_exact_match_bleu_and_error_rate(trained):
    from zoo.runtime.artifact import open_artifact
    from zoo.runtime.tasks.text import score_translations

    _, home = trained
    artifact = open_artifact(home / "exports" / "seq2seq-dates", "cpu")
    task = registry().task("translation").load()
    sources = ["10 juin 1994", "3 mars 2001"]
    hyps = [out for out, _, _ in task.translate(artifact, sources, 1, 0.7)]
    metrics = task.evaluate(artifact, sources, hyps, beam=1, alpha=0.7)
    assert metrics["exact_match"] == 1.0 and metrics["token_error_rate"] == 0.0
    # the tiny model's outputs may be shorter than BLEU's 4-grams: BLEU is checked on real dates
    assert metrics["bleu"] == pytest.approx(score_translations(hyps, hyps, "char")["bleu"])
    dates = ["1994-06-10", "2001-03-03"]
    assert score_translations(dates, dates, "char")["bleu"] == pytest.approx(100.0)
    assert score_translations(["1994-06-11", "2001-03-03"], dates, "char")["bleu"] < 100.0
    wrong = task.evaluate(artifact, sources, ["x" + h for h in hyps], beam=2, alpha=0.7)
    assert wrong["exact_match"] == 0.0 and wrong["token_error_rate"] > 0


@pytest.mark.slow
def test_shipped_dates_model_translates_the_issue_examples(zoo_home):
    from conftest import run_zoo

    env = {"ZOO_HOME": str(zoo_home), "OMP_NUM_THREADS": "1"}
    r = run_zoo("export", "seq2seq-dates", env=env)
    assert r.returncode == 0, r.stderr
    examples = ["10 juin 1994", "Friday, June 10th 1994", "10.06.94", "10 de junio de 1994", "vrijdag 10 juni 1994"]
    for beam in ("1", "4"):
        r = run_zoo("run", "seq2seq-dates", *examples, "--beam", beam, env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["1994-06-10"] * len(examples)


def test_train_on_a_users_parallel_corpus(tmp_path):
    """--data FILE.tsv with word targets goes through the same engine and tokenisation."""
    from conftest import run_zoo

    corpus = tmp_path / "pairs.tsv"
    words = ["cat", "dog", "bird", "fish", "cow", "hen", "pig", "owl"]
    corpus.write_text("".join(f"{a} {b}\t{b.upper()} {a.upper()}\n" for a in words for b in words), encoding="utf-8")
    r = run_zoo("train", "seq2seq-dates", "--data", str(corpus), "--epochs", "1", "--max-steps", "2", *TINY_ARGS,
                "--no-progress", "--tag", "words", env={"ZOO_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "home" / "weights" / "seq2seq-dates" / "words" / "manifest.json").read_text())
    assert manifest["task_meta"]["target_unit"] == "word" and "DOG" in manifest["task_meta"]["tgt_vocab"]
    assert manifest["splits"] == {"train": 55, "dev": 3, "test": 6}


# -- what users type: normalisation, one bad input among many, outputs checked as dates ---------------
from zoo.errors import ZooError  # noqa: E402
from zoo.runtime.tasks import text as text_task  # noqa: E402

LOWER = ["<pad>", "<unk>", *"abcdefghijklmnopqrstuvwxyz"]  # seq2seq-g2p's source vocabulary
MIXED = ["<pad>", "<unk>", *" ',-0123456789ADFJMabcdefghijklmnopqrstuvwxyz\u00e9"]  # capitals for a few letters


@pytest.mark.parametrize("text, read", [
    ("Anthropic", "anthropic"), ("don't", "dont"), ("don\u2019t", "dont"), ("caf\u00e9", "cafe"),
    ("cafe\u0301", "cafe"), ("Stra\u00dfe", "strasse"), ("O'NEILL", "oneill"), ("  Zo\u00eb ", "zoe"),
    ("x\u2603", "x\u2603"),
])
def test_sources_read_by_a_lower_case_vocabulary(text, read):
    index = {c: i for i, c in enumerate(LOWER)}
    assert text_task.source_case(LOWER) == "lower"
    assert text_task.normalise_source(text, index, "lower") == read


@pytest.mark.parametrize("text, read", [
    ("Friday, June 10th 1994", "Friday, June 10th 1994"),  # every character known: left as typed
    ("THE 3RD OF MARCH 2001", "the 3rd of march 2001"),  # capitals it lacks: the whole text lower-cased
    ("10 F\u00c9VRIER  1994", "10 f\u00e9vrier 1994"), ("10 fe\u0301vrier 1994", "10 f\u00e9vrier 1994"),
    ("d\u2019Artagnan", "d'Artagnan"), ("M\u00fcnchen", "Munchen"),
])
def test_sources_read_by_a_mixed_case_vocabulary(text, read):
    index = {c: i for i, c in enumerate(MIXED)}
    assert text_task.source_case(MIXED) == "fallback"
    assert text_task.normalise_source(text, index, "fallback") == read


def test_declared_source_case_wins_over_the_vocabulary():
    index = {c: i for i, c in enumerate(MIXED)}
    assert text_task.source_case(MIXED, "lower") == "lower"
    assert text_task.normalise_source("Friday", index, "lower") == "friday"
    with pytest.raises(ZooError, match="source_case 'title'"):
        text_task.source_case(MIXED, "title")


def test_iso_dates_are_checked_against_the_calendar():
    good = ["2020-02-29", "1776-07-04", "1000-01-01", "2999-12-31"]
    bad = ["2021-02-29", "2020-02-31", "1994-6-10", "", "0000-01-01", "1994-13-01", "19940610", "1994-06-10x"]
    assert all(map(text_task.check_iso_date, good)) and not any(map(text_task.check_iso_date, bad))


class _EchoArtifact:
    """An artifact whose "model" writes back its (normalised) source, character by character,
    through the real greedy and beam-search loops: what comes out is what was read."""

    def __init__(self, src_vocab, tgt_chars, **meta):
        self.meta = {"src_vocab": src_vocab, "tgt_vocab": ["<pad>", "<s>", "</s>", *tgt_chars], "target_unit": "char",
                     "config": {"max_src_len": 24, "max_tgt_len": 26}, **meta}
        tgt = {c: i for i, c in enumerate(self.meta["tgt_vocab"])}
        self.to_target = np.asarray([tgt.get(c, 2) for c in src_vocab])  # unknown to the target side: </s>
        self.to_target[0] = 2

    def decoder(self):
        def enc(src):
            n, t = src.shape
            return (src[:, :, None].astype(np.float32), np.zeros((n, t, 1), np.float32),
                    (src > 0).astype(np.float32), np.zeros((n, 1), np.float32))

        def step(tok, state, ann, keys, mask):
            pos = state[:, 0].astype(int)
            src = np.asarray([ann[i, p, 0] if p < ann.shape[1] else 0 for i, p in enumerate(pos)], int)
            logits = np.full((len(tok), len(self.meta["tgt_vocab"])), -20.0, np.float32)
            logits[np.arange(len(tok)), self.to_target[src]] = 0.0
            alpha = np.zeros(ann.shape[:2], np.float32)
            alpha[np.arange(len(tok)), np.minimum(pos, ann.shape[1] - 1)] = 1.0
            return logits, state + 1, alpha

        return Decoder(enc, step)


@pytest.fixture
def echo(monkeypatch):
    monkeypatch.setattr(text_task.Decoder, "from_artifact", classmethod(lambda cls, artifact: artifact.decoder()))
    return _EchoArtifact


@pytest.mark.parametrize("beam", [1, 3])
def test_one_unreadable_word_does_not_fail_the_others(echo, beam):
    artifact = echo(LOWER, "abcdefghijklmnopqrstuvwxyz")
    task = registry().task("translation").load()
    results = task.run(artifact, ["Anthropic", "x\u2603", "don't", "caf\u00e9"], {"beam": beam})
    assert [r["output"] for r in results] == ["anthropic", None, "dont", "cafe"]
    assert results[2]["read_as"] == "dont" and "read_as" not in results[1]
    assert "'\u2603'" in results[1]["error"] and "not in the model's vocabulary" in results[1]["error"]
    lines = [task.format(r) for r in results]
    assert lines[0] == "anthropic" and lines[1].startswith("error: input 'x\u2603'") and "\n" not in lines[1]
    with pytest.raises(ZooError, match=re.escape("'x\u2603'") + ".*" +
                       re.escape("(and 1 more input(s): no input gave an answer)")):
        task.run(artifact, ["x\u2603", "y\u2603"], {"beam": beam})


def test_outputs_are_checked_as_calendar_dates(echo):
    artifact = echo(MIXED, "-0123456789", target_format="iso-date")
    task = registry().task("translation").load()
    results = task.run(artifact, ["2020-02-29", "2020-02-31", "tomorrow"], {"beam": 1})
    assert [r["output"] for r in results] == ["2020-02-29", None, None]
    assert results[1]["error"] == "not a date" and results[1]["decoded"] == "2020-02-31"
    assert results[2]["decoded"] == ""
    assert [task.format(r) for r in results] == ["2020-02-29", "not a date", "not a date"]
    with pytest.raises(ZooError, match="^'tomorrow': not a date$"):
        task.run(artifact, ["tomorrow"], {"beam": 1})
    raw = task.run(artifact, ["2020-02-31"], {"beam": 1, "unchecked": True})
    assert raw[0]["output"] == "2020-02-31" and "error" not in raw[0]
    undeclared = echo(MIXED, "-0123456789")  # a model that does not say its targets are dates
    assert task.run(undeclared, ["2020-02-31"], {"beam": 1})[0]["output"] == "2020-02-31"


def test_unreadable_and_impossible_through_the_cli(trained):
    from conftest import assert_one_line_error, run_zoo

    env, _ = trained
    r = run_zoo("run", "seq2seq-dates", "10 JUIN 1994", "10 juin 1994 \u2603", "--json", "--unchecked", env=env)
    assert r.returncode == 0, r.stderr
    first, second = json.loads(r.stdout)["results"]
    assert first["read_as"] == "10 juin 1994" and isinstance(first["output"], str)
    assert second["output"] is None and "not in the model's vocabulary" in second["error"]
    r = run_zoo("run", "seq2seq-dates", "10 juin 1994", "\u2603", "--unchecked", env=env)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2 and r.stdout.splitlines()[1].startswith("error: ")
    assert_one_line_error(run_zoo("run", "seq2seq-dates", "\u2603", "\u2604", env=env), "no input gave an answer")


def test_freeze_for_fine_tuning():
    from zoo.registry import load_registry

    model = load_registry().model("seq2seq-dates").build(TINY)
    model.freeze("none")
    assert all(p.requires_grad for p in model.parameters())
    model.freeze("encoder")
    frozen = {n.split(".")[0] for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"src_embed", "fwd", "bwd"}
    with pytest.raises(ZooError, match="--freeze 'head'"):
        model.freeze("head")


def test_wide_dates_hold_out_the_same_days():
    from zoo.plugins.text_data import DATE_INFO, DATES_CHARS, load_dates_wide

    splits = load_dates_wide(train_size=3000, dev_size=200, test_size=600)
    assert {k: splits.info[k] for k in DATE_INFO} == DATE_INFO and splits.info["src_vocab"][2:] == list(DATES_CHARS)
    days = {part: {t[5:] for t in getattr(splits, part).targets} for part in ("train", "dev", "test")}
    assert not days["test"] & days["train"] and not days["dev"] & days["train"]
    years = [int(t[:4]) for t in splits.test.targets]
    assert min(years) < 1300 and max(years) > 2700 and len(splits.test) >= 590
    for text, iso in zip(splits.train.inputs, splits.train.targets):
        assert text == text.lower()
        assert "1950" <= iso[:4] <= "2049" or iso[:4] in text, (text, iso)  # two-digit years only where unambiguous
