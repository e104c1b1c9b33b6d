"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998), as the seed describes it:

    32x32x1 -> conv 5x5, 6 -> avg pool 2 -> conv 5x5, 16 -> avg pool 2 -> FC 120 -> FC 84 -> 10

with tanh activations and a plain softmax output (the paper's RBF output layer and sparse C3
connection table are replaced, as modern re-implementations and the seed do).
"""

from __future__ import annotations

from zoo.hookspecs import hookimpl
from zoo.specs import ModelSpec

DIGITS = tuple(str(i) for i in range(10))


def build_lenet5(config: dict):
    from torch import nn

    channels = config["in_channels"]
    return nn.Sequential(
        nn.Conv2d(channels, 6, kernel_size=5),  # 32 -> 28
        nn.Tanh(),
        nn.AvgPool2d(2),  # 28 -> 14
        nn.Conv2d(6, 16, kernel_size=5),  # 14 -> 10
        nn.Tanh(),
        nn.AvgPool2d(2),  # 10 -> 5
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.Tanh(),
        nn.Dropout(config["dropout"]),
        nn.Linear(120, 84),
        nn.Tanh(),
        nn.Linear(84, config["num_classes"]),
    )


@hookimpl
def zoo_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="lenet5",
            family="lenet",
            task="image-classification",
            summary="LeNet-5: two tanh conv/avg-pool stages and three FC layers, for 32x32 digits",
            paper="LeCun et al., Gradient-based learning applied to document recognition, Proc. IEEE 1998",
            builder="zoo.plugins.lenet:build_lenet5",
            params=61_706,
            default_config={"in_channels": 1, "num_classes": 10, "dropout": 0.2},
            dataset="digits",
            input_shape=(1, 32, 32),
            preprocessing={"mode": "L", "digit": {"canvas": 32, "box": 20}, "size": [32, 32],
                           "mean": [0.1], "std": [0.3]},
            labels=DIGITS,
            family_default=True,
            # chosen on the dev split among a handful of runs (see weights/README.md)
            train_defaults={"epochs": 100, "batch_size": 32, "optimizer": "adam", "lr": 3e-3,
                            "lr_decay": 0.96, "patience": 30, "augment": "zoo.augment:random_affine"},
        )
    ]
