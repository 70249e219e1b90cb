"""Deleted models and what is needed to restore one (``Store.restore_model``, ``cas restore``).

A ``delete`` event names the model commit it deleted (``Cas-Commit``).  While that
commit's objects are still in the store -- gc keeps them for its grace period after
the deletion (ops/gc.py) -- the model can be committed again under its ID (or
another): a *new* model commit of the same manifest and the very same ``files`` tree
(nothing is read or written again) with ``Cas-Restored-From`` and ``Cas-Restored-At``
(the history head then) trailers, claimed like any commit (create-if-absent: a live
ID is never replaced) and logged as a ``commit`` event with ``Cas-Restored-From``.
The Store writes it (``Store.restore_model``); this module finds what to restore.

Why a new commit and not the old one: push and pull apply a deletion to exactly the
commit it names (remote/merge.py), on every side that ever sees the delete event, so
reviving the deleted commit itself would be undone by the next merge.  A new commit is
an addition on every other side, and replaces the old commit where a store still
holds it (its history deleted exactly that one).
"""

from __future__ import annotations

from dataclasses import dataclass

from dulwich.objects import Commit, ObjectID

from ..errors import CasError, RestoreError
from ..objects.odb import ObjectDB
from ..objects.repository import Repository
from .history import iter_log, read_index
from .reading import file_oids, read_manifest


@dataclass
class Deletion:
    """One ``delete`` event of a domain's history."""

    model_id: str
    commit: ObjectID  # the model commit it deleted
    event: ObjectID  # the history commit of the event
    time: int  # when (seconds since the epoch)
    present: bool  # the model commit is still in the store (gc has not freed it)


def deletions(odb: ObjectDB, head: ObjectID | None) -> list[Deletion]:
    """Every delete event of the history at ``head``, newest first."""
    out = []
    for e in iter_log(odb, head):
        if e.event == "delete" and len(e.model_commit) == 40:
            sha = ObjectID(e.model_commit.encode())
            out.append(Deletion(e.model_id, sha, ObjectID(e.history_commit.encode()), e.time, odb.contains(sha)))
    return out


def find_deletion(odb: ObjectDB, head: ObjectID | None, domain: str, model_id: str,
                  commit: str | None) -> Deletion:
    """The newest deletion of ``model_id`` (of the model commit ``commit``, a prefix of 4+ digits, if given).

    Raises:
        RestoreError: no such deletion, or a prefix that names several commits.
    """
    found = [d for d in deletions(odb, head) if d.model_id == model_id]
    if not found:
        raise RestoreError(domain, model_id, "its history has no deletion of that ID (nothing to restore)")
    if commit is None:
        return found[0]
    c = commit.strip().lower()
    if len(c) < 4 or any(ch not in "0123456789abcdef" for ch in c):
        raise RestoreError(domain, model_id, f"--commit {commit!r} is not a commit id (4 to 40 hex digits)")
    matches = {d.commit for d in found if d.commit.decode().startswith(c)}
    if not matches:
        seen = ", ".join(d.commit.decode()[:10] for d in found)
        raise RestoreError(domain, model_id, f"it was never deleted at a commit {commit} (its deletions: {seen})")
    if len(matches) > 1:
        raise RestoreError(domain, model_id, f"commit {commit} is ambiguous: give more digits")
    return next(d for d in found if d.commit in matches)


def missing_part(repo: Repository, sha: ObjectID) -> str | None:
    """What of model commit ``sha`` is no longer in the store (None: all of it is).

    Reads the commit, tree, manifest and chunk trees, and looks up every chunk blob
    (without reading it: the read after the restore verifies the bytes, as every read does).
    """
    odb = repo.odb
    if not odb.contains(sha):
        return f"model commit {sha.decode()}"
    try:
        manifest, files_tree = read_manifest(repo, sha)
        for i, _ in enumerate(manifest.files):
            for oid in file_oids(repo, files_tree, manifest, i):
                if not odb.contains(ObjectID(oid.hex().encode())):
                    return f"chunk {oid.hex()} of {manifest.files[i].path}"
    except CasError as e:
        return str(e)
    return None


def states_before(odb: ObjectDB, head: ObjectID, deletion: Deletion) -> list[str]:
    """The states that held the deleted commit here, at the newest history commit that still lists it.

    Not simply the delete event's parent: a deletion pulled from another store
    arrives in a merge, and the states were set on this side of it.  Walks the
    history newest first (commit time) and stops at the first commit listing the
    model at the deleted commit.
    """
    seen = {head}
    frontier = [head]
    while frontier:
        frontier.sort(key=lambda sha: _time(odb, sha))
        sha = frontier.pop()
        idx = read_index(odb, sha)
        if idx.models.get(deletion.model_id) == deletion.commit:
            return sorted(s for s, members in idx.states.items()
                          if members.get(deletion.model_id) == deletion.commit)
        c = odb.read(sha, Commit)
        assert isinstance(c, Commit)
        for p in c.parents:
            if p not in seen:
                seen.add(p)
                frontier.append(p)
    return []


def _time(odb: ObjectDB, sha: ObjectID) -> int:
    c = odb.read(sha, Commit)
    assert isinstance(c, Commit)
    return int(c.commit_time)
