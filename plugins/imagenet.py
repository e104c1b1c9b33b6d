"""What the ImageNet CNN families (AlexNet, VGG, ResNet, GoogLeNet) share: the ILSVRC-2012
preprocessing and class names, the seed's recipe for fine-tuning on an image folder, and
stage-wise freezing for transfer learning. Importing this module does not import torch."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, Mapping

from zoo.errors import ZooError

IMAGE_SIZE = 224
RESIZE = 256

#: torchvision's evaluation transform: shorter side to 256, centre crop 224, ImageNet mean/std
PREPROCESSING: Mapping[str, Any] = {"mode": "RGB", "resize": RESIZE, "size": [IMAGE_SIZE, IMAGE_SIZE],
                                    "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}

#: fine-tuning on a user's folder: momentum SGD with decay, and the seed's augmentations
#: (mirroring, random crops, colour shifts)
TRAIN_DEFAULTS: Mapping[str, Any] = {"epochs": 15, "batch_size": 32, "optimizer": "momentum", "lr": 0.01,
                                     "lr_decay": 0.9, "weight_decay": 1e-4, "patience": 4,
                                     "augment": "zoo.augment:mirror_crop_colour", "bench_batches": (1, 8)}


@functools.cache
def labels() -> tuple[str, ...]:
    """The 1,000 class names in index order, from the package data file (provenance in its header)."""
    text = resources.files("zoo.runtime").joinpath("imagenet_labels.txt").read_text(encoding="utf-8")
    names = tuple(line for line in text.splitlines() if line and not line.startswith("#"))
    if len(names) != 1000:
        raise ZooError(f"imagenet_labels.txt holds {len(names)} class names, expected 1000")
    return names


def input_shape(config: Mapping[str, Any]) -> tuple[int, int, int]:
    """(C, H, W) for a config's ``image_size`` (224 for ImageNet; smaller ones train on a CPU)."""
    size = int(config["image_size"])
    if size < 32:
        raise ZooError(f"image_size {size} is too small for these networks (at least 32)")
    return (3, size, size)


class FreezableStages:
    """Mixin for an ``nn.Module`` whose ``stages`` name its submodules in forward order, the last
    stage being the classifier head. ``freeze("head")`` freezes everything but the head;
    ``freeze(stage)`` freezes that stage and all before it. Frozen stages stay in eval mode while
    the rest trains, so their batch-norm layers keep the statistics they were trained with rather
    than drift towards a small fine-tuning set."""

    stages: dict[str, tuple[str, ...]] = {}
    _frozen: tuple[str, ...] = ()

    def freeze(self, upto: str) -> None:
        names = list(self.stages)
        if upto == "head":
            frozen = names[:-1]
        elif upto in names[:-1]:
            frozen = names[: names.index(upto) + 1]
        else:
            raise ZooError(f"--freeze {upto!r}: use 'head' (train only {names[-1]}) or a stage to freeze up to: "
                           f"{', '.join(names[:-1])}")
        self._frozen = tuple(path for stage in frozen for path in self.stages[stage])
        for path in self._frozen:
            for param in self.get_submodule(path).parameters():
                param.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for path in self._frozen:
            self.get_submodule(path).eval()
        return self
