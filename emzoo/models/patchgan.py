"""Pix2Pix conditional PatchGAN discriminator (Isola et al. 2017).

The input is the condition and the image concatenated along channels (1 + 1 for grayscale EM);
the output is a map of real/fake scores, one per overlapping patch (70x70 with 3 layers).
"""

from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, register_model
from timm.models._registry import generate_default_cfgs
from torch import nn

from emzoo.models._base import check_channels

__all__ = ["PatchGAN"]

default_cfgs = generate_default_cfgs(
    {
        "emzoo_patchgan": dict(
            input_size=(2, 256, 256),
            mean=(0.0, 0.0),
            std=(1.0, 1.0),
            num_classes=1,
            first_conv="model.0",
            classifier="model.-1",
        )
    }
)


class PatchGAN(nn.Module):
    """C64-C128-C256-C512 PatchGAN with 4x4 convs, BatchNorm and LeakyReLU(0.2)."""

    def __init__(self, in_chans: int = 2, num_classes: int = 1, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_channels(in_chans, num_classes)
        self.num_classes = num_classes
        layers: list[nn.Module] = [nn.Conv2d(in_chans, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=False),
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, num_classes, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@register_model
def emzoo_patchgan(pretrained: bool = False, **kwargs) -> PatchGAN:
    """70x70 conditional PatchGAN for (input, output) pairs of 1-channel images."""
    return build_model_with_cfg(PatchGAN, "emzoo_patchgan", pretrained, **kwargs)
