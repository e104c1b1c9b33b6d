"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998), as the seed describes it:

    32x32x1 -> conv 5x5, 6 -> avg pool 2 -> conv 5x5, 16 -> avg pool 2 -> FC 120 -> FC 84 -> 10

with tanh activations and a plain softmax output (the paper's RBF output layer and sparse C3
connection table are replaced, as modern re-implementations and the seed do).
"""

from __future__ import annotations

from typing import Any

from torch import nn


class LeNet5(nn.Sequential):
    """The layers in order, as one ``nn.Sequential`` (its weights are keyed ``0.weight``,
    ``3.weight``, ...)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, dropout: float = 0.2):
        super().__init__(
            nn.Conv2d(in_channels, 6, kernel_size=5),  # 32 -> 28
            nn.Tanh(),
            nn.AvgPool2d(2),  # 28 -> 14
            nn.Conv2d(6, 16, kernel_size=5),  # 14 -> 10
            nn.Tanh(),
            nn.AvgPool2d(2),  # 10 -> 5
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.Tanh(),
            nn.Dropout(dropout),
            nn.Linear(120, 84),
            nn.Tanh(),
            nn.Linear(84, num_classes),
        )


def lenet5(config: dict[str, Any]) -> LeNet5:
    return LeNet5(config["in_channels"], config["num_classes"], config["dropout"])
