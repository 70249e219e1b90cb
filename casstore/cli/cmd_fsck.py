"""``cas fsck [--read-data] [--repair]``: check the store (exit 1 if problems are found)."""

from __future__ import annotations

import argparse

from .base import JSON_HELP, SubParsers, add_command, open_store_for
from .output import count, human, print_json


def fsck(args: argparse.Namespace) -> int:
    with open_store_for(args, write=args.repair) as store:
        report = store.fsck(read_data=args.read_data, repair=args.repair)
    if args.json:
        print_json(report.as_dict())
    else:
        for r in report.repaired:
            print(f"repaired: {r}")
        for p in report.problems:
            print(f"problem: {p}")
        verified = f", {human(report.bytes_verified)} verified" if args.read_data else ""
        print(f"{count(report.models, 'model')}, {count(report.files, 'file')}, "
              f"{count(report.chunks, 'chunk')} checked{verified}: "
              + ("ok" if report.ok else count(len(report.problems), "problem")))
    return 0 if report.ok else 1


def register(sub: SubParsers) -> None:
    p = add_command(sub, "fsck", "check the store (exit 1 if problems are found)", "cas fsck --read-data", fsck)
    p.add_argument("--read-data", action="store_true", help="also decompress and verify every chunk")
    p.add_argument("--repair", action="store_true",
                   help="first record the history events that killed writers left out")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
