"""``emzoo export``: ONNX, TorchScript or a BioImage.IO package, verified against PyTorch."""

from __future__ import annotations

import json

FORMATS = ("onnx", "torchscript", "bioimageio")


def _cmd_export(args) -> None:
    from emzoo.export import export

    print(json.dumps(export(args.model, args.format, args.out), indent=2, default=str))


def add_commands(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX, TorchScript or a BioImage.IO package (verified)")
    p.add_argument("--model", required=True, help="zoo name, hf-hub:ORG/NAME, or a folder")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, help="a new folder")
    p.set_defaults(func=_cmd_export)
