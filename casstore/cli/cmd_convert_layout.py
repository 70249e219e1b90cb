"""``cas convert-layout [DOMAIN]``: rewrite domain histories' indexes in the current layout now."""

from __future__ import annotations

import argparse

from .base import SubParsers, add_command, open_store_for


def convert_layout(args: argparse.Namespace) -> int:
    with open_store_for(args, write=True) as store:
        done = store.convert_layout(args.domain)
    for d in done:
        print(f"converted {d}")
    if not done:
        print("nothing to convert: every history is in the current layout")
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "convert-layout", "rewrite domain histories' indexes in the current layout now "
                    "(any write converts its domain anyway)", "cas convert-layout my-domain", convert_layout)
    p.add_argument("domain", nargs="?", help="only this domain (default: every domain)")
