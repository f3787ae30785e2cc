"""Device names checked against what this machine has, so a typo or a missing GPU is one line."""

from __future__ import annotations

import torch

from emzoo.errors import ConfigError


def available_devices() -> list[str]:
    found = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def check_device(name: str | None) -> str | None:
    """``name`` if this machine has it (None: the default, CPU), else a ConfigError that lists
    the devices it has."""
    if name is None:
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"device {name!r}: not a device name; this machine has {', '.join(available_devices())}"
        ) from None
    have = available_devices()
    ok = (
        device.type == "cpu"
        or (device.type == "cuda" and torch.cuda.device_count() > (device.index or 0))
        or (device.type == "mps" and "mps" in have)
    )
    if not ok:
        raise ConfigError(f"device {name!r}: not available here; this machine has {', '.join(have)}")
    return name
