"""``cas cp DOMAIN ID NEW_ID``: copy a model under a new ID (sharing its files)."""

from __future__ import annotations

import argparse

from .base import JSON_HELP, SubParsers, add_command, open_store_for
from .output import print_json


def cp(args: argparse.Namespace) -> int:

    with open_store_for(args, write=True) as store:
        info = store.copy_model(args.domain, args.model_id, args.new_id)
    if args.json:
        print_json(info)
    else:
        print(f"copied {args.domain}/{args.model_id} to {info['domain']}/{info['model_id']} ({info['commit'][:10]})")
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "cp", "copy a model under a new ID (shares its files; e.g. to keep ours in a conflict)",
                    "cas cp my-domain v1 v1-laptop", cp)
    p.add_argument("domain")
    p.add_argument("model_id", metavar="ID")
    p.add_argument("new_id", metavar="NEW_ID")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
