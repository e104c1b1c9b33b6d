"""The plugin's own tests, written with zoo's conformance kit."""

from zoo.testing import check_dataset, check_model, check_plugin_specs, check_shipped_weights


def test_plugin_loads_and_specs_are_valid():
    check_plugin_specs("shallow")


def test_softmax_regression_builds_counts_exports_with_parity(tmp_path):
    result = check_model("softmax-regression", tmp_path)
    assert result["meta"]["labels"] == [str(i) for i in range(10)]


def test_two_layer_net_with_a_smaller_hidden_layer(tmp_path):
    check_model("two-layer-net", tmp_path, config={"hidden": 8})


def test_the_shipped_softmax_regression_reads_the_digits_it_was_trained_on():
    import torch

    from zoo.runtime.tasks.classification import ImageClassification
    from zoo_shallow import PREPROCESSING

    module = check_shipped_weights("softmax-regression")
    dev = check_dataset("digits").dev
    x = ImageClassification().encode_inputs(dev.inputs[:200], {"preprocessing": PREPROCESSING})
    with torch.no_grad():
        predicted = module(torch.from_numpy(x)).argmax(-1).numpy()
    assert (predicted == dev.targets[:200]).mean() > 0.85  # its manifest says 0.926 on the whole dev split
