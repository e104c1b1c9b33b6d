"""MTCNN face detection with five landmarks (Zhang et al. 2016), the detector FaceNet pipelines
put in front of the embedding network:

    image -> pyramid (scale 12 / min_face, then x0.709 per level while the side stays >= 12)
          -> P-Net on every level: 12x12 windows at stride 2, face probability + box offsets
          -> NMS per level (IoU 0.5), NMS over all levels (0.7), regression, square boxes
          -> R-Net on 24x24 crops: threshold, NMS (0.7), regression, square boxes
          -> O-Net on 48x48 crops: threshold, landmarks, regression, NMS (0.7, by the smaller area)

The nets are ``zoo.plugins.mtcnn.model``; the cascade is written once in numpy in
``zoo.runtime.mtcnn`` and used by ``zoo run mtcnn`` and by the FaceNet pipeline. The shipped
weights are the trained nets that facenet-pytorch 2.6.0 distributes (MIT), converted to
safetensors; nothing is trained here (no face detection set exists offline), so ``zoo train
mtcnn`` is not offered a dataset.
"""

from __future__ import annotations

from zoo.hookspecs import hookimpl
from zoo.specs import ModelSpec, TaskOption, TaskSpec


@hookimpl
def zoo_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="mtcnn",
            family="mtcnn",
            task="face-detection",
            summary="MTCNN face detector: P-Net, R-Net, O-Net cascade with box regression and five landmarks; "
                    "trained weights from facenet-pytorch (MIT), exported as one three-graph artifact",
            paper="Zhang, Zhang, Li and Qiao, Joint Face Detection and Alignment using Multi-task Cascaded "
                  "Convolutional Networks, IEEE Signal Processing Letters 23(10), 2016",
            builder="zoo.plugins.mtcnn.model:MTCNN",
            params=495_850,
            default_config={},
            preprocessing={"mean": 127.5, "scale": 0.0078125, "channels": "RGB", "resize": "area"},
            family_default=True,
            importers={".whl": "zoo.plugins.mtcnn.model:read_wheel", ".zip": "zoo.plugins.mtcnn.model:read_wheel"},
            train_defaults={"bench_batches": (1, 16)},
        )
    ]


@hookimpl
def zoo_tasks() -> list[TaskSpec]:
    return [
        TaskSpec(
            name="face-detection",
            summary="faces with a score and five landmarks (eyes, nose, mouth corners) from an MTCNN cascade",
            impl="zoo.runtime.tasks.face_detection:FaceDetection",
            options=(
                TaskOption("min-face", "int", 20, "smallest face side to look for, in pixels"),
                TaskOption("save", "path", None, "write the image with boxes and landmarks drawn here (one input)"),
                TaskOption("save-dir", "path", None, "draw the faces and save one image per input in this folder"),
            ),
        )
    ]
