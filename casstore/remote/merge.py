"""Merging two sides' domain indexes (what push and pull do with two histories).

Model refs are the truth and a history records them; a deletion event names the
model *commit* it deleted (``Cas-Commit``).  For every model ID, with ``l`` its
commit here and ``r`` on the other side (None when absent), and ``Dl`` / ``Dr``
the commits each side's history has deleted under that ID:

* ``l == r``: nothing to do;
* one side lacks it: if the side that lacks it deleted exactly that commit, the
  deletion travels (the model goes on both sides); otherwise it is an addition
  (the model comes to both sides);
* both have it, different commits: if one side deleted exactly the other's
  commit (and not the reverse), the surviving commit replaces it; otherwise it
  is a **conflict**.

A deletion therefore only ever removes the model it was made for, never another
model that has the same ID elsewhere.  A conflict has no merged value: callers
leave the whole domain untouched on both sides (no ref moves, no history is
merged) and report the ID until a user resolves it (docs/remotes.md), so no
history ever lists, or shows an event for, a model its side's ref does not hold.

State membership merges three-way against the histories' merge base, per
(state, ID), and only keeps members the merged index holds at that commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dulwich.objects import Commit, ObjectID

from ..model.history import DomainIndex
from ..objects.odb import ObjectDB
from ..objects.trailers import parse_trailers


@dataclass
class MergeResult:
    index: DomainIndex
    conflicts: list[str] = field(default_factory=list)  # model IDs; ``index`` is meaningless if any


Deleted = dict[str, set[ObjectID]]  # model ID -> model commits a history deleted


def deleted_commits(odb: ObjectDB, head: ObjectID | None) -> Deleted:
    """Every model commit a history's delete events name, by model ID (its whole ancestry)."""
    out: Deleted = {}
    if head is None:
        return out
    for sha in ancestry(odb, head):
        c = odb.read(sha, Commit)
        assert isinstance(c, Commit)
        trailers = parse_trailers(c.message)
        if trailers.get("Cas-Event") == "delete" and trailers.get("Cas-Model") and trailers.get("Cas-Commit"):
            out.setdefault(trailers["Cas-Model"], set()).add(ObjectID(trailers["Cas-Commit"].encode()))
    return out


def _pick_model(loc: ObjectID | None, rem: ObjectID | None, loc_deleted: set[ObjectID],
                rem_deleted: set[ObjectID]) -> tuple[ObjectID | None, bool]:
    """(merged commit, conflict?) for one model ID; see the module docstring."""
    if loc == rem:
        return loc, False
    if loc is None:
        return (None, False) if rem in loc_deleted else (rem, False)
    if rem is None:
        return (None, False) if loc in rem_deleted else (loc, False)
    ours_gone, theirs_gone = loc in rem_deleted, rem in loc_deleted
    if theirs_gone and not ours_gone:
        return loc, False
    if ours_gone and not theirs_gone:
        return rem, False
    return None, True


def _pick(b: ObjectID | None, loc: ObjectID | None, rem: ObjectID | None) -> ObjectID | None:
    """Three-way pick for state membership: a change on one side wins."""
    if loc == rem or rem == b:
        return loc
    return rem


def merge_indexes(base: DomainIndex, local: DomainIndex, remote: DomainIndex,
                  local_deleted: Deleted | None = None, remote_deleted: Deleted | None = None) -> MergeResult:
    """Merge two sides' indexes; ``local.models`` and ``remote.models`` are their model refs.

    Symmetric: swapping the sides swaps nothing in the result but the order of
    arguments.  ``base`` (the histories' merge base) only serves state membership.
    """
    ld, rd = local_deleted or {}, remote_deleted or {}
    out = DomainIndex()
    conflicts: list[str] = []
    lm, rm = local.models, remote.models
    if isinstance(lm, dict) and isinstance(rm, dict):
        # 1,000,000 models (issue 28): only the IDs where the sides differ need a decision,
        # found by set operations in C; every other one keeps its commit (l == r, below)
        differ = {mid for mid, _ in lm.items() ^ rm.items()}
        out.models = {mid: sha for mid, sha in lm.items() if mid not in differ}
        ids = sorted(differ)
    else:
        ids = sorted(set(lm) | set(rm))
    for mid in ids:
        value, conflict = _pick_model(local.models.get(mid), remote.models.get(mid),
                                      ld.get(mid, set()), rd.get(mid, set()))
        if conflict:
            conflicts.append(mid)
        elif value is not None:
            out.models[mid] = value
    for state in sorted(set(base.states) | set(local.states) | set(remote.states)):
        b, lo, r = base.states.get(state, {}), local.states.get(state, {}), remote.states.get(state, {})
        members: dict[str, ObjectID] = {}
        for mid in sorted(set(b) | set(lo) | set(r)):
            value = _pick(b.get(mid), lo.get(mid), r.get(mid))
            # a state can only hold a model the merged index has, at that commit
            if value is not None and out.models.get(mid) == value:
                members[mid] = value
        if members:
            out.states[state] = members
    return MergeResult(out, conflicts)


def ancestry(odb: ObjectDB, head: ObjectID) -> dict[ObjectID, tuple[list[ObjectID], int]]:
    """Every commit reachable from ``head``: its parents and commit time."""
    out: dict[ObjectID, tuple[list[ObjectID], int]] = {}
    stack = [head]
    while stack:
        sha = stack.pop()
        if sha in out:
            continue
        c = odb.read(sha, Commit)
        assert isinstance(c, Commit)
        out[sha] = (list(c.parents), c.commit_time)
        stack.extend(p for p in c.parents if p not in out)
    return out


def merge_base(odb: ObjectDB, a: ObjectID, b: ObjectID) -> ObjectID | None:
    """A best common ancestor of two history commits (None if unrelated).

    The heads of the common set (common commits that are no other common
    commit's parent); with criss-cross merges there can be several, and the
    newest is taken.
    """
    anc_a, anc_b = ancestry(odb, a), ancestry(odb, b)
    common = set(anc_a) & set(anc_b)
    if not common:
        return None
    parents = {p for c in common for p in anc_a[c][0]}
    heads = common - parents
    return max(heads, key=lambda c: (anc_a[c][1], c))
