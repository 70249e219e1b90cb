"""``cas diff DOMAIN ID_A ID_B``: compare two models of a domain (files, shared chunks, metadata)."""

from __future__ import annotations

import argparse
import json
import sys

from ..util.names import shown
from .base import JSON_HELP, SubParsers, add_command, open_store_for
from .output import count, human, paint, print_json, to_json, use_color


def diff(args: argparse.Namespace) -> int:
    with open_store_for(args) as store:
        d = store.diff(args.domain, args.id_a, args.id_b)
    if args.json:
        print_json(d)
        return 0
    color = use_color(sys.stdout)
    for p in d["added"]:
        print(paint(f"+ {shown(p)}", "green", color))
    for p in d["removed"]:
        print(paint(f"- {shown(p)}", "red", color))
    for c in d["changed"]:
        name = shown(f"{c['path_a']} -> {c['path']}" if "path_a" in c else c["path"])
        # raw bytes the new version does not share, not what storing them cost (see commit)
        print(paint(f"~ {name}", "yellow", color) +
              f"  {human(c['size_a'])} -> {human(c['size_b'])}; shares {c['chunks_shared']}/"
              f"{count(c['chunks'], 'chunk')} ({human(c['bytes_shared'])}), {human(c['bytes_new'])} of new data")
    for p in d["unchanged"]:
        print(f"  {shown(p)}")
    m = d["metadata"]
    for k, v in m["added"].items():
        print(paint(f"+ metadata {shown(str(k))}={json.dumps(to_json(v))}", "green", color))
    for k, v in m["removed"].items():
        print(paint(f"- metadata {shown(str(k))}={json.dumps(to_json(v))}", "red", color))
    for k, (a, b) in m["changed"].items():
        print(paint(f"~ metadata {shown(str(k))}: {json.dumps(to_json(a))} -> {json.dumps(to_json(b))}",
                    "yellow", color))
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "diff", "compare two models of a domain", "cas diff my-domain v1 v2", diff)
    p.add_argument("domain")
    p.add_argument("id_a", metavar="ID_A")
    p.add_argument("id_b", metavar="ID_B")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
