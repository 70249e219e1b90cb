"""Appending events to a domain history: a compare-and-swap loop on the domain's ref."""

from __future__ import annotations

import time
from collections.abc import Callable

from dulwich.objects import ObjectID

from ...objects.odb import ObjectDB
from ...objects.refs import Refs, domain_ref, model_ref
from ..indextree import ShardedModels
from .events import EVENTS, event_message
from .index import DomainIndex, read_index
from .log import NEWEST, newest_created


def append_event(  # noqa: PLR0913 - the fields of one history event
    odb: ObjectDB,
    refs: Refs,
    domain: str,
    author: bytes,
    event: str,
    model_id: str,
    model_commit: ObjectID,
    mutate: Callable[[DomainIndex], bool | None],
    state: str | None = None,
    when: int | None = None,
    trailers: dict[str, str] | None = None,
    raw_trailers: dict[str, str] | None = None,
    before_ref: Callable[[], None] | None = None,
) -> ObjectID | None:
    """Apply ``mutate`` to the domain index and record it as one history commit.

    ``trailers`` are shown on one line of at most 200 characters; ``raw_trailers``
    (one ASCII line each, such as a note as a JSON string) are written whole.

    Retries the compare-and-swap until it wins; ``mutate`` is re-run on the
    fresh index each time.  ``mutate`` returns False when there is nothing to
    record (the index already says so); then no commit is made and None returned.
    Returns the new history commit id.  ``before_ref`` runs after the event's objects
    are written and before the history ref moves: a commit claims its model ref
    there, so both refs follow one publication of the commit's objects
    (``ObjectDB.deferred``).
    """
    assert event in EVENTS
    name = domain_ref(domain)
    when = int(time.time()) if when is None else when
    while True:
        head = refs.get(name)
        idx = read_index(odb, head)
        if mutate(idx) is False:
            return None
        newest = newest_created(odb, head)
        if event == "commit":
            newest = when if newest is None else max(newest, when)
        extra = dict(trailers or {})
        if newest is not None:
            extra[NEWEST[len("Cas-"):]] = str(newest)
        raw = dict(raw_trailers or {})
        # where the notes and tags before this event are (notes.py): readers jump there
        from ..notes import ANNOTATIONS, annotation_frontier

        frontier = annotation_frontier(odb, head)
        if frontier is not None:
            raw[ANNOTATIONS[len("Cas-"):]] = " ".join(f.decode() for f in frontier) or "-"
        new = odb.write_commit(idx.to_tree(odb), [head] if head else [], author,
                               event_message(event, model_id, model_commit, state, extra, raw), when)
        if before_ref is not None:
            before_ref()
        if refs.set_if_equals(name, head, new):
            return new


def record_delete(odb: ObjectDB, refs: Refs, domain: str, author: bytes, model_id: str,  # noqa: PLR0913 - the fields a delete event records
                  sha: ObjectID) -> bool:
    """Delete the model ref ``domain``/``model_id`` if it still holds ``sha``, and log it.

    The caller holds the domain's lock (and the shared store lock) and holds
    signals back, so the ref change and its ``delete`` event are one step.
    The event is always recorded, also when the history did not list the model.
    Returns False (nothing changed) when the ref no longer holds ``sha``.
    """
    if not refs.remove_if_equals(model_ref(domain, model_id), sha):
        return False

    def drop(idx: DomainIndex) -> bool:
        idx.models.pop(model_id, None)
        for members in idx.states.values():
            members.pop(model_id, None)
        return True

    append_event(odb, refs, domain, author, "delete", model_id, sha, drop)
    return True


def convert_layout(odb: ObjectDB, refs: Refs, domain: str, author: bytes) -> bool:
    """Rewrite the domain's index in the current layout, as one ``layout`` event (``cas convert-layout``).

    Reads every tree of the index and writes it again in the shape indextree.py
    describes; nothing is recorded when it already has that shape (the rebuild
    gives the very same tree).  The caller holds the domain's lock.  Returns
    whether an event was recorded.
    """

    def reshape(idx: DomainIndex) -> bool:
        models = idx.models
        assert isinstance(models, ShardedModels)
        models.reshape()
        return models.to_tree(odb) != models.tree_id

    return append_event(odb, refs, domain, author, "layout", "-", ObjectID(b"0" * 40), reshape) is not None
