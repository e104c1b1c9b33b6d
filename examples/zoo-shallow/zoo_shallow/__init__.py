"""Two shallow networks from the first course of the seed, as a zoo plugin:

- ``softmax-regression``: logistic regression generalised to 10 classes, z = Wx + b, softmax;
- ``two-layer-net``: one tanh hidden layer, a[1] = tanh(W1 x + b1), then softmax(W2 a[1] + b2).

Both read 28x28 digits flattened to 784 inputs, using zoo's shared image-classification task and
its ``digits`` dataset, so ``zoo train``, ``zoo export``, ``zoo run`` work on them unchanged.

``softmax-regression`` ships trained weights as package data (``weights/softmax-regression/``,
trained by ``zoo train softmax-regression``; see the pyproject's package-data table), so
``zoo export softmax-regression`` works straight after ``pip install``: the store lists them as
``softmax-regression@shipped``, read-only and checked against their sha256 like zoo's own.
"""

import zoo
from zoo import ModelSpec

ZOO_API_VERSION = 1  # the plugin API this module was written against

PREPROCESSING = {"mode": "L", "digit": {"canvas": 28, "box": 20}, "size": [28, 28], "mean": [0.1], "std": [0.3]}
DIGITS = tuple(str(i) for i in range(10))


def build_softmax_regression(config: dict):
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, config["num_classes"]))


def build_two_layer_net(config: dict):
    from torch import nn

    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(28 * 28, config["hidden"]),
        nn.Tanh(),
        nn.Linear(config["hidden"], config["num_classes"]),
    )


@zoo.hookimpl
def zoo_models() -> list[ModelSpec]:
    common = dict(task="image-classification", dataset="digits", input_shape=(1, 28, 28),
                  preprocessing=PREPROCESSING, labels=DIGITS,
                  train_defaults={"epochs": 20, "lr": 1e-3, "patience": 4})
    return [
        ModelSpec(name="softmax-regression", family="shallow", summary="multinomial logistic regression on pixels",
                  builder="zoo_shallow:build_softmax_regression", params=7_850,
                  default_config={"num_classes": 10}, family_default=True,
                  weights="zoo_shallow:weights/softmax-regression", **common),
        ModelSpec(name="two-layer-net", family="shallow", summary="one tanh hidden layer of 64 units",
                  builder="zoo_shallow:build_two_layer_net", params=50_890,
                  default_config={"num_classes": 10, "hidden": 64}, **common),
    ]
