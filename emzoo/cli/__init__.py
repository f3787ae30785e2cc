"""The ``emzoo`` command line. Every failure a user can cause ends in one line, never a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys

from emzoo.errors import EmzooError, ModelNotFoundError, missing_extra_message


def _cmd_list(args: argparse.Namespace) -> None:
    from emzoo.zoo import ZOO, list_models

    names = list_models(args.pattern)
    if not names:
        raise ModelNotFoundError(f"no zoo entry matches '{args.pattern}' (see `emzoo list`)")
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


# Every command and the module that adds it (``add_commands(subparsers)``), so that the parser
# imports only the module of the command being run: `emzoo --version` and `--help` import none.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("emzoo.cli.data", "datasets: simulate embedded default data, or the corpus"),
    "pretrain": ("emzoo.cli.train", "self-supervised Pix2Pix cGAN pretraining of a generator"),
    "finetune": ("emzoo.cli.train", "fine-tune a generator for segmentation or restoration"),
    "evaluate": ("emzoo.cli.train", "metrics of a trained model on a dataset split"),
    "adapt": ("emzoo.cli.adapt", "fine-tune a zoo denoiser on your own micrographs, no clean images needed"),
    "predict": ("emzoo.cli.predict", "run a model over images or folders (tiled, any size)"),
    "export": ("emzoo.cli.export", "export a model to ONNX, TorchScript or a BioImage.IO package (verified)"),
    "publish": ("emzoo.cli.publish", "upload a model folder (with its card) to the Hugging Face Hub"),
    "publish-space": ("emzoo.cli.publish", "upload the Gradio demo as a Hugging Face Space"),
    "cards": ("emzoo.cli.publish", "regenerate the model cards of every zoo entry"),
    "demo": ("emzoo.cli.demo", "the Gradio Space, locally"),
    "reproduce": ("emzoo.cli.reproduce", "run the paper's experiment end to end and report"),
    "zoo": ("emzoo.cli.zoo", "the zoo's shipped checkpoints"),
}


def _flags_of(parser: argparse.ArgumentParser, command: str | None) -> dict[str, str]:
    """Each argument's library name (its dest) and the flag that sets it in ``command``."""
    flags: dict[str, str] = {}
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for sub in subparsers:
        chosen = sub.choices.get(command or "")
        for action in chosen._actions if chosen is not None else ():
            if action.option_strings and action.dest != "help":
                flags[action.dest] = max(action.option_strings, key=len)
            if isinstance(action, argparse._SubParsersAction):  # `emzoo data corpus`, `emzoo zoo build`
                for nested in action.choices.values():
                    flags.update({a.dest: max(a.option_strings, key=len) for a in nested._actions if a.option_strings})
    return flags


def _as_flags(message: str, flags: dict[str, str]) -> str:
    """The library names arguments as in Python (``batch_size 0: ...``, ``frames='mean'``); the
    CLI words them as the flags the user typed (``--batch-size 0: ...``, ``--frames mean``)."""
    message = re.sub(r"^([a-z][a-z0-9_]*)(=| )", lambda m: f"{flags[m[1]]} " if m[1] in flags else m[0], message)
    message = re.sub(r"`([a-z][a-z0-9_]*)`", lambda m: flags.get(m[1], m[0]), message)
    return re.sub(
        r"\b([a-z][a-z0-9_]*)=(['\"]?)([\w.-]+)\2",
        lambda m: (flags[m[1]] if m[3] == "True" else f"{flags[m[1]]} {m[3]}") if m[1] in flags else m[0],
        message,
    )


def _command_of(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the full arguments of the command in ``argv`` (all commands when None)
    and a one-line entry for every other command."""
    import importlib

    from emzoo.version import __version__

    parser = argparse.ArgumentParser(prog="emzoo", description="Model zoo for electron-microscopy image models.")
    parser.add_argument("--version", action="version", version=f"emzoo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_core(sub)
    command = _command_of(argv) if argv is not None else None
    wanted = {module for module, _ in COMMANDS.values()} if argv is None else {COMMANDS.get(command, ("",))[0]}
    for module in sorted(m for m in wanted if m):
        importlib.import_module(module).add_commands(sub)
    for name, (module, help_text) in COMMANDS.items():
        if module not in wanted:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EmzooError as e:
        print(f"emzoo: error: {_as_flags(str(e), _flags_of(parser, args.command))}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        message = missing_extra_message(e)
        if message is None:
            raise
        print(f"emzoo: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `emzoo list | head`
        sys.stderr.close()
        return 0
    except OSError as e:  # the file system said no (permissions, a full disk, a file where a folder goes)
        where = f"{e.filename}: " if e.filename else ""
        print(f"emzoo: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emzoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
