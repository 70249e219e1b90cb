"""``cas restore DOMAIN ID [--commit C] [--as NEW_ID] [--states]``: bring back a deleted model from its history."""

from __future__ import annotations

import argparse

from .base import JSON_HELP, SubParsers, add_command, open_store_for
from .output import print_json


def restore(args: argparse.Namespace) -> int:
    with open_store_for(args, write=True) as store:
        info = store.restore_model(args.domain, args.model_id, args.commit, states=args.states, new_id=args.new_id)
    if args.json:
        print_json(info)
        return 0
    whose = "its" if info["model_id"] == args.model_id else f"{args.domain}/{args.model_id}'s"
    print(f"restored {info['domain']}/{info['model_id']} ({info['commit'][:10]}) from {whose} deleted commit "
          f"{info['restored_from'][:10]}" + (f"; back in state {', '.join(info['states'])}" if info["states"] else ""))
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "restore", "bring back a deleted model (while gc keeps its objects: `cas log` says "
                    "until when)", "cas restore my-domain v1 --states", restore)
    p.add_argument("domain")
    p.add_argument("model_id", metavar="ID")
    p.add_argument("--commit", metavar="C",
                   help="the deleted model commit to restore (as `cas log` shows it; default: the newest deletion)")
    p.add_argument("--as", dest="new_id", metavar="NEW_ID",
                   help="restore it under another ID (e.g. ours, after `cas pull --theirs` gave the ID to theirs)")
    p.add_argument("--states", action="store_true", help="put it back in the states it held when it was deleted")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
