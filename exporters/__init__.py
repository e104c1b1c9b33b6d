"""Export formats. ONNX is built in and registered through the same hook a third party uses."""

from zoo.hookspecs import hookimpl
from zoo.specs import ExporterSpec


@hookimpl
def zoo_exporters() -> list[ExporterSpec]:
    return [
        ExporterSpec(
            name="onnx",
            summary="ONNX with a dynamic batch axis, checked by onnx.checker and compared with PyTorch",
            export="zoo.exporters.onnx:export",
            suffix=".onnx",
        ),
        ExporterSpec(
            name="triton",
            summary="an NVIDIA Triton model repository entry: config.pbtxt and 1/model.onnx",
            export="zoo.exporters.triton:export",
            suffix="",
        ),
    ]
