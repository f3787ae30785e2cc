"""``emzoo publish``, ``publish-space`` and ``cards``."""

from __future__ import annotations

import json


def _cmd_publish(args) -> None:
    from emzoo.hub.publish import publish_model

    result = publish_model(
        args.folder, args.repo_id, tag=args.tag, private=args.private, dry_run=args.dry_run, out=args.out
    )
    print(json.dumps(result, indent=2))


def _cmd_publish_space(args) -> None:
    from emzoo.space.stage import publish_space

    models = [m for m in args.models.split(",") if m]
    print(json.dumps(publish_space(args.space_id, models, dry_run=args.dry_run, out=args.out), indent=2))


def _cmd_cards(args) -> None:
    from emzoo.hub.publish import write_cards

    for path in write_cards(args.out):
        print(path)


def add_commands(sub) -> None:
    p = sub.add_parser("publish", help="upload a model folder (with its card) to the Hugging Face Hub")
    p.add_argument("folder", help="a folder written by emzoo (save_pretrained, pretrain, finetune)")
    p.add_argument("--repo-id", required=True, help="ORG/NAME")
    p.add_argument("--tag", help="create this tag on the upload commit (e.g. v1.0)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="write the exact upload folder to --out instead")
    p.add_argument("--out", help="where --dry-run writes")
    p.set_defaults(func=_cmd_publish)
    p = sub.add_parser("publish-space", help="upload the Gradio demo as a Hugging Face Space")
    p.add_argument("--space-id", required=True, help="ORG/NAME")
    p.add_argument("--models", required=True, help="comma-separated Hub model ids to offer")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--out")
    p.set_defaults(func=_cmd_publish_space)
    p = sub.add_parser("cards", help="regenerate the model cards of every zoo entry")
    p.add_argument("--out", help="folder (default: the repository's cards/, when run from a checkout)")
    p.set_defaults(func=_cmd_cards)
