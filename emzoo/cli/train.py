"""``emzoo pretrain | finetune | evaluate``; ``scripts/pretrain.py`` and ``scripts/finetune.py``
run the same code under ``accelerate launch`` or ``torchrun``."""

from __future__ import annotations

import argparse
import json

from emzoo.errors import ConfigError
from emzoo.tasks import FINETUNE_TASKS, get_task
from emzoo.zoo import ZOO

# built-in defaults where neither the command line nor a recipe says otherwise
DEFAULTS = {
    "epochs": 60,
    "batch_size": 16,
    "image_size": 256,
    "lr": 2e-4,
    "l1_lambda": 100.0,
    "task": "pretext",
}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset folder (any emzoo layout) or 'simulated'")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--recipe", help="a zoo entry whose recipe to follow exactly (see `emzoo info NAME`)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-steps", type=int, help="stop after this many optimiser steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--image-size", type=int, help="training crop size in pixels")
    p.add_argument("--lr", type=float)
    p.add_argument(
        "--lr-schedule", choices=("constant", "cosine"), default="constant", help="cosine: decay to 0 over the run"
    )
    p.add_argument(
        "--ema-decay", type=float, help="validate and export weights averaged over steps with this decay (e.g. 0.998)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--checkpointing-steps", type=int, help="checkpoint every N steps (default: every epoch)")
    p.add_argument("--checkpoints-total-limit", type=int, default=2, help="keep the last N checkpoints")
    p.add_argument("--resume-from-checkpoint", help="'latest' or a checkpoint folder")
    p.add_argument(
        "--mixed-precision",
        choices=("auto", "no", "bf16", "fp16"),
        default="auto",
        help="auto: bf16 where a few measured steps show it faster on this machine, else no",
    )
    p.add_argument("--gradient-accumulation-steps", type=int, default=1)
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto", help="torch.compile (auto: long runs)")
    p.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory format")
    p.add_argument("--report-to", help="an accelerate tracker, e.g. tensorboard")
    _simulated_args(p)
    p.add_argument("--cpu", action="store_true", help="train on the CPU even where a GPU is present")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _resolve(args: argparse.Namespace, mode: str):
    from emzoo.train.trainer import TrainConfig

    arch = getattr(args, "arch", None)
    common = dict(
        data=args.data,
        output_dir=args.output_dir,
        arch=arch,
        model=getattr(args, "model", None),
        task=getattr(args, "task", None),
        max_steps=args.max_steps,
        num_classes=getattr(args, "num_classes", 1),
        head_lr_scale=getattr(args, "head_lr_scale", 1.0),
        lr_schedule=args.lr_schedule,
        ema_decay=args.ema_decay,
        seed=args.seed,
        num_workers=args.num_workers,
        checkpointing_steps=args.checkpointing_steps,
        checkpoints_total_limit=args.checkpoints_total_limit,
        resume_from_checkpoint=args.resume_from_checkpoint,
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        compile=args.compile,
        channels_last=not args.no_channels_last,
        report_to=args.report_to,
        sim_n=args.sim_n,
        sim_size=args.sim_size,
        progress=not args.quiet,
        cpu=args.cpu,
        **{k: getattr(args, k, None) for k in ("epochs", "batch_size", "image_size", "lr", "l1_lambda")},
    )
    if args.recipe:  # the recipe exactly (steps, widths, head), the command line's explicit values on top
        entry = ZOO.get(args.recipe)
        if entry is None:
            raise ConfigError(f"--recipe {args.recipe}: not a zoo entry (see `emzoo list`)")
        if mode == "pretrain" and not get_task(entry.task).pretext:
            raise ConfigError(f"--recipe {args.recipe}: a {entry.task} entry; use `emzoo finetune --recipe`")
        if mode == "finetune" and get_task(entry.task).pretext:
            raise ConfigError(f"--recipe {args.recipe}: a pretraining entry; use `emzoo pretrain --recipe`")
        return TrainConfig.from_recipe(args.recipe, **common)
    values = {k: v for k, v in common.items() if v is not None}
    for key, default in DEFAULTS.items():
        values.setdefault(key, default)
    if mode == "finetune" and get_task(values["task"]).pretext:
        raise ConfigError(f"--task is required for fine-tuning: one of {', '.join(FINETUNE_TASKS)}")
    return TrainConfig(mode=mode, **values)


def _cmd_train(args: argparse.Namespace) -> None:
    from emzoo.train.trainer import run

    result = run(_resolve(args, args.command))
    print(json.dumps(result, indent=2))


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from emzoo.train.evaluation import evaluate_model

    metrics = evaluate_model(
        args.model,
        args.data,
        task=args.task,
        split=args.split,
        image_size=args.image_size,
        sim_n=args.sim_n,
        sim_size=args.sim_size,
    )
    print(json.dumps(metrics, indent=2))


def _simulated_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sim-n", type=int, default=48, help="images in a --data simulated dataset")
    p.add_argument("--sim-size", type=int, default=256, help="image size of a --data simulated dataset")


def add_commands(sub) -> None:
    p = sub.add_parser("pretrain", help="self-supervised Pix2Pix cGAN pretraining of a generator")
    p.add_argument("--arch", help="generator architecture, e.g. emzoo_unet_2_44 (or from --recipe)")
    p.add_argument("--l1-lambda", type=float, help="weight of the L1 term (the paper: 100)")
    _common(p)
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("finetune", help="fine-tune a generator for segmentation or restoration")
    p.add_argument("--model", help="zoo name, hf-hub:ORG/NAME[@REV], a folder, or random:ARCH (or from --recipe)")
    p.add_argument("--task", choices=FINETUNE_TASKS)
    p.add_argument("--num-classes", type=int, default=1, help="segmentation classes (1: binary, logits)")
    p.add_argument(
        "--head-lr-scale",
        type=float,
        default=1.0,
        help="learning rate of a new head (segmentation starts one at the class prior), in units of --lr",
    )
    _common(p)
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("evaluate", help="metrics of a trained model on a dataset split")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="dataset folder or 'simulated'")
    p.add_argument("--task", choices=FINETUNE_TASKS, help="default: the model's own task")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--image-size", type=int, help="centre crops of this size (default: whole images)")
    _simulated_args(p)
    p.set_defaults(func=_cmd_evaluate)


def script_main(command: str) -> int:
    """Entry point of scripts/pretrain.py and scripts/finetune.py."""
    import sys

    from emzoo.cli import main

    return main([command, *sys.argv[1:]])
