"""emzoo: the model zoo for electron-microscopy image models.

``import emzoo`` registers every ``emzoo_*`` architecture with timm.
"""

__version__ = "0.1.0"

from emzoo.errors import EmzooError
from emzoo.hub import create_model, download, info, load, save_pretrained
from emzoo.predict import predict
from emzoo.zoo import ZOO, list_models

__all__ = [
    "ZOO",
    "EmzooError",
    "__version__",
    "create_model",
    "download",
    "info",
    "list_models",
    "load",
    "predict",
    "save_pretrained",
]


def __getattr__(name: str):
    """Submodules documented as ``emzoo.io``, ``emzoo.data``: imported on first use."""
    import importlib

    if name in ("io", "data", "inference", "zoo", "hub"):
        return importlib.import_module(f"emzoo.{name}")
    raise AttributeError(f"module 'emzoo' has no attribute {name!r}")
