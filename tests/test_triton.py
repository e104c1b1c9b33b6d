import json
import subprocess
import sys

import pytest

from zoo.errors import ZooError


def test_triton_repository_entry_for_lenet5(tmp_path, zoo):
    repo = tmp_path / "models"
    result = zoo("export", "lenet5", "--format", "triton", "--out", repo, env={"ZOO_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr
    config = (repo / "lenet5" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "max_batch_size: 64" in config
    assert 'name: "input"' in config and "dims: [ 1, 32, 32 ]" in config and "dims: [ 10 ]" in config
    model = repo / "lenet5" / "1" / "model.onnx"
    code = (f"import onnxruntime as o, json; s = o.InferenceSession({str(model)!r}, providers=['CPUExecutionProvider']);"
            "print(json.loads(s.get_modelmeta().custom_metadata_map['zoo'])['model'])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "lenet5"
    assert sorted(p.name for p in repo.iterdir()) == ["lenet5"]  # nothing staged left behind


def test_triton_refuses_models_driven_by_a_loop(tmp_path):
    from zoo.exporters.triton import export

    class TwoGraphs:
        def export_graphs(self, samples):
            return [object(), object()]

    class Spec:
        name = "looped"

    with pytest.raises(ZooError, match="several graphs"):
        export(Spec(), TwoGraphs(), tmp_path)
