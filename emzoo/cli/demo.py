"""``emzoo demo``: the Gradio Space, locally."""

from __future__ import annotations

import os


def _cmd_demo(args) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from emzoo.space.app import build_demo, check_port, launch

    check_port(args.port)
    demo = build_demo(args.models)
    launch(demo, server_name=args.host, server_port=args.port, share=False)


def add_commands(sub) -> None:
    p = sub.add_parser("demo", help="the Gradio Space, locally")
    p.add_argument("--models", nargs="*", default=[], help="model folders or hf-hub ids to offer besides the zoo's")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=_cmd_demo)
