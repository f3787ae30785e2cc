"""``emzoo adapt``: parse, one library call (:func:`emzoo.adaptation.adapt`), print."""

from __future__ import annotations

import argparse
import json


def _cmd_adapt(args: argparse.Namespace) -> None:
    from emzoo.adaptation import adapt

    model = adapt(
        args.model,
        args.inputs,
        output_dir=args.output_dir,
        minutes=args.minutes,
        steps=args.steps,
        method=args.method,
        pixel_size=args.pixel_size,
        patch=args.patch,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.quiet,
        cpu=args.cpu,
    )
    info = model.emzoo_cfg["adaptation"]
    print(json.dumps({"model": str(model.emzoo_cfg.get("source", args.output_dir)), **info}, indent=2))


def add_commands(sub) -> None:
    p = sub.add_parser(
        "adapt",
        help="fine-tune a zoo denoiser on your own micrographs, without clean images (Noise2Void / Noise2Noise)",
        description="Adapt a shipped model to your micrographs: n2v (blind spots) on single images, n2n on frame "
        "series (multi-frame TIFF/MRC/DM/EMD). The result is a model folder in OUTPUT_DIR/model for `emzoo predict "
        "--model`. Inputs are only read; rerun the same command to resume an interrupted run.",
    )
    p.add_argument("inputs", nargs="+", help="micrograph files (single images or frame series)")
    p.add_argument("--model", help="zoo name or model folder to start from (default: unet-4-424-emsim-denoise)")
    p.add_argument("--output-dir", required=True, help="folder for the run and the adapted model (OUTPUT_DIR/model)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="wall-time budget (default: 3)")
    budget.add_argument("--steps", type=int, help="optimiser steps instead of a time budget")
    p.add_argument("--method", choices=("auto", "n2v", "n2n"), default="auto", help="auto: n2n for frame series")
    p.add_argument("--pixel-size", type=float, help="nm per pixel, where the files do not say")
    p.add_argument("--patch-size", dest="patch", type=int, default=64, help="training patch side in px (default 64)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu", action="store_true", help="train on the CPU even where a GPU is present")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_adapt)
