"""One exception type whose message is the whole story: what was wrong and what to do."""


class EmzooError(Exception):
    """A user-facing error; the CLI prints its message on one line, without a traceback."""


class ModelNotFoundError(EmzooError, LookupError):
    """No checkpoint or architecture by that name, in the zoo, the caches or on disk."""


class CheckpointError(EmzooError, ValueError):
    """A checkpoint folder that cannot be trusted: missing, corrupt or inconsistent files."""


class ConfigError(EmzooError, ValueError):
    """An argument or configuration value outside what is accepted."""


class DataError(EmzooError, ValueError):
    """An image or dataset that cannot be used as it is."""


# Optional packages and the extra that installs each (pip install 'emzoo[EXTRA]').
EXTRAS = {
    "abtem": "sim",
    "ase": "sim",
    "accelerate": "train",
    "datasets": "train",
    "h5py": "train",
    "torchmetrics": "train",
    "gradio": "demo",
    "gradio_client": "demo",
    "onnx": "export",
    "onnxruntime": "export",
    "onnxscript": "export",
    "bioimageio": "export",
    "bm3d": "bench",
}


def missing_extra_message(error: ModuleNotFoundError) -> str | None:
    """One line for a missing optional package: which extra brings it."""
    package = (error.name or "").split(".")[0]
    extra = EXTRAS.get(package)
    if extra is None:
        return None
    return f"this needs the optional package '{package}': pip install 'emzoo[{extra}]' (or 'emzoo[all]')"
