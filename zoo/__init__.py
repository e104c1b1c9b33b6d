"""zoo: classic deep-learning architectures as plugins, from training to ONNX Runtime."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("zoo")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

from zoo.errors import ZooError  # noqa: E402
from zoo.hookspecs import API_VERSION, hookimpl  # noqa: E402
from zoo.specs import DatasetSpec, ExporterSpec, ModelSpec, TaskOption, TaskSpec  # noqa: E402

#: the Python API (zoo.api), imported on first use so that a plugin's ``import zoo`` stays light
_API = ("list_models", "load", "val", "train", "export", "Model")

__all__ = ["API_VERSION", "hookimpl", "ModelSpec", "DatasetSpec", "TaskSpec", "TaskOption", "ExporterSpec",
           "ZooError", "__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from zoo import api

        return getattr(api, name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
