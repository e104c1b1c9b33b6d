"""Inference with ONNX Runtime: artifacts, provider choice and the shared per-task processing.
Nothing under here imports torch."""
