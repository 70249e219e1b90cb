"""``cas tag DOMAIN ID TAG [--delete]``: tag a model (or take a tag off), without a new commit."""

from __future__ import annotations

import argparse

from .base import JSON_HELP, SubParsers, add_command, open_store_for
from .output import print_json


def tag(args: argparse.Namespace) -> int:
    with open_store_for(args, write=True) as store:
        if args.delete:
            store.delete_tag(args.domain, args.model_id, args.tag)
        else:
            store.set_tag(args.domain, args.model_id, args.tag)
        tags = store.get_annotations(args.domain, args.model_id)["tags"]
    if args.json:
        print_json({"domain": args.domain, "model_id": args.model_id, "tags": tags})
        return 0
    print(f"{args.domain}/{args.model_id}: tags {', '.join(tags) if tags else '(none)'}")
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "tag", "tag a model, or take a tag off (no new commit: an event of the domain "
                    "history, pushed and pulled with it)", "cas tag my-domain v1 candidate", tag)
    p.add_argument("domain")
    p.add_argument("model_id", metavar="ID")
    p.add_argument("tag", metavar="TAG", help="a name: ASCII letters, digits, -_. (as state names)")
    p.add_argument("--delete", action="store_true", help="take the tag off")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
