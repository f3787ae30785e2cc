"""`emzoo zoo build`: train the checkpoints that ship with emzoo."""

from __future__ import annotations

import argparse
import json


def _cmd_build(args: argparse.Namespace) -> None:
    from emzoo.build import build, is_built, shipped_entries
    from emzoo.errors import ConfigError

    if args.background_prob is not None and not 0.0 <= args.background_prob <= 1.0:  # before any corpus is built
        raise ConfigError(f"--background-prob {args.background_prob:g}: expected a share of training frames, 0 to 1")
    if args.list:
        for entry in shipped_entries():
            print(f"{entry.name:<36} {'built' if is_built(entry) else 'to build'}")
        return
    done = build(
        args.names or None,
        runs=args.runs,
        progress=not args.quiet,
        warm_start=args.warm_start,
        steps=args.steps,
        from_pretext=args.from_pretext,
        lr=args.lr,
        keep_spikes=args.keep_spikes,
        ema_decay=args.ema_decay,
        background_prob=args.background_prob,
    )
    print(json.dumps(done, indent=2))


def _cmd_calibrate(args: argparse.Namespace) -> None:
    from emzoo.build import corpus_for, shipped_entries
    from emzoo.calibration import recalibrate
    from emzoo.errors import ModelNotFoundError
    from emzoo.hub.publish import write_cards
    from emzoo.tasks import get_task
    from emzoo.zoo.catalog import RECIPES, SHIPPED_DIR

    entries = [e for e in shipped_entries() if get_task(e.task).segmentation]
    unknown = sorted(set(args.names) - {e.name for e in entries})
    if unknown:
        raise ModelNotFoundError(f"not shipped segmentation checkpoints: {', '.join(unknown)}")
    done = {}
    for entry in (e for e in entries if not args.names or e.name in args.names):
        done[entry.name] = recalibrate(SHIPPED_DIR / entry.name, entry, corpus_for(RECIPES[entry.recipe]))
        print(json.dumps({entry.name: done[entry.name]}), flush=True)
    write_cards()


def add_commands(sub) -> None:
    zoo = sub.add_parser("zoo", help="the zoo's shipped checkpoints")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", metavar="COMMAND", required=True)
    p = zoo_sub.add_parser("build", help="train every shipped checkpoint from the simulated corpus (resumable)")
    p.add_argument("names", nargs="*", help="only these checkpoints (default: all)")
    p.add_argument("--runs", help="folder for the training runs (default: emzoo's cache)")
    p.add_argument("--list", action="store_true", help="list the shipped checkpoints and whether each is built")
    p.add_argument(
        "--warm-start",
        action="store_true",
        help="continue from the shipped weights on the recipe's corpus; replace them only if held-out metrics improve",
    )
    p.add_argument(
        "--from-pretext",
        action="store_true",
        help="fine-tune again from the shipped pretext checkpoint; replace only if held-out metrics improve",
    )
    p.add_argument(
        "--steps",
        type=int,
        help="steps of a warm start (default: 2000 for U-Nets, 600 for HRNet) or of --from-pretext (the recipe's)",
    )
    p.add_argument(
        "--lr", type=float, help="learning rate of a warm start or --from-pretext run (default: the recipe's)"
    )
    p.add_argument(
        "--ema-decay",
        type=float,
        help="average the weights over steps with this decay, e.g. 0.998 (a run of its own; default: the recipe's)",
    )
    p.add_argument(
        "--background-prob",
        type=float,
        help="the share of training frames given a smooth random background (segmentation; a run of its own; "
        "default: the recipe's)",
    )
    p.add_argument(
        "--keep-spikes",
        action="store_true",
        help="train on inputs as recorded where the recipe replaces x-ray hits and hot pixels (a run of its own)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_build)
    p = zoo_sub.add_parser(
        "calibrate",
        help="choose shipped segmentation checkpoints' border context and polarity confidence on their "
        "validation split (weights unchanged) and score their test split again",
    )
    p.add_argument("names", nargs="*", help="only these checkpoints (default: every segmentation one)")
    p.set_defaults(func=_cmd_calibrate)
