"""char-rnn: the seed's cells, the step graph over many steps, sampling, the CLI end to end and
bad input."""

import subprocess
import sys

import numpy as np
import pytest

from zoo.runtime.tasks.text import TextGeneration, generate, sample_next
from zoo.testing import check_model, check_plugin_specs

TINY = {"hidden": 16, "embed": 8, "layers": 2}
TINY_ARGS = ["--config", "hidden=16", "--config", "embed=8"]


def test_specs():
    for plugin in ("charrnn", "text_data"):
        check_plugin_specs(plugin)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_check_model(tmp_path, cell):
    result = check_model("char-rnn", tmp_path, config={**TINY, "cell": cell}, check_params=(cell == "lstm"))
    assert [p.graph for p in result["report"].parity] == ["step", "step"]


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_gru_and_lstm_cells_follow_the_seed_equations():
    import torch

    from zoo.plugins.recurrent import GRUCell, LSTMCell

    torch.manual_seed(0)
    x, h = torch.randn(3, 5), torch.randn(3, 4)
    gru = GRUCell(5, 4)
    W = {k: v.detach().numpy() for k, v in gru.state_dict().items()}
    xp = x.numpy() @ W["wx.weight"].T + W["wx.bias"]
    ah = h.numpy() @ W["wa.weight"].T
    r = _sigmoid(xp[:, :4] + ah[:, :4])
    u = _sigmoid(xp[:, 4:8] + ah[:, 4:8])
    cand = np.tanh(xp[:, 8:] + (r * h.numpy()) @ W["wc.weight"].T)
    expected = u * cand + (1 - u) * h.numpy()
    np.testing.assert_allclose(gru.step(gru.wx(x), h).detach().numpy(), expected, rtol=1e-5, atol=1e-6)

    lstm = LSTMCell(5, 4)
    state = torch.randn(3, 8)
    W = {k: v.detach().numpy() for k, v in lstm.state_dict().items()}
    a, c = state[:, :4].numpy(), state[:, 4:].numpy()
    z = x.numpy() @ W["wx.weight"].T + W["wx.bias"] + a @ W["wa.weight"].T
    cand, gu, gf, go = np.tanh(z[:, :4]), _sigmoid(z[:, 4:8]), _sigmoid(z[:, 8:12]), _sigmoid(z[:, 12:])
    c_new = gu * cand + gf * c
    expected = np.concatenate([go * np.tanh(c_new), c_new], axis=1)
    np.testing.assert_allclose(lstm.step(lstm.wx(x), state).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_step_graph_matches_training_path_over_many_steps(tmp_path, cell):
    """The exported step graph, fed its own state for 30 steps, gives the logits that the
    training path (whole sequence, teacher forcing) gives."""
    import onnxruntime as ort
    import torch

    from zoo.exporters.onnx import export
    from zoo.registry import load_registry

    spec = load_registry().model("char-rnn")
    config = {**TINY, "cell": cell}
    torch.manual_seed(1)
    module = spec.build(config).eval()
    report = export(spec, module, tmp_path / "m.onnx", meta={"task": spec.task, "model": spec.name})
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    seq = torch.randint(0, spec.config()["vocab_size"], (3, 30), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = module.forward_train(seq, seq).numpy()
    state = np.zeros((3, 2, module.rnn.state_size), np.float32)
    for t in range(30):
        logits, state = session.run(["logits", "state_out"], {"token": seq[:, t].numpy(), "state": state})
        np.testing.assert_allclose(logits, expected[:, t], rtol=1e-3, atol=1e-4)


def test_sampling_rules():
    rng = np.random.default_rng(0)
    logits = np.array([[0.0, 3.0, 1.0, 2.0], [5.0, 0.0, 0.0, 0.0]])
    assert sample_next(logits, 0.0, 0, rng).tolist() == [1, 0]  # temperature 0: argmax
    assert sample_next(logits, 1.0, 1, rng).tolist() == [1, 0]  # top-1: argmax
    draws = np.stack([sample_next(logits, 1.0, 2, rng) for _ in range(300)])
    assert set(draws[:, 0]) == {1, 3}  # top-2 keeps only the two likeliest
    hot = np.stack([sample_next(logits, 5.0, 0, rng) for _ in range(300)])
    assert len(set(hot[:, 0])) == 4  # a high temperature reaches every token

    def step(token, state):
        return np.tile(logits[:1], (len(token), 1)), state

    first = generate(step, np.zeros((1, 1, 1), np.float32), [[0], [1, 2]], 20, 1.0, 0, seed=7)
    again = generate(step, np.zeros((1, 1, 1), np.float32), [[0], [1, 2]], 20, 1.0, 0, seed=7)
    other = generate(step, np.zeros((1, 1, 1), np.float32), [[0], [1, 2]], 20, 1.0, 0, seed=8)
    assert first.shape == (2, 20) and (first == again).all() and not (first == other).all()


def test_bits_per_character():
    task = TextGeneration()
    uniform = np.zeros((2, 5, 8), np.float32)
    targets = np.zeros((2, 5), np.int64)
    assert task.metric(uniform, targets, {})["bpc"] == pytest.approx(3.0)
    sure = np.full((2, 5, 8), -50.0, np.float32)
    sure[..., 0] = 50.0
    assert task.metric(sure, targets, {})["bpc"] == pytest.approx(0.0, abs=1e-6)


def test_char_text_split_is_by_position():
    from zoo.plugins.text_data import CHUNK, load_char_text, pydoc_text

    splits = load_char_text()
    text = pydoc_text()
    assert all(len(s) == CHUNK + 1 for s in splits.train.inputs[:5] + splits.test.inputs[-5:])
    assert splits.test.inputs[-1] in text[int(len(text) * 0.95):]
    assert splits.train.inputs[-1] in text[: int(len(text) * 0.90)]
    assert splits.config["vocab_size"] == len(splits.info["vocab"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny char-rnn trained for two steps through the real CLI on a user text file, exported."""
    from conftest import run_zoo

    home = tmp_path_factory.mktemp("zoo-home")
    corpus = home / "corpus.txt"
    corpus.write_text("The quick brown fox jumps over the lazy dog.\n" * 200, encoding="utf-8")
    env = {"ZOO_HOME": str(home), "OMP_NUM_THREADS": "1"}
    r = run_zoo("train", "char-rnn", "--epochs", "1", "--max-steps", "2", "--data", str(corpus), *TINY_ARGS,
                "--no-progress", "--activate", env=env)
    assert r.returncode == 0, r.stderr
    assert "test_bpc" in r.stdout
    r = run_zoo("export", "char-rnn", "--data", str(corpus), env=env)
    assert r.returncode == 0, r.stderr
    assert "parity step batch 4" in r.stdout and "FAILED" not in r.stdout
    return env, home


def test_generation_through_cli_is_reproducible(trained):
    from conftest import run_zoo

    env, _ = trained
    args = ["run", "char-rnn", "--prime", "The ", "--length", "40", "--seed", "1"]
    first, again = run_zoo(*args, env=env), run_zoo(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout and first.stdout.startswith("The ")
    assert len(first.stdout.rstrip("\n")) >= 44
    other = run_zoo("run", "char-rnn", "--prime", "The ", "--length", "40", "--seed", "2", env=env)
    assert other.stdout != first.stdout
    batch = run_zoo("run", "char-rnn", "fox", "dog", "--length", "10", "--json", env=env)
    assert batch.returncode == 0, batch.stderr
    assert '"prime": "fox"' in batch.stdout and '"prime": "dog"' in batch.stdout
    greedy = run_zoo("run", "char-rnn", "--length", "10", "--temperature", "0", env=env)
    assert greedy.returncode == 0, greedy.stderr


def test_run_does_not_import_torch(trained):
    env, _ = trained
    code = ("import sys, runpy; sys.argv = ['zoo', 'run', 'char-rnn', '--prime', 'The', '--length', '5']\n"
            "try:\n    runpy.run_module('zoo', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    import os

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert r.stdout.strip().endswith("NO-TORCH"), r.stdout + r.stderr


@pytest.mark.parametrize("args, message", [
    (["--prime", "", "--length", "5"], "empty --prime"),
    (["--prime", "snow \u2603", "--length", "5"], "not in the model's vocabulary"),
    (["--prime", "The", "--length", "0"], "Invalid value for '--length': 0 is not in the range"),
    ([""], "empty text"),
])
def test_bad_input_is_one_line(trained, args, message):
    from conftest import assert_one_line_error, run_zoo

    env, _ = trained
    assert_one_line_error(run_zoo("run", "char-rnn", *args, env=env), message)


def test_non_utf8_inputs_are_one_line(trained, tmp_path):
    from conftest import run_zoo

    env, _ = trained
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9 au lait\n")
    r = run_zoo("run", "char-rnn", "--file", str(bad), env=env)
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0 and "not UTF-8" in r.stderr, r.stderr
    r = run_zoo("train", "char-rnn", "--data", str(bad), "--epochs", "1", *TINY_ARGS, env=env)
    assert r.returncode != 0 and "not UTF-8" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_bench_random_weights(tmp_path):
    from conftest import run_zoo

    r = run_zoo("bench", "char-rnn", "--random-weights", "--iters", "3", "--batch", "1", "--batch", "8",
                env={"ZOO_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert "step batch    1" in r.stdout and "step batch    8" in r.stdout and "ort-cpu" in r.stdout
    assert r.stdout.count("vs torch") == 2


@pytest.mark.slow
def test_shipped_char_rnn_generates(zoo_home):
    from conftest import run_zoo

    env = {"ZOO_HOME": str(zoo_home), "OMP_NUM_THREADS": "1"}
    r = run_zoo("export", "char-rnn", env=env)
    assert r.returncode == 0, r.stderr
    r = run_zoo("run", "char-rnn", "--prime", "The ", "--length", "200", "--seed", "1", env=env)
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert len(r.stdout) >= 204 and sum(w in ("the", "of", "is", "a", "to") for w in words) >= 3
