"""What every emzoo generator shares: any input size (pad to the pooling grid, crop back), a
1x1 head that timm's classifier API can swap, and the size divisor / receptive field that tiled
inference reads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emzoo.errors import ConfigError


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad H and W (bottom/right, replicate) up to a multiple of ``multiple``; returns the
    padded tensor and the original (H, W) so the caller can crop back."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw or torch.compiler.is_exporting():  # exporting: keep the pad symbolic, never specialise it
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def check_channels(in_chans, num_classes) -> None:
    """Channel counts a network can be built with (``num_classes=0`` would build a headless net
    that outputs nothing, ``-1`` fails deep inside PyTorch)."""
    for name, value in (("in_chans", in_chans), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
            raise ConfigError(f"{name} {value!r}: expected a whole number of channels from 1 to 4096")


class ImageToImage(nn.Module):
    """Base of the generators: ``forward`` takes any H x W; subclasses implement
    ``forward_padded`` for inputs the pooling divides (shape-agnostic, so it traces and exports)."""

    size_divisor: int = 1
    output_scale: int = 1  # output pixels per input pixel
    receptive_field: int | None = None  # pixels; None where it spans any practical tile (HRNet)
    in_chans: int
    num_classes: int
    num_features: int
    head: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, self.size_divisor)
        return self.forward_padded(x)[..., : h * self.output_scale, : w * self.output_scale]

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        check_channels(self.in_chans, num_classes)
        self.num_classes = num_classes
        self.head = nn.Conv2d(self.num_features, num_classes, 1)
