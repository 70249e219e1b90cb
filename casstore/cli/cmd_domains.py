"""``cas domains``: list the store's domains."""

from __future__ import annotations

import argparse

from .base import JSON_HELP, SubParsers, add_command, open_store_for, print_list


def domains(args: argparse.Namespace) -> int:
    with open_store_for(args) as store:
        print_list(store.list_domains(), args.json)
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "domains", "list domains", "cas domains", domains)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
