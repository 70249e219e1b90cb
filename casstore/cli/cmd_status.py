"""``cas status [REMOTE]``: what a remote has that this store lacks, and the reverse.

Only the remote's ref listing is read (no chunk, no model data travels), so the
answer is by model ID and by history head: a model is "here only", "there only",
or "different" (the same ID naming different commits, a conflict a pull
reports).  A history head the remote has that this store never saw means the
remote has events a pull would bring (and a push would be refused until then).
"""

from __future__ import annotations

import argparse

from .base import JSON_HELP, SubParsers, add_command, open_store_for
from .output import count, print_json


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    return f" ({shown})" if ids else ""


def status(args: argparse.Namespace) -> int:
    with open_store_for(args) as store:
        st = store.remote_status(args.remote)
    url = st["url"]
    if args.json:
        print_json(st)
        return 0
    print(f"remote {url}: " + ("up to date" if st["up_to_date"] else "differs"))
    for name, d in st["domains"].items():
        if d["up_to_date"]:
            continue
        parts = []
        if d["here_only"]:
            parts.append(f"{count(len(d['here_only']), 'model')} only here{_ids(d['here_only'])}")
        if d["there_only"]:
            parts.append(f"{count(len(d['there_only']), 'model')} only there{_ids(d['there_only'])}")
        if d["different"]:
            parts.append(f"{count(len(d['different']), 'ID')} naming different models{_ids(d['different'])}")
        if d["history"] != "same":
            parts.append(f"history: {d['history']}")
        print(f"  {name}: " + "; ".join(parts))
    if st["states"] != "same":
        print(f"  states: {st['states']}")
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "status", "compare with a remote: models and histories each side lacks (reads refs only)",
                    "cas status origin", status)
    p.add_argument("remote", nargs="?", default="origin", help="remote name or URL (default: origin)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
