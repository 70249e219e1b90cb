"""Walking a domain history: its events newest first, with the ``Cas-Newest`` bound on what is still to come."""

from __future__ import annotations

from collections.abc import Iterator

from dulwich.objects import Commit, ObjectID

from ...objects.odb import ObjectDB
from ...objects.trailers import has_trailer, parse_trailers
from .events import QUIET_EVENTS, Event, parse_event


def iter_log(odb: ObjectDB, head: ObjectID | None) -> Iterator[Event]:
    """Events newest first (by commit time across merges, like ``git log``)."""
    for ev, _ in walk_log(odb, head):
        yield ev


def walk_log(odb: ObjectDB, head: ObjectID | None) -> Iterator[tuple[Event, int | None]]:
    """``iter_log``'s events, each with a bound on the events not yet yielded.

    The bound (None: unknown) is the newest creation time, in whole seconds, of a
    model any event still to come records: the largest ``Cas-Newest`` trailer of
    the commits left to walk.  A commit without one (written by older versions,
    or a merge) makes it unknown until the walk has passed it.
    """
    if head is None:
        return
    seen = {head}
    frontier: list[Commit] = []
    c = odb.read(head, Commit)
    assert isinstance(c, Commit)
    frontier.append(c)
    while frontier:
        frontier.sort(key=lambda x: x.commit_time)
        c = frontier.pop()
        for p in c.parents:
            if p not in seen:
                seen.add(p)
                pc = odb.read(p, Commit)
                assert isinstance(pc, Commit)
                frontier.append(pc)
        ev = parse_event(c)
        if ev.event not in QUIET_EVENTS:
            bound: int | None = None
            for f in frontier:
                n = _newest_trailer(f)
                if n is None:
                    bound = None
                    break
                bound = n if bound is None else max(bound, n)
            yield ev, (bound if frontier else -1)


#: the trailer of a history commit that bounds the creation times its ancestry records
NEWEST = "Cas-Newest"


def _newest_trailer(c: Commit) -> int | None:
    """``Cas-Newest`` of a history commit (None when absent or not a number)."""
    value = parse_trailers(c.message).get(NEWEST, "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 20 else None


def has_newest(odb: ObjectDB, head: ObjectID) -> bool:
    """Whether the history commit ``head`` bounds its ancestry's creation times.

    True when it has ``Cas-Newest`` or is a merge (a pull's merge commit has none,
    its parents do): a walk from it will reach bounds soon.
    """
    c = odb.read(head, Commit)
    assert isinstance(c, Commit)
    return _newest_trailer(c) is not None or has_trailer(c.message, "Cas-Event", "merge")


def newest_created(odb: ObjectDB, head: ObjectID | None) -> int | None:
    """The newest model creation time (whole seconds) the commit events up to ``head`` record.

    That is the value of ``head``'s ``Cas-Newest`` trailer, which ``append_event``
    writes on every history commit: the maximum of its parent's and, for a
    ``commit`` event, its own time (the model's creation time, rounded down).
    A history whose head lacks it (older versions, merges) is walked once, in
    full, to compute it; None for an empty history.
    """
    if head is None:
        return None
    best: int | None = None
    seen = {head}
    stack = [head]
    while stack:
        c = odb.read(stack.pop(), Commit)
        assert isinstance(c, Commit)
        n = _newest_trailer(c)
        if n is None:
            if has_trailer(c.message, "Cas-Event", "commit"):
                n = c.author_time
            stack.extend(p for p in c.parents if p not in seen)
            seen.update(c.parents)
        if n is not None:
            best = n if best is None else max(best, n)
    return best


def events_since(odb: ObjectDB, head: ObjectID | None, old: ObjectID, limit: int) -> list[Event] | None:
    """The events from ``head`` back to (not including) ``old``, newest first, when the
    history between them is a straight line of at most ``limit`` commits; None when it
    is not (a merge on the way, ``old`` not reached), and the caller starts over."""
    out: list[Event] = []
    sha = head
    while sha is not None and sha != old:
        if len(out) >= limit:
            return None
        c = odb.read(sha, Commit)
        assert isinstance(c, Commit)
        if len(c.parents) != 1:
            return None
        out.append(parse_event(c))
        sha = c.parents[0]
    return out if sha == old else None
