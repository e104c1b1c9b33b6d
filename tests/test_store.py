"""The weights store never loses a user's work: entries keyed by tag, one active, a training
run that is worse than the active weights does not displace them, installs are one transaction
under a lock, a broken manifest breaks only its own entry, and --resume is exact."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import digits_in_mnist_layout

from conftest import assert_one_line_error as one_line_error

SAMPLES = Path(__file__).resolve().parent.parent / "zoo" / "samples"


def _quick(tag=None, epochs=1, steps=2, **kw):
    from zoo.engine import TrainOptions

    return TrainOptions(epochs=epochs, max_steps=steps, progress=False, tag=tag, **kw)


def _fake_weights(tmp_path: Path, content: bytes = b"weights") -> Path:
    path = tmp_path / "w.safetensors"
    path.write_bytes(content)
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory, zoo):
    """A store where a 2-step training run was installed beside the shipped lenet5."""
    home = tmp_path_factory.mktemp("store-home")
    env = {"ZOO_HOME": str(home)}
    data = digits_in_mnist_layout(home / "mnist")  # the shipped weights' dataset, so the dev figures compare
    result = zoo("train", "lenet5", "--dataset", "mnist", "--data", data, "--epochs", "1", "--max-steps", "2",
                 "--no-progress", "--tag", "quick", env=env)
    assert result.returncode == 0, result.stderr
    return home, env, result


def test_a_run_on_another_dataset_is_not_compared_and_stays_inactive(tmp_path, zoo):
    result = zoo("train", "lenet5", "--epochs", "1", "--max-steps", "1", "--no-progress", "--tag", "other",
                 env={"ZOO_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "not active: lenet5@shipped stays active" in result.stdout
    assert "has no dev_accuracy on digits to compare with" in result.stdout


def test_a_worse_training_run_is_stored_but_does_not_displace_the_shipped_weights(home, zoo):
    home, env, result = home
    assert "not active: lenet5@shipped stays active" in result.stdout and "does not beat" in result.stdout
    assert (home / "weights" / "lenet5" / "quick" / "model.safetensors").is_file()
    assert (home / "runs" / "lenet5" / "quick" / "checkpoint" / "state.json").is_file()
    rows = json.loads(zoo("weights", "list", "lenet5", "--json", env=env).stdout)
    assert {(r["tag"], r["active"]) for r in rows} == {("quick", False), ("shipped", True)}
    info = json.loads(zoo("info", "lenet5@quick", "--json", env=env).stdout)
    assert info["weights"]["tag"] == "quick" and info["weights"]["active"] is False


def test_export_and_run_with_a_tag_use_that_entry_and_random_weights_never_shadow(home, zoo, monkeypatch):
    from zoo.modelio import export_model

    home, env, _ = home
    monkeypatch.setenv("ZOO_HOME", str(home))
    export_model("lenet5")
    real = (home / "exports" / "lenet5.onnx").read_bytes()
    random = export_model("lenet5", random_weights=True)
    assert random.path == home / "exports" / "lenet5@random.onnx" and random.path.is_file()
    assert (home / "exports" / "lenet5.onnx").read_bytes() == real  # the real artifact is untouched
    ran = zoo("run", "lenet5", SAMPLES / "digit7.png", "--json", env=env)
    assert json.loads(ran.stdout)["results"][0]["top"][0]["label"] == "7", ran.stderr
    assert zoo("run", "lenet5@random", SAMPLES / "digit7.png", env=env).returncode == 0
    one_line_error(zoo("run", "lenet5@quick", SAMPLES / "digit7.png", env=env), "zoo export lenet5@quick")
    export_model("lenet5@quick")
    from zoo.runtime.artifact import open_artifact

    meta = open_artifact(home / "exports" / "lenet5@quick.onnx", "cpu").meta
    assert meta["weights_tag"] == "quick"
    one_line_error(zoo("export", "lenet5@nosuch", env=env), "no weights lenet5@nosuch", "quick", "shipped")


def test_use_switches_the_active_entry_and_run_warns_that_the_export_is_stale(home, zoo, monkeypatch):
    home, env, _ = home
    if not (home / "exports" / "lenet5.onnx").exists():
        from zoo.modelio import export_model

        monkeypatch.setenv("ZOO_HOME", str(home))
        export_model("lenet5")
    used = zoo("weights", "use", "lenet5@quick", env=env)
    assert used.returncode == 0 and "active: lenet5@quick" in used.stdout, used.stderr
    try:
        ran = zoo("run", "lenet5", SAMPLES / "digit7.png", env=env)
        assert ran.returncode == 0
        assert "zoo: warning:" in ran.stderr and "exported from lenet5@shipped" in ran.stderr
        assert "lenet5@quick" in ran.stderr
    finally:
        assert zoo("weights", "use", "lenet5@shipped", env=env).returncode == 0
    assert "warning" not in zoo("run", "lenet5", SAMPLES / "digit7.png", env=env).stderr


def test_remove_refuses_the_active_and_shipped_entries(home, zoo):
    _, env, _ = home
    one_line_error(zoo("weights", "remove", "lenet5@shipped", env=env), "read-only")
    one_line_error(zoo("weights", "remove", "lenet5", env=env), "NAME@TAG")
    one_line_error(zoo("weights", "remove", "lenet5@nope", env=env), "no weights lenet5@nope")


def test_activate_flag_and_remove(tmp_path, monkeypatch):
    from zoo import store
    from zoo.engine import train

    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    result = train("lenet5", _quick("forced", activate=True))
    assert result.decision.activated and store.find("lenet5").tag == "forced"
    from zoo.errors import ZooError

    with pytest.raises(ZooError, match="active entry"):
        store.remove("lenet5@forced")
    store.use("lenet5@shipped")
    store.remove("lenet5@forced")
    assert [e.tag for e in store.model_entries("lenet5")] == ["shipped"]
    store.install("lenet5", _fake_weights(tmp_path), {}, tag="x", activate=False)
    with pytest.raises(ZooError, match="already installed"):  # a tag is never reused silently
        train("lenet5", _quick("x"))
    with pytest.raises(ZooError, match="exists"):
        store.install("lenet5", _fake_weights(tmp_path), {}, tag="x")


def test_a_run_that_beats_the_active_entry_becomes_active(tmp_path, monkeypatch):
    from zoo import store

    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    store.install("lenet5", _fake_weights(tmp_path), {"dataset": "digits", "metrics": {"dev_accuracy": 0.5}},
                  tag="base")
    better = store.should_activate("lenet5", {"dev_accuracy": 0.6}, "accuracy", True, "digits")
    worse = store.should_activate("lenet5", {"dev_accuracy": 0.4}, "accuracy", True, "digits")
    other = store.should_activate("lenet5", {"dev_accuracy": 0.9}, "accuracy", True, "my-folder")
    assert better.activated and not worse.activated and not other.activated
    lower = store.should_activate("lenet5", {"dev_accuracy": 0.4}, "accuracy", False, "digits")
    assert lower.activated  # for a metric where lower is better


def test_install_is_one_transaction_a_crash_leaves_the_previous_entry(tmp_path, zoo, monkeypatch):
    import torch

    from zoo import store
    from zoo.modelio import import_weights
    from zoo.registry import load_registry

    module = load_registry().model("lenet5").build()
    state = tmp_path / "lenet.pth"
    torch.save(module.state_dict(), state)
    home = tmp_path / "home"
    env = {"ZOO_HOME": str(home)}
    monkeypatch.setenv("ZOO_HOME", str(home))
    import_weights("lenet5", str(state), tag="first")
    before = (home / "weights" / "lenet5" / "first" / "model.safetensors").read_bytes()
    for point in ("install-copied", "install-staged"):
        crashed = zoo("weights", "import", "lenet5", state, "--tag", "second", env={**env, "ZOO_CRASH_AT": point})
        assert crashed.returncode == 99, crashed.stderr
        assert not (home / "weights" / "lenet5" / "second").exists()
        assert (home / "weights" / "lenet5" / "active").read_text().strip() == "first"
        assert (home / "weights" / "lenet5" / "first" / "model.safetensors").read_bytes() == before
    assert [e.tag for e in store.model_entries("lenet5")] == ["first", "shipped"]
    crashed = zoo("weights", "import", "lenet5", state, "--tag", "second", env={**env, "ZOO_CRASH_AT": "install-renamed"})
    assert crashed.returncode == 99  # the whole entry is there, not yet active
    assert store.find("lenet5").tag == "first"
    store.find("lenet5@second").verify()
    import_weights("lenet5", str(state), tag="third")
    assert not [p for p in (home / "weights" / "lenet5").iterdir() if p.name.startswith(".new-")]  # swept


def test_the_lock_serialises_writers_and_a_dead_holder_is_taken_over(tmp_path, monkeypatch):
    from zoo import store
    from zoo.errors import ZooError

    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    folder = tmp_path / "weights" / "lenet5"
    folder.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / ".lock").write_text(str(sleeper.pid))
        monkeypatch.setattr(store, "LOCK_WAIT_S", 0.3)
        with pytest.raises(ZooError, match=f"another zoo process \\(pid {sleeper.pid}\\)"):
            store.install("lenet5", _fake_weights(tmp_path), {}, tag="a")
    finally:
        sleeper.kill()
        sleeper.wait()
    (folder / ".lock").write_text(str(sleeper.pid))  # its holder is gone now
    entry = store.install("lenet5", _fake_weights(tmp_path), {}, tag="a")
    assert entry.file.read_bytes() == b"weights" and not (folder / ".lock").exists()
    assert store.find("lenet5").tag == "a"  # the first user entry becomes active


def test_a_corrupt_manifest_breaks_only_its_own_entry(tmp_path, zoo):
    from zoo import store

    env = {"ZOO_HOME": str(tmp_path)}
    broken = tmp_path / "weights" / "lenet5" / "bad"
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"x")
    junk = tmp_path / "weights" / "yolo-nano" / "junk"
    junk.mkdir(parents=True)
    (junk / "manifest.json").write_text(json.dumps({"preprocessing": {"size": [1e6, 1e6]}}))
    (tmp_path / "weights" / "yolo-nano" / "active").write_text("junk\n")
    listed = zoo("list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("yolo-nano") and "broken" in line for line in listed.stdout.splitlines())
    assert any(line.startswith("lenet5") and "shipped" in line for line in listed.stdout.splitlines())
    weights = zoo("weights", "list", env=env)
    assert weights.returncode == 0 and "lenet5@bad" in weights.stdout and "BROKEN" in weights.stdout
    assert "lenet5@shipped" in weights.stdout and "char-rnn@shipped" in weights.stdout
    verify = zoo("weights", "verify", env=env)
    assert verify.returncode != 0
    assert "FAILED  lenet5@bad" in verify.stdout and "ok      lenet5@shipped" in verify.stdout
    assert "ok      char-rnn@shipped" in verify.stdout
    one_line_error(zoo("export", "yolo-nano", env=env), "yolo-nano@junk is broken")
    assert zoo("weights", "use", "yolo-nano@shipped", env=env).returncode == 0
    assert store is not None


def test_epoch_order_depends_on_seed_and_epoch_only():
    from zoo.engine import epoch_order

    assert np.array_equal(epoch_order(100, 3, 2), epoch_order(100, 3, 2))
    assert not np.array_equal(epoch_order(100, 3, 2), epoch_order(100, 3, 3))
    assert sorted(epoch_order(100, 3, 2)) == list(range(100))


def test_resume_gives_exactly_the_weights_of_the_uninterrupted_run(tmp_path, monkeypatch):
    """Two epochs in one go and one epoch plus a resumed second end in identical weights: the
    data order, augmentation and dropout draws of epoch 2 do not depend on where the run began."""
    from safetensors.numpy import load_file

    from zoo.engine import train

    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    train("lenet5", _quick("whole", epochs=2, steps=3))
    train("lenet5", _quick("split", epochs=1, steps=3))
    resumed = train("lenet5", _quick("split", epochs=2, steps=3, resume=True))
    runs = tmp_path / "runs" / "lenet5"
    whole = load_file(str(runs / "whole" / "checkpoint" / "last.safetensors"))
    split = load_file(str(runs / "split" / "checkpoint" / "last.safetensors"))
    assert whole.keys() == split.keys() and all(np.array_equal(whole[k], split[k]) for k in whole)
    assert resumed.entry.tag == "split-2"  # the finished run's entry is kept, the longer one stored beside it
    state = json.loads((runs / "split" / "checkpoint" / "state.json").read_text())
    assert [h["epoch"] for h in state["history"]] == [1, 2]


@pytest.mark.slow
def test_a_crash_while_checkpointing_keeps_a_checkpoint_to_resume_from(tmp_path, zoo, monkeypatch):
    from zoo.engine import train

    env = {"ZOO_HOME": str(tmp_path)}
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    train("lenet5", _quick("c"))
    for point in ("checkpoint-staged", "checkpoint-swapping"):
        crashed = zoo("train", "lenet5", "--epochs", "2", "--max-steps", "2", "--no-progress", "--tag", "c",
                      "--resume", env={**env, "ZOO_CRASH_AT": point})
        assert crashed.returncode == 99, crashed.stderr
    resumed = train("lenet5", _quick("c", epochs=2, resume=True))
    assert [h["epoch"] for h in json.loads((resumed.run_dir / "checkpoint" / "state.json").read_text())["history"]] \
        == [1, 2]


def test_bad_tags_are_one_line_errors(tmp_path, zoo):
    env = {"ZOO_HOME": str(tmp_path)}
    one_line_error(zoo("info", "lenet5@../x", env=env), "tag")
    one_line_error(zoo("train", "lenet5", "--tag", "shipped", "--epochs", "1", env=env), "tag 'shipped'")
    one_line_error(zoo("weights", "use", "lenet5@nothing", env=env), "no weights lenet5@nothing")


def test_a_store_of_the_pre_tag_layout_keeps_working(tmp_path, monkeypatch):
    """weights/NAME/manifest.json (no tag folders) is the entry NAME@legacy, still the active one."""
    from zoo import store

    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    old = tmp_path / "weights" / "lenet5"
    old.mkdir(parents=True)
    (old / "model.safetensors").write_bytes(b"old weights")
    (old / "manifest.json").write_text(json.dumps({"model": "lenet5", "sha256": store.sha256_file(
        old / "model.safetensors"), "metrics": {"dev_accuracy": 0.5}, "dataset": "digits"}))
    entry = store.find("lenet5")
    assert entry.tag == "legacy" and entry.active and not entry.shipped
    entry.verify()
    new = store.install("lenet5", _fake_weights(tmp_path), {}, tag="new", activate=False)
    assert not new.active and store.find("lenet5").tag == "legacy"
    store.use("lenet5@new")
    store.remove("lenet5@legacy")
    assert not (old / "manifest.json").exists() and store.find("lenet5").tag == "new"


@pytest.mark.slow
def test_a_training_run_killed_while_installing_leaves_the_store_as_it_was(tmp_path, zoo, monkeypatch):
    """Killed between staging its entry and the rename: no half entry, the active one untouched,
    and --resume of the finished run installs it."""
    from zoo import store
    from zoo.engine import train

    env = {"ZOO_HOME": str(tmp_path), "ZOO_CRASH_AT": "install-staged"}
    crashed = zoo("train", "lenet5", "--epochs", "1", "--max-steps", "2", "--no-progress", "--tag", "k",
                  "--activate", env=env)
    assert crashed.returncode == 99, crashed.stderr
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    assert [e.tag for e in store.model_entries("lenet5")] == ["shipped"] and store.find("lenet5").tag == "shipped"
    finished = train("lenet5", _quick("k", resume=True, activate=True))
    assert finished.entry.tag == "k" and store.find("lenet5").tag == "k"
    assert not [p for p in (tmp_path / "weights" / "lenet5").iterdir() if p.name.startswith(".new-")]


def test_two_processes_never_train_into_one_run_folder(tmp_path, monkeypatch):
    from zoo import store
    from zoo.engine import train
    from zoo.errors import ZooError

    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    run = tmp_path / "runs" / "lenet5" / "same"
    run.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".running").write_text(str(sleeper.pid))
        with pytest.raises(ZooError, match=f"being trained by another zoo process \\(pid {sleeper.pid}\\)"):
            train("lenet5", _quick("same"))
    finally:
        sleeper.kill()
        sleeper.wait()
    assert store.find("lenet5@same") is None
