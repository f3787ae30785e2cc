"""HRNetV2-style image-to-image generators on timm's HRNet backbone.

timm's HRNet gives four branches at strides 4, 8, 16 and 32. As in HRNetV2 (Sun et al. 2019),
every branch is upsampled to stride 4 and concatenated, fused by a 1x1 conv, then brought back
to full input resolution and merged with a shallow full-resolution stem so that fine atomic
detail survives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models import build_model_with_cfg, register_model
from timm.models._registry import generate_default_cfgs
from timm.models.hrnet import HighResolutionNetFeatures, cfg_cls
from torch import nn

from emzoo.models._base import ImageToImage, check_channels
from emzoo.zoo import pretrained_cfgs

__all__ = ["HRNetGenerator"]


def _cfg(**kwargs) -> dict:
    return dict(
        input_size=(1, 256, 256),
        min_input_size=(1, 32, 32),
        mean=(0.0,),
        std=(1.0,),
        num_classes=1,
        first_conv=("backbone.conv1", "full_res.0"),
        classifier="head",
        **kwargs,
    )


default_cfgs = generate_default_cfgs(
    {
        name: cfg
        for arch in ("emzoo_hrnet_w18_small", "emzoo_hrnet_w18", "emzoo_hrnet_w32", "emzoo_hrnet_w48")
        for name, cfg in pretrained_cfgs(arch, **_cfg()).items()
    }
)


def _conv_bn_relu(in_chs: int, out_chs: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_chs),
        nn.ReLU(inplace=True),
    )


class HRNetGenerator(ImageToImage):
    """HRNet backbone + HRNetV2 fusion + full-resolution decoder; output size = input size."""

    size_divisor = 32

    def __init__(
        self,
        backbone: str = "hrnet_w18",
        in_chans: int = 1,
        num_classes: int = 1,
        full_res_chans: int = 16,
        fuse_chans: int | None = None,
        final_act: str | None = None,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_channels(in_chans, num_classes)
        self.num_classes = num_classes
        self.final_act = final_act
        self.backbone_name = backbone
        self.backbone = HighResolutionNetFeatures(
            cfg_cls[backbone], in_chans=in_chans, feature_location="", out_indices=(1, 2, 3, 4)
        )
        branch_chans = sum(self.backbone.feature_info.channels())
        fuse_chans = fuse_chans or branch_chans
        self.fuse = _conv_bn_relu(branch_chans, fuse_chans, 1)
        self.full_res = _conv_bn_relu(in_chans, full_res_chans, 3)
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            _conv_bn_relu(fuse_chans, fuse_chans // 2, 3),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            _conv_bn_relu(fuse_chans // 2, fuse_chans // 4, 3),
        )
        self.refine = _conv_bn_relu(fuse_chans // 4 + full_res_chans, full_res_chans * 2, 3)
        self.num_features = full_res_chans * 2
        self.head = nn.Conv2d(self.num_features, num_classes, 1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """The network on an input whose size 32 divides (shape-agnostic: traceable)."""
        branches = self.backbone(x)
        upsampled = [
            F.interpolate(b, scale_factor=float(2**i), mode="bilinear", align_corners=False)
            for i, b in enumerate(branches[1:], start=1)
        ]
        y = self.up(self.fuse(torch.cat([branches[0], *upsampled], dim=1)))
        y = self.refine(torch.cat([y, self.full_res(x)], dim=1))
        y = self.head(y)
        return torch.sigmoid(y) if self.final_act == "sigmoid" else y


def _create(variant: str, backbone: str, pretrained: bool = False, **kwargs) -> HRNetGenerator:
    model_args = dict(backbone=backbone)
    return build_model_with_cfg(HRNetGenerator, variant, pretrained, **dict(model_args, **kwargs))


@register_model
def emzoo_hrnet_w18_small(pretrained: bool = False, **kwargs) -> HRNetGenerator:
    """HRNet-W18-Small-V2 generator: the CPU-friendly one (about 4M parameters)."""
    return _create("emzoo_hrnet_w18_small", "hrnet_w18_small_v2", pretrained, **kwargs)


@register_model
def emzoo_hrnet_w18(pretrained: bool = False, **kwargs) -> HRNetGenerator:
    """HRNet-W18 generator (HRNetV2-W18 backbone)."""
    return _create("emzoo_hrnet_w18", "hrnet_w18", pretrained, **kwargs)


@register_model
def emzoo_hrnet_w32(pretrained: bool = False, **kwargs) -> HRNetGenerator:
    """HRNet-W32 generator."""
    return _create("emzoo_hrnet_w32", "hrnet_w32", pretrained, **kwargs)


@register_model
def emzoo_hrnet_w48(pretrained: bool = False, **kwargs) -> HRNetGenerator:
    """HRNet-W48 generator."""
    return _create("emzoo_hrnet_w48", "hrnet_w48", pretrained, **kwargs)
