"""Built-in families are laid out as plugin authors should lay out theirs: a torch-free card
(``zoo.plugins.FAMILY``: specs and hooks) and a model module (``zoo.plugins.FAMILY.model``) whose
network classes are module-level, so that they import, subclass and type-check like any class."""

import subprocess
import sys

import pytest

#: family package -> one network class of its model module
PACKAGES = {
    "resnet": "Bottleneck",
    "vgg": "VGG",
    "alexnet": "AlexNet",
    "inception": "GoogLeNet",
    "yolo": "YoloV3Tiny",
    "lenet": "LeNet5",
    "charrnn": "CharRNN",
    "seq2seq": "Seq2SeqAttention",
    "efficientnet": "EfficientNetLite",
    "facenet": "InceptionResnetV1",
    "mtcnn": "MTCNN",
    "embeddings": "WordEmbedding",
}


def test_the_cards_import_without_torch():
    cards = ", ".join(f"zoo.plugins.{name}" for name in PACKAGES)
    code = (f"import sys, importlib\nfor card in '{cards}'.split(', '):\n"
            "    importlib.import_module(card).zoo_models()\n"
            "print('TORCH', 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "TORCH False"


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_every_builder_of_a_family_package_lives_in_its_model_module(package):
    import importlib

    card = importlib.import_module(f"zoo.plugins.{package}")
    specs = card.zoo_models()
    assert specs
    for spec in specs:
        assert spec.builder.startswith(f"zoo.plugins.{package}.model:"), spec.builder


@pytest.mark.parametrize("package, name", sorted(PACKAGES.items()))
def test_network_classes_are_module_level_and_importable(package, name):
    import importlib

    import torch

    cls = getattr(importlib.import_module(f"zoo.plugins.{package}.model"), name)
    assert isinstance(cls, type) and issubclass(cls, torch.nn.Module)
    assert cls.__qualname__ == name  # not a class defined inside a function
    assert cls.__module__ == f"zoo.plugins.{package}.model"


def test_a_subclassed_bottleneck_builds_a_resnet_with_the_same_weights_layout():
    import torch

    from zoo.plugins.resnet.model import Bottleneck, ResNet

    class ScaledBottleneck(Bottleneck):
        """A residual branch scaled down, as a user's variant would be written."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * 0.5

    plain, scaled = ResNet(Bottleneck, (1, 1, 1, 1), 10), ResNet(ScaledBottleneck, (1, 1, 1, 1), 10)
    assert list(plain.state_dict()) == list(scaled.state_dict())
    assert isinstance(scaled.layer1[0], Bottleneck)
    scaled.load_state_dict(plain.state_dict())
    assert scaled.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 10)


def test_a_subclassed_yolo_keeps_its_hooks():
    from zoo.contracts import hook
    from zoo.plugins.yolo.model import YoloV3Tiny
    from zoo.registry import registry

    class MyYolo(YoloV3Tiny):
        pass

    config = registry().model("yolo-nano").config({"width": 0.25, "input_size": 64})
    module = MyYolo(config)
    assert hook(module, "darknet_layers")() == YoloV3Tiny(config).darknet_layers()
    assert module(__import__("torch").zeros(1, 3, 64, 64)).shape[-1] == 5 + config["num_classes"]


def test_lenet5_is_still_the_sequential_the_shipped_weights_were_saved_from():
    from safetensors.torch import load_file

    from zoo.plugins.lenet.model import LeNet5
    from zoo.store import find

    entry = find("lenet5@shipped")
    assert entry is not None
    LeNet5().load_state_dict(load_file(str(entry.file)), strict=True)
