"""A pull moves our refs from ``MergeResult.changes``: the same moves as ``DomainPlan.moves(ours)`` (issue 28)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from dulwich.objects import ObjectID
from dulwich.refs import DiskRefsContainer
from hypothesis import given, settings
from hypothesis import strategies as st

import casstore
from casstore.model.history import DomainIndex, model_refs
from casstore.objects.refs import model_ref
from casstore.remote import sync
from casstore.remote.merge import merge_indexes
from casstore.remote.sync import DomainPlan
from tests.helpers.conflicts import assert_consistent

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


def test_a_ref_a_foreign_writer_adds_during_a_pull_is_in_the_merged_history(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race check after the refs move lists them again (the packed part reused while
    ``packed-refs`` is unchanged): a loose ref a foreign writer (git) adds meanwhile is seen,
    and the pull merges again, so the history it writes records it."""
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    f = tmp_path / "m.bin"
    f.write_bytes(os.urandom(50_000))
    a.commit_models("d", model=str(f), model_id="ours")
    b.commit_models("d", model=str(f), model_id="theirs")
    subprocess.run(["git", "--git-dir", a.repo.path, "pack-refs", "--all"], check=True)
    assert os.path.getsize(os.path.join(a.repo.path, "packed-refs")) > 0
    ours = a.refs.get(model_ref("d", "ours"))
    assert ours is not None
    real = sync._move_local
    calls = []

    def move_then_race(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        if not calls:  # a foreign writer adds a ref once, after our first move
            DiskRefsContainer(a.repo.path).add_if_new(model_ref("d", "foreign"), ours)
        calls.append(args)

    monkeypatch.setattr(sync, "_move_local", move_then_race)
    r = a.pull(b.path)
    assert r.models_added == ["d/theirs"]
    assert set(model_refs(a.refs, "d")) == {"ours", "theirs", "foreign"}
    assert_consistent(a)  # the history at the new head lists exactly the refs, "foreign" too
