"""``cas show DOMAIN ID``: a model's frameworks, files, metadata, states, signature and card."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..util.names import shown
from .base import JSON_HELP, SubParsers, add_command, open_store_for
from .output import chunks_new, human, paint, print_json, to_json, use_color

#: lines of a model card (README.md / MODEL_CARD.md) ``cas show`` prints
CARD_LINES = 6


def show(args: argparse.Namespace) -> int:  # noqa: C901, PLR0912 - one block per section of the page
    with open_store_for(args) as store:
        info = store.model_info(args.domain, args.model_id)
        verdict = store.signature(info.domain, info.commit)
        signing = store.signing_in_use()
        card = None if args.json else store.model_card(args.domain, args.model_id, max_bytes=4096)
    if args.json:
        print_json({**info.as_dict(), "signature": verdict.as_dict()})
        return 0
    color = use_color(sys.stdout)
    print(paint(f"model {info.domain}/{info.model_id}", "yellow", color))
    print(f"Commit:  {info.commit}")
    print(f"Author:  {shown(info.author)}")
    print(f"Created: {info.created}")
    if signing or verdict.status != "unsigned":
        print(f"Signed:  {verdict.describe()}")
    if info.states:
        print(f"States:  {', '.join(info.states)}")
    if info.tags:
        print(f"Tags:    {shown(', '.join(info.tags))}")
    print("\nFrameworks:")
    for kwarg, fw in info.frameworks.items():
        lib = fw.library
        version = f" ({lib.get('name')} {lib.get('version')})" if lib.get("version") else ""
        # a store pulled from elsewhere may be hostile: say which entries run code on load
        safety = "loading runs code (pickle)" if fw.executes_code else "data only"
        print(shown(f"  {kwarg}: {fw.framework} {fw.cls} [{fw.format}]{version}  {safety}"))
    print("\nFiles:")
    for f in info.files:
        print(f"  {shown(f.path):<40} {human(f.size):>10}  {f.kind:<5}  {f.digest[:23]}...")
    if info.extra_metadata:
        print("\nMetadata:")
        for line in json.dumps(to_json(info.extra_metadata), indent=2).splitlines():
            print(f"  {line}")
    if card:
        lines = [ln for ln in card[1].splitlines() if ln.strip()]
        print(f"\nCard ({shown(card[0])}):")
        for line in lines[:CARD_LINES]:
            print(f"  {shown(line)}")
        if len(lines) > CARD_LINES:
            print("  ...")
    if info.notes:
        print("\nNotes:")
        for n in info.notes:
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(n["time"]))
            lines = n["text"].splitlines() or [""]
            print(f"  {when}  {shown(n['author'])}")
            for line in lines[:CARD_LINES]:
                print(f"    {shown(line)}")
            if len(lines) > CARD_LINES:
                print("    ...")
    s = info.stats
    print(f"\nStored:  {human(s['bytes_stored'])} written for {human(s['bytes_given'])} given "
          f"({chunks_new(s['chunks_new'], s['chunks_total'])})")
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "show", "show a model: frameworks, files, metadata, states", "cas show my-domain v1", show)
    p.add_argument("domain")
    p.add_argument("model_id", metavar="ID")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
