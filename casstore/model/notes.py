"""Notes and tags on a model: events of the domain history that leave the index as it is.

A note (``cas note``) or a tag (``cas tag``) changes no model and no state, so it
needs no new model commit: it is one history commit whose tree is its parent's
(the domain index, unchanged) and whose message carries it::

    note v1

    Cas-Event: note | tag | untag
    Cas-Model: v1
    Cas-Commit: <the model's commit>
    Cas-Note: "the text, as a JSON string (ASCII, one line)"      (note)
    Cas-Tag: candidate                                             (tag, untag)

Because they are history events, they travel and merge with the history on
push and pull (a merge keeps both sides' events), and readers that do not know
them see events with an unchanged index (docs/format.md, "Notes and tags").
A note or tag belongs to the model's commit: a model deleted and committed again
under the same ID starts without them.

What a model has is read from the history once per head (the result is kept by
the Store until the head moves).  Every history event casstore writes carries
``Cas-Annotations``: the newest note/tag events of its ancestry (ids, ``-`` for
none), so a reader jumps from event to event instead of reading every commit:
it reads the note and tag events, the merges, and commits written without the
trailer (by older versions, before it existed).  Like ``Cas-Newest`` it is a hint:
a history that lies in it can hide notes from readers, nothing else.

A model has: notes in the order written (by time, then history order), and
tags by the last ``tag``/``untag`` event of each name: of two events one of
which follows the other in the history, the later one; of events made apart (on
two machines, then merged), the newest by time, then the one further from the
history's root, then ``tag`` over ``untag`` (so every copy agrees after a merge).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dulwich.objects import Commit, ObjectID

from ..errors import CasError, InvalidIdError, NoteError
from ..objects.odb import ObjectDB
from ..objects.trailers import parse_trailers
from ..util.names import check_name

#: a note's bound, in UTF-8 bytes: a note is a comment, not a file (extra files are for those)
MAX_NOTE_BYTES = 16 * 1024
#: what readers show of a longer note that came from elsewhere (a hostile or newer writer)
SHOWN_NOTE_CHARS = MAX_NOTE_BYTES
ANNOTATION_EVENTS = ("note", "tag", "untag")
#: the trailer naming the newest note/tag events of a history commit's ancestry
ANNOTATIONS = "Cas-Annotations"
#: more than this many (branches merged that each noted): no trailer, readers walk
MAX_FRONTIER = 32
_HEX = frozenset(b"0123456789abcdef")


def _is_annotation(c: Commit) -> bool:
    return parse_trailers(c.message).get("Cas-Event") in ANNOTATION_EVENTS


def _frontier_trailer(c: Commit) -> list[ObjectID] | None:
    """The ``Cas-Annotations`` of a history commit (None: absent or malformed)."""
    text = parse_trailers(c.message).get(ANNOTATIONS)
    if text is None:
        return None
    value = text.strip().encode()
    if value == b"-":
        return []
    ids = value.split(b" ")
    if len(ids) > MAX_FRONTIER or not all(len(i) == 40 and set(i) <= _HEX for i in ids):
        return None
    return [ObjectID(i) for i in ids]


def _edges(odb: ObjectDB, c: Commit) -> list[ObjectID]:
    """Where a reader goes from ``c``: its trailer's note/tag events, else its parents
    (also when the trailer names an object this store lacks: a history written by hand)."""
    jump = _frontier_trailer(c)
    if jump is None or not all(odb.contains(j) for j in jump):
        return list(c.parents)
    return jump


def _read(odb: ObjectDB, cid: ObjectID) -> Commit | None:
    """A commit of the reader's graph; None for an object that is not one (a lying trailer)."""
    try:
        c = odb.read(cid, Commit)
    except (CasError, KeyError, ValueError):
        return None
    return c if isinstance(c, Commit) else None


def annotation_frontier(odb: ObjectDB, head: ObjectID | None) -> list[ObjectID] | None:
    """The note/tag events of ``head``'s ancestry (itself included) that no other of them
    follows, for the ``Cas-Annotations`` of a commit on top of ``head``; None if over MAX_FRONTIER.

    Reads ``head`` alone when it is a note/tag event or carries the trailer; else walks
    (merges, a history from before the trailer: once, by the first event written on it).
    """
    if head is None:
        return []
    found: list[ObjectID] = []
    seen = {head}
    stack = [head]
    while stack:
        c = _read(odb, stack.pop())
        if c is None:
            continue
        if _is_annotation(c):
            found.append(c.id)
            continue
        for p in _edges(odb, c):
            if p not in seen:
                seen.add(p)
                stack.append(p)
    if len(found) > 1:  # drop the events that another found one follows
        parents: dict[ObjectID, list[ObjectID]] = {}
        _collect(odb, found, parents)
        depth = _depths(parents)
        found = [f for f in found if not any(_reaches(o, f, parents, depth) for o in found if o != f)]
    return sorted(found) if len(found) <= MAX_FRONTIER else None


def _collect(odb: ObjectDB, starts: list[ObjectID], parents: dict[ObjectID, list[ObjectID]]) -> None:
    """The reader's graph (``_edges``) from ``starts``, into ``parents``."""
    stack = [s for s in starts if s not in parents]
    while stack:
        cid = stack.pop()
        if cid in parents:
            continue
        c = _read(odb, cid)
        parents[cid] = [] if c is None else _edges(odb, c)
        stack.extend(p for p in parents[cid] if p not in parents)


def check_note(text: object) -> str:
    """A note as it will be stored, or NoteError saying what is wrong with it."""
    if not isinstance(text, str):
        raise NoteError("note", f"must be a string, not {type(text).__name__}")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: bytes from the command line that are not UTF-8
        raise NoteError("note", "is not valid UTF-8") from None
    if not text.strip():
        raise NoteError("note", "is empty")
    if size > MAX_NOTE_BYTES:
        raise NoteError("note", f"is {size} bytes; at most {MAX_NOTE_BYTES} (store longer text as an extra file)")
    return text


def check_tag(tag: object) -> str:
    """A tag name: casstore's naming rule (letters, digits, ``-_.``), or NoteError."""
    try:
        return check_name(tag, "tag")
    except InvalidIdError as e:
        raise NoteError("tag", str(e)) from None


def note_trailer(text: str) -> str:
    """The note as the ``Cas-Note`` trailer holds it: a JSON string, ASCII, one line."""
    return json.dumps(text, ensure_ascii=True)


def _parse_note(value: str) -> str:
    try:
        text = json.loads(value)
    except (ValueError, RecursionError):
        text = None
    if not isinstance(text, str):
        return "(unreadable note)"
    return text if len(text) <= SHOWN_NOTE_CHARS else text[:SHOWN_NOTE_CHARS] + "..."


@dataclass
class Annotations:
    """The notes and tags of one model commit."""

    notes: list[dict[str, Any]] = field(default_factory=list)  # text, author, time, history_commit
    tag_events: dict[str, list[tuple[ObjectID, int, bool]]] = field(default_factory=dict)  # tag -> events
    tags_on: list[str] = field(default_factory=list)

    def settle(self, depth: dict[ObjectID, int], parents: dict[ObjectID, list[ObjectID]]) -> None:
        self.tags_on = []
        for tag, events in self.tag_events.items():
            ids = {e[0] for e in events}
            # events that a later event of the same tag follows are overridden by it
            later = [e for e in events if not any(_reaches(o, e[0], parents, depth) for o in ids if o != e[0])]
            best = max(later, key=lambda e: (e[1], depth[e[0]], e[2]))
            if best[2]:
                self.tags_on.append(tag)

    @property
    def tags(self) -> list[str]:
        return sorted(self.tags_on)


def _reaches(start: ObjectID, target: ObjectID, parents: dict[ObjectID, list[ObjectID]],
             depth: dict[ObjectID, int]) -> bool:
    """Whether ``target`` is an ancestor of ``start`` (depths prune the search)."""
    stack, seen = [start], {start}
    while stack:
        c = stack.pop()
        for p in parents.get(c, ()):
            if p == target:
                return True
            if p not in seen and depth[p] > depth[target]:
                seen.add(p)
                stack.append(p)
    return False


def _depths(parents: dict[ObjectID, list[ObjectID]]) -> dict[ObjectID, int]:
    """Each commit's distance from the history's root (the longest path), without recursion."""
    depth: dict[ObjectID, int] = {}
    for start in parents:
        if start in depth:
            continue
        stack = [start]
        while stack:
            c = stack[-1]
            todo = [p for p in parents[c] if p not in depth]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            depth[c] = 1 + max((depth[p] for p in parents[c]), default=0)
    return depth


def read_annotations(odb: ObjectDB, head: ObjectID | None) -> dict[tuple[str, str], Annotations]:
    """Every model's notes and tags in the history at ``head``, by (model ID, model commit hex).

    Reads the note and tag events, merges and commits without ``Cas-Annotations``
    (each once); an event with a damaged
    trailer is skipped (a note that is not a JSON string reads as "(unreadable note)").
    """
    out: dict[tuple[str, str], Annotations] = {}
    if head is None:
        return out
    seen = {head}
    stack = [head]
    parents: dict[ObjectID, list[ObjectID]] = {}  # the reader's graph: trailer jumps, else parents
    while stack:
        cid = stack.pop()
        c = _read(odb, cid)
        parents[cid] = [] if c is None else _edges(odb, c)
        for p in parents[cid]:
            if p not in seen:
                seen.add(p)
                stack.append(p)
        if c is None or not _is_annotation(c):
            continue
        t = parse_trailers(c.message)
        event, mid, sha = t.get("Cas-Event"), t.get("Cas-Model", ""), t.get("Cas-Commit", "")
        if event not in ANNOTATION_EVENTS or not mid or not sha:
            continue
        a = out.setdefault((mid, sha), Annotations())
        if event == "note" and "Cas-Note" in t:
            a.notes.append({"text": _parse_note(t["Cas-Note"]), "author": c.author.decode("utf-8", "replace"),
                            "time": c.author_time, "history_commit": c.id.decode()})
        elif event in ("tag", "untag") and t.get("Cas-Tag"):
            tag = t["Cas-Tag"]
            try:
                check_name(tag, "tag")
            except InvalidIdError:
                continue  # written by hand or by a hostile writer: not a tag casstore makes
            a.tag_events.setdefault(tag, []).append((c.id, c.author_time, event == "tag"))
    depth = _depths(parents) if out else {}
    for a in out.values():
        # by time; in one second, in the history's order (the later event is further from the root)
        a.notes.sort(key=lambda n: (n["time"], depth[n["history_commit"].encode()], n["history_commit"]))
        a.settle(depth, parents)
    return out
