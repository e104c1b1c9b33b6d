"""`zoo run` output that streams and agrees: inputs from stdin, glob patterns and sub-folders;
per-result timings in JSON and a summary line; a progress line only on a terminal; char-rnn's
own name for its sampling cut-off; and a `--json` on every command, each documented."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import zoo as zoo_api
from conftest import assert_one_line_error, run_zoo
from zoo.errors import ZooError

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "zoo" / "samples"
DIGITS = sorted(SAMPLES.glob("*.png"))
SUMMARY = re.compile(r"^(\d+) inputs?, [\d.]+ ms/input: pre [\d.]+, infer [\d.]+, post [\d.]+ \(lenet5 on \w+\)$")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A user store with the exports of the shipped LeNet-5 and char-RNN weights."""
    home = tmp_path_factory.mktemp("zoo-home")
    for name in ("lenet5", "char-rnn"):
        done = run_zoo("export", name, env={"ZOO_HOME": str(home), "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, done.stderr
    return home


@pytest.fixture
def env(home) -> dict:
    return {"ZOO_HOME": str(home), "OMP_NUM_THREADS": "1"}


@pytest.fixture
def lenet(home):
    return zoo_api.load(home / "exports" / "lenet5.onnx", provider="cpu")


@pytest.fixture
def charrnn(home):
    return zoo_api.load(home / "exports" / "char-rnn.onnx", provider="cpu")


def zoo_stdin(args, data: bytes, env: dict) -> subprocess.CompletedProcess:
    """The command with ``data`` on its standard input (bytes: stdin may not be UTF-8)."""
    done = subprocess.run([sys.executable, "-m", "zoo", *map(str, args)], input=data, capture_output=True,
                          env=dict(os.environ, **env), timeout=600)
    done.stdout, done.stderr = done.stdout.decode(), done.stderr.decode()
    return done


def class_folders(root: Path, per_class: int = 2) -> Path:
    """root/3/*.png and root/7/*.png: an image folder with class sub-folders and no top-level image."""
    for digit in DIGITS:
        folder = root / digit.stem[-1]
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shutil.copy(digit, folder / f"{i}.png")
    return root


# -- inputs: stdin, patterns, sub-folders ------------------------------------------------------------
def test_a_dash_reads_one_path_a_line_from_stdin_blank_lines_skipped(env):
    lines = f"{DIGITS[0]}\n\n{DIGITS[1]}\r\n{DIGITS[0]}\n".encode()
    done = zoo_stdin(["run", "lenet5", "-", "--jsonl"], lines, env)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["input"] for r in results] == [str(DIGITS[0]), str(DIGITS[1]), str(DIGITS[0])]
    assert [r["top"][0]["label"] for r in results] == ["3", "7", "3"]


def test_stdin_lines_go_where_the_dash_stands(env):
    done = zoo_stdin(["run", "lenet5", DIGITS[1], "-", DIGITS[1], "--json"], f"{DIGITS[0]}\n".encode(), env)
    assert done.returncode == 0, done.stderr
    assert [r["top"][0]["label"] for r in json.loads(done.stdout)["results"]] == ["7", "3", "7"]


def test_a_dash_reads_one_text_a_line_for_a_text_task(env):
    done = zoo_stdin(["run", "char-rnn", "-", "--length", "5", "--json"], "The \nA b*\n".encode(), env)
    assert done.returncode == 0, done.stderr
    assert [r["prime"] for r in json.loads(done.stdout)["results"]] == ["The ", "A b*"]


@pytest.mark.parametrize("text, fragment", [(b"", "standard input held no inputs"),
                                            (b"\n  \n", "standard input held no inputs"),
                                            (b"caf\xe9\n", "standard input, line 1: not UTF-8")])
def test_empty_or_undecodable_stdin_is_a_one_line_error(env, text, fragment):
    assert_one_line_error(zoo_stdin(["run", "lenet5", "-"], text, env), fragment)


def test_a_quoted_glob_is_expanded_and_one_matching_nothing_is_an_error(env, tmp_path):
    done = run_zoo("run", "lenet5", str(SAMPLES / "digit*.png"), "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert [r["input"] for r in json.loads(done.stdout)["results"]] == [str(p) for p in DIGITS]
    assert_one_line_error(run_zoo("run", "lenet5", str(tmp_path / "*.jpg"), env=env),
                          f"{tmp_path / '*.jpg'}: no file matches this pattern")
    (tmp_path / "notes.txt").write_text("x")
    assert_one_line_error(run_zoo("run", "lenet5", str(tmp_path / "*"), env=env), "no image file matches")


def test_the_api_expands_patterns_too(lenet):
    assert [r.label for r in lenet(str(SAMPLES / "digit*.png"))] == ["3", "7"]
    with pytest.raises(ZooError, match="no file matches this pattern"):
        lenet(str(SAMPLES / "*.jpeg"))


def test_text_is_never_read_as_a_pattern(env, tmp_path):
    (tmp_path / "ab.png").write_bytes(b"")  # "a*" would match it if text were globbed
    done = run_zoo("run", "char-rnn", "a*", "--length", "3", "--json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["prime"] == "a*"


def test_recursive_reads_class_sub_folders(env, tmp_path, lenet):
    root = class_folders(tmp_path / "digits")
    assert_one_line_error(run_zoo("run", "lenet5", root, env=env), "directory holds no image files",
                          "its sub-folders hold some: add --recursive")
    done = run_zoo("run", "lenet5", root, "--recursive", "--json", env=env)
    assert done.returncode == 0, done.stderr
    found = {r["input"]: r["top"][0]["label"] for r in json.loads(done.stdout)["results"]}
    assert found == {str(root / d / f"{i}.png"): d for d in "37" for i in range(2)}
    assert [r.label for r in lenet(root, recursive=True)] == ["3", "3", "7", "7"]
    (root / "3" / ".hidden").mkdir()
    shutil.copy(DIGITS[0], root / "3" / ".hidden" / "x.png")
    assert len(lenet.run([root], recursive=True)) == 4  # hidden folders are left out


def test_recursive_is_refused_for_a_text_task(env):
    assert_one_line_error(run_zoo("run", "char-rnn", "The", "--recursive", env=env),
                          "--recursive: char-rnn (text-generation) does not read image folders")


def test_json_and_jsonl_together_and_two_dashes_are_refused(env):
    assert_one_line_error(run_zoo("run", "lenet5", DIGITS[0], "--json", "--jsonl", env=env), "exclude each other")
    assert_one_line_error(zoo_stdin(["run", "lenet5", "-", "-"], b"x\n", env), "- (standard input) may be given once")


# -- timings ---------------------------------------------------------------------------------------------
def test_each_json_result_carries_its_timings(env):
    done = run_zoo("run", "lenet5", *DIGITS, "--json", env=env)
    assert done.returncode == 0, done.stderr
    for result in json.loads(done.stdout)["results"]:
        timings = result["timings"]
        assert set(timings) == {"preprocess_ms", "inference_ms", "postprocess_ms", "batch"}
        assert timings["batch"] == 2 and timings["inference_ms"] > 0
        assert all(isinstance(timings[k], float) and timings[k] >= 0 for k in timings if k != "batch")
    lines = run_zoo("run", "lenet5", *DIGITS, "--jsonl", "--batch-size", "1", env=env).stdout.splitlines()
    assert [json.loads(line)["timings"]["batch"] for line in lines] == [1, 1]


def test_plain_output_ends_with_one_summary_line_on_stderr(env):
    done = run_zoo("run", "lenet5", *DIGITS, env=env)
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.splitlines()
    assert SUMMARY.match(line).group(1) == "2", line
    assert len(done.stdout.splitlines()) == 2 and "ms/input" not in done.stdout


def test_api_results_carry_timings_split_by_phase(lenet, charrnn):
    result = lenet(DIGITS[0])
    assert result.timings["batch"] == 1 and result.timings["inference_ms"] > 0
    assert result.to_json()["timings"] == result.timings
    generated = charrnn(prime="The ", length=20)
    # 20 sampling steps between graph calls: post-processing is measured, not left at zero
    assert generated.timings["inference_ms"] > 0 and generated.timings["postprocess_ms"] > 0


def test_the_clock_splits_a_call_around_its_graph_calls():
    from zoo.api import _Clock

    clock = _Clock()
    clock.start, clock.stop = 0.0, 6.0
    clock.opened = [(0.5, 0.7)]          # opening a session: loading, not counted
    clock.calls = [(1.0, 2.0), (3.0, 4.0)]  # two graph calls
    t = clock.per_result(2)
    assert t == pytest.approx({"preprocess_ms": 400.0, "inference_ms": 1000.0, "postprocess_ms": 1500.0, "batch": 2})


def test_a_task_called_without_inputs_streams_its_one_result(charrnn):
    results = list(charrnn.stream([], prime="The ", length=5))
    assert len(results) == 1 and results[0].text.startswith("The ")


# -- progress --------------------------------------------------------------------------------------------
class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_for_many_inputs_only():
    from zoo.cli import Progress

    many = Progress(40, Terminal())
    many.advance(40)
    many.draw(force=True)
    many.clear()
    text = many.stream.getvalue()
    assert "zoo: 0/40 inputs" in text and "zoo: 40/40 inputs" in text and text.endswith("\r\033[K")
    for progress in (Progress(3, Terminal()), Progress(40, io.StringIO()), Progress(None, io.StringIO())):
        progress.advance(3)
        progress.draw(force=True)
        progress.clear()
        assert progress.stream.getvalue() == ""
    unknown = Progress(None, Terminal())  # stdin: no total
    assert "zoo: 0 inputs" in unknown.stream.getvalue()


def test_zoo_run_shows_progress_on_a_terminal_stderr_and_never_on_stdout(env, tmp_path):
    import pty

    for i in range(20):
        shutil.copy(DIGITS[i % 2], tmp_path / f"{i:02d}.png")
    main, replica = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "zoo", "run", "lenet5", str(tmp_path), "--json"],
                              stdout=subprocess.PIPE, stderr=replica, env=dict(os.environ, **env), timeout=600)
        os.close(replica)
        replica = None
        seen = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(main)
        if replica is not None:
            os.close(replica)
    assert done.returncode == 0
    assert b"zoo: 0/20 inputs" in seen and b"\r" in seen
    assert len(json.loads(done.stdout)["results"]) == 20  # stdout holds the JSON alone
    piped = run_zoo("run", "lenet5", tmp_path, env=env)  # stderr a pipe: the summary line only
    assert piped.returncode == 0 and "\r" not in piped.stderr and len(piped.stderr.splitlines()) == 1


# -- one name, one meaning -----------------------------------------------------------------------------
def test_char_rnn_sampling_cut_off_has_its_own_name(env):
    assert_one_line_error(run_zoo("run", "char-rnn", "--prime", "The ", "--top-k", "5", env=env),
                          "--top-k: not an option of text-generation", "did you mean --sample-top-k?")
    args = ["run", "char-rnn", "--prime", "The ", "--length", "30"]
    one = run_zoo(*args, "--sample-top-k", "1", "--seed", "3", env=env)
    greedy = run_zoo(*args, "--temperature", "0", env=env)
    assert one.returncode == 0, one.stderr
    assert one.stdout == greedy.stdout  # keeping the likeliest character only is greedy decoding
    many = run_zoo(*args, "--sample-top-k", "50", "--seed", "3", env=env)
    assert many.stdout != greedy.stdout


def test_the_sampling_cut_off_is_range_checked(env):
    assert_one_line_error(run_zoo("run", "char-rnn", "--sample-top-k", "-1", env=env), "--sample-top-k")


def test_the_api_names_the_new_option_too(charrnn):
    with pytest.raises(ZooError, match="top_k: not an option of text-generation \\(did you mean sample_top_k\\?"):
        charrnn(prime="The ", top_k=5)
    assert charrnn(prime="The ", length=10, sample_top_k=1).text == charrnn(prime="The ", length=10,
                                                                          temperature=0).text


def test_top_k_still_means_classes_shown_for_classification(lenet):
    assert len(lenet(DIGITS[0], top_k=2).top) == 2


# -- --json everywhere ---------------------------------------------------------------------------------
def _leaf_commands():
    from zoo.cli import cli

    for name, command in cli.commands.items():
        if name == "faces":  # zoo.faces has its own commands
            continue
        if hasattr(command, "commands"):
            yield from ((f"{name} {sub}", c) for sub, c in command.commands.items())
        else:
            yield name, command


def test_every_command_has_json_and_a_documented_schema():
    doc = (ROOT / "docs" / "cli-json.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## `zoo ([a-z ]+)", doc, re.M))
    for name, command in _leaf_commands():
        assert "--json" in {opt for p in command.params for opt in getattr(p, "opts", [])}, name
        assert name in headings, f"docs/cli-json.md has no section for zoo {name}"
    assert "cli-json.md" in (ROOT / "docs" / "python.md").read_text(encoding="utf-8")


def test_export_json_holds_the_report_alone_on_stdout(tmp_path):
    env = {"ZOO_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = run_zoo("export", "lenet5", "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["model"] == "lenet5" and report["path"] == str(tmp_path / "exports" / "lenet5.onnx")
    assert all(p["ok"] for p in report["parity"]) and report["exporters"]["model"]["seconds"] > 0
    assert isinstance(report["parity"][0]["max_abs"], float)


def test_weights_commands_in_json(tmp_path):
    env = {"ZOO_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    shipped = ROOT / "weights" / "lenet5" / "model.safetensors"
    imported = run_zoo("weights", "import", "lenet5", shipped, "--tag", "mine", "--no-activate", "--json", env=env)
    assert imported.returncode == 0, imported.stderr
    entry = json.loads(imported.stdout)
    assert entry["ref"] == "lenet5@mine" and entry["active"] is False and len(entry["sha256"]) == 64
    listed = {r["ref"]: r for r in json.loads(run_zoo("weights", "list", "lenet5", "--json", env=env).stdout)}
    assert set(listed) == {"lenet5@shipped", "lenet5@mine"} and listed["lenet5@shipped"]["active"]
    used = json.loads(run_zoo("weights", "use", "lenet5@mine", "--json", env=env).stdout)
    assert used["ref"] == "lenet5@mine" and used["active"] is True
    run_zoo("weights", "use", "lenet5@shipped", env=env)
    checked = json.loads(run_zoo("weights", "verify", "lenet5", "--json", env=env).stdout)
    assert {r["ref"] for r in checked if r["kind"] == "weights"} == set(listed) and all(r["ok"] for r in checked)
    removed = json.loads(run_zoo("weights", "remove", "lenet5@mine", "--json", env=env).stdout)
    assert removed["ref"] == "lenet5@mine" and removed["removed"] is True
    assert_one_line_error(run_zoo("weights", "remove", "lenet5@mine", "--json", env=env), "lenet5@mine")


def test_a_failed_verification_prints_its_json_then_fails(tmp_path):
    env = {"ZOO_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    assert run_zoo("export", "lenet5", env=env).returncode == 0
    artifact = tmp_path / "exports" / "lenet5.onnx"
    data = bytearray(artifact.read_bytes())
    data[-1] ^= 0xFF
    artifact.write_bytes(bytes(data))
    done = run_zoo("weights", "verify", "lenet5", "--json", env=env)
    assert done.returncode != 0 and done.stderr.startswith("zoo: error: 0 weights file(s) and 1 artifact(s)")
    bad = [r for r in json.loads(done.stdout) if not r["ok"]]
    assert len(bad) == 1 and bad[0]["kind"] == "artifact" and bad[0]["error"]


def test_train_and_bench_json(tmp_path):
    env = {"ZOO_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    trained = run_zoo("train", "lenet5", "--dataset", "digits", "--epochs", "1", "--max-steps", "1", "--tag", "quick",
                      "--no-progress", "--json", env=env)
    assert trained.returncode == 0, trained.stderr
    report = json.loads(trained.stdout)
    assert report["weights"]["ref"] == "lenet5@quick" and isinstance(report["metrics"]["test_accuracy"], float)
    assert report["activated"] is False and report["decision"]["previous"] == "lenet5@shipped"
    bench = run_zoo("bench", "lenet5", "--random-weights", "--iters", "2", "--batch", "1", "--json", env=env)
    assert bench.returncode == 0, bench.stderr
    measured = json.loads(bench.stdout)
    assert measured["iters"] == 2 and measured["results"][0]["batch"] == 1
    assert measured["results"][0]["ort_cpu_ms"] > 0 and "machine" in measured


# -- zoo list ----------------------------------------------------------------------------------------------
def test_list_sorts_names_naturally_and_matches_substrings():
    assert [r["name"] for r in zoo_api.list_models("resnet1")] == ["resnet18", "resnet101", "resnet152"]
    assert [r["name"] for r in zoo_api.list_models("net1")] == ["resnet18", "resnet101", "resnet152"]


def test_export_stages_are_announced_on_a_terminal_only(tmp_path, monkeypatch, capsys):
    from zoo.exporters import onnx as exporter

    exporter.progress("lenet5/model: exporting")
    assert capsys.readouterr().err == ""  # not a terminal: the report alone
    monkeypatch.setattr(exporter.sys.stderr, "isatty", lambda: True)
    exporter.progress("lenet5/model: exporting")
    assert capsys.readouterr().err == "... lenet5/model: exporting\n"
