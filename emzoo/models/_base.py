"""Pieces every emzoo network shares: size padding and the Hugging Face hooks."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad H and W (bottom/right, replicate) up to a multiple of ``multiple``; returns the
    padded tensor and the original (H, W) so the caller can crop back."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw or torch.compiler.is_exporting():  # exporting: keep the pad symbolic, never specialise it
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


class HubMixin:
    """``from_pretrained`` / ``save_pretrained`` / ``push_to_hub`` as Hugging Face users know
    them, all routed through :func:`emzoo.load` and :func:`emzoo.save_pretrained` so there is one
    config format (timm's) and loading is strict."""

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs):
        from emzoo.hub import load

        model = load(name_or_path, **kwargs)
        if not isinstance(model, cls):
            raise TypeError(f"{name_or_path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> Path:
        from emzoo.hub import save_pretrained

        return save_pretrained(self, save_directory, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        from emzoo.publish import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)
