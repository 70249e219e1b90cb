"""``cas status [REMOTE]``: what a remote has that this store lacks, and the reverse.

Only the remote's ref listing is read (no chunk, no model data travels), so the
answer is by model ID and by history head: a model is "here only", "there only",
or "different" (the same ID naming different commits, a conflict a pull
reports).  A history head the remote has that this store never saw means the
remote has events a pull would bring (and a push would be refused until then).
"""

from __future__ import annotations

import argparse
from typing import Any

from dulwich.objects import ObjectID

from ..model.states import STATES_REF
from ..objects.refs import domain_ref, model_ref
from ..objects.repository import Repository
from ..store import Store
from . import JSON_HELP, SubParsers, add_command
from .commands import open_store_for
from .output import count, print_json


def _history(repo: Repository, ours: ObjectID | None, theirs: ObjectID | None) -> str:
    """How our history head of a domain relates to the remote's, from what we hold locally."""
    if ours == theirs:
        return "same"
    if theirs is None:
        return "here only"
    if ours is None:
        return "there only"
    if not repo.odb.contains(theirs):
        return "remote has events we lack"  # a pull fetches them; a push is refused until then
    from ..remote.merge import ancestry  # the remote modules load only for a command that needs them

    if theirs in ancestry(repo.odb, ours):
        return "ahead of the remote"
    if ours in ancestry(repo.odb, theirs):
        return "behind the remote"
    return "diverged"


def status_of(store: Store, url: str) -> dict[str, Any]:
    """The comparison ``cas status`` prints, as a dict (its ``--json``)."""
    repo = store.repo
    from ..remote.sync import list_refs

    remote = list_refs(repo, url)
    domains: dict[str, Any] = {}
    for domain in sorted(set(repo.refs.domains()) | remote.domains()):
        ours = {mid: sha for mid in repo.refs.model_ids(domain)
                if (sha := repo.refs.get(model_ref(domain, mid))) is not None}
        theirs = remote.models.get(domain, {})
        history = _history(repo, repo.refs.get(domain_ref(domain)), remote.histories.get(domain))
        entry: dict[str, Any] = {
            "here_only": sorted(set(ours) - set(theirs)),
            "there_only": sorted(set(theirs) - set(ours)),
            "different": sorted(m for m in set(ours) & set(theirs) if ours[m] != theirs[m]),
            "history": history,
        }
        entry["up_to_date"] = history == "same" and not (entry["here_only"] or entry["there_only"]
                                                          or entry["different"])
        domains[domain] = entry
    states = _history(repo, repo.refs.get(STATES_REF), remote.states)
    return {"url": url, "domains": domains, "states": states,
            "up_to_date": states == "same" and all(d["up_to_date"] for d in domains.values())}


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    return f" ({shown})" if ids else ""


def status(args: argparse.Namespace) -> int:
    with open_store_for(args) as store:
        from ..remote.config import resolve_remote

        url = resolve_remote(store.repo, args.remote)
        st = status_of(store, url)
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
