"""Crash recovery: record in the history what the model refs say and the history does not.

Reads the domain's ref files itself (a damaged ref is never taken for a deleted model).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from dulwich.objects import Commit, ObjectID

from ...errors import CasError, InvalidIdError
from ...objects.odb import ObjectDB
from ...objects.refs import Refs, domain_ref
from ...util.names import check_model_id
from .append import append_event
from .index import DomainIndex, read_index

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


def model_refs(refs: Refs, domain: str) -> dict[str, ObjectID]:
    """The domain's model refs (ID -> commit): ``Refs.model_refs``, kept importable here."""
    return refs.model_refs(domain)


def reconcile(  # noqa: C901, PLR0913 - crash recovery's cases
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
