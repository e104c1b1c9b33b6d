"""zoo: classic deep-learning architectures as plugins, from training to ONNX Runtime."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("zoo")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

from zoo.hookspecs import API_VERSION, hookimpl  # noqa: E402
from zoo.specs import DatasetSpec, ExporterSpec, ModelSpec, TaskOption, TaskSpec  # noqa: E402

__all__ = ["API_VERSION", "hookimpl", "ModelSpec", "DatasetSpec", "TaskSpec", "TaskOption", "ExporterSpec", "__version__"]
