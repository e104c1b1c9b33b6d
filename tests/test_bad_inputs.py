"""Every bad input ends in one clear line on stderr and a non-zero exit, and writes nothing."""

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error as one_line_error
from fakeplugins import make_plugin, tiny_model_source

SAMPLES = Path(__file__).resolve().parent.parent / "zoo" / "samples"


@pytest.fixture(scope="module")
def env(tmp_path_factory, zoo):
    home = tmp_path_factory.mktemp("home")
    env = {"ZOO_HOME": str(home)}
    assert zoo("train", "lenet5", "--epochs", "1", "--max-steps", "2", "--no-progress", env=env).returncode == 0
    assert zoo("export", "lenet5", "--onnx", env=env).returncode == 0
    return env


def test_unknown_model_suggests_close_names(zoo, env):
    one_line_error(zoo("info", "lenet6", env=env), "unknown model 'lenet6'", "lenet5")
    one_line_error(zoo("run", "resnet500", "x.png", env=env), "unknown model")


def test_missing_weights_say_how_to_train_or_import(tmp_path, zoo):
    root = make_plugin(tmp_path / "site", "tiny-dist", "tiny", "tiny_plugin", tiny_model_source())
    env = {"ZOO_HOME": str(tmp_path / "home"), "PYTHONPATH": str(root)}
    one_line_error(zoo("export", "tinynet", "--onnx", env=env), "no weights for tinynet", "zoo train tinynet",
                   "zoo weights import tinynet")
    one_line_error(zoo("run", "tinynet", str(SAMPLES / "digit7.png"), env=env), "no weights for tinynet")


def test_weights_without_an_export_say_to_export(tmp_path, zoo):
    env = {"ZOO_HOME": str(tmp_path)}
    assert zoo("train", "lenet5", "--epochs", "1", "--max-steps", "1", "--no-progress", env=env).returncode == 0
    one_line_error(zoo("run", "lenet5", str(SAMPLES / "digit7.png"), env=env), "zoo export lenet5 --onnx")


@pytest.mark.parametrize("name,content,fragment", [
    ("empty.png", b"", "file is empty"),
    ("text.png", b"hello, this is not a picture\n" * 10, "not an image"),
    ("truncated.png", None, "truncated"),
])
def test_unreadable_images(tmp_path, zoo, env, name, content, fragment):
    path = tmp_path / name
    if content is None:
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(buf, "PNG")
        content = buf.getvalue()[: len(buf.getvalue()) // 2]
    path.write_bytes(content)
    one_line_error(zoo("run", "lenet5", str(path), env=env), str(path), fragment)


def test_missing_input_file_and_empty_directory(tmp_path, zoo, env):
    one_line_error(zoo("run", "lenet5", str(tmp_path / "nope.png"), env=env), "no such file")
    (tmp_path / "notes.txt").write_text("no images here")
    one_line_error(zoo("run", "lenet5", str(tmp_path), env=env), "holds no image files")


def test_decompression_bomb_is_refused(tmp_path, zoo, env):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20_000, 20_000)).save(bomb)  # 400 Mpx in a few kB
    assert bomb.stat().st_size < 200_000
    one_line_error(zoo("run", "lenet5", str(bomb), env=env), "decompression bomb")


def test_artifact_that_is_not_onnx(tmp_path, zoo, env):
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"PK\x03\x04 definitely not protobuf" * 20)
    one_line_error(zoo("run", str(fake), str(SAMPLES / "digit7.png"), env=env), "model.onnx")
    png = tmp_path / "picture.onnx"
    png.write_bytes((SAMPLES / "digit7.png").read_bytes())
    one_line_error(zoo("run", str(png), str(SAMPLES / "digit7.png"), env=env), "not an ONNX model")


def test_onnx_without_zoo_metadata(tmp_path, zoo, env):
    import onnx

    model = onnx.load(str(Path(env["ZOO_HOME"]) / "exports" / "lenet5.onnx"))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    one_line_error(zoo("run", str(bare), str(SAMPLES / "digit7.png"), env=env), "no zoo metadata")


def test_folder_that_is_not_an_artifact(tmp_path, zoo, env):
    one_line_error(zoo("run", str(tmp_path) + os.sep, str(SAMPLES / "digit7.png"), env=env), "not a zoo artifact")


def test_unknown_provider(zoo, env):
    one_line_error(zoo("run", "lenet5", str(SAMPLES / "digit7.png"), "--provider", "gpu", env=env), "--provider")


@pytest.mark.skipif(os.path.exists("/dev/nvidiactl"), reason="a GPU is present: cuda may work here")
def test_cuda_requested_without_a_usable_gpu_is_an_error(zoo, env):
    one_line_error(zoo("run", "lenet5", str(SAMPLES / "digit7.png"), "--provider", "cuda", env=env), "CUDA")


def test_debug_shows_the_traceback(zoo, env):
    result = zoo("--debug", "info", "lenet6", env=env)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_bad_usage_is_one_line(zoo, env):
    one_line_error(zoo("train", "lenet5", "--epochs", "many", env=env), "--epochs")
    one_line_error(zoo("export", "lenet5", "--format", "coreml", env=env), "unknown export format")


def test_unsupported_opset_is_refused(tmp_path, zoo, env):
    out = tmp_path / "out.onnx"
    one_line_error(zoo("export", "lenet5", "--opset", "3", "--out", str(out), env=env), "opset 18 or newer")
    assert not out.exists()


def test_export_failing_parity_writes_nothing(tmp_path, env, monkeypatch):
    import zoo.exporters.onnx as exporter
    from zoo.errors import ZooError
    from zoo.modelio import export_model

    monkeypatch.setenv("ZOO_HOME", env["ZOO_HOME"])
    monkeypatch.setattr(exporter, "_parity", lambda graph, path: [exporter.Parity(graph.name, 4, 1.0, 1.0, False)])
    out = tmp_path / "out.onnx"
    with pytest.raises(ZooError, match="parity failed.*nothing written"):
        export_model("lenet5", out=str(out))
    assert not list(tmp_path.iterdir())


def test_tampered_weights_fail_verification(tmp_path, zoo):
    env = {"ZOO_HOME": str(tmp_path)}
    assert zoo("train", "lenet5", "--epochs", "1", "--max-steps", "1", "--no-progress", "--tag", "t", "--activate",
               env=env).returncode == 0
    weights = tmp_path / "weights" / "lenet5" / "t" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    verify = zoo("weights", "verify", "lenet5@t", env=env)
    assert verify.returncode != 0 and "FAILED" in verify.stdout
    one_line_error(zoo("export", "lenet5", env=env), "does not match its manifest")


def test_weights_import_rejects_wrong_architecture_and_pickles(tmp_path, zoo):
    import torch

    env = {"ZOO_HOME": str(tmp_path / "home")}
    wrong = tmp_path / "wrong.pt"
    torch.save({"conv.weight": torch.zeros(3, 3)}, wrong)
    one_line_error(zoo("weights", "import", "lenet5", str(wrong), env=env), "do not fit", "missing key")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, evil)
    one_line_error(zoo("weights", "import", "lenet5", str(evil), env=env), "not a loadable PyTorch state dict")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 10)
    one_line_error(zoo("weights", "import", "lenet5", str(junk), env=env), "safetensors")
    assert not (tmp_path / "home" / "weights" / "lenet5").exists()


def test_weights_import_roundtrip(tmp_path, zoo):
    import torch

    from zoo.registry import load_registry

    module = load_registry().model("lenet5").build()
    state = tmp_path / "lenet.pth"
    torch.save({"state_dict": module.state_dict()}, state)
    env = {"ZOO_HOME": str(tmp_path / "home")}
    result = zoo("weights", "import", "lenet5", str(state), env=env)
    assert result.returncode == 0, result.stderr
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "home" / "weights" / "lenet5" / "imported" / "model.safetensors"))
    assert all(torch.equal(stored[k], v) for k, v in module.state_dict().items())
