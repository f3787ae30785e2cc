"""``emzoo reproduce``: the paper's experiment end to end."""

from __future__ import annotations

import json

PRESET_NAMES = ("cpu-small", "paper", "smoke")


def _cmd_reproduce(args) -> None:
    from emzoo.reproduce import reproduce

    seeds = args.seeds.split(",") if args.seeds else None
    report = reproduce(args.preset, args.output_dir, seeds, args.data_root, args.dry_run, args.pretrain)
    print(json.dumps(report, indent=2))


def add_commands(sub) -> None:
    p = sub.add_parser("reproduce", help="run the paper's experiment end to end and report")
    p.add_argument("--preset", default="cpu-small", choices=PRESET_NAMES)
    p.add_argument("--output-dir", default="runs/reproduce")
    p.add_argument("--seeds", help="comma-separated seeds (default: the preset's; cpu-small: 0,1,2)")
    p.add_argument(
        "--pretrain", action="store_true", help="cpu-small: re-run the pretraining from scratch too (slower)"
    )
    p.add_argument("--data-root", help="real datasets: cem500k/, au/, temimagenet/ (default: simulated)")
    p.add_argument("--dry-run", action="store_true", help="paper preset: only write commands.sh")
    p.set_defaults(func=_cmd_reproduce)
