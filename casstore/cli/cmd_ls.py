"""``cas ls DOMAIN [--state STATE]``: a domain's models, newest first."""

from __future__ import annotations

import argparse

from .base import JSON_HELP, SubParsers, add_command, open_store_for, print_list


def ls(args: argparse.Namespace) -> int:
    with open_store_for(args) as store:
        # streamed newest first from the history: `cas ls | head` reads a few events, not every model
        print_list(store.iter_models(args.domain, state_name=args.state), args.json)
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "ls", "list a domain's models, newest first", "cas ls my-domain --state production", ls)
    p.add_argument("domain")
    p.add_argument("--state", help="only models in this state")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
