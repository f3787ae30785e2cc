"""Residual U-Nets of Sytwu et al. (2022) as used by Kazimi et al. (2024): "U-Net B RF".

B residual blocks in the encoder (one per level), widths ``width * 2**level`` (4, 8, 16, ...),
max-pooling with kernel = stride = p per level, nearest upsampling by the same factor and skip
concatenation. The receptive field RF is computed from the layers (``model.receptive_field``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.models import build_model_with_cfg, register_model
from timm.models._registry import generate_default_cfgs
from torch import nn

from emzoo.models._base import ImageToImage, check_channels
from emzoo.zoo import UNET_POOLS, pretrained_cfgs

__all__ = ["ResidualUNet", "ResidualBlock", "receptive_field", "measure_receptive_field"]


def _cfg(**kwargs) -> dict:
    return dict(
        input_size=(1, 256, 256),
        min_input_size=(1, 8, 8),
        mean=(0.0,),
        std=(1.0,),
        num_classes=1,
        first_conv=("encoder.0.conv1", "encoder.0.skip"),
        classifier="head",
        **kwargs,
    )


default_cfgs = generate_default_cfgs(
    {name: cfg for (b, rf) in UNET_POOLS for name, cfg in pretrained_cfgs(f"emzoo_unet_{b}_{rf}", **_cfg()).items()}
)


class ResidualBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a 1x1 conv on the skip, then ReLU."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv2d(in_chs, out_chs, kernel_size, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.conv2 = nn.Conv2d(out_chs, out_chs, kernel_size, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.skip = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.kernel_sizes = (kernel_size, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.skip(x))


def receptive_field(pools: Sequence[int], kernel_sizes: Sequence[int] = (3, 3)) -> int:
    """Receptive field of a residual U-Net with the given pool factors.

    RF = 1 + sum over convs of (k-1)*j + sum over pools of (p-1)*j, with j the product of the
    pool factors above the layer; encoder, bottleneck and decoder convs all count, nearest
    upsampling does not. This reproduces the paper's numbers (e.g. (2, 2) -> 44).
    """
    conv_growth = sum(k - 1 for k in kernel_sizes)
    rf, jump = 1, 1
    for p in pools:
        rf += 2 * conv_growth * jump  # the encoder block and its decoder twin
        rf += (p - 1) * jump
        jump *= p
    return rf + conv_growth * jump  # bottleneck


def measure_receptive_field(model: nn.Module, trials: int = 3, positions: int = 12) -> list[int]:
    """Horizontal extents (pixels) of the input that single output pixels depend on, measured
    by gradients for output pixels spread over one period of the pooling grid. Activations are
    made leaky so that no dead unit hides a connection; one batch item per pixel and trial makes
    it a single backward pass (BN in eval mode keeps the items independent)."""
    import copy

    probe = copy.deepcopy(model).eval()
    for block in probe.modules():
        if hasattr(block, "act"):
            block.act = nn.LeakyReLU(0.1)
    rf, period = probe.receptive_field, probe.size_divisor
    width = ((2 * rf) // period + 1) * period
    height = 2 * period  # rows do not change which columns a pixel depends on
    start = width // 2 - (width // 2) % period
    cols = [start + k for k in range(0, period, max(1, period // positions))]
    n = len(cols)
    x = torch.randn(n * trials, 1, height, width, generator=torch.Generator().manual_seed(0), requires_grad=True)
    out = probe(x)
    out[torch.arange(n * trials), 0, height // 2, torch.tensor(cols * trials)].sum().backward()
    touched = (x.grad[:, 0].abs() > 0).any(dim=1).view(trials, n, width).any(dim=0)
    extents = []
    for t in touched:
        idx = t.nonzero()
        extents.append(int(idx.max() - idx.min() + 1))
    return extents


class ResidualUNet(ImageToImage):
    """Residual U-Net generator; any input size, output has the input's height and width."""

    def __init__(
        self,
        pools: Sequence[int] = (2, 2),
        in_chans: int = 1,
        num_classes: int = 1,
        width: int = 4,
        final_act: str | None = None,
    ) -> None:
        super().__init__()
        self.pools = tuple(int(p) for p in pools)
        self.in_chans = in_chans
        check_channels(in_chans, num_classes)
        self.num_classes = num_classes
        self.width = width
        self.final_act = final_act
        chans = [width * 2**i for i in range(len(self.pools) + 1)]
        self.encoder = nn.ModuleList()
        prev = in_chans
        for c in chans[:-1]:
            self.encoder.append(ResidualBlock(prev, c))
            prev = c
        self.bottleneck = ResidualBlock(prev, chans[-1])
        self.decoder = nn.ModuleList(
            ResidualBlock(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(len(self.pools)))
        )
        self.head = nn.Conv2d(chans[0], num_classes, 1)
        self.num_features = chans[0]
        self.size_divisor = 1
        for p in self.pools:
            self.size_divisor *= p

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.pools, self.bottleneck.kernel_sizes)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """The network on an input whose size the pooling divides (shape-agnostic: traceable)."""
        skips = []
        for block, p in zip(self.encoder, self.pools):
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, p)
        x = self.bottleneck(x)
        for block, p, skip in zip(self.decoder, reversed(self.pools), reversed(skips)):
            x = F.interpolate(x, scale_factor=p, mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        x = self.head(x)
        return torch.sigmoid(x) if self.final_act == "sigmoid" else x


def _create(variant: str, pretrained: bool = False, **kwargs) -> ResidualUNet:
    b, rf = (int(v) for v in variant.split("_")[-2:])
    model_args = dict(pools=UNET_POOLS[(b, rf)])
    return build_model_with_cfg(ResidualUNet, variant, pretrained, **dict(model_args, **kwargs))


@register_model
def emzoo_unet_2_44(pretrained: bool = False, **kwargs) -> ResidualUNet:
    """Residual U-Net, 2 encoder blocks, 44-pixel receptive field."""
    return _create("emzoo_unet_2_44", pretrained, **kwargs)


@register_model
def emzoo_unet_2_84(pretrained: bool = False, **kwargs) -> ResidualUNet:
    """Residual U-Net, 2 encoder blocks, 84-pixel receptive field."""
    return _create("emzoo_unet_2_84", pretrained, **kwargs)


@register_model
def emzoo_unet_2_116(pretrained: bool = False, **kwargs) -> ResidualUNet:
    """Residual U-Net, 2 encoder blocks, 116-pixel receptive field."""
    return _create("emzoo_unet_2_116", pretrained, **kwargs)


@register_model
def emzoo_unet_3_96(pretrained: bool = False, **kwargs) -> ResidualUNet:
    """Residual U-Net, 3 encoder blocks, 96-pixel receptive field."""
    return _create("emzoo_unet_3_96", pretrained, **kwargs)


@register_model
def emzoo_unet_3_176(pretrained: bool = False, **kwargs) -> ResidualUNet:
    """Residual U-Net, 3 encoder blocks, 176-pixel receptive field."""
    return _create("emzoo_unet_3_176", pretrained, **kwargs)


@register_model
def emzoo_unet_3_240(pretrained: bool = False, **kwargs) -> ResidualUNet:
    """Residual U-Net, 3 encoder blocks, 240-pixel receptive field."""
    return _create("emzoo_unet_3_240", pretrained, **kwargs)


@register_model
def emzoo_unet_4_200(pretrained: bool = False, **kwargs) -> ResidualUNet:
    """Residual U-Net, 4 encoder blocks, 200-pixel receptive field."""
    return _create("emzoo_unet_4_200", pretrained, **kwargs)


@register_model
def emzoo_unet_4_360(pretrained: bool = False, **kwargs) -> ResidualUNet:
    """Residual U-Net, 4 encoder blocks, 360-pixel receptive field."""
    return _create("emzoo_unet_4_360", pretrained, **kwargs)


@register_model
def emzoo_unet_4_424(pretrained: bool = False, **kwargs) -> ResidualUNet:
    """Residual U-Net, 4 encoder blocks, 424-pixel receptive field."""
    return _create("emzoo_unet_4_424", pretrained, **kwargs)
