"""``cas du``: logical and stored bytes per domain."""

from __future__ import annotations

import argparse

from .base import JSON_HELP, SubParsers, add_command, open_store_for
from .output import human, print_json


def du(args: argparse.Namespace) -> int:
    with open_store_for(args) as store:
        d = store.du()
    if args.json:
        print_json(d)
        return 0
    print(f"{'DOMAIN':<30} {'MODELS':>7} {'LOGICAL':>11} {'STORED':>11}")
    for name, v in d["domains"].items():
        print(f"{name:<30} {v['models']:>7} {human(v['logical_bytes']):>11} {human(v['stored_bytes']):>11}")
    t = d["total"]
    print(f"{'total (on disk)':<30} {t['models']:>7} {human(t['logical_bytes']):>11} "
          f"{human(t['stored_bytes']):>11}")
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "du", "logical and stored bytes per domain", "cas du", du)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
