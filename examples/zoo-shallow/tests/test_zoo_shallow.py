"""The plugin's own tests, written with zoo's conformance kit."""

from zoo.testing import check_model, check_plugin_specs


def test_plugin_loads_and_specs_are_valid():
    check_plugin_specs("shallow")


def test_softmax_regression_builds_counts_exports_with_parity(tmp_path):
    result = check_model("softmax-regression", tmp_path)
    assert result["meta"]["labels"] == [str(i) for i in range(10)]


def test_two_layer_net_with_a_smaller_hidden_layer(tmp_path):
    check_model("two-layer-net", tmp_path, config={"hidden": 8})
