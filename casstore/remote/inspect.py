"""What a client can tell about a remote without changing anything: how it compares with
this store (``cas status``), and whether a local bare repository lacks casstore's hook.

Only the remote's ref listing is read (no chunk, no model data travels), so the
comparison is by model ID and by history head: a model is "here only", "there only",
or "different" (the same ID naming different commits, a conflict a pull reports).
A history head the remote has that this store never saw means the remote has events
a pull would bring (and a push would be refused until then).
"""

from __future__ import annotations

import os
from typing import Any

from dulwich.objects import ObjectID

from ..model.states import STATES_REF
from ..objects.refs import domain_ref, model_ref
from ..objects.repository import Repository
from .hook import PRE_RECEIVE
from .merge import ancestry
from .sync import list_refs
from .transports import local_path


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
    if theirs in ancestry(repo.odb, ours):
        return "ahead of the remote"
    if ours in ancestry(repo.odb, theirs):
        return "behind the remote"
    return "diverged"


def remote_status(repo: Repository, url: str) -> dict[str, Any]:
    """How the store ``repo`` compares with the remote at ``url``, as ``cas status --json`` shows it.

    Raises:
        RemoteError: the remote cannot be reached; CorruptObjectError: a bad ref there.
    """
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


def is_plain_git_repository(path: str) -> bool:
    """Whether ``path`` looks like a bare git repository (made by git or by casstore)."""
    return all(os.path.exists(os.path.join(path, p)) for p in ("HEAD", "objects", "refs", "config"))


def hook_missing(url: str) -> bool:
    """Whether ``url`` is a local git repository without casstore's pre-receive hook.

    Only local remotes can be checked; a server's hooks are invisible to a client.
    """
    path = local_path(url)
    if path is None or not is_plain_git_repository(path):
        return False
    try:
        with open(os.path.join(path, "hooks", "pre-receive")) as f:
            return f.read() != PRE_RECEIVE
    except FileNotFoundError:
        return True
