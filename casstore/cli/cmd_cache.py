"""``cas cache``: list and clear the load cache (the files ``load`` hands over as paths)."""

from __future__ import annotations

import argparse
import time

from .base import JSON_HELP, SubParsers, add_command, open_store_for
from .output import count, human, print_json


def cache(args: argparse.Namespace) -> int:
    with open_store_for(args, write=args.action == "clear") as store:
        lc = store.load_cache()
        if args.action == "clear":
            removed = lc.clear()
            print(f"removed {count(len(removed), 'cached model')}, freed {human(sum(e.bytes for e in removed))}")
            return 0
        entries = lc.entries()
    if args.json:
        print_json({"limit": lc.limit, "entries": [e.as_dict() for e in entries]})
        return 0
    for e in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
        print(f"{e.domain}/{e.model_id:<40} {human(e.bytes):>11}  last used {used}  {e.commit[:10]}")
    print(f"{count(len(entries), 'cached model')}, {human(sum(e.bytes for e in entries))} "
          f"(limit {human(lc.limit)}: cas.loadCacheLimit) in {lc.root}")
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "cache", "the load cache: files that load() handed over as paths (ls, clear)",
                    "cas cache clear", cache)
    p.add_argument("action", nargs="?", choices=("ls", "clear"), default="ls",
                   help="ls (default): list cached models with sizes; clear: remove them all")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
