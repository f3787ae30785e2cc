"""The ``emzoo`` command line. Every failure a user can cause ends in one line, never a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

from emzoo.errors import EmzooError

Handler = Callable[[argparse.Namespace], int | None]


def _cmd_list(args: argparse.Namespace) -> None:
    from emzoo.zoo import ZOO, list_models

    names = list_models(args.pattern)
    if not names:
        raise EmzooError(f"no zoo entry matches '{args.pattern}' (see `emzoo list`)")
    width = max(len(n) for n in names)
    for name in names:
        e = ZOO[name]
        weights = "shipped" if e.shipped_folder is not None else ("published" if e.published else "recipe only")
        print(f"{name:<{width}}  {e.arch:<22} {e.task:<11} {weights:<12} {e.hub_id}@{e.revision}")


def _cmd_info(args: argparse.Namespace) -> None:
    from emzoo.hub import info

    print(json.dumps(info(args.name), indent=2, default=str))


def _cmd_download(args: argparse.Namespace) -> None:
    from emzoo.hub import download, load_folder

    folder = download(args.name, revision=args.revision)
    load_folder(folder)  # strict load + test pair: a download that does not reproduce is an error
    print(folder)


def _add_core(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list zoo checkpoints")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'unet-4-*'")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("info", help="show what the zoo knows about a checkpoint")
    p.add_argument("name")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("download", help="fetch a checkpoint into the Hugging Face cache and verify it")
    p.add_argument("name", help="zoo name or hf-hub:ORG/NAME[@REV]")
    p.add_argument("--revision", help="branch, tag or commit (default: the zoo's pinned revision)")
    p.set_defaults(func=_cmd_download)


# Modules that add their own sub-commands: each has ``add_commands(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "emzoo.data.simulate",
    "emzoo.train.cli",
    "emzoo.predict",
    "emzoo.export",
    "emzoo.publish",
    "emzoo.space",
    "emzoo.reproduce",
    "emzoo.cli.zoo",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    from emzoo import __version__

    parser = argparse.ArgumentParser(prog="emzoo", description="Model zoo for electron-microscopy image models.")
    parser.add_argument("--version", action="version", version=f"emzoo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_core(sub)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EmzooError as e:
        print(f"emzoo: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `emzoo list | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("emzoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
