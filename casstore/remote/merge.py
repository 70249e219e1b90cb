"""Three-way merge of domain indexes (what pull does with two histories).

For every model ID, with ``b`` its commit in the merge base, ``l`` locally and
``r`` on the remote (None when absent):

* ``l == r``: nothing to do;
* ``l == b``: only the remote changed it: take ``r`` (an addition, or a deletion
  when ``r`` is None) -- except that an existing local model is never replaced
  by a different one: that is a conflict;
* ``r == b``: only the local side changed it: keep ``l``;
* otherwise both changed it differently: a conflict, and the local side wins.

State membership merges the same way, per (state, ID).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dulwich.objects import Commit, ObjectID

from ..history import DomainIndex
from ..odb import ObjectDB


@dataclass
class MergeResult:
    index: DomainIndex
    conflicts: list[str] = field(default_factory=list)  # model IDs


def _pick(b: ObjectID | None, loc: ObjectID | None, rem: ObjectID | None) -> tuple[ObjectID | None, bool]:
    """(merged value, conflict?)"""
    if loc == rem:
        return loc, False
    if loc == b:
        if loc is not None and rem is not None:
            return loc, True  # the remote replaced a model we have: never overwrite
        return rem, False
    if rem == b:
        return loc, False
    return loc, True


def merge_indexes(base: DomainIndex, local: DomainIndex, remote: DomainIndex) -> MergeResult:
    out = DomainIndex()
    conflicts: set[str] = set()
    for mid in sorted(set(base.models) | set(local.models) | set(remote.models)):
        value, conflict = _pick(base.models.get(mid), local.models.get(mid), remote.models.get(mid))
        if conflict:
            conflicts.add(mid)
        if value is not None:
            out.models[mid] = value
    for state in sorted(set(base.states) | set(local.states) | set(remote.states)):
        b, lo, r = base.states.get(state, {}), local.states.get(state, {}), remote.states.get(state, {})
        members: dict[str, ObjectID] = {}
        for mid in sorted(set(b) | set(lo) | set(r)):
            value, _ = _pick(b.get(mid), lo.get(mid), r.get(mid))
            # a state can only hold a model the merged index has, at that commit
            if value is not None and out.models.get(mid) == value:
                members[mid] = value
        if members:
            out.states[state] = members
    return MergeResult(out, sorted(conflicts))


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
