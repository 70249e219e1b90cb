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

Cost (issue 28): a merge of two 1,000,000-model domains decides only the IDs
where the sides differ, writes the merged index as those changes to our
history's tree (``MergeResult.changes``, ``DomainIndex.changed_from``: the
trees on the changed paths, not the whole index), and walks each history only
down to the merge base (``merge_base``, ``deleted_commits``, ``is_ancestor``),
not its whole ancestry.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

from dulwich.objects import Commit, ObjectID

from ..model.history import DomainIndex, ShardedModels, read_index, read_states
from ..model.history.index import Changes
from ..model.indextree import diff_models
from ..objects.odb import ObjectDB
from ..objects.trailers import parse_trailers


@dataclass
class MergeResult:
    index: DomainIndex
    conflicts: list[str] = field(default_factory=list)  # model IDs; ``index`` is meaningless if any
    #: model ID -> (local commit, merged commit) for every ID the merge changes on the local side
    changes: Changes = field(default_factory=dict)


Deleted = dict[str, set[ObjectID]]  # model ID -> model commits a history deleted


def deleted_commits(odb: ObjectDB, head: ObjectID | None, since: ObjectID | None = None) -> Deleted:
    """The model commits a history's delete events name, by model ID.

    ``since`` (the merge base with the other side): only the events after it,
    which the other side's history does not hold already: a walk bounded by the
    events since the two histories forked, not by the whole history.  A deletion
    both histories hold has been merged already (a model holding that commit on
    one side was added again after it).  None: the whole ancestry of ``head``.
    """
    out: Deleted = {}
    if head is None:
        return out
    for _, c in _since(odb, head, since):
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


def merge_indexes(base: DomainIndex, local: DomainIndex, remote: DomainIndex,  # noqa: PLR0913 - the two sides and their deletions
                  local_deleted: Deleted | None = None, remote_deleted: Deleted | None = None,
                  local_head: ObjectID | None = None) -> MergeResult:
    """Merge two sides' indexes; ``local.models`` and ``remote.models`` are their model refs.

    Symmetric: swapping the sides swaps nothing in the result but the order of
    arguments.  ``base`` (the histories' merge base) only serves state membership.
    ``local_head``: the local history commit whose index holds exactly
    ``local.models`` (the caller knows it: under the domain lock, or with the refs
    as stamped); the merged index is then written as ``changes`` to its tree
    (``DomainIndex.changed_from``), reading only the changed paths.
    """
    ld, rd = local_deleted or {}, remote_deleted or {}
    out = DomainIndex()
    conflicts: list[str] = []
    changes: Changes = {}
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
        had = local.models.get(mid)
        value, conflict = _pick_model(had, remote.models.get(mid), ld.get(mid, set()), rd.get(mid, set()))
        if conflict:
            conflicts.append(mid)
            continue
        if value is not None:
            out.models[mid] = value
        if value != had:
            changes[mid] = (had, value)
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
    if local_head is not None:
        out.changed_from = (local_head, changes)
    return MergeResult(out, conflicts, changes)


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


def _commit(odb: ObjectDB, sha: ObjectID) -> Commit:
    c = odb.read(sha, Commit)
    assert isinstance(c, Commit)
    return c


def _since(odb: ObjectDB, head: ObjectID, stop: ObjectID | None) -> Iterator[tuple[ObjectID, Commit]]:
    """The commits reachable from ``head`` and not from ``stop``, newest first by commit time.

    git's ``rev-list head ^stop``: both walked newest first, a commit reached
    from ``stop`` marked (its parents with it), ending when only marked commits
    are left to walk.  Bounded by the commits since the two forked, not by the
    history.  With clocks that went backwards some commits of ``stop``'s
    ancestry may come out too (never fewer than asked).
    """
    if stop is None:
        for sha in ancestry(odb, head):
            yield sha, _commit(odb, sha)
        return
    head_side, stop_side = 1, 2
    flags = {head: head_side}
    flags[stop] = flags.get(stop, 0) | stop_side
    commits: dict[ObjectID, Commit] = {}

    def read(sha: ObjectID) -> Commit:
        if sha not in commits:
            commits[sha] = _commit(odb, sha)
        return commits[sha]

    queue = [(-read(sha).commit_time, sha) for sha in {head, stop}]
    heapq.heapify(queue)
    emitted: set[ObjectID] = set()
    while any(flags[sha] == head_side for _, sha in queue):
        _, sha = heapq.heappop(queue)
        f = flags[sha]
        c = read(sha)
        if f == head_side and sha not in emitted:
            emitted.add(sha)
            yield sha, c
        for p in c.parents:
            if flags.get(p, 0) & f != f:
                flags[p] = flags.get(p, 0) | f
                heapq.heappush(queue, (-read(p).commit_time, p))


def merge_base(odb: ObjectDB, a: ObjectID, b: ObjectID) -> ObjectID | None:
    """A best common ancestor of two history commits (None if unrelated).

    The heads of the common set (common commits that are no other common
    commit's parent); with criss-cross merges there can be several, and the
    newest is taken.  Both histories are walked newest first by commit time
    down to their common commits only (git's ``paint_down_to_common``), not
    whole: bounded by the commits since they forked.
    """
    if a == b:
        return a
    ours, theirs, stale = 1, 2, 4
    flags = {a: ours, b: theirs}
    commits: dict[ObjectID, Commit] = {}

    def read(sha: ObjectID) -> Commit:
        if sha not in commits:
            commits[sha] = _commit(odb, sha)
        return commits[sha]

    queue = [(-read(a).commit_time, a), (-read(b).commit_time, b)]
    heapq.heapify(queue)
    heads: dict[ObjectID, int] = {}
    while any(not flags[sha] & stale for _, sha in queue):
        _, sha = heapq.heappop(queue)
        f = flags[sha]
        if f == ours | theirs:
            heads[sha] = read(sha).commit_time
            f |= stale
        for p in read(sha).parents:
            if flags.get(p, 0) & f != f:
                flags[p] = flags.get(p, 0) | f
                heapq.heappush(queue, (-read(p).commit_time, p))
    if not heads:
        return None
    return max(heads, key=lambda c: (heads[c], c))


def index_is(odb: ObjectDB, head: ObjectID, index: DomainIndex) -> bool:
    """Whether the domain index at history commit ``head`` is ``index``.

    Without reading ``head``'s models whole when ``index`` was merged from a
    known commit's (``changed_from``): the same commit, equal exactly when the
    merge changed none; another one, when the two commits' models differ by
    the merge's changes exactly (``diff_models``).
    """
    if index.changed_from is None:
        return read_index(odb, head) == index
    base, changes = index.changed_from
    if base == head:
        return not changes and read_states(odb, head) == index.states
    # another commit (a fast-forward): its models are the merged ones exactly when they differ
    # from ``base``'s by the merge's changes (the trees on the changed paths read, not the index)
    at_head, at_base = read_index(odb, head), read_index(odb, base)
    assert isinstance(at_head.models, ShardedModels) and isinstance(at_base.models, ShardedModels)
    return (at_head.states == index.states
            and diff_models(odb, at_base.models.tree_id, at_head.models.tree_id) == changes)


def is_ancestor(odb: ObjectDB, a: ObjectID, b: ObjectID) -> bool:
    """Whether history commit ``a`` is ``b`` or one of its ancestors (walking ``b``'s commits since ``a``)."""
    return merge_base(odb, a, b) == a
