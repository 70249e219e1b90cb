"""Conflict resolution helpers: re-commit a model under a new ID without re-serialising it.

``cas cp DOMAIN ID NEW_ID`` is how a user keeps *our* side of a conflict: the
copy gets a new manifest (the same one with the new ID) next to the very same
``files`` tree, so no chunk is read, re-chunked or written again: the copy
costs a manifest (about 32 bytes per chunk), a tree, a commit and its history event.  Then ``cas pull --theirs`` (or ``cas rm`` and
``cas pull``) takes the remote's model under the old ID.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import TYPE_CHECKING, Any

from dulwich.objects import Blob, Commit, ObjectID, Tree

from ..errors import CorruptObjectError, ModelExistsException
from ..history import DomainIndex, append_event
from ..locking import deferred_interrupts, store_lock
from ..manifest import decode as decode_manifest
from ..names import check_model_id
from ..refs import model_ref

if TYPE_CHECKING:
    from ..store import Store

BLOB_MODE = 0o100644
TREE_MODE = 0o040000


def copy_model(store: Store, domain: str, model_id: str, new_id: str) -> dict[str, Any]:
    """Commit the model ``domain/model_id`` again as ``domain/new_id``, sharing its files.

    The new model is a new model commit (its manifest names ``new_id``; created
    time, author, metadata and files are the original's) and is logged as a
    ``commit`` event with a ``Cas-Copied-From`` trailer.  Nothing is visible until
    the new model ref exists; the original is left as it is.

    Returns:
        The new model's metadata, as ``get_model_info`` returns it.

    Raises:
        ModelNotFoundException / DomainNotFoundException: no such model.
        ModelExistsException: ``new_id`` is taken (checked atomically).
        InvalidIdError: ``new_id`` breaks the naming rules.
    """
    from ..store import _frameworks_summary, _metadata_summary

    check_model_id(new_id)
    sha, manifest, _ = store._resolve(domain, model_id)
    if store.model_exists(domain, new_id):
        raise ModelExistsException(domain, new_id)
    odb = store.odb
    old = odb.read(sha, Commit)
    assert isinstance(old, Commit)
    root = odb.read(old.tree, Tree)
    assert isinstance(root, Tree)
    try:
        _, files_id = root[b"files"]
    except KeyError:
        raise CorruptObjectError(old.tree.decode(), "model tree lacks files") from None
    copy = dataclasses.replace(manifest, model_id=new_id)
    with store_lock(store._lockfile):  # gc must not collect the new objects before the ref exists
        new_root = Tree()
        new_root.add(b"manifest", BLOB_MODE, odb.write_loose(Blob.from_string(copy.encode())))
        new_root.add(b"files", TREE_MODE, files_id)
        summary = ", ".join(f"{e.kwarg}={e.framework}" for e in copy.frameworks)
        # the same message layout as Store._write_model: `cas ls` orders by Cas-Created
        message = (
            f"model {domain}/{new_id}\n\n{summary}\n\n"
            f"Cas-Domain: {domain}\nCas-Model: {new_id}\nCas-Created: {copy.created}\n"
            f"Cas-Copied-From: {domain}/{model_id} {sha.decode()}\n"
        ).encode()
        created = int(_dt.datetime.fromisoformat(copy.created).timestamp())
        commit_id: ObjectID = odb.write_commit(odb.write_loose(new_root), [], copy.author.encode(), message,
                                               created)
        with deferred_interrupts():
            if not store.refs.add_if_new(model_ref(domain, new_id), commit_id):
                raise ModelExistsException(domain, new_id)

            def add(idx: DomainIndex) -> None:
                idx.models[new_id] = commit_id

            from ..store import _author

            append_event(odb, store.refs, domain, _author(), "commit", new_id, commit_id, add,
                         trailers={"Frameworks": _frameworks_summary(copy),
                                   "Summary": _metadata_summary(copy.extra_metadata),
                                   "Copied-From": f"{domain}/{model_id} {sha.decode()}"})
    return store._info(decode_manifest(copy.encode()), commit_id)
