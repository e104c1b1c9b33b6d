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
        ExporterSpec(
            name="onnx-nms",
            summary="detectors: one ONNX graph with YOLO decoding and NonMaxSuppression (per class) inside; "
                    "outputs num_detections, boxes, scores, classes",
            export="zoo.exporters.nms:export",
            suffix="-nms.onnx",
        ),
        ExporterSpec(
            name="onnx-nms-agnostic",
            summary="detectors: as onnx-nms, with NonMaxSuppression across classes (one object, one box)",
            export="zoo.exporters.nms:export_agnostic",
            suffix="-nms-agnostic.onnx",
        ),
        ExporterSpec(
            name="triton-nms",
            summary="detectors: a Triton model repository entry NAME-nms serving the onnx-nms graph (boxes out)",
            export="zoo.exporters.triton:export_nms",
            suffix="",
        ),
    ]
