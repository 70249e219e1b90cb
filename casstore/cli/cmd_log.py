"""``cas log DOMAIN``: a domain's history, newest first (events, signatures, what can be restored)."""

from __future__ import annotations

import argparse
import sys
import time
from itertools import islice
from typing import Any

from ..util.names import shown
from .base import JSON_HELP, SubParsers, add_command, count_arg, open_store_for, when
from .output import pager, paint, print_json, use_color


def log(args: argparse.Namespace) -> int:  # noqa: C901, PLR0912 - the log's filters and output formats
    with open_store_for(args) as store:
        events = store.iter_log(args.domain)
        if args.max_count is not None:
            events = islice(events, max(args.max_count, 0))
        signing = store.signing_in_use()
        found: dict[str, dict[str, Any]] = {}

        def deletion(history_commit: str) -> dict[str, Any]:
            """Whether a delete event can still be restored, and until when (read once, when first needed)."""
            if not found:
                found.update({d["history_commit"]: d for d in store.deleted_models(args.domain)})
            return found.get(history_commit, {})

        if args.json:
            out: list[dict[str, object]] = []
            for e in events:
                d = {**e.as_dict(), "signature": store.signature(args.domain, e.history_commit).as_dict()}
                if e.event == "delete":
                    gone = deletion(e.history_commit)
                    d.update(restorable=gone.get("restorable", False), kept_until=gone.get("kept_until"),
                             id_taken=gone.get("id_taken", False))
                out.append(d)
            print_json(out)
            return 0
        with pager(not args.no_pager) as out_:
            color = use_color(sys.stdout)
            for i, e in enumerate(events):
                title = f"{e.event} {e.model_id}" + (f" {e.state}" if e.state else "")
                restore = _restore_note(args.domain, e.model_id, e.model_commit,
                                        deletion(e.history_commit)) if e.event == "delete" else ""
                if args.oneline:
                    extra = f" [{e.frameworks}]" if e.frameworks else ""
                    if " until " in restore:
                        extra += f" [restorable until {restore.rsplit(' until ', 1)[1].split(' +0000')[0]}]"
                    out_.write(f"{paint(e.model_commit[:10], 'yellow', color)} "
                               f"{time.strftime('%Y-%m-%d %H:%M +0000', time.gmtime(e.time))} {title}{extra}\n")
                    continue
                if i:
                    out_.write("\n")
                out_.write(paint(title, "yellow", color) + "\n")
                out_.write(f"Model:   {e.model_commit}\n")
                out_.write(f"Author:  {shown(e.author)}\n")
                out_.write(f"Date:    {when(e.time)}\n")
                verdict = store.signature(args.domain, e.history_commit)
                if signing or verdict.status != "unsigned":
                    out_.write(f"Signed:  {verdict.describe()}\n")
                if restore:
                    out_.write(f"Restore: {restore}\n")
                if e.frameworks or e.summary:
                    out_.write("\n")
                if e.frameworks:
                    out_.write(f"    {e.frameworks}\n")
                if e.summary:
                    out_.write(f"    {e.summary}\n")
    return 0


def _restore_note(domain: str, model_id: str, commit: str, gone: dict[str, Any]) -> str:
    """What ``cas log`` says under a delete event: how to restore it and until when, or why not."""
    if not gone.get("kept_until"):
        return "no: gc has freed its objects"
    until = gone["kept_until"].replace("T", " ").replace("Z", " +0000")
    if gone.get("id_taken"):  # another model holds the ID now: only under another ID
        return (f"`cas restore {domain} {model_id} --commit {commit[:10]} --as NEW_ID` ({model_id} holds another "
                f"model now), until {until}")
    return f"`cas restore {domain} {model_id} --commit {commit[:10]}`, until {until} (gc's grace period)"


def register(sub: SubParsers) -> None:
    p = add_command(sub, "log", "show a domain's history, newest first", "cas log my-domain -n 5", log)
    p.add_argument("domain")
    p.add_argument("-n", "--max-count", type=count_arg, metavar="N", help="show at most N events")
    p.add_argument("--oneline", action="store_true", help="one line per event")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.add_argument("--no-pager", action="store_true", help="do not page the output")
