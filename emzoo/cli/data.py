"""``emzoo data``: ``simulate`` writes a small simulated dataset in a real layout for one task;
``corpus`` builds (or finishes) the simulated materials-EM corpus."""

from __future__ import annotations

import argparse
import json

from emzoo.tasks import TASK_NAMES


def _cmd_corpus(args: argparse.Namespace) -> None:
    from emzoo.data.corpus import build_corpus, default_corpus

    counts = dict(n_train=args.n_train, n_val=args.n_val, n_test=args.n_test, size=args.size, seed=args.seed)
    if args.out:
        out = build_corpus(args.out, workers=args.workers, progress=not args.quiet, **counts)
    else:
        out = default_corpus(progress=not args.quiet, workers=args.workers, **counts)
    manifest = json.loads((out / "corpus.json").read_text())
    print(
        json.dumps(
            {"corpus": str(out), **{k: manifest[k] for k in ("samples", "pixel_size_nm", "per_modality")}}, indent=2
        )
    )


def _add_corpus(data_sub) -> None:
    p = data_sub.add_parser(
        "corpus", help="simulate the materials-EM corpus (HRTEM + STEM, labelled, resumable, cached)"
    )
    p.add_argument("--out", help="folder to write (default: emzoo's cache, as `--data corpus:...` uses)")
    p.add_argument("--n-train", type=int, default=960, help="training samples (default 960)")
    p.add_argument("--n-val", type=int, default=96, help="validation samples (default 96)")
    p.add_argument("--n-test", type=int, default=192, help="held-out test samples (default 192)")
    p.add_argument("--size", type=int, default=256, help="image size in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, help="processes (default: every core)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_corpus)


def _cmd_simulate(args) -> None:
    from emzoo.data.simulate import simulate_dataset

    out = simulate_dataset(args.task, args.out, n=args.n, size=args.size, seed=args.seed, progress=not args.quiet)
    print(out)


def add_commands(sub) -> None:
    data = sub.add_parser("data", help="datasets: simulate embedded default data")
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    p = data_sub.add_parser("simulate", help="simulate a dataset in the real layout for a task")
    p.add_argument("--task", required=True, choices=TASK_NAMES)
    p.add_argument("--n", type=int, default=24, help="number of images (split 70/15/15 into train/val/test)")
    p.add_argument("--size", type=int, default=256, help="image size in pixels")
    p.add_argument("--out", required=True, help="output folder (must be new or empty)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_simulate)
    _add_corpus(data_sub)
