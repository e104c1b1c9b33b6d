"""Weights a plugin ships as package data (``ModelSpec.weights``) are found by the store like zoo's
own: ``NAME@shipped``, read-only, verified by sha256; a missing or damaged copy is an error naming
the plugin. ``train_defaults`` keys and values are checked at registration."""

import json
import sys
import textwrap

import pytest

from conftest import assert_one_line_error
from fakeplugins import tiny_model_source
from zoo import store
from zoo.errors import PluginError, ZooError
from zoo.registry import load_registry, registry
from zoo.specs import TRAIN_DEFAULTS



def make_package_plugin(root, fields: str = 'weights="shippkg:weights/shipnet"', with_weights: bool = True):
    """A plugin distribution whose module is a package, ``shippkg``, shipping weights for
    ``shipnet`` in ``shippkg/weights/shipnet`` (trained-looking: made and hashed here)."""
    info = root / "ship_dist-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ship-dist\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[zoo.plugins]\nship = shippkg\n")
    package = root / "shippkg"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(tiny_model_source("shipnet", "ship", "shippkg", fields)))
    folder = package / "weights" / "shipnet"
    if with_weights:
        import torch
        from safetensors.torch import save_file

        folder.mkdir(parents=True)
        torch.manual_seed(0)
        module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(folder / "model.safetensors"))
        manifest = {"model": "shipnet", "family": "ship", "task": "image-classification",
                    "config": {"num_classes": 3}, "labels": ["a", "b", "c"],
                    "preprocessing": {"mode": "L", "size": [4, 4]}, "metrics": {"dev_accuracy": 0.5},
                    "file": "model.safetensors", "sha256": store.sha256_file(folder / "model.safetensors")}
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def fresh(plugin_dir, zoo_home):
    """The plugin folder, with the cached registry and any earlier test's ``shippkg`` dropped
    before and after the test."""
    def forget():
        registry.cache_clear()
        sys.modules.pop("shippkg", None)

    forget()
    yield plugin_dir
    forget()


def test_a_plugins_shipped_weights_are_the_active_read_only_shipped_entry(fresh):
    folder = make_package_plugin(fresh)
    entry = store.find("shipnet")
    assert entry is not None and entry.tag == "shipped" and entry.shipped and entry.active and not entry.broken
    assert entry.folder == folder and entry.plugin == "ship" and entry.distribution == "ship-dist"
    entry.verify()
    assert "shipnet" in {e.model for e in store.entries()}
    with pytest.raises(ZooError, match="shipped with plugin 'ship' \\(distribution ship-dist\\) and read-only"):
        store.remove("shipnet@shipped")


def test_the_shipped_weights_load_into_the_module_and_export(fresh, tmp_path):
    from zoo.modelio import export_model

    make_package_plugin(fresh)
    report = export_model("shipnet", out=str(tmp_path / "shipnet.onnx"))
    assert report.path.is_file() and all(p.ok for p in report.parity)
    from zoo.runtime.artifact import open_artifact

    assert open_artifact(report.path, "cpu").meta["weights_tag"] == "shipped"


def test_damaged_shipped_weights_fail_verification_naming_the_plugin(fresh):
    folder = make_package_plugin(fresh)
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ZooError, match="plugin 'ship' \\(distribution ship-dist\\) does not match its manifest.*"
                                       "reinstall ship-dist"):
        store.require("shipnet").verify()


def test_a_missing_weights_file_names_the_plugin(fresh):
    folder = make_package_plugin(fresh)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ZooError, match="shipped by plugin 'ship'.* is missing; reinstall ship-dist"):
        store.require("shipnet").verify()


def test_declared_weights_that_are_not_installed_are_a_broken_entry_naming_the_plugin(fresh):
    make_package_plugin(fresh, with_weights=False)
    (entry,) = store.model_entries("shipnet")
    assert entry.broken and "plugin 'ship' (distribution ship-dist) declares weights 'shippkg:weights/shipnet'" \
        in entry.broken and "reinstall ship-dist" in entry.broken
    with pytest.raises(ZooError, match="no weights for shipnet.*shipnet@shipped is broken: plugin 'ship'"):
        store.require("shipnet")


def test_weights_of_another_model_are_refused(fresh):
    folder = make_package_plugin(fresh)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(dict(manifest, model="lenet5")))
    (entry,) = store.model_entries("shipnet")
    assert entry.broken and "their manifest is for 'lenet5'" in entry.broken


def test_an_unreadable_shipped_manifest_names_the_plugin(fresh):
    folder = make_package_plugin(fresh)
    (folder / "manifest.json").write_text("{not json")
    (entry,) = store.model_entries("shipnet")
    assert entry.broken.startswith("plugin 'ship' (distribution ship-dist) ships weights whose manifest")


def test_a_user_run_of_a_plugin_model_sits_beside_its_shipped_weights(fresh, tmp_path):
    folder = make_package_plugin(fresh)
    entry = store.install("shipnet", folder / "model.safetensors", {"metrics": {}}, tag="mine", activate=False)
    assert {e.tag for e in store.model_entries("shipnet")} == {"mine", "shipped"}
    assert store.find("shipnet").tag == "shipped" and entry.tag == "mine"


@pytest.mark.parametrize("weights", ["weights/shipnet", "shippkg:/abs", "shippkg:../up", "shippkg:", "1pkg:w"])
def test_a_weights_field_that_is_not_a_package_folder_is_refused_at_registration(fresh, weights):
    make_package_plugin(fresh, fields=f"weights={weights!r}", with_weights=False)
    reg = load_registry()
    (error,) = reg.plugins["ship"].errors
    assert "shipnet" not in reg.models and "must name a folder inside a package" in error and repr(weights) in error


def test_the_cli_error_for_damaged_plugin_weights_is_one_line_naming_the_plugin(fresh, zoo, tmp_path):
    folder = make_package_plugin(fresh)
    (folder / "model.safetensors").write_bytes(b"not the weights")
    result = zoo("export", "shipnet", env={"PYTHONPATH": str(fresh), "ZOO_HOME": str(tmp_path / "home")})
    assert_one_line_error(result, "plugin 'ship' (distribution ship-dist)", "reinstall ship-dist")
    assert not (tmp_path / "home" / "exports" / "shipnet.onnx").exists()


# -- train_defaults ---------------------------------------------------------------------------
def test_an_unknown_train_defaults_key_is_refused_naming_the_plugin_and_the_known_keys(fresh):
    make_package_plugin(fresh, fields='train_defaults={"epoch": 3}', with_weights=False)
    reg = load_registry()
    (error,) = reg.errors()
    assert error.startswith("ship: ") and "unknown train_defaults key(s) epoch (did you mean epochs?)" in error
    assert "known: " + ", ".join(TRAIN_DEFAULTS) in error and "shipnet" not in reg.models
    with pytest.raises(PluginError, match="plugin 'ship'.*unknown train_defaults key"):
        load_registry(strict=True)


@pytest.mark.parametrize("value, message", [
    ('{"lr": -1}', "train_defaults['lr'] is -1"),
    ('{"epochs": 2.5}', "train_defaults['epochs'] is 2.5"),
    ('{"optimizer": "adagrad"}', "one of sgd, momentum, rmsprop, adam"),
    ('{"bench_batches": (1, 0)}', "bench_batches"),
    ('{"augment": "no_colon"}', "import string"),
])
def test_a_train_defaults_value_out_of_bounds_is_refused(fresh, value, message):
    make_package_plugin(fresh, fields=f"train_defaults={value}", with_weights=False)
    (error,) = load_registry().errors()
    assert message in error, error


def test_the_known_train_defaults_keys_are_what_the_engine_and_bench_read():
    from zoo.engine import OPTIMIZERS, TrainOptions
    from zoo.specs import OPTIMIZERS as SPEC_OPTIMIZERS

    assert set(TRAIN_DEFAULTS) == set(TrainOptions._DEFAULTS) | {"bench_batches"}
    assert SPEC_OPTIMIZERS == OPTIMIZERS
    assert not [e for e in load_registry().errors() if "train_defaults" in e]  # every installed model's pass


def test_freeze_none_fine_tunes_any_model_from_its_installed_weights(fresh):
    """``--freeze none`` needs no freeze hook: the module starts from the installed weights and
    every tensor trains; another --freeze value is refused for a model without the hook."""
    import torch
    from safetensors.torch import load_file

    from zoo.engine import TrainOptions, build_module

    folder = make_package_plugin(fresh)
    spec = registry().model("shipnet")
    module = build_module(spec, spec.config(), TrainOptions(freeze="none"), torch.device("cpu"))
    shipped = load_file(str(folder / "model.safetensors"))
    assert all(torch.equal(value, shipped[key]) for key, value in module.state_dict().items())
    assert all(p.requires_grad for p in module.parameters())
    with pytest.raises(ZooError, match="does not support --freeze head"):
        build_module(spec, spec.config(), TrainOptions(freeze="head"), torch.device("cpu"))
