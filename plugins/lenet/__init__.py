"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998): the family's card, torch-free. The network,
two tanh convolution and average-pool stages and three fully connected layers for 32x32 digits,
is ``zoo.plugins.lenet.model``."""

from __future__ import annotations

from zoo.hookspecs import hookimpl
from zoo.specs import ModelSpec

DIGITS = tuple(str(i) for i in range(10))


@hookimpl
def zoo_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="lenet5",
            family="lenet",
            task="image-classification",
            summary="LeNet-5: two tanh conv/avg-pool stages and three FC layers, for 32x32 digits",
            paper="LeCun et al., Gradient-based learning applied to document recognition, Proc. IEEE 1998",
            builder="zoo.plugins.lenet.model:lenet5",
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
