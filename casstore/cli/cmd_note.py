"""``cas note DOMAIN ID TEXT``: add a note to a model, without a new commit (one history event)."""

from __future__ import annotations

import argparse
import sys

from .base import JSON_HELP, SubParsers, add_command, open_store_for
from .output import print_json


def note(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    with open_store_for(args, write=True) as store:
        store.add_note(args.domain, args.model_id, text)
        notes = store.get_annotations(args.domain, args.model_id)["notes"]
    if args.json:
        print_json({"domain": args.domain, "model_id": args.model_id, "notes": notes})
        return 0
    print(f"noted {args.domain}/{args.model_id} ({len(notes)} note{'s' if len(notes) != 1 else ''}; "
          f"`cas show` lists them)")
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "note", "add a note to a model (no new commit: an event of the domain history, "
                    "pushed and pulled with it)", "cas note my-domain v1 'retrained on the March data'", note)
    p.add_argument("domain")
    p.add_argument("model_id", metavar="ID")
    p.add_argument("text", metavar="TEXT", help="the note (UTF-8, at most 16 KiB); - reads it from stdin")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

