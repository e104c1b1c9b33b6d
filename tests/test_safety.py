"""Nothing zoo did not write is replaced, and no file is trusted: export destinations, --save
targets, hostile artifacts (external data and graph paths out of the folder, FIFOs, metadata
out of bounds, huge files) and hostile weights files each end in one line of zoo's own words,
with nothing outside the test's folder read or written."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error as one_line_error

SAMPLES = Path(__file__).resolve().parent.parent / "zoo" / "samples"


# -- a tiny hand-built artifact ----------------------------------------------------------------
def _meta(**changes):
    meta = {"task": "image-classification", "model": "tiny", "format": 1, "labels": ["a", "b", "c"],
            "preprocessing": {"mode": "L", "size": [4, 4], "mean": [0.0], "std": [1.0]},
            "config": {"num_classes": 3}}
    for key, value in changes.items():
        if key == "preprocessing":
            meta["preprocessing"] = {**meta["preprocessing"], **value}
        else:
            meta[key] = value
    return meta


def _tiny_model(meta=None, external: dict | None = None):
    """(N, 1, 4, 4) -> Flatten -> MatMul W (16, 3) -> logits; W inline or with the given
    external-data entries."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(48, dtype=np.float32).reshape(16, 3) / 48, "W")
    if external is not None:
        weight.ClearField("raw_data")
        weight.data_location = TensorProto.EXTERNAL
        for key, value in external.items():
            weight.external_data.add(key=key, value=str(value))
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("MatMul", ["flat", "W"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    if meta is not None:
        model.metadata_props.add(key="zoo", value=json.dumps(meta))
    return model


def _write(model, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())  # as is: onnx.save would rewrite external data
    return path


def _weights_bytes() -> bytes:
    return (np.arange(48, dtype=np.float32).reshape(16, 3) / 48).tobytes()


@pytest.fixture
def no_session(monkeypatch):
    """Fail if onnxruntime is ever handed the file: zoo's own checks must come first."""
    import zoo.runtime.artifact as artifact

    def refuse(*args, **kwargs):
        raise AssertionError("onnxruntime was asked to open a hostile file")

    monkeypatch.setattr(artifact, "create_session", refuse)


@pytest.fixture
def digit(tmp_path):
    from PIL import Image

    path = tmp_path / "digit.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    return path


# -- 3. external data and graph paths ------------------------------------------------------------
@pytest.mark.parametrize("case", ["parent", "absolute", "symlink-out", "fifo", "past-the-end"])
def test_external_data_is_checked_by_zoo_before_onnxruntime_sees_it(tmp_path, no_session, case):
    from zoo.errors import ZooError
    from zoo.runtime.artifact import open_artifact

    secret = tmp_path / "secret.bin"
    secret.write_bytes(_weights_bytes())
    folder = tmp_path / "artifact"
    folder.mkdir()
    location = {"parent": "../secret.bin", "absolute": str(secret)}.get(case, "w.bin")
    if case == "symlink-out":
        (folder / "w.bin").symlink_to(secret)
    elif case == "fifo":
        os.mkfifo(folder / "w.bin")
    elif case == "past-the-end":
        (folder / "w.bin").write_bytes(b"\0" * 8)
    path = _write(_tiny_model(_meta(), {"location": location, "offset": 0, "length": 192}), folder / "m.onnx")
    with pytest.raises(ZooError, match="external data|not a plain file") as caught:
        open_artifact(path, "cpu")
    assert "\n" not in str(caught.value)


def test_external_data_inside_the_folder_still_runs(tmp_path, zoo, digit):
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "w.bin").write_bytes(_weights_bytes())
    path = _write(_tiny_model(_meta(), {"location": "w.bin", "offset": 0, "length": 192}), folder / "m.onnx")
    result = zoo("run", path, digit, "--json", env={"ZOO_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["results"][0]["top"][0]["label"] in ("a", "b", "c")


def test_the_cli_refuses_external_data_outside_in_one_line(tmp_path, zoo, digit):
    (tmp_path / "secret.bin").write_bytes(_weights_bytes())
    path = _write(_tiny_model(_meta(), {"location": "../secret.bin", "length": 192}), tmp_path / "a" / "m.onnx")
    one_line_error(zoo("run", path, digit, env={"ZOO_HOME": str(tmp_path / "home")}), "external data", "refused")


@pytest.mark.parametrize("graph", ["../outside.onnx", "/tmp/outside.onnx", "sub/model.onnx", "link.onnx",
                                   "fifo.onnx", ".hidden.onnx"])
def test_zoo_json_names_only_plain_files_inside_the_folder(tmp_path, graph, no_session):
    from zoo.errors import ZooError
    from zoo.runtime.artifact import open_artifact

    outside = _write(_tiny_model(_meta()), tmp_path / "outside.onnx")
    folder = tmp_path / "artifact"
    (folder / "sub").mkdir(parents=True)
    _write(_tiny_model(_meta()), folder / "sub" / "model.onnx")
    (folder / "link.onnx").symlink_to(outside)
    os.mkfifo(folder / "fifo.onnx")
    (folder / "zoo.json").write_text(json.dumps(_meta(graphs={"encoder": graph})))
    with pytest.raises(ZooError, match="graph") as caught:
        open_artifact(folder, "cpu")  # a FIFO is never opened, so this cannot hang
    assert "\n" not in str(caught.value)


# -- 3. metadata against the typed schema -------------------------------------------------------------
@pytest.mark.parametrize("changes,fragment", [
    ({"preprocessing": {"size": [1000000, 1000000]}}, "preprocessing.size"),
    ({"preprocessing": {"size": [0, 4]}}, "preprocessing.size"),
    ({"preprocessing": {"std": [0.0]}}, "std"),
    ({"preprocessing": {"mean": [float("nan")]}}, "finite"),
    ({"preprocessing": {"resize": -3}}, "resize"),
    ({"preprocessing": {"digit": {"canvas": 32, "box": 0}}}, "digit.box"),
    ({"preprocessing": {"mode": "EVIL"}}, "mode"),
    ({"labels": ["a", 1, "c"]}, "labels"),
    ({"labels": "abc"}, "labels"),
    ({"labels": ["a", "b", "c", "d", "e"]}, "5 labels for 3 classes"),
    ({"config": {"num_classes": 3, "input_size": 10 ** 6}}, "input_size"),
    ({"config": {"num_classes": 3, "max_src_len": -1}}, "max_src_len"),
    ({"config": {"num_classes": 3, "input_size": 100, "strides": [32]}}, "multiple"),
    ({"format": 99}, "newer"),
    ({"vocab": [[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]}, "nests deeper"),
])
def test_metadata_out_of_bounds_is_refused_before_anything_is_allocated(tmp_path, no_session, changes, fragment):
    from zoo.errors import ZooError
    from zoo.runtime.artifact import open_artifact

    path = _write(_tiny_model(_meta(**changes)), tmp_path / "m.onnx")
    with pytest.raises(ZooError, match=fragment):
        open_artifact(path, "cpu")


def test_task_specific_keys_travel_through_the_schema_untouched():
    from zoo.runtime.meta import ArtifactMeta

    meta = _meta(vocab=["<pad>", "a", "b"], thresholds=[0.6, 0.7, 0.7], graphs={"pnet": "pnet.onnx"},
                 preprocessing={"scale": 0.0078125, "resize": "area"})
    typed = ArtifactMeta.from_dict(meta)
    out = typed.to_dict()
    assert out["vocab"] == ["<pad>", "a", "b"] and out["thresholds"] == [0.6, 0.7, 0.7]
    assert out["preprocessing"]["scale"] == 0.0078125 and out["preprocessing"]["resize"] == "area"
    assert ArtifactMeta.from_dict(out) == typed


def test_a_bad_size_is_one_line_from_the_cli(tmp_path, zoo, digit):
    path = _write(_tiny_model(_meta(preprocessing={"size": [1000000, 1000000]})), tmp_path / "m.onnx")
    one_line_error(zoo("run", path, digit, env={"ZOO_HOME": str(tmp_path / "home")}), "preprocessing.size")


def test_sniffing_a_huge_file_reads_only_its_head(tmp_path, zoo, digit):
    """A 10 GB sparse file: refused in one line, with the process staying small."""
    huge = tmp_path / "huge.onnx"
    with open(huge, "wb") as fh:
        fh.write(b"\x08\x07")
        fh.truncate(10 << 30)
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(r.returncode); "
            "sys.stderr.write(r.stderr)")
    probe = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "zoo", "run", str(huge), str(digit)],
                           capture_output=True, text=True, env=dict(os.environ, ZOO_HOME=str(tmp_path / "h")),
                           timeout=300)
    max_kb, rc = map(int, probe.stdout.split())
    assert rc != 0 and probe.stderr.startswith("zoo: error:") and len(probe.stderr.strip().splitlines()) == 1
    assert max_kb < 600_000, max_kb  # far below the file's 10 GB


# -- an exported lenet5 shared by the tests below ----------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    home = tmp_path_factory.mktemp("safety-home")
    old = os.environ.get("ZOO_HOME")
    os.environ["ZOO_HOME"] = str(home)
    try:
        from zoo.modelio import export_model

        export_model("lenet5")
    finally:
        if old is None:
            os.environ.pop("ZOO_HOME")
        else:
            os.environ["ZOO_HOME"] = old
    return home


def test_weights_verify_catches_a_tampered_artifact(exported, tmp_path, zoo):
    home = tmp_path / "home"
    shutil.copytree(exported, home)
    env = {"ZOO_HOME": str(home)}
    clean = zoo("weights", "verify", "lenet5", env=env)
    assert clean.returncode == 0 and "ok      artifact" in clean.stdout, clean.stdout + clean.stderr
    path = home / "exports" / "lenet5.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one weight changed: the file still loads and runs
    path.write_bytes(bytes(data))
    tampered = zoo("weights", "verify", "lenet5", env=env)
    assert tampered.returncode != 0 and "FAILED  artifact" in tampered.stdout and "modified since export" in \
        tampered.stdout


# -- 2. destinations ---------------------------------------------------------------------------------
def test_export_refuses_to_replace_a_users_file_unless_forced(exported, tmp_path, monkeypatch, zoo):
    from zoo.errors import ZooError
    from zoo.modelio import export_model

    monkeypatch.setenv("ZOO_HOME", str(exported))
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    one_line_error(zoo("export", "lenet5", "--out", notes, env={"ZOO_HOME": str(exported)}), "not an artifact zoo wrote",
                   "--force")
    assert notes.read_text() == "my notes"
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "lenet5.onnx").write_bytes(b"\x08\x07 my own model")
    with pytest.raises(ZooError, match="not an artifact zoo wrote"):
        export_model("lenet5", out=str(folder))
    assert (folder / "lenet5.onnx").read_bytes() == b"\x08\x07 my own model"
    report = export_model("lenet5", out=str(folder / "lenet5.onnx"), force=True)
    assert report.path.stat().st_size > 100_000
    again = export_model("lenet5", out=str(folder))  # zoo's own artifact is replaced without --force
    assert again.path == folder / "lenet5.onnx"


def test_triton_export_never_deletes_a_users_files(exported, tmp_path, monkeypatch):
    from zoo.errors import ZooError
    from zoo.modelio import export_model

    monkeypatch.setenv("ZOO_HOME", str(exported))
    repo = tmp_path / "repo"
    (repo / "lenet5" / "mystuff").mkdir(parents=True)
    (repo / "lenet5" / "mystuff" / "thesis.txt").write_text("four years of work")
    with pytest.raises(ZooError, match="zoo did not write"):
        export_model("lenet5", "triton", out=str(repo))
    assert (repo / "lenet5" / "mystuff" / "thesis.txt").read_text() == "four years of work"
    other = tmp_path / "repo2"
    export_model("lenet5", "triton", out=str(other))
    export_model("lenet5", "triton", out=str(other))  # its own entry is replaced
    assert sorted(p.name for p in (other / "lenet5").iterdir()) == ["1", "config.pbtxt", "labels.txt"]
    assert sorted(p.name for p in other.iterdir()) == ["lenet5"]


def test_a_folder_artifact_never_replaces_a_users_folder(tmp_path, monkeypatch):
    from zoo.errors import ZooError
    from zoo.modelio import export_model

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    photos = tmp_path / "dest" / "seq2seq-dates" / "photos"
    photos.mkdir(parents=True)
    (photos / "cat.jpg").write_bytes(b"a cat")
    with pytest.raises(ZooError, match="folder zoo did not write"):
        export_model("seq2seq-dates", out=str(tmp_path / "dest"))
    assert (photos / "cat.jpg").read_bytes() == b"a cat"


def test_stale_export_temporaries_are_swept(exported, tmp_path, monkeypatch):
    from zoo.modelio import export_model

    monkeypatch.setenv("ZOO_HOME", str(exported))
    out = tmp_path / "out"
    old, fresh = out / ".zoo-export-old", out / ".zoo-export-fresh"
    for folder in (old, fresh):
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(b"x" * 1000)
    past = time.time() - 2 * 3600
    os.utime(old, (past, past))
    export_model("lenet5", out=str(out / "lenet5.onnx"))
    assert not old.exists() and fresh.exists()  # a concurrent export keeps its own


def test_save_targets_never_overwrite_inputs_and_stay_unique(tmp_path, monkeypatch):
    from zoo.errors import ZooError
    from zoo.runtime.images import SaveTargets

    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos"
    (photos / "a").mkdir(parents=True)
    (photos / "b").mkdir()
    cat = photos / "cat.jpg"
    cat.write_bytes(b"photo")
    xa, xb = photos / "a" / "x.png", photos / "b" / "x.png"
    xa.write_bytes(b"1")
    xb.write_bytes(b"2")
    targets = SaveTargets([cat, xa, xb], None, str(photos))
    got = [targets.target(p) for p in (cat, xa, xb)]
    assert got[0] != cat and got[0].name == "cat-1.jpg"
    assert got[1] != got[2] and {got[1].name, got[2].name} == {"x.jpg", "x-1.jpg"}
    with pytest.raises(ZooError, match="one of the inputs"):
        SaveTargets([cat], str(cat), None)
    with pytest.raises(ZooError, match="does not exist"):
        SaveTargets([cat], "/nonexistent-zoo-dir/sub/x.png", None)
    assert not Path("/nonexistent-zoo-dir").exists()
    made = SaveTargets([cat], None, "out/drawn")  # inside the current directory: created when needed
    assert made.target(cat) == Path("out/drawn/cat.jpg") and (tmp_path / "out" / "drawn").is_dir()
    beside = SaveTargets([cat], None, str(photos / "drawn"))  # one new folder in an existing one
    assert beside.target(cat) == photos / "drawn" / "cat.jpg"
    with pytest.raises(ZooError, match="exclude each other"):
        SaveTargets([cat], "a.jpg", "out")


# -- 4. weights import -------------------------------------------------------------------------------
def test_a_weights_file_larger_than_the_model_could_need_is_refused_unread(tmp_path, monkeypatch, zoo):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    for name in ("huge.pth", "huge.safetensors"):
        huge = tmp_path / name
        with open(huge, "wb") as fh:
            fh.truncate(20 << 30)  # sparse: costs nothing unless read
        started = time.perf_counter()
        from zoo.errors import ZooError
        from zoo.modelio import import_weights

        with pytest.raises(ZooError, match="more than lenet5 could need.*refused unread"):
            import_weights("lenet5", str(huge))
        assert time.perf_counter() - started < 60
    darknet = tmp_path / "huge.weights"
    with open(darknet, "wb") as fh:
        fh.truncate(20 << 30)
    one_line_error(zoo("weights", "import", "yolo-nano", darknet, env={"ZOO_HOME": str(tmp_path / "home")}),
                   "more than yolo-nano could need")


def test_a_zip_bomb_pth_is_refused_from_its_directory(tmp_path, monkeypatch):
    import zipfile

    from zoo.errors import ZooError
    from zoo.modelio import import_weights

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("archive/data/0", "w", force_zip64=True) as entry:
            block = b"\0" * (1 << 20)
            for _ in range(400):  # 400 MB of zeros in about 400 kB
                entry.write(block)
    assert bomb.stat().st_size < 2 << 20
    with pytest.raises(ZooError, match="unpacks to"):
        import_weights("lenet5", str(bomb))


def test_nan_wrong_dtype_and_pickles_are_refused_in_zoos_own_words(tmp_path, monkeypatch, zoo):
    import torch

    from zoo.errors import ZooError
    from zoo.modelio import import_weights
    from zoo.registry import load_registry

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    state = load_registry().model("lenet5").build().state_dict()
    nan = {k: v.clone() for k, v in state.items()}
    next(v for v in nan.values() if v.is_floating_point())[0] = float("nan")
    torch.save(nan, tmp_path / "nan.pth")
    with pytest.raises(ZooError, match="NaN or infinite"):
        import_weights("lenet5", str(tmp_path / "nan.pth"))
    torch.save({k: v.double() for k, v in state.items()}, tmp_path / "f64.pth")
    with pytest.raises(ZooError, match="float64, the model's is float32; pass --cast"):
        import_weights("lenet5", str(tmp_path / "f64.pth"))
    entry = import_weights("lenet5", str(tmp_path / "f64.pth"), cast=True)
    assert entry.tag == "imported"

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    result = zoo("weights", "import", "lenet5", tmp_path / "evil.pt", env={"ZOO_HOME": str(tmp_path / "home")})
    one_line_error(result, "never unpickles")
    assert "weights_only" not in result.stderr and "pwned" not in result.stdout


# -- 4. honest errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("args,fragment", [
    (("train", "lenet5", "--epochs", "0"), "--epochs"),
    (("train", "lenet5", "--batch-size", "-5"), "--batch-size"),
    (("train", "lenet5", "--lr", "nan"), "--lr"),
    (("train", "lenet5", "--seed", "-1"), "--seed"),
    (("train", "lenet5", "--config", "foo=1"), "no such config key"),
    (("train", "lenet5", "--config", "dropout=abc"), "expected float"),
    (("run", "seq2seq-dates", "x", "--batch-size", "-5"), "--batch-size"),
    (("run", "seq2seq-dates", "x", "--beam", "1000000"), "--beam"),
    (("run", "seq2seq-dates", "x", "--length-norm", "nan"), "--length-norm"),
    (("run", "char-rnn", "--temperature", "nan"), "--temperature"),
    (("run", "char-rnn", "--temperature", "-1"), "--temperature"),
    (("run", "char-rnn", "--top-k", "-1"), "--top-k"),
    (("run", "char-rnn", "--length", "100000"), "--length"),
    (("run", "char-rnn", "--seed", "-1"), "--seed"),
])
def test_numeric_options_are_checked_at_the_cli(tmp_path, zoo, args, fragment):
    one_line_error(zoo(*args, env={"ZOO_HOME": str(tmp_path)}), fragment)
    assert not (tmp_path / "weights").exists()


def test_a_zoo_home_that_is_a_file_is_one_line(tmp_path, zoo):
    home = tmp_path / "home"
    home.write_text("not a folder")
    one_line_error(zoo("weights", "list", env={"ZOO_HOME": str(home)}), "ZOO_HOME", "not a folder")


def test_without_the_training_stack_commands_say_what_to_install(tmp_path, zoo):
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    env = {"ZOO_HOME": str(tmp_path / "home"), "PYTHONPATH": str(tmp_path / "site")}
    one_line_error(zoo("export", "lenet5", env=env), "pip install 'zoo[train]'")
    one_line_error(zoo("train", "lenet5", "--epochs", "1", env=env), "pip install 'zoo[train]'")


@pytest.mark.parametrize("changes,fragment", [
    ({"preprocessing": {"size": [8, 8]}}, "does not match the graph's input"),
    ({"labels": ["a", "b"], "config": {}}, "2 labels for the graph's 3 outputs"),
])
def test_metadata_must_agree_with_the_graph(tmp_path, changes, fragment):
    """The hand-built graph declares a (N, 1, 4, 4) input and 3 outputs."""
    from zoo.errors import ZooError
    from zoo.runtime.artifact import open_artifact

    model = _tiny_model(_meta(**changes))
    with pytest.raises(ZooError, match=fragment):
        open_artifact(_write(model, tmp_path / "m.onnx"), "cpu")
