"""A pull moves our refs from ``MergeResult.changes``: the same moves as ``DomainPlan.moves(ours)`` (issue 28)."""

from __future__ import annotations

from dulwich.objects import ObjectID
from hypothesis import given, settings
from hypothesis import strategies as st

from casstore.model.history import DomainIndex
from casstore.remote.merge import merge_indexes
from casstore.remote.sync import DomainPlan

IDS = st.sampled_from([f"m{i}" for i in range(12)])
SHAS = st.sampled_from([ObjectID(f"{i:040x}".encode()) for i in range(1, 5)])
SIDE = st.dictionaries(IDS, SHAS, max_size=10)


@settings(max_examples=300, deadline=None)
@given(local=SIDE, remote=SIDE, deleted_l=st.dictionaries(IDS, st.sets(SHAS, max_size=2), max_size=4),
       deleted_r=st.dictionaries(IDS, st.sets(SHAS, max_size=2), max_size=4))
def test_the_changes_are_the_moves_of_our_side(local: dict[str, ObjectID], remote: dict[str, ObjectID],
                                              deleted_l: dict[str, set[ObjectID]],
                                              deleted_r: dict[str, set[ObjectID]]) -> None:
    ours, theirs = DomainIndex(models=dict(local)), DomainIndex(models=dict(remote))
    merged = merge_indexes(DomainIndex(), ours, theirs, deleted_l, deleted_r)
    if merged.conflicts:
        return
    plan = DomainPlan("d", None, None, ours, theirs, merged)
    assert sorted(plan.moves(ours.models)) == sorted((m, h, s) for m, (h, s) in merged.changes.items())
