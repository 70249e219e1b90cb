"""Domain history: one commit per event on ``refs/cas/domains/<domain>``.

Each history commit's tree is the domain index *after* the event::

    models/<d>/.../<model_id>   gitlink (mode 160000) -> the model's commit
    states/<state>/<model_id>   gitlink -> the model's commit

``models`` is a tree of leaves that split past a bound, by the hex digits of
the ID's key (indextree.py; docs/format.md, "Index layout"): an event rewrites
one root-to-leaf path, not the index.  The flat and 256-shard layouts older
versions wrote are read too, and converted by the next write.

Gitlinks are not followed by git's reachability walk, so the history never keeps a
deleted model's data alive; the model refs do that.  The commit message is
human-readable (``git log refs/cas/domains/x`` works) and ends with trailers that
casstore parses::

    commit v1

    Cas-Event: commit
    Cas-Model: v1
    Cas-Commit: <hex>
    Cas-State: production      (state events only)

Appending is a compare-and-swap loop on the ref, so concurrent writers never lose
each other's events.

The model refs are the truth; the history records them.  casstore's writers
change a model ref and append its event while holding the domain's lock (see
locking.py), so between two writers the history at its head lists exactly the
models the refs hold.  A writer killed between the two steps (SIGKILL, power
loss) leaves a ref without its event, or an event-less deletion; ``reconcile``,
run by the next writer of the domain under the same lock (and by
``cas fsck --repair``), records what is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field

from dulwich.objects import Commit, ObjectID, Tree

from ..errors import CasError, CorruptObjectError, InvalidIdError
from ..objects.odb import ObjectDB
from ..objects.refs import Refs, domain_ref, model_ref
from ..objects.trailers import has_trailer, trailer_line
from ..objects.trailers import parse_trailers as parse_trailers
from ..util.names import check_model_id, check_state
from .indextree import GITLINK as GITLINK
from .indextree import TREE as TREE
from .indextree import ShardedModels as ShardedModels
from .indextree import check_models_tree, models_tree
from .indextree import key_of as key_of
from .indextree import shard_of as shard_of

EVENTS = ("commit", "delete", "state-set", "state-unset", "merge", "layout",
          "note", "tag", "untag")  # notes and tags: notes.py (they leave the index as it is)
#: events that change no model's record, only the history (not shown by ``log``)
QUIET_EVENTS = ("merge", "layout")


def _read_gitlinks(odb: ObjectDB, tree_id: ObjectID) -> dict[str, ObjectID]:
    """The gitlinks of one state's tree of the index."""
    t = odb.read(tree_id, Tree)
    assert isinstance(t, Tree)
    out: dict[str, ObjectID] = {}
    for entry in t.iteritems():
        if entry.mode != GITLINK:
            raise CorruptObjectError(tree_id.decode(), f"unexpected entry {entry.path!r} in domain index")
        out[check_model_id(entry.path.decode())] = entry.sha
    return out


def _gitlink_tree(members: Mapping[str, ObjectID]) -> Tree:
    t = Tree()
    for mid, sha in members.items():
        t.add(mid.encode(), GITLINK, sha)
    return t


@dataclass
class DomainIndex:
    """The domain index of one history commit: ``models`` and ``states``.

    ``models`` is a :class:`ShardedModels` when read from a history (lazy, per
    key path) or any mapping when built by a caller (merge); ``to_tree`` writes
    the current layout either way.
    """

    models: MutableMapping[str, ObjectID] = field(default_factory=dict)  # id -> hex commit
    states: dict[str, dict[str, ObjectID]] = field(default_factory=dict)  # state -> id -> hex

    def to_tree(self, odb: ObjectDB, base: ObjectID | None = None) -> ObjectID:
        """Write the index; ``base``: a history commit whose index is nearly this one (a merge's parent).

        With ``base``, a ``models`` mapping that is not read from a history is
        written as the changes to ``base``'s tree: the same tree, fewer writes.
        """
        root = Tree()
        models = models_tree(odb, self.models, None if base is None else _models_of(odb, base))
        if models is not None:
            root.add(b"models", TREE, models)
        if any(self.states.values()):
            st = Tree()
            for state, members in self.states.items():
                if not members:
                    continue
                st.add(state.encode(), TREE, odb.write_loose(_gitlink_tree(members)))
            root.add(b"states", TREE, odb.write_loose(st))
        return odb.write_loose(root)


def _models_of(odb: ObjectDB, commit_id: ObjectID) -> ObjectID | None:
    """The ``models`` tree id of a history commit (None when it has none)."""
    c = odb.read(commit_id, Commit)
    assert isinstance(c, Commit)
    root = odb.read(c.tree, Tree)
    assert isinstance(root, Tree)
    for entry in root.iteritems():
        if entry.path == b"models" and entry.mode == TREE:
            return entry.sha
    return None


def read_index(odb: ObjectDB, commit_id: ObjectID | None, full: bool = False) -> DomainIndex:
    """The domain index at history commit ``commit_id`` (empty for None).

    Reads the root, ``models`` and ``states`` trees now and each tree under
    ``models`` when first used; ``full`` reads and checks every tree now.

    Raises:
        CorruptObjectError: an entry that is not of the index's shape (also
            raised later, by the access that reads a damaged tree).
    """
    idx = DomainIndex()
    if commit_id is None:
        return idx
    models, idx.states = _read_root(odb, commit_id)
    sharded = ShardedModels(odb, models)
    if full:
        sharded.load_all()
    idx.models = sharded
    return idx



def read_states(odb: ObjectDB, commit_id: ObjectID | None) -> dict[str, dict[str, ObjectID]]:
    """The ``states`` of the domain index at history commit ``commit_id`` (empty for None):
    ``read_index(...).states`` without reading the ``models`` tree, which in an older layout
    holds an entry per model.

    Raises:
        CorruptObjectError: an entry that is not of the index's shape.
    """
    return {} if commit_id is None else _read_root(odb, commit_id)[1]


def _read_root(odb: ObjectDB, commit_id: ObjectID) -> tuple[ObjectID | None, dict[str, dict[str, ObjectID]]]:
    """The root of the domain index at ``commit_id``: its ``models`` tree (not read) and its states."""
    c = odb.read(commit_id, Commit)
    assert isinstance(c, Commit)
    root = odb.read(c.tree, Tree)
    assert isinstance(root, Tree)
    models: ObjectID | None = None
    states: dict[str, dict[str, ObjectID]] = {}
    for entry in root.iteritems():
        if entry.path == b"models" and entry.mode == TREE:
            models = entry.sha
        elif entry.path == b"states" and entry.mode == TREE:
            st = odb.read(entry.sha, Tree)
            assert isinstance(st, Tree)
            for s in st.iteritems():
                if s.mode != TREE:
                    raise CorruptObjectError(entry.sha.decode(), f"unexpected entry {s.path!r} in domain index")
                states[check_state(s.path.decode())] = _read_gitlinks(odb, s.sha)
        else:
            raise CorruptObjectError(c.tree.decode(), f"unexpected entry {entry.path!r} in domain index")
    return models, states


def check_index(odb: ObjectDB, commit_id: ObjectID, checked: set[ObjectID]) -> None:
    """Check the shape of the domain index at ``commit_id`` (what ``read_index(full=True)`` checks).

    Trees already checked (marked in ``checked``) are skipped; the ones checked
    now are added.  Checking a chain of history commits (a pull) therefore reads
    each version of each tree of the index once, instead of every tree per commit.

    Raises:
        CorruptObjectError: an entry that is not of the index's shape.
    """
    c = odb.read(commit_id, Commit)
    assert isinstance(c, Commit)
    if c.tree in checked:
        return
    read_index(odb, commit_id)  # root, states and the models tree itself
    root = odb.read(c.tree, Tree)
    assert isinstance(root, Tree)
    for entry in root.iteritems():
        if entry.path == b"models":
            check_models_tree(odb, entry.sha, checked)
    checked.add(c.tree)


@dataclass
class Event:
    """One entry of ``store.log``."""

    event: str
    model_id: str
    model_commit: str
    history_commit: str
    author: str
    time: int
    state: str | None = None
    frameworks: str = ""
    summary: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "event": self.event, "model_id": self.model_id, "model_commit": self.model_commit,
            "history_commit": self.history_commit, "author": self.author,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time)),
            "state": self.state, "frameworks": self.frameworks, "summary": self.summary,
        }


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _message(event: str, model_id: str, model_commit: ObjectID, state: str | None,  # noqa: PLR0913 - the event's fields and its two kinds of trailers
             trailers: dict[str, str], raw: dict[str, str] | None = None) -> bytes:
    title = f"{event} {model_id}" + (f" {state}" if state else "")
    lines = [title, "", trailer_line("Event", event), trailer_line("Model", model_id),
             trailer_line("Commit", model_commit.decode())]
    if state:
        lines.append(trailer_line("State", state))
    for k, v in trailers.items():
        if v:
            lines.append(trailer_line(k, _one_line(v)))
    for k, v in (raw or {}).items():  # kept whole: the caller made it one line
        assert "\n" not in v and "\r" not in v and v.isascii()
        lines.append(trailer_line(k, v))
    return ("\n".join(lines) + "\n").encode()


def parse_event(c: Commit) -> Event:
    trailers = parse_trailers(c.message)
    return Event(
        event=trailers.get("Cas-Event", "unknown"),
        model_id=trailers.get("Cas-Model", ""),
        model_commit=trailers.get("Cas-Commit", ""),
        history_commit=c.id.decode(),
        author=c.author.decode("utf-8", "replace"),
        time=c.author_time,
        state=trailers.get("Cas-State"),
        frameworks=trailers.get("Cas-Frameworks", ""),
        summary=trailers.get("Cas-Summary", ""),
    )


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
) -> ObjectID | None:
    """Apply ``mutate`` to the domain index and record it as one history commit.

    ``trailers`` are shown on one line of at most 200 characters; ``raw_trailers``
    (one ASCII line each, such as a note as a JSON string) are written whole.

    Retries the compare-and-swap until it wins; ``mutate`` is re-run on the
    fresh index each time.  ``mutate`` returns False when there is nothing to
    record (the index already says so); then no commit is made and None returned.
    Returns the new history commit id.
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
        from .notes import ANNOTATIONS, annotation_frontier

        frontier = annotation_frontier(odb, head)
        if frontier is not None:
            raw[ANNOTATIONS[len("Cas-"):]] = " ".join(f.decode() for f in frontier) or "-"
        new = odb.write_commit(idx.to_tree(odb), [head] if head else [], author,
                               _message(event, model_id, model_commit, state, extra, raw), when)
        if refs.set_if_equals(name, head, new):
            return new


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


_HEX = frozenset(b"0123456789abcdef")


def _read_ref_file(path: str) -> ObjectID | None:
    """A loose ref's object id; None when the file is damaged (empty, garbage, symbolic)."""
    with open(path, "rb") as f:
        data = f.read(128).strip()
    return ObjectID(data) if len(data) == 40 and set(data) <= _HEX else None


def _model_refs(refs: Refs, domain: str, known: Mapping[str, ObjectID] | None) -> tuple[dict[str, ObjectID], set[str]]:
    """The domain's model refs that hold an object id, and the IDs of damaged ones.

    With ``known`` (the history's models), a loose ref whose ID the history
    lists is taken to hold the history's commit without being read: casstore's
    writers never move a model ref, they create and delete them (a replaced ref
    is only found by ``known=None``, as fsck --repair does).  Reading every ref
    file on every write would cost ~0.1 ms per model of the domain.
    """
    found: dict[str, ObjectID] = {}
    damaged: set[str] = set()
    packed, loose = refs.scan_models(domain)
    for name, sha in packed.items():
        mid = name.decode("utf-8", "replace")
        if len(sha) == 40 and set(sha) <= _HEX:
            found[mid] = sha
        else:
            damaged.add(mid)
    for e in loose:
        try:
            if known is not None and e.name in known:
                value: ObjectID | None = known[e.name]
            else:
                check_model_id(e.name)
                value = _read_ref_file(e.path)
        except (InvalidIdError, FileNotFoundError):
            continue
        if value is not None:
            found[e.name] = value
            damaged.discard(e.name)
        else:
            found.pop(e.name, None)
            damaged.add(e.name)
    return found, damaged


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


def reconcile(  # noqa: C901, PLR0913 - crash recovery's cases; to model/history/reconcile.py (issue 23)
    odb: ObjectDB,
    refs: Refs,
    domain: str,
    author: bytes,
    trailers: Callable[[ObjectID], dict[str, str]],
    full: bool = False,
) -> list[str]:
    """Record in the history what the model refs say and the history does not.

    A writer killed between changing a model ref and appending its event
    leaves one of two things, and this records the missing event:

    * a model ref the history lacks (or lists at another commit): a ``commit``
      event, with the model commit's author and time and ``trailers(commit)``
      (after a ``delete`` event for the other commit, if any);
    * a history entry whose ref is gone: a ``delete`` event, which also takes
      the model out of its states.

    Damaged refs (empty, garbage, not a commit) are left alone for fsck to
    report: an unreadable ref is never taken for a deleted model.  Without
    ``full``, the refs of IDs the history lists are not read (see _model_refs):
    the check costs a directory listing, not a file read per model.  Callers hold
    the domain lock, so no writer is between its two steps; each event is
    still a compare-and-swap append.  Returns what was recorded, in words.

    Raises:
        CorruptObjectError: the history itself cannot be read.
    """
    head = refs.get(domain_ref(domain))
    idx = read_index(odb, head)
    found, damaged = _model_refs(refs, domain, None if full else idx.models)
    done: list[str] = []
    note = "the writer that changed the model ref stopped before recording it"
    for mid, sha in sorted(idx.models.items()):
        if mid in damaged or found.get(mid) == sha:
            continue

        def drop(i: DomainIndex, mid: str = mid, sha: ObjectID = sha) -> bool:
            if i.models.get(mid) != sha:
                return False
            del i.models[mid]
            for members in i.states.values():
                if members.get(mid) == sha:
                    del members[mid]
            return True

        if append_event(odb, refs, domain, author, "delete", mid, sha, drop, trailers={"Reconciled": note}):
            done.append(f"{domain}: recorded the deletion of {mid}")
    for mid, sha in sorted(found.items()):
        if idx.models.get(mid) == sha:
            continue
        try:
            c = odb.read(sha, Commit)
        except CasError:
            continue  # not a readable model commit: fsck reports the ref
        if not isinstance(c, Commit):
            continue
        extra = dict(trailers(sha), Reconciled=note)

        def put(i: DomainIndex, mid: str = mid, sha: ObjectID = sha) -> bool:
            if i.models.get(mid) == sha:
                return False
            i.models[mid] = sha
            return True

        if append_event(odb, refs, domain, c.author, "commit", mid, sha, put, when=c.author_time,
                        trailers=extra):
            done.append(f"{domain}: recorded the commit of {mid}")
    return done


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
