"""Deleting a model, and bringing a deleted one back (``Store.delete_model``, ``restore_model``,
``deleted_models``).

A deletion removes the model ref and records a ``delete`` event, as one step under the
domain's lock.  A restore commits the deleted model again (the same manifest and ``files``
tree, a new commit) and claims its ID as a commit does (commit.py); restore.py finds what
to restore.  Callers (the Store) check the names and hold the shared store lock.  Needs
only a Repository.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
from typing import Any

from dulwich.objects import ObjectID

from ..errors import DomainNotFoundException, ModelNotFoundException, RestoreError
from ..objects.refs import domain_ref, model_ref
from ..objects.repository import Repository
from ..util.locking import deferred_interrupts
from .commit import claim_id, write_errors, write_model
from .history import record_delete
from .manifest import Manifest
from .reading import model_commit, read_manifest
from .restore import Deletion, deletions, find_deletion, missing_part, states_before
from .writer import domain_writer

log = logging.getLogger("casstore")


def delete(repo: Repository, domain: str, model_id: str, ident: bytes) -> ObjectID:
    """Remove the model's ref and log the deletion as ``ident``; returns the deleted commit.

    Raises:
        ModelNotFoundException: no such model.
    """
    with write_errors(repo.path), domain_writer(repo, domain):
        # read under the domain lock: no other casstore writer can change it now
        sha = model_commit(repo, domain, model_id)
        with deferred_interrupts():
            if not record_delete(repo.odb, repo.refs, domain, ident, model_id, sha):
                raise ModelNotFoundException(domain, model_id)  # a foreign writer (git) took it
    log.info("deleted %s/%s (%s)", domain, model_id, sha.decode()[:10])
    return sha


def restore(repo: Repository, domain: str, model_id: str, commit: str | None,  # noqa: PLR0913 - Store.restore_model's options
            target: str, ident: bytes, *, states: bool) -> tuple[Manifest, ObjectID, Deletion, list[str]]:
    """Commit the deleted model again as ``target`` (see ``Store.restore_model``).

    Returns the new manifest and commit, the deletion undone, and (with ``states``) the
    states the model held when it was deleted.

    Raises:
        ModelExistsException: ``target`` is taken now (checked atomically, as a commit's).
        RestoreError: no deletion of that ID (or commit), or its objects were freed.
    """
    head = repo.refs.get(domain_ref(domain))
    gone = find_deletion(repo.odb, head, domain, model_id, commit)
    missing = missing_part(repo, gone.commit)
    if missing is not None:
        raise RestoreError(domain, model_id, f"deleted at {gone.commit.decode()[:10]}, and gc has freed "
                           f"its objects ({missing} is gone)")
    manifest, files_tree = read_manifest(repo, gone.commit)
    if manifest.domain != domain or manifest.model_id != model_id:
        raise RestoreError(domain, model_id, f"commit {gone.commit.decode()[:10]} is the model "
                           f"{manifest.domain}/{manifest.model_id}")
    manifest = dataclasses.replace(manifest, model_id=target)
    # a new commit (the history head makes it one no history has seen, even when the same
    # deletion is restored twice): the old deletion must not apply to it (model/restore.py)
    origin = gone.commit.decode() if target == model_id else f"{domain}/{model_id} {gone.commit.decode()}"
    trailers = {"Restored-From": origin}
    with write_errors(repo.path):
        new = write_model(repo.odb, manifest, files_tree.id, _dt.datetime.fromisoformat(manifest.created),
                          {**trailers, "Restored-At": head.decode() if head else "none"})
    claim_id(repo, manifest, new, ident, trailers, now=True)
    held = states_before(repo.odb, head, gone) if states and head is not None else []
    return manifest, new, gone, held


def deleted_models(repo: Repository, domain: str, grace_period: float) -> list[dict[str, Any]]:
    """Every deletion in the domain's history, newest first, and whether it can be restored
    (see ``Store.deleted_models``).

    Raises:
        DomainNotFoundException: the domain has no history.
    """
    refs = repo.refs
    head = refs.get(domain_ref(domain))
    if head is None:
        raise DomainNotFoundException(domain)
    out = []
    live = {mid: refs.get(model_ref(domain, mid)) for mid in refs.model_ids(domain)}
    for d in deletions(repo.odb, head):
        until = None
        if d.present:
            until = (_dt.datetime.fromtimestamp(d.time, _dt.timezone.utc)
                     + _dt.timedelta(seconds=min(grace_period, 1e10))).strftime("%Y-%m-%dT%H:%M:%SZ")
        taken = live.get(d.model_id) is not None
        out.append({"model_id": d.model_id, "commit": d.commit.decode(), "history_commit": d.event.decode(),
                    "deleted": _dt.datetime.fromtimestamp(d.time, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "restorable": d.present and not taken, "id_taken": taken, "kept_until": until})
    return out
