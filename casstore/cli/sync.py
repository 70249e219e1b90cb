"""What ``cas push`` and ``cas pull`` share: their arguments and their report."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import TYPE_CHECKING

from ..store import remote_hook_missing
from .base import JSON_HELP, Command, SubParsers, add_command, open_store_for
from .output import count, human, print_json

if TYPE_CHECKING:
    from ..store import ModelChange, Store, SyncResult


def add_sync_command(sub: SubParsers, verb: str, text: str, func: Command) -> argparse.ArgumentParser:
    """``cas push`` or ``cas pull`` with the arguments both take."""
    p = add_command(sub, verb, text, f"cas {verb} origin my-domain", func)
    p.add_argument("remote", nargs="?", default=None,
                   help="remote name or URL (default: cas.defaultRemote, else origin)")
    p.add_argument("domains", nargs="*", metavar="DOMAIN", help="only these domains (default: all)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    return p


def run_sync(args: argparse.Namespace, verb: str) -> int:
    with open_store_for(args, write=True) as store, warnings.catch_warnings(record=True) as lost:
        # a model that left a state is warned about after the report that names it
        warnings.simplefilter("always")
        done: dict[str, object] | None = None  # what `cas pull --download` wrote
        downloaded = ""
        if verb == "push":
            result = store.push(args.remote, args.domains or None)
            if remote_hook_missing(result.url):
                warnings.warn(f"{result.url} has no casstore hook: plain git clients can overwrite or delete "
                              f"models there; install it with `cas init --bare {result.url}`", stacklevel=1)
        else:
            result, done, downloaded = _pull(store, args)
    if args.json:
        print_json(result.as_dict() if done is None else {**result.as_dict(), "download": done})
    else:
        moved = "sent" if verb == "push" else "received"
        print(f"{verb} {result.url}: {count(len(result.models_added), 'model')} added, "
              f"{len(result.models_deleted)} deleted, {len(result.models_replaced)} replaced"
              f"; {count(result.objects, 'object')}, {human(result.bytes)} {moved}")
        for change in result.changes:
            print("  " + describe_change(change, verb))
        for m in result.conflicts:
            domain = m.split("/", 1)[0]
            print(f"conflict: {m} is a different model on each side; domain {domain} left as it was on both")
        if result.conflicts:
            # the commands to type, with this pull's names (not DOMAIN ID NEW_ID)
            copies = [f"`cas cp {d} {i} {i}-mine`" for d, _, i in (m.partition("/") for m in result.conflicts)]
            remote = f" {args.remote}" if args.remote else ""
            print(f"  resolve: `cas pull --theirs{remote}` (take theirs), or first "
                  + ", ".join(copies[:3]) + (", ..." if len(copies) > 3 else "")
                  + " to keep ours under a new ID; see docs/remotes.md")
        for d in result.diverged:
            print(f"diverged: {d}: the remote's history is new here; run `cas pull` first, then push")
        for ref, reason in result.rejected.items():
            print(f"rejected by the remote: {ref}: {reason}")
        if downloaded:
            print(downloaded)
    sys.stdout.flush()
    for w in lost:  # every warning of the push or pull, in order, after its report
        warnings.warn(w.message, w.category, stacklevel=1)
    return 0 if result.ok else 1


def _pull(store: Store, args: argparse.Namespace) -> tuple[SyncResult, dict[str, object] | None, str]:
    """``cas pull``; with ``--download DIR`` also what the download did (``--json``) and its line."""
    if getattr(args, "download", None) is None:
        return store.pull(args.remote, args.domains or None, theirs=args.theirs,
                          require_signed=args.require_signed), None, ""
    domain = args.domains[0]
    result, done = store.pull_download(args.download, domain, args.model, remote=args.remote, force=args.force,
                                       theirs=args.theirs, require_signed=args.require_signed)
    name = f"{domain}/{args.model or store.model_info(domain).model_id}"
    files = [*done.written, *done.unchanged]
    return result, done.as_dict(), (f"downloaded {name}: {count(len(files), 'file')} into {done}"
                                    + (f" ({len(done.unchanged)} unchanged)" if done.unchanged else ""))


def describe_change(change: ModelChange, verb: str) -> str:
    """One line of a push's or pull's list: what happened to one model, with its commits."""
    where = "on the remote" if verb == "push" else "here"
    old, new = (c[:10] if c else "" for c in (change.old, change.new))
    if change.change == "added":
        text = f"added     {change.model} ({new})"
    elif change.change == "deleted":
        text = f"deleted   {change.model} ({old})" + (" by --theirs" if change.reason == "theirs" else "")
    elif change.reason == "theirs":
        text = f"replaced  {change.model}: ours {old} by theirs {new} (--theirs)"
    else:
        text = f"replaced  {change.model}: {old} by {new}"
    if change.states:
        text += f"; it was in state {', '.join(change.states)} {where}"
    return text

