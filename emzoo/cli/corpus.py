"""`emzoo data corpus`: build (or finish) the simulated materials-EM corpus."""

from __future__ import annotations

import argparse
import json


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


def add_data_commands(data_sub) -> None:
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
