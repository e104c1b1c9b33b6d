import json
import os

import pytest

from fakeplugins import make_plugin, tiny_model_source
from zoo.errors import PluginError, ZooError
from zoo.registry import load_registry


def test_builtin_plugins_load_without_errors_through_entry_points():
    reg = load_registry()
    assert reg.errors() == []
    assert reg.plugins["lenet"].builtin and reg.plugins["lenet"].dist == "zoo"
    assert "lenet5" in reg.models and "image-classification" in reg.tasks and "onnx" in reg.exporters


def test_family_and_alias_resolve_to_the_default_member():
    reg = load_registry()
    assert reg.model("lenet").name == "lenet5"
    assert reg.model("LeNet5").name == "lenet5"


def test_unknown_model_suggests_close_names():
    with pytest.raises(ZooError, match="did you mean .*lenet5"):
        load_registry().model("lenet6")


def test_third_party_plugin_registers_like_a_builtin(plugin_dir):
    make_plugin(plugin_dir, "tiny-dist", "tiny", "tiny_plugin", tiny_model_source())
    reg = load_registry()
    assert reg.models["tinynet"].family == "tiny"
    assert reg.owner[("model", "tinynet")] == "tiny"
    assert not reg.plugins["tiny"].builtin and reg.plugins["tiny"].version == "0.1"


def test_plugin_that_fails_to_import_is_reported_and_others_keep_working(plugin_dir):
    make_plugin(plugin_dir, "broken-dist", "broken", "broken_plugin", "import not_a_real_module_xyz\n")
    reg = load_registry()
    assert any("failed to load" in e and "not_a_real_module_xyz" in e for e in reg.plugins["broken"].errors)
    assert reg.model("lenet5").name == "lenet5"


def test_hook_that_raises_is_reported(plugin_dir):
    make_plugin(plugin_dir, "raiser", "raiser", "raiser_plugin", """
        import zoo
        @zoo.hookimpl
        def zoo_models():
            raise RuntimeError("boom in hook")
    """)
    reg = load_registry()
    assert any("boom in hook" in e for e in reg.plugins["raiser"].errors)
    assert "lenet5" in reg.models


def test_duplicate_model_name_names_both_plugins(plugin_dir):
    make_plugin(plugin_dir, "dupe-dist", "dupe", "dupe_plugin", tiny_model_source(name="lenet5", module="dupe_plugin"))
    reg = load_registry()
    (error,) = reg.plugins["dupe"].errors
    assert "'lenet'" in error and "'dupe'" in error and "lenet5" in error
    assert reg.owner[("model", "lenet5")] == "lenet"


def test_invalid_spec_is_rejected_at_the_door(plugin_dir):
    make_plugin(plugin_dir, "bad-spec", "badspec", "badspec_plugin", """
        import zoo
        @zoo.hookimpl
        def zoo_models():
            return [zoo.ModelSpec(name="Bad Name", family="x", task="image-classification", summary="s",
                                  builder="m:f", params=1), "not a spec"]
    """)
    errors = load_registry().plugins["badspec"].errors
    assert len(errors) == 2 and "Bad Name" in errors[0] and "expected ModelSpec" in errors[1]


def test_strict_mode_turns_plugin_errors_into_failures(plugin_dir, monkeypatch):
    make_plugin(plugin_dir, "broken-dist", "broken", "broken_plugin", "raise ValueError('bad plugin')\n")
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="bad plugin"):
        load_registry()


def test_zoo_load_plugins_limits_third_parties_but_keeps_builtins(plugin_dir, monkeypatch):
    make_plugin(plugin_dir, "tiny-dist", "tiny", "tiny_plugin", tiny_model_source())
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    reg = load_registry()
    assert "tinynet" not in reg.models and "lenet5" in reg.models
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "other, tiny")
    assert "tinynet" in load_registry().models


def test_a_distribution_listed_twice_loads_once(tmp_path, monkeypatch):
    # a venv whose lib64 links to lib shows every distribution twice on sys.path
    real = make_plugin(tmp_path / "lib", "tiny-dist", "tiny", "tiny_plugin", tiny_model_source())
    os.symlink(real, tmp_path / "lib64")
    monkeypatch.syspath_prepend(str(real))
    monkeypatch.syspath_prepend(str(tmp_path / "lib64"))
    reg = load_registry()
    assert reg.errors() == [] and [p for p in reg.plugins if "tiny" in p] == ["tiny"]


def test_cli_shows_broken_plugin_and_still_lists(tmp_path, zoo):
    root = make_plugin(tmp_path / "site", "broken-dist", "broken", "broken_plugin", "import nope_nope\n")
    env = {"PYTHONPATH": str(root)}
    listing = zoo("list", "--json", env=env)
    assert listing.returncode == 0 and any(r["name"] == "lenet5" for r in json.loads(listing.stdout))
    assert "plugin error" in listing.stderr
    plugins = zoo("plugins", env=env)
    assert plugins.returncode == 0 and "broken" in plugins.stdout and "nope_nope" in plugins.stdout


def test_plugin_written_for_a_newer_api_is_refused_with_a_message(plugin_dir):
    make_plugin(plugin_dir, "future", "future", "future_plugin", "ZOO_API_VERSION = 99\n" + tiny_model_source(
        module="future_plugin"))
    reg = load_registry()
    assert any("API version 99" in e and "upgrade zoo" in e for e in reg.plugins["future"].errors)
    assert "tinynet" not in reg.models
