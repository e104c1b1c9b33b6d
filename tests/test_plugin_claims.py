"""The registry's door: a plugin can neither take zoo down nor take over names it does not own."""

import json

import pytest

from fakeplugins import make_plugin, tiny_model_source
from zoo.errors import PluginError
from zoo.registry import RUN_FLAGS, load_registry


def model_plugin(root, entry, **fields):
    """A plugin whose one model is the tiny model with ``fields`` set."""
    module = f"{entry}_plugin"
    source = tiny_model_source(name=fields.pop("name", f"{entry}net"), family=fields.pop("family", entry),
                               module=module)
    extra = ", ".join(f"{k}={v!r}" for k, v in fields.items())
    if extra:
        source = source.replace('labels=("a", "b", "c"))', f'labels=("a", "b", "c"), {extra})')
    return make_plugin(root, f"{entry}-dist", entry, module, source)


@pytest.mark.parametrize("statement", ["import sys; sys.exit(3)", "raise KeyboardInterrupt", "raise SystemExit"])
def test_a_plugin_that_exits_at_import_is_recorded_and_the_rest_loads(plugin_dir, statement):
    make_plugin(plugin_dir, "exiter", "exiter", "exiter_plugin", statement + "\n")
    reg = load_registry()
    (error,) = reg.plugins["exiter"].errors
    assert "failed to load" in error and "ZOO_LOAD_PLUGINS=" in error and "exiter_plugin.py:1" in error
    assert "lenet5" in reg.models


def test_a_spec_that_cannot_be_validated_is_refused_without_breaking_zoo(plugin_dir):
    make_plugin(plugin_dir, "nonespec", "nonespec", "nonespec_plugin", """
        import zoo
        @zoo.hookimpl
        def zoo_datasets():
            return [zoo.DatasetSpec(name=None, task="x", summary="s", loader="m:f", source="s")]
    """)
    reg = load_registry()
    (error,) = reg.plugins["nonespec"].errors
    assert "TypeError" in error and "nonespec_plugin.py" in error
    assert "digits" in reg.datasets


def test_errors_point_at_the_plugins_own_file_and_line(plugin_dir):
    make_plugin(plugin_dir, "ownline", "ownline", "ownline_plugin", """
        import zoo
        @zoo.hookimpl
        def zoo_models():
            raise RuntimeError("boom")
    """)
    (error,) = load_registry().plugins["ownline"].errors
    assert "ownline_plugin.py:5" in error and "registry.py" not in error


def test_a_third_party_alias_cannot_take_over_a_builtin_family(plugin_dir):
    model_plugin(plugin_dir, "hijack", aliases=("resnet",))
    reg = load_registry()
    (error,) = reg.plugins["hijack"].errors
    assert "'resnet'" in error and "'resnet'" in error and "family" in error
    assert reg.model("resnet").name == "resnet50" and "hijacknet" not in reg.models


def test_an_alias_equal_to_another_models_name_is_refused(plugin_dir):
    model_plugin(plugin_dir, "shadow", aliases=("lenet5",))
    reg = load_registry()
    (error,) = reg.plugins["shadow"].errors
    assert "alias 'lenet5'" in error and "'lenet'" in error and "'shadow'" in error
    assert reg.model("lenet5").family == "lenet"


def test_a_model_named_like_another_plugins_family_is_refused(plugin_dir):
    model_plugin(plugin_dir, "famname", name="yolo", family="other")
    reg = load_registry()
    (error,) = reg.plugins["famname"].errors
    assert "'yolo'" in error and "family" in error
    assert reg.model("yolo").family == "yolo"


def test_a_second_default_member_of_a_family_is_refused(plugin_dir):
    model_plugin(plugin_dir, "second", name="lenet7", family="lenet", family_default=True)
    reg = load_registry()
    (error,) = reg.plugins["second"].errors
    assert "already has a default member 'lenet5'" in error
    assert reg.model("lenet").name == "lenet5"


TASK_PLUGIN = """
    import zoo
    @zoo.hookimpl
    def zoo_tasks():
        return [zoo.TaskSpec(name="denoise", summary="s", impl="m:T", options=(zoo.TaskOption({opt}),))]
"""


@pytest.mark.parametrize("entry, option, fragment", [
    ("optjson", '"json", "flag", None, "h"', "flag of `zoo run` itself"),
    ("opttype", '"strength", "percent", 1, "h"', "unknown type 'percent'"),
    ("optclash", '"top-k", "str", "5", "h"', "option --top-k is 'str' but task"),
])
def test_task_options_are_checked_when_registered(plugin_dir, entry, option, fragment):
    make_plugin(plugin_dir, entry, entry, f"{entry}_plugin", TASK_PLUGIN.format(opt=option))
    reg = load_registry()
    (error,) = reg.plugins[entry].errors
    assert fragment in error and "denoise" not in reg.tasks


def test_reserved_flags_cover_every_flag_of_zoo_run():
    import click

    from zoo.cli import run

    task_options = {o.name for spec in load_registry().tasks.values() for o in spec.options}
    own = {flag[2:] for p in run.params if isinstance(p, click.Option) for flag in p.opts if flag.startswith("--")}
    assert own - task_options <= RUN_FLAGS, own - task_options - RUN_FLAGS


def test_a_misspelt_hook_is_reported(plugin_dir):
    make_plugin(plugin_dir, "typo", "typo", "typo_plugin", """
        import zoo
        @zoo.hookimpl
        def zoo_model():
            return []
    """)
    (error,) = load_registry().plugins["typo"].errors
    assert "zoo_model is marked @zoo.hookimpl but is not a zoo hook" in error


def test_a_model_whose_task_nobody_provides_is_refused_at_registration(plugin_dir):
    source = tiny_model_source(module="orphan_plugin").replace('task="image-classification"', 'task="telepathy"')
    make_plugin(plugin_dir, "orphan-dist", "orphan", "orphan_plugin", source)
    reg = load_registry()
    (error,) = reg.plugins["orphan"].errors
    assert "needs task 'telepathy'" in error and "tinynet" not in reg.models
    assert reg.plugins["orphan"].provides["model"] == []


@pytest.mark.parametrize("value", ["off", "false", "0", "No", ""])
def test_strict_mode_off_values_mean_off(plugin_dir, monkeypatch, value):
    make_plugin(plugin_dir, "strictoff-dist", "strictoff", "strictoff_plugin", "raise ValueError('bad plugin')\n")
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", value)
    assert load_registry().plugins["strictoff"].errors


def test_strict_mode_fails_on_a_claim_too(plugin_dir, monkeypatch):
    model_plugin(plugin_dir, "hijack", aliases=("resnet",))
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="resnet"):
        load_registry()


def test_zoo_plugins_still_reports_under_strict_mode(tmp_path, zoo):
    root = make_plugin(tmp_path / "site", "broken-dist", "broken", "broken_plugin", "import nope_nope\n")
    result = zoo("plugins", "--json", env={"PYTHONPATH": str(root), "ZOO_STRICT_PLUGINS": "1"})
    assert result.returncode == 0, result.stderr
    broken = next(r for r in json.loads(result.stdout) if r["plugin"] == "broken")
    assert any("nope_nope" in e for e in broken["errors"])
