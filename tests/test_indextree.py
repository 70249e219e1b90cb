"""The ``models`` tree of a domain index (casstore/model/indextree.py): split rule, old layouts.

The split bound is lowered (``LEAF_MAX``, and ``KEY_DIGITS`` for the deepest
leaves) so that a few dozen IDs build trees several levels deep.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from dulwich.objects import ObjectID, Tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import casstore
from casstore.errors import CorruptObjectError
from casstore.model import indexkeys, indextree
from casstore.model.indextree import GITLINK, TREE, ShardedModels, key_of, models_tree, shard_of
from casstore.objects.odb import ObjectDB
from tests.helpers.damage import counting_reads


@contextmanager
def bound(leaf_max: int, key_digits: int = 10) -> Iterator[None]:
    old = indextree.LEAF_MAX, indextree.KEY_DIGITS
    indextree.LEAF_MAX, indextree.KEY_DIGITS = leaf_max, key_digits
    try:
        yield
    finally:
        indextree.LEAF_MAX, indextree.KEY_DIGITS = old


@pytest.fixture(scope="module")
def odb(tmp_path_factory: pytest.TempPathFactory) -> ObjectDB:
    return casstore.open(tmp_path_factory.mktemp("idx") / "s").odb


def sha(n: int) -> ObjectID:
    return ObjectID(f"{n:040x}".encode())


def shape(odb: ObjectDB, tree_id: ObjectID | None, prefix: str = "") -> Iterator[tuple[str, int, int]]:
    """(prefix, gitlinks, subtrees) of every tree under ``tree_id``; checks each entry's path."""
    if tree_id is None:
        return
    t = odb.read(tree_id, Tree)
    assert isinstance(t, Tree)
    links = subs = 0
    for e in t.iteritems():
        if e.mode == GITLINK:
            links += 1
            assert key_of(e.path.decode()).startswith(prefix)
        else:
            assert e.mode == TREE
            subs += 1
            yield from shape(odb, e.sha, prefix + e.path.decode())
    yield prefix, links, subs


def canonical(odb: ObjectDB, tree_id: ObjectID | None) -> None:
    """Leaves of at most LEAF_MAX (or at the deepest prefix), internal nodes holding more, 1-digit names."""
    sizes: dict[str, int] = {}
    for prefix, links, subs in sorted(shape(odb, tree_id), key=lambda x: -len(x[0])):
        assert not (links and subs), prefix
        if subs:
            sizes[prefix] = sum(n for p, n in sizes.items() if len(p) == len(prefix) + 1 and p.startswith(prefix))
            assert sizes[prefix] > indextree.LEAF_MAX, prefix
        else:
            sizes[prefix] = links
            assert links <= indextree.LEAF_MAX or len(prefix) == indextree.KEY_DIGITS, prefix
            assert links or prefix == "", prefix


IDS = [f"m{i}" for i in range(40)] + ["a", "Z.z", "x" * 128, "model-000001", "9f3c2a1e-7d4b-4c1e-9a7f-0123456789ab"]
ops = st.lists(st.tuples(st.sampled_from(["set", "del"]), st.sampled_from(IDS), st.integers(1, 5)),
               max_size=120)


@pytest.mark.parametrize(("leaf_max", "key_digits"), [(3, 10), (2, 2), (1, 10)])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=ops)
def test_the_split_rule_against_a_dict(odb: ObjectDB, leaf_max: int, key_digits: int,
                                       script: list[tuple[str, str, int]]) -> None:
    """Any sequence of adds and deletes: the tree holds what a dict holds, in the canonical shape.

    The shape depends on the set of IDs only: the tree an event-by-event history
    writes is the very tree built from scratch (same id), so merges and
    conversions agree with incremental writes.
    """
    with bound(leaf_max, key_digits):
        truth: dict[str, ObjectID] = {}
        models = ShardedModels(odb, None)
        tree_id: ObjectID | None = None
        earlier: ObjectID | None = None
        for step, (op, mid, n) in enumerate(script):
            if op == "set":
                truth[mid] = models[mid] = sha(n)
            elif mid in truth:
                del truth[mid]
                del models[mid]
            else:
                with pytest.raises(KeyError):
                    del models[mid]
            if step % 7 == 6:  # as history commits do: write, then start from the tree read back
                tree_id = models.to_tree(odb)
                models = ShardedModels(odb, tree_id)
                earlier = earlier or tree_id
        tree_id = models.to_tree(odb)
        assert tree_id == models_tree(odb, dict(truth))
        # a merge writes its result as the changes to a parent's tree: the same tree
        for base in (earlier, None):
            assert tree_id == models_tree(odb, dict(truth), base)
        canonical(odb, tree_id)
        back = ShardedModels(odb, tree_id)
        for mid in IDS:  # lookups read one path each
            assert (mid in back) == (mid in truth)
            assert back.get(mid) == truth.get(mid)
        assert dict(back.items()) == truth and len(back) == len(truth)


def test_key_of_is_pinned_and_extends_shard_of() -> None:
    # the layout of every store depends on these digits: they never change
    assert [key_of(i) for i in ("v1", "a", "model-000001")] == ["93a1fdb094", "61833fb300", "03d1b1bd74"]
    for mid in IDS:
        k = key_of(mid)
        assert len(k) == 10 and set(k) <= set(string.hexdigits.lower()) and k[:2] == shard_of(mid)
    # digits beyond the shard spread the IDs of one shard
    keys = [key_of(f"run-{i:06d}") for i in range(20000)]
    for at in (2, 3, 5, 9):
        assert len({k[at] for k in keys}) == 16


def _flat(odb: ObjectDB, items: dict[str, ObjectID]) -> ObjectID:
    t = Tree()
    for mid, s in items.items():
        t.add(mid.encode(), GITLINK, s)
    return odb.write_loose(t)


def _sharded(odb: ObjectDB, items: dict[str, ObjectID]) -> ObjectID:
    shards: dict[str, dict[str, ObjectID]] = {}
    for mid, s in items.items():
        shards.setdefault(shard_of(mid), {})[mid] = s
    t = Tree()
    for name, members in shards.items():
        t.add(name.encode(), TREE, _flat(odb, members))
    return odb.write_loose(t)


@pytest.mark.parametrize("layout", ["flat", "256-shard", "mixed"])
def test_old_layouts_are_read_and_rewritten_by_the_next_write(odb: ObjectDB, layout: str) -> None:
    items = {f"id-{i}": sha(i + 1) for i in range(300)}
    if layout == "flat":
        tree_id = _flat(odb, items)
    elif layout == "256-shard":
        tree_id = _sharded(odb, items)
    else:  # older casstore read flat entries next to shards: so do we
        half = dict(list(items.items())[:150])
        t = odb.read(_sharded(odb, half), Tree)
        assert isinstance(t, Tree)
        for mid, s in list(items.items())[150:]:
            t.add(mid.encode(), GITLINK, s)
        tree_id = odb.write_loose(t)
    old = ShardedModels(odb, tree_id)
    assert old["id-7"] == sha(8) and "id-300" not in old
    assert dict(old.items()) == items
    old["id-300"] = sha(301)
    del old["id-0"]
    new_id = old.to_tree(odb)
    items["id-300"] = sha(301)
    del items["id-0"]
    assert new_id == models_tree(odb, items)
    canonical(odb, new_id)
    assert dict(ShardedModels(odb, new_id).items()) == items


def test_a_misfiled_or_doubled_entry_is_corrupt(odb: ObjectDB) -> None:
    with bound(2):
        items = {f"id-{i}": sha(i + 1) for i in range(20)}
        good = models_tree(odb, items)
        assert good is not None
        root = odb.read(good, Tree)
        assert isinstance(root, Tree)
        # an ID filed under a digit that is not its key's
        mid = "id-3"
        wrong = "0" if key_of(mid)[0] != "0" else "1"
        leaf = Tree()
        leaf.add(mid.encode(), GITLINK, sha(4))
        bad = Tree()
        bad.add(wrong.encode(), TREE, odb.write_loose(leaf))
        with pytest.raises(CorruptObjectError, match="id-3"):
            ShardedModels(odb, odb.write_loose(bad)).load_all()
        # an ID listed twice: at the root and on its key's path
        for e in list(root.iteritems()):
            if e.path.decode() == key_of(mid)[0]:
                twice = odb.read(good, Tree)
                assert isinstance(twice, Tree)
                twice.add(mid.encode(), GITLINK, sha(4))
                with pytest.raises(CorruptObjectError, match="listed twice"):
                    ShardedModels(odb, odb.write_loose(twice)).load_all()
        # a directory that is not 1-2 hex digits, a blob, a key deeper than 10 digits
        for name, mode in (("g", TREE), ("abc", TREE), ("x", 0o100644)):
            t = Tree()
            t.add(name.encode(), mode, good)
            with pytest.raises(CorruptObjectError, match="unexpected entry"):
                ShardedModels(odb, odb.write_loose(t))


def _tree_ids(odb: ObjectDB, tree_id: ObjectID | None) -> set[ObjectID]:
    out: set[ObjectID] = set()
    stack = [tree_id] if tree_id else []
    while stack:
        tid = stack.pop()
        out.add(tid)
        t = odb.read(tid, Tree)
        assert isinstance(t, Tree)
        stack.extend(e.sha for e in t.iteritems() if e.mode == TREE)
    return out



def _read_trees_counting(odb: ObjectDB, ids: list[ObjectID]) -> tuple[list[bytes], list[ObjectID]]:
    """``read_trees(odb, ids)``, and the trees it looked up one by one (``read_raw``) instead of
    slicing them from their pack."""
    with counting_reads(odb) as slow:
        return indextree.read_trees(odb, ids), slow

def test_an_event_writes_one_path_of_the_tree(odb: ObjectDB) -> None:
    """At 2,000 IDs and a bound of 8 the tree is 3-4 levels deep; an add or delete writes one path."""
    with bound(8):
        items = {f"id-{i}": sha(i + 1) for i in range(2000)}
        tree_id = models_tree(odb, items)
        depth_of_new = max(len(p) for p, _, _ in shape(odb, tree_id) if key_of("new").startswith(p))
        m = ShardedModels(odb, tree_id)
        m["new"] = sha(5000)
        after = m.to_tree(odb)
        added = _tree_ids(odb, after) - _tree_ids(odb, tree_id)
        assert depth_of_new >= 2 and len(added) == depth_of_new + 1  # models/, the internal nodes, the leaf
        m = ShardedModels(odb, after)
        del m["id-7"]
        again = m.to_tree(odb)
        assert len(_tree_ids(odb, again) - _tree_ids(odb, after)) <= 5
        items["new"] = sha(5000)
        del items["id-7"]
        assert again == models_tree(odb, items)


def test_the_fast_name_check_is_names_py() -> None:
    from casstore.errors import InvalidIdError
    from casstore.model.indexkeys import VALID as _VALID
    from casstore.util.names import check_model_id

    names = ["a", "A-b_c.d", ".a", "a.", "a..b", "a.lock", "a.lockx", "x" * 128, "x" * 129, "", "a b", "é",
             "a/b", "a\n", "-", "_", "1.2.3", "v1.lock.", "..", ".", "a.b.lock", "lock", "a\x00"]
    for n in names:
        try:
            check_model_id(n)
            ok = True
        except InvalidIdError:
            ok = False
        assert bool(_VALID.fullmatch(n)) == ok, n


@given(st.text(alphabet=string.ascii_letters + string.digits + "._-/ \n", max_size=140))
def test_the_fast_name_check_is_names_py_on_any_text(name: str) -> None:
    from casstore.errors import InvalidIdError
    from casstore.model.indexkeys import VALID as _VALID
    from casstore.util.names import check_model_id

    try:
        check_model_id(name)
        ok = True
    except InvalidIdError:
        ok = False
    assert bool(_VALID.fullmatch(name)) == ok


def test_the_fast_path_check_is_key_prefix() -> None:
    from casstore.model.indexkeys import on_path as _on_path
    from casstore.model.indexkeys import prefix_test as _prefix_test

    for mid in IDS + [f"run-{i}" for i in range(300)]:
        k = key_of(mid)
        for n in range(1, 11):
            for prefix in (k[:n], k[:n - 1] + ("0" if k[n - 1] != "0" else "f")):
                want = _prefix_test(prefix)
                assert want is not None and _on_path(mid, want) == k.startswith(prefix), (mid, prefix)


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.text(min_size=1, max_size=140), min_size=1, max_size=30))
def test_the_vectorised_key_is_key_of(ids: list[str]) -> None:
    # a full read checks every ID's key with numpy (_key_ints): the same numbers as key_of
    assert [int(k) for k in indexkeys.key_ints(ids)] == [int(key_of(m), 16) for m in ids]


def test_a_full_read_of_packed_trees_reads_them_from_the_pack(tmp_path_factory: pytest.TempPathFactory) -> None:
    """read_trees slices packed trees from their pack; damage there is still found and named."""
    store = casstore.open(tmp_path_factory.mktemp("packed") / "s")
    odb = store.odb
    items = {f"model-{i}": sha(i + 1) for i in range(3000)}
    written: list[tuple[object, None]] = []

    def collect(obj: Tree) -> ObjectID:
        written.append((obj, None))
        return obj.id

    odb.write_loose = collect  # type: ignore[method-assign, assignment]
    try:
        tree_id = models_tree(odb, items)
    finally:
        del odb.write_loose
    assert tree_id is not None and len(written) > 17  # a root, 16 internal trees' worth of leaves
    odb.store.add_objects(written)  # type: ignore[arg-type]
    ids = sorted(_tree_ids(odb, tree_id))
    raws, slow = _read_trees_counting(odb, ids)
    assert not slow  # every tree sliced from the pack, none looked up one by one
    assert all(raw == odb.read_raw(t)[1] for t, raw in zip(ids, raws, strict=True))
    full = ShardedModels(odb, tree_id)
    full.load_all()
    assert dict(full.items()) == items and len(full) == len(items)
    # a flipped byte in the middle of the pack: a tree that no longer inflates or verifies
    (pack,) = odb.store.packs  # the one pack of this store: the index's
    path = pack._basename + ".pack"
    with open(path, "r+b") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    fresh = casstore.Store(store.path).odb
    with pytest.raises(CorruptObjectError):
        ShardedModels(fresh, tree_id).load_all()


_SIDE = st.dictionaries(st.sampled_from([f"m{i}" for i in range(12)]), st.integers(1, 4).map(sha), max_size=12)


@settings(max_examples=300, deadline=None)
@given(base=_SIDE, local=_SIDE, remote=_SIDE,
       ld=st.dictionaries(st.sampled_from([f"m{i}" for i in range(12)]),
                          st.sets(st.integers(1, 4).map(sha), max_size=3), max_size=6),
       rd=st.dictionaries(st.sampled_from([f"m{i}" for i in range(12)]),
                          st.sets(st.integers(1, 4).map(sha), max_size=3), max_size=6))
def test_merging_dicts_decides_only_where_the_sides_differ(base: dict[str, ObjectID], local: dict[str, ObjectID],
                                                           remote: dict[str, ObjectID], ld: dict[str, set[ObjectID]],
                                                           rd: dict[str, set[ObjectID]]) -> None:
    """merge_indexes' path for dicts (refs: a 1,000,000-model merge) against its path for any mapping."""
    from collections import UserDict

    from casstore.model.history import DomainIndex
    from casstore.remote.merge import merge_indexes

    fast = merge_indexes(DomainIndex(dict(base)), DomainIndex(dict(local)), DomainIndex(dict(remote)), ld, rd)
    slow = merge_indexes(DomainIndex(UserDict(base)), DomainIndex(UserDict(local)),  # type: ignore[arg-type]
                         DomainIndex(UserDict(remote)), ld, rd)  # type: ignore[arg-type]
    assert fast.conflicts == slow.conflicts
    if not fast.conflicts:
        assert fast.index.models == slow.index.models and fast.index.states == slow.index.states
        # what push and pull record follows the merged models' order: the changed IDs stay sorted
        changed = [m for m in fast.index.models if local.get(m) != fast.index.models[m]]
        assert changed == sorted(changed)


def test_a_full_read_finds_trees_across_packs_and_loose(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Trees spread over two packs and loose objects: each read once, from where it is."""
    odb = casstore.open(tmp_path_factory.mktemp("spread") / "s").odb
    items = {f"model-{i}": sha(i + 1) for i in range(3000)}
    written: list[Tree] = []

    def collect(obj: Tree) -> ObjectID:
        written.append(obj)
        return obj.id

    odb.write_loose = collect  # type: ignore[method-assign, assignment]
    try:
        tree_id = models_tree(odb, items)
    finally:
        del odb.write_loose
    assert tree_id is not None
    odb.store.add_objects([(t, None) for t in written[0::3]])  # type: ignore[misc]
    odb.store.add_objects([(t, None) for t in written[1::3]])  # type: ignore[misc]
    loose = written[2::3]
    for t in loose:
        odb.write_loose(t)
    assert len(odb.store.packs) == 2
    ids = sorted(_tree_ids(odb, tree_id))
    raws, slow = _read_trees_counting(odb, ids)
    assert sorted(slow) == sorted(t.id for t in loose)  # the loose ones only, no pack probed in vain
    assert all(raw == odb.read_raw(t)[1] for t, raw in zip(ids, raws, strict=True))
    full = ShardedModels(odb, tree_id)
    full.load_all()
    assert dict(full.items()) == items and full.to_dict() == items
    assert full == items and full == ShardedModels(odb, tree_id) and full != {**items, "model-0": sha(9999)}
