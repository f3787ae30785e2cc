"""Print the README's architecture table: parameters, computed and measured receptive fields.

.venv/bin/python scripts/model_table.py
"""

import timm

import emzoo
from emzoo.models import measure_receptive_field

DESCRIPTION = {"emzoo_patchgan": "Pix2Pix 70x70 conditional PatchGAN discriminator"}

for arch in timm.list_models("emzoo_*"):
    model = emzoo.create_model(arch)
    params = sum(p.numel() for p in model.parameters())
    if hasattr(model, "receptive_field"):
        what, field = "residual U-Net", f"{model.receptive_field} / {max(measure_receptive_field(model))}"
    else:
        patchgan = arch == "emzoo_patchgan"
        what = DESCRIPTION[arch] if patchgan else f"HRNet generator (timm `{model.backbone_name}` backbone)"
        field = "70" if patchgan else "whole tile (multi-scale)"
    print(f"| `{arch}` | {what} | {params:,} | {field} |")
