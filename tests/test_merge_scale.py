"""A merge of two big domains costs what differs (issue 28): the write, the history walks.

* the merged index written as changes to our history's tree (``changed_from``,
  ``apply_changes``) is the tree a full write of the merged IDs gives, and reads
  only the trees on the changed paths;
* ``merge_base``, ``is_ancestor`` and ``deleted_commits(since=)`` walk the commits
  since the histories forked, and agree with the whole-ancestry definitions.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dulwich.objects import Commit, ObjectID, Tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import casstore
from casstore.model import indextree
from casstore.model.history import DomainIndex, read_index
from casstore.objects.odb import ObjectDB
from casstore.remote.merge import _since, ancestry, deleted_commits, is_ancestor, merge_base, merge_indexes
from tests.helpers.damage import counting_reads


@pytest.fixture(scope="module")
def odb(tmp_path_factory: pytest.TempPathFactory) -> ObjectDB:
    return casstore.open(tmp_path_factory.mktemp("merge") / "s").odb


def sha(n: int) -> ObjectID:
    return ObjectID(f"{n:040x}".encode())


@pytest.fixture(autouse=True)
def small_leaves() -> Iterator[None]:
    """Leaves of 4 IDs: a few hundred IDs make trees 3-4 levels deep."""
    old = indextree.LEAF_MAX
    indextree.LEAF_MAX = 4
    try:
        yield
    finally:
        indextree.LEAF_MAX = old


def history(odb: ObjectDB, models: dict[str, ObjectID], parents: list[ObjectID] | None = None,
            when: int = 1_700_000_000, message: bytes = b"e\n") -> ObjectID:
    tree = DomainIndex(models=dict(models)).to_tree(odb)
    return odb.write_commit(tree, parents or [], b"t <t@t.invalid>", message, when)


_IDS = [f"model-{i}" for i in range(60)]
_SIDE = st.dictionaries(st.sampled_from(_IDS), st.integers(1, 3).map(sha), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(local=_SIDE, remote=_SIDE,
       rd=st.dictionaries(st.sampled_from(_IDS), st.sets(st.integers(1, 3).map(sha), max_size=2), max_size=20))
def test_the_merged_index_written_as_changes_is_the_full_write(odb: ObjectDB, local: dict[str, ObjectID],
                                                              remote: dict[str, ObjectID],
                                                              rd: dict[str, set[ObjectID]]) -> None:
    """Random sides: the tree written from our history's tree plus the merge's changes has the
    SHA of the tree written from the merged IDs alone (both in the current layout)."""
    ours = history(odb, local)
    merged = merge_indexes(DomainIndex(), DomainIndex(dict(local)), DomainIndex(dict(remote)), {}, rd, ours)
    if merged.conflicts:
        return
    assert merged.index.changed_from is not None
    assert {m: new for m, (_, new) in merged.changes.items()} == {
        m: merged.index.models.get(m) for m in set(local) | set(remote) if local.get(m) != merged.index.models.get(m)}
    incremental = merged.index.to_tree(odb)
    full = DomainIndex(models=dict(merged.index.models)).to_tree(odb)
    assert incremental == full


def test_the_write_reads_only_the_changed_paths(odb: ObjectDB) -> None:
    """2,000 IDs in leaves of 4 (~700 trees); a merge that adds one and deletes one reads a few."""
    local = {f"m{i:05d}": sha(i + 1) for i in range(2000)}
    ours = history(odb, local)
    remote = dict(local)
    remote["new-one"] = sha(9)
    del remote["m00007"]
    merged = merge_indexes(DomainIndex(), DomainIndex(dict(local)), DomainIndex(remote), {},
                           {"m00007": {sha(8)}}, ours)
    assert merged.changes == {"new-one": (None, sha(9)), "m00007": (sha(8), None)}
    store_odb = odb
    with counting_reads(store_odb) as reads:
        tree = merged.index.to_tree(store_odb)
    assert len(reads) < 20, len(reads)  # two root-to-leaf paths (and the commit's root), not ~700 trees
    assert tree == DomainIndex(models=dict(merged.index.models)).to_tree(odb)
    assert dict(read_index(odb, store_odb.write_commit(tree, [ours], b"t <t@t.invalid>", b"m\n")).models.items()) \
        == merged.index.models


def test_a_base_that_does_not_hold_what_the_changes_replace_is_written_whole(odb: ObjectDB) -> None:
    """``changed_from`` naming a commit whose index is not the local side: the write notices
    (the changed IDs' old values) and writes the merged IDs whole instead of a wrong tree."""
    stale = history(odb, {"a": sha(1), "b": sha(2)})
    merged = merge_indexes(DomainIndex(), DomainIndex({"a": sha(5), "b": sha(2)}),
                           DomainIndex({"a": sha(5), "b": sha(2), "c": sha(3)}), {}, {}, stale)
    assert merged.changes == {"c": (None, sha(3))}
    merged.changes["a"] = (sha(5), sha(5))  # claims ``a`` is sha(5) at ``stale``: it is sha(1) there
    assert merged.index.to_tree(odb) == DomainIndex(models={"a": sha(5), "b": sha(2), "c": sha(3)}).to_tree(odb)


# -- history walks -------------------------------------------------------------


def dag(odb: ObjectDB, shape: list[list[int]]) -> list[ObjectID]:
    """Commits whose parents are ``shape[i]`` (indexes of earlier commits), one second apart."""
    empty = odb.write_loose(Tree())
    out: list[ObjectID] = []
    for i, parents in enumerate(shape):
        out.append(odb.write_commit(empty, [out[p] for p in parents], b"t <t@t.invalid>", f"c{i}\n".encode(),
                                    1_700_000_000 + i))
    return out


def old_merge_base(odb: ObjectDB, a: ObjectID, b: ObjectID) -> ObjectID | None:
    """merge_base as it was: both whole ancestries, the newest head of the common set."""
    anc_a, anc_b = ancestry(odb, a), ancestry(odb, b)
    common = set(anc_a) & set(anc_b)
    if not common:
        return None
    heads = common - {p for c in common for p in anc_a[c][0]}
    return max(heads, key=lambda c: (anc_a[c][1], c))


_DAG = st.integers(2, 25).flatmap(lambda n: st.tuples(*[
    st.lists(st.integers(0, i - 1), max_size=2, unique=True) if i else st.just([]) for i in range(n)]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=_DAG, data=st.data())
def test_bounded_history_walks_agree_with_whole_ancestries(odb: ObjectDB, shape: tuple[list[int], ...],
                                                           data: st.DataObject) -> None:
    commits = dag(odb, list(shape))
    a = data.draw(st.sampled_from(commits))
    b = data.draw(st.sampled_from(commits))
    assert merge_base(odb, a, b) == old_merge_base(odb, a, b)
    assert is_ancestor(odb, a, b) == (a in ancestry(odb, b))
    assert {s for s, _ in _since(odb, a, b)} == set(ancestry(odb, a)) - set(ancestry(odb, b))


def test_walks_stop_at_the_fork_of_a_long_history(odb: ObjectDB) -> None:
    """1,000 events, then two sides of 3 each: a merge reads the commits since the fork, not 1,000."""
    shape = [[]] + [[i] for i in range(999)]
    shape += [[999], [1000], [1001], [999], [1003], [1004]]
    commits = dag(odb, shape)
    ours, theirs, fork = commits[1002], commits[1005], commits[999]
    reads: list[ObjectID] = []
    real = odb.read

    def counting(oid: ObjectID, expect: type | None = None) -> object:
        if expect is Commit:
            reads.append(oid)
        return real(oid, expect)  # type: ignore[arg-type]

    odb.read = counting  # type: ignore[method-assign, assignment]
    try:
        assert merge_base(odb, ours, theirs) == fork
        assert deleted_commits(odb, ours, fork) == {}
        assert not is_ancestor(odb, theirs, ours)
    finally:
        del odb.read
    assert len(reads) < 40, len(reads)


def test_deletions_since_the_merge_base_only(odb: ObjectDB) -> None:
    """A delete event before the fork is in both histories; after it, only in its side's."""
    root = history(odb, {"x": sha(1), "y": sha(2)}, when=1_700_000_000)
    gone_x = history(odb, {"y": sha(2)}, [root], 1_700_000_001,
                     b"delete x\n\nCas-Event: delete\nCas-Model: x\nCas-Commit: " + sha(1) + b"\n")
    gone_y = history(odb, {}, [gone_x], 1_700_000_002,
                     b"delete y\n\nCas-Event: delete\nCas-Model: y\nCas-Commit: " + sha(2) + b"\n")
    other = history(odb, {"y": sha(2), "z": sha(3)}, [gone_x], 1_700_000_003)
    base = merge_base(odb, gone_y, other)
    assert base == gone_x
    assert deleted_commits(odb, gone_y, base) == {"y": {sha(2)}}
    assert deleted_commits(odb, other, base) == {}
    assert deleted_commits(odb, gone_y) == {"x": {sha(1)}, "y": {sha(2)}}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=_SIDE, b=_SIDE)
def test_diff_models_is_the_dict_difference(odb: ObjectDB, a: dict[str, ObjectID], b: dict[str, ObjectID]) -> None:
    """Two random ``models`` trees (leaves of 4, so leaves against their splits too): their diff."""
    from casstore.model.indextree import diff_models, models_tree

    want = {m: (a.get(m), b.get(m)) for m in set(a) | set(b) if a.get(m) != b.get(m)}
    assert diff_models(odb, models_tree(odb, a), models_tree(odb, b)) == want


def test_a_fast_forward_is_recognised_by_the_changed_paths(odb: ObjectDB) -> None:
    """Their history is ours plus events: ``index_is`` compares by the trees that differ, and
    says no when their index is not the merged one."""
    from casstore.remote.merge import index_is

    local = {f"m{i:05d}": sha(i + 1) for i in range(2000)}
    ours = history(odb, local, when=1_700_000_000)
    remote = {**local, "new-one": sha(9)}
    theirs = history(odb, remote, [ours], 1_700_000_001)
    merged = merge_indexes(DomainIndex(), DomainIndex(dict(local)), DomainIndex(dict(remote)), {}, {}, ours)
    with counting_reads(odb) as reads:
        assert index_is(odb, theirs, merged.index)
        assert not index_is(odb, ours, merged.index)
    assert len(reads) < 30, len(reads)
    # a history whose index lacks one of the refs: not the merged index
    liar = history(odb, {k: v for k, v in remote.items() if k != "m00003"}, [ours], 1_700_000_002)
    assert not index_is(odb, liar, merged.index)


def test_model_refs_reads_packed_and_loose_refs_as_git_does(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``history.model_refs`` (a pull's and push's listing of our refs) against dulwich's per-ID reads:
    packed refs of this domain only, a loose ref winning over its packed one, damaged ones left out."""
    import os

    from casstore.model.history import model_refs
    from casstore.objects.refs import model_ref

    store = casstore.open(tmp_path_factory.mktemp("refs") / "s")
    git_dir = store.repo.path
    with open(os.path.join(git_dir, "packed-refs"), "wb") as f:
        f.write(b"# pack-refs with: peeled fully-peeled sorted \n")
        for name, value in [("d/a", sha(1)), ("d/b", sha(2)), ("d/c", sha(3)), ("dx/a", sha(4)), ("d/x/y", sha(5))]:
            f.write(value + b" refs/cas/models/" + name.encode() + b"\n")
        f.write(b"^" + sha(6) + b"\n")
    loose = os.path.join(git_dir, "refs", "cas", "models", "d")
    os.makedirs(loose, exist_ok=True)
    for name, body in [("b", sha(7) + b"\n"), ("e", sha(8) + b"\n"), ("c", b"garbage\n"), ("f.lock", sha(9))]:
        with open(os.path.join(loose, name), "wb") as f:
            f.write(body)
    got = model_refs(store.repo.refs, "d")
    assert got == {"a": sha(1), "b": sha(7), "e": sha(8)}
    refs = store.repo.refs
    assert {m: refs.get(model_ref("d", m)) for m in ("a", "b", "e")} == got
