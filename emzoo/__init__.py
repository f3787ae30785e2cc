"""emzoo: the model zoo for electron-microscopy image models.

``import emzoo`` registers every ``emzoo_*`` architecture with timm and loads nothing heavier
(no accelerate, datasets, abTEM, gradio, onnx, matplotlib) until a function needs it.
"""

from emzoo.errors import CheckpointError, ConfigError, DataError, EmzooError, ModelNotFoundError
from emzoo.hub import create_model, download, info, load, save_pretrained
from emzoo.inference.files import predict_files
from emzoo.inference.predictor import Predictor, predict
from emzoo.version import __version__
from emzoo.zoo import ZOO, list_models

__all__ = [
    "ZOO",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "EmzooError",
    "ModelNotFoundError",
    "Predictor",
    "__version__",
    "adapt",
    "create_model",
    "download",
    "info",
    "list_models",
    "load",
    "predict",
    "predict_files",
    "save_pretrained",
]


def __getattr__(name: str):
    """Submodules documented as ``emzoo.io``, ``emzoo.data``: imported on first use."""
    import importlib

    if name == "adapt":  # the function; its module (accelerate, the Trainer) loads on first use
        return importlib.import_module("emzoo.adaptation").adapt
    if name in ("io", "data", "inference", "zoo", "hub", "tasks", "export", "train", "space", "normalize"):
        return importlib.import_module(f"emzoo.{name}")
    raise AttributeError(f"module 'emzoo' has no attribute {name!r}")
