"""A store that grows: the sharded domain index, old-layout stores, cheap writes.

Behaviour only; the speed of a 100,000-model domain is measured in
benchmarks/bench_scale.py.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dulwich.objects import Commit, ObjectID, Tree

import casstore
import casstore.objects.odb
from casstore.errors import CasError, CorruptObjectError
from casstore.model.history import GITLINK, TREE, key_of, read_index, shard_of
from casstore.objects.refs import domain_ref, model_ref
from casstore.remote.hook import KEY_AWK, NAME_AWK
from casstore.store import init_store
from tests.conftest import assert_git_fsck, git


def _file(tmp_path: Path, name: str, size: int = 2_000) -> str:
    p = tmp_path / name
    p.write_bytes(os.urandom(size))
    return str(p)


def _trees_of(store: casstore.Store, head: ObjectID) -> set[bytes]:
    """Every tree id of the domain index at history commit ``head``."""
    c = store.odb.read(head, Commit)
    assert isinstance(c, Commit)
    out, stack = set(), [c.tree]
    while stack:
        tid = stack.pop()
        out.add(tid)
        t = store.odb.read(tid, Tree)
        assert isinstance(t, Tree)
        stack.extend(e.sha for e in t.iteritems() if e.mode == TREE)
    return out


def flatten_histories(store: casstore.Store, layout: str = "flat") -> None:
    """Rewrite every domain history in a layout older casstore wrote.

    ``flat``: ``models/<id>``; ``256-shard``: ``models/<shard_of(id)>/<id>``.  Same
    messages, authors, times and parent structure: the store is then what an
    older version of casstore left on disk.
    """
    odb = store.odb
    for domain in store.list_domains():
        head = store.refs.get(domain_ref(domain))
        assert head is not None
        order: list[ObjectID] = []  # parents before children
        seen: set[ObjectID] = set()
        stack: list[tuple[ObjectID, bool]] = [(head, False)]
        while stack:
            s, done = stack.pop()
            if done:
                order.append(s)
                continue
            if s in seen:
                continue
            seen.add(s)
            c = odb.read(s, Commit)
            assert isinstance(c, Commit)
            stack.append((s, True))
            stack.extend((p, False) for p in c.parents)
        new: dict[ObjectID, ObjectID] = {}
        for sha in order:
            c = odb.read(sha, Commit)
            assert isinstance(c, Commit)
            idx = read_index(odb, sha, full=True)
            root = Tree()
            if idx.models:
                flat = Tree()
                shards: dict[str, Tree] = {}
                for mid, msha in idx.models.items():
                    if layout == "flat":
                        flat.add(mid.encode(), GITLINK, msha)
                    else:
                        shards.setdefault(shard_of(mid), Tree()).add(mid.encode(), GITLINK, msha)
                for name, shard in shards.items():
                    flat.add(name.encode(), TREE, odb.write_loose(shard))
                root.add(b"models", TREE, odb.write_loose(flat))
            old_root = odb.read(c.tree, Tree)
            assert isinstance(old_root, Tree)
            for e in old_root.iteritems():
                if e.path == b"states":
                    root.add(b"states", TREE, e.sha)
            new[sha] = odb.write_commit(odb.write_loose(root), [new[p] for p in c.parents], c.author,
                                        c.message, c.author_time)
        assert store.refs.set_if_equals(domain_ref(domain), head, new[head])


def _layout(store: casstore.Store, domain: str) -> str:
    """``flat`` (gitlinks only under models/), ``256-shard`` (2-digit directories) or ``split``."""
    out = git(store.path, "ls-tree", "-r", "-t", f"refs/cas/domains/{domain}", "models/").stdout
    dirs = [line.split("\t")[1].split("/")[-1] for line in out.splitlines()
            if " tree " in line and line.split("\t")[1] != "models"]
    return "flat" if not dirs else "256-shard" if all(len(d) == 2 for d in dirs) else "split"


def test_key_of_is_the_hooks_awk_function() -> None:
    ids = ["v1", "a", "A-b_c.d", "x" * 128, "~" * 128, "model-000001", "9f3c2a1e-7d4b-4c1e-9a7f-0123456789ab"]
    ids += [f"run-{i}" for i in range(2000)]
    prog = NAME_AWK + " " + KEY_AWK + " { print key($0, 10), key($0, 1), key($0, 2), key($0, 3) }"
    for awk in ("awk", "mawk", "gawk", "busybox", "original-awk"):  # .ci/sysdeps.sh installs them all
        assert shutil.which(awk) is not None, f"{awk} is not installed: run make sysdeps"
        cmd = [awk, "awk", prog] if awk == "busybox" else [awk, prog]
        r = subprocess.run(cmd, input="\n".join(ids) + "\n", capture_output=True, text=True, check=True,
                           env={**os.environ, "LC_ALL": "C"})
        want = [k for i in ids for k in (key_of(i), key_of(i)[:1], key_of(i)[:2], key_of(i)[:3])]
        assert r.stdout.split() == want, awk
    assert len({shard_of(f"m{i}") for i in range(5000)}) == 256  # every shard gets used


def test_an_event_rewrites_one_path_not_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from casstore.model import indextree

    monkeypatch.setattr(indextree, "LEAF_MAX", 4)  # 40 models then make a tree 2-3 levels deep
    store = casstore.open(tmp_path / "s")
    path = _file(tmp_path, "m.bin")
    for i in range(40):
        store.commit_models("d", model=path, model_id=f"m{i}")
    before = store.refs.get(domain_ref("d"))
    assert before is not None
    store.commit_models("d", model=path, model_id="new")
    after = store.refs.get(domain_ref("d"))
    assert after is not None
    listing = git(store.path, "ls-tree", "-r", "refs/cas/domains/d", "models/").stdout
    (where,) = [line.split("\t")[1] for line in listing.splitlines() if line.endswith("/new")]
    dirs = where.split("/")[:-1]  # models, then one hex digit per level
    assert len(dirs) >= 2 and "".join(dirs[1:]) == key_of("new")[:len(dirs) - 1]
    # new trees: the root and the trees on the path of "new"; every other tree is reused
    added = _trees_of(store, after) - _trees_of(store, before)
    assert len(added) == 1 + len(dirs)
    assert len(listing.splitlines()) == 41
    store.delete_model("d", "m3")
    assert sorted(store.list_models("d")) == sorted([f"m{i}" for i in range(40) if i != 3] + ["new"])
    assert "m3" not in read_index(store.odb, store.refs.get(domain_ref("d")), full=True).models
    assert_git_fsck(store.path)
    assert store.fsck().ok


@pytest.mark.parametrize("layout", ["flat", "256-shard"])
def test_old_layout_store_is_read_then_converted_by_its_next_write(tmp_path: Path, layout: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from casstore.model import indextree

    monkeypatch.setattr(indextree, "LEAF_MAX", 2)  # so that a flat tree of 3 models is over the bound
    store = casstore.open(tmp_path / "s")
    path = _file(tmp_path, "m.bin")
    for mid in ("a", "b", "c"):
        store.commit_models("d", model=path, model_id=mid)
    store.create_model_state("prod")
    store.set_model_state("d", "b", "prod")
    flatten_histories(store, layout)
    assert _layout(store, "d") == layout
    old = casstore.Store(store.path)
    assert sorted(old.list_models("d")) == ["a", "b", "c"]
    assert old.list_models("d", "prod") == ["b"]
    assert [e.model_id for e in old.log("d")][:3] == ["b", "c", "b"]
    assert old.fsck().ok
    assert_git_fsck(old.path)
    old.commit_models("d", model=path, model_id="e")  # the next write converts the domain
    assert _layout(old, "d") == "split"
    assert sorted(old.list_models("d")) == ["a", "b", "c", "e"]
    assert old.get_model_states("d", "b") == ["prod"]
    assert old.fsck().ok
    assert_git_fsck(old.path)


@pytest.mark.parametrize("layout", ["flat", "256-shard"])
@pytest.mark.parametrize("direction", ["old-to-new", "new-to-old"])
def test_pull_and_push_between_old_and_new_layout(tmp_path: Path, direction: str, layout: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from casstore.model import indextree

    monkeypatch.setattr(indextree, "LEAF_MAX", 2)  # so that 3 models make a split tree
    path = _file(tmp_path, "m.bin")
    old = casstore.open(tmp_path / "old")
    for mid in ("a", "b"):
        old.commit_models("d", model=path, model_id=mid)
    old.commit_models("e", model=path, model_id="x")
    flatten_histories(old, layout)
    new = casstore.open(tmp_path / "new")
    if direction == "old-to-new":
        r = new.pull(str(old.path))
        assert r.ok, r
        assert sorted(new.list_models("d")) == ["a", "b"] and new.list_models("e") == ["x"]
        new.commit_models("d", model=path, model_id="c")
        pushed = new.push(str(old.path))
        assert pushed.ok and pushed.models_added == ["d/c"], pushed
        assert sorted(old.list_models("d")) == ["a", "b", "c"]
        # histories travel as they are: d converted by the write in `new`, e untouched
        assert _layout(old, "d") == "split" and _layout(old, "e") == layout
        assert _layout(new, "d") == "split" and _layout(new, "e") == layout
    else:
        new.commit_models("d", model=path, model_id="c")
        pushed = new.push(str(old.path))  # diverged: the remote has a, b; we have c
        assert not pushed.ok and pushed.diverged == ["d"], pushed
        assert new.pull(str(old.path)).ok
        pushed = new.push(str(old.path))
        assert pushed.ok, pushed
        assert sorted(old.list_models("d")) == ["a", "b", "c"]
        assert sorted(new.list_models("d")) == ["a", "b", "c"]
        assert _layout(old, "d") == "split" and _layout(old, "e") == layout  # the pull's merge converted d
    for mid in ("y", "z"):
        old.commit_models("e", model=path, model_id=mid)  # the unconverted side writes: it converts e
    assert _layout(old, "e") == "split"
    assert new.pull(str(old.path)).ok and sorted(new.list_models("e")) == ["x", "y", "z"]
    assert new.push(str(old.path)).ok
    for s in (old, new):
        assert s.fsck().ok, s.fsck().problems
        assert_git_fsck(s.path)


def test_old_layout_history_passes_the_hook(tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    init_store(str(remote), bare_remote=True)
    path = _file(tmp_path, "m.bin")
    old = casstore.open(tmp_path / "old")
    old.commit_models("d", model=path, model_id="a")
    flatten_histories(old)
    assert old.push(str(remote)).ok
    new = casstore.open(tmp_path / "new")
    assert new.pull(str(remote)).ok
    new.commit_models("d", model=path, model_id="b")  # converts d, then a sharded push
    r = new.push(str(remote))
    assert r.ok and r.models_added == ["d/b"], r
    assert sorted(casstore.Store(str(remote)).list_models("d")) == ["a", "b"]


def _misfiled_history(store: casstore.Store, domain: str) -> ObjectID:
    """A history commit listing ``domain``'s models with one ID in the wrong shard."""
    head = store.refs.get(domain_ref(domain))
    assert head is not None
    idx = read_index(store.odb, head, full=True)
    (mid, sha), = list(idx.models.items())[:1]
    wrong = f"{(int(shard_of(mid), 16) + 1) % 256:02x}"
    shard = Tree()
    shard.add(mid.encode(), GITLINK, sha)
    models = Tree()
    models.add(wrong.encode(), TREE, store.odb.write_loose(shard))
    root = Tree()
    root.add(b"models", TREE, store.odb.write_loose(models))
    return store.odb.write_commit(store.odb.write_loose(root), [head], b"x <x@x>", b"commit x\n", None)


def test_a_model_in_the_wrong_shard_is_corrupt_and_refused_by_the_hook(tmp_path: Path) -> None:
    store = casstore.open(tmp_path / "s")
    store.commit_models("d", model=_file(tmp_path, "m.bin"), model_id="only")
    bad = _misfiled_history(store, "d")
    with pytest.raises(CorruptObjectError, match="only"):
        read_index(store.odb, bad, full=True)
    remote = tmp_path / "remote.git"
    init_store(str(remote), bare_remote=True)
    assert store.push(str(remote)).ok
    r = subprocess.run(["git", "--git-dir", store.path, "push", "--force", str(remote),
                        f"{bad.decode()}:refs/cas/domains/d"], capture_output=True, text=True, check=False)
    assert r.returncode != 0 and "validly named and sharded" in r.stderr, r.stderr
    assert git(remote, "rev-parse", "refs/cas/domains/d").stdout.strip() == \
        store.refs.get(domain_ref("d")).decode()  # type: ignore[union-attr]


def test_a_ref_changed_behind_the_stamp_is_still_reconciled(tmp_path: Path) -> None:
    store = casstore.open(tmp_path / "s")
    path = _file(tmp_path, "m.bin")
    store.commit_models("d", model=path, model_id="a")
    store.commit_models("d", model=path, model_id="b")  # the stamp now describes a, b
    assert os.path.exists(os.path.join(store.path, "cas", "locks", "domain-d.stamp"))
    sha = store.refs.get(model_ref("d", "a"))
    assert sha is not None
    # what a writer killed between its ref change and its event leaves: a ref the history lacks
    assert store.refs.add_if_new(model_ref("d", "orphan"), sha)
    store.commit_models("d", model=path, model_id="c")
    events = [(e.event, e.model_id) for e in store.log("d")]
    assert ("commit", "orphan") in events
    assert sorted(read_index(store.odb, store.refs.get(domain_ref("d")), full=True).models) == \
        ["a", "b", "c", "orphan"]


def test_iter_models_streams_the_list_models_order(tmp_path: Path) -> None:
    store = casstore.open(tmp_path / "s")
    path = _file(tmp_path, "m.bin")
    for mid in ("a", "b", "c", "d"):
        store.commit_models("dom", model=path, model_id=mid)
    store.delete_model("dom", "b")
    store.create_model_state("prod")
    store.set_model_state("dom", "a", "prod")
    assert list(store.iter_models("dom")) == store.list_models("dom") == ["d", "c", "a"]
    assert list(store.iter_models("dom", "prod")) == ["a"]
    it = store.iter_models("dom")
    assert next(it) == "d"  # lazily: the first ID comes from the newest event
    # a ref the history does not record yet comes last
    sha = store.refs.get(model_ref("dom", "a"))
    assert sha is not None and store.refs.add_if_new(model_ref("dom", "zz"), sha)
    assert list(store.iter_models("dom")) == ["d", "c", "a", "zz"]
    with pytest.raises(casstore.DomainNotFoundException):
        store.iter_models("nope")  # at once, not at the first next()
    with pytest.raises(casstore.StateNotFoundException):
        store.iter_models("dom", "staging")
    r = subprocess.run(f"{sys.executable} -m casstore --store {store.path} ls dom | head -n 1", shell=True,
                       capture_output=True, text=True, check=True)
    assert r.stdout == "d\n"


def test_domains_are_found_loose_and_packed(tmp_path: Path) -> None:
    store = casstore.open(tmp_path / "s")
    path = _file(tmp_path, "m.bin")
    store.commit_models("one", model=path, model_id="a")
    store.commit_models("two", model=path, model_id="a")
    assert store.list_domains() == ["one", "two"]
    git(store.path, "pack-refs", "--all")  # every ref now lives in packed-refs only
    fresh = casstore.Store(store.path)
    assert fresh.list_domains() == ["one", "two"]
    assert fresh.refs.has_domain("one") and not fresh.refs.has_domain("three")
    store.delete_model("two", "a")
    assert "two" in fresh.list_domains()  # it had models: its history stays
    with pytest.raises(casstore.ModelNotFoundException):
        fresh.load("two", "a")
    with pytest.raises(casstore.DomainNotFoundException):
        fresh.load("three", "a")


def test_a_sidecar_is_verified_once_and_a_damaged_one_still_never_used(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from casstore.objects import chunkindex

    store = casstore.open(tmp_path / "s")
    data = os.urandom(300_000)
    (tmp_path / "m.bin").write_bytes(data)
    store.commit_models("d", model=str(tmp_path / "m.bin"), model_id="a")
    store.close()
    fresh = casstore.Store(store.path)  # verifies what it has not seen, and stamps it
    packs = sorted(sc.pack for sc in fresh.odb.index.sidecars)
    assert packs
    stamped = (Path(store.path) / "cas" / "chunkidx" / "verified").read_text().splitlines()
    assert sorted(line.split(" ")[0] for line in stamped[1:]) == packs
    fresh.close()
    hashed: list[int] = []
    real_sha1 = chunkindex.hashlib.sha1

    def counting_sha1(data: bytes = b"") -> object:
        hashed.append(len(data))
        return real_sha1(data)

    monkeypatch.setattr(chunkindex.hashlib, "sha1", counting_sha1)
    again = casstore.Store(store.path)
    assert sorted(sc.pack for sc in again.odb.index.sidecars) == packs and hashed == []
    again.close()
    # damage in place: the file is no longer the version that was verified, so it is read
    # in full again, found damaged and never used for deduplication
    path = Path(store.path) / "cas" / "chunkidx" / f"{packs[0]}.cidx"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="ignoring the chunk index"):
        damaged = casstore.Store(store.path)
    assert packs[0] in damaged.odb.index.damaged and hashed
    assert packs[0] not in {sc.pack for sc in damaged.odb.index.sidecars}
    assert damaged.commit_models("d", model=str(tmp_path / "m.bin"), model_id="b")["model_id"] == "b"
    assert damaged.read_file("d", "b", "m.bin") == data


def test_a_pulled_history_with_a_misfiled_model_is_refused(tmp_path: Path) -> None:
    bad = casstore.open(tmp_path / "bad")
    bad.commit_models("d", model=_file(tmp_path, "m.bin"), model_id="only")
    head = bad.refs.get(domain_ref("d"))
    assert head is not None and bad.refs.set_if_equals(domain_ref("d"), head, _misfiled_history(bad, "d"))
    fresh = casstore.open(tmp_path / "fresh")
    with pytest.raises(CorruptObjectError, match="only"):
        fresh.pull(str(bad.path))
    assert fresh.list_domains() == [] and fresh.refs.get(domain_ref("d")) is None


def _created(day: int) -> _dt.datetime:
    return _dt.datetime(2024, 1, day, 12, 0, 0, 250_000, tzinfo=_dt.timezone.utc)


def _unlink_loose(store: casstore.Store, sha: bytes) -> None:
    """Take a (loose) object out of the store: whatever reads it from now on fails."""
    path = os.path.join(store.path, "objects", sha[:2].decode(), sha[2:].decode())
    assert os.path.exists(path)
    os.chmod(path, 0o644)
    os.unlink(path)


def test_list_models_limit_is_the_full_lists_first_models_read_from_the_newest_events(tmp_path: Path) -> None:
    store = casstore.open(tmp_path / "s")
    path = _file(tmp_path, "m.bin")
    # creation times out of commit order: "future" is the newest model although committed first
    store.commit_models("d", model=path, model_id="future", created=_created(20))
    for day, mid in ((3, "old"), (5, "b"), (5, "a"), (9, "c"), (1, "oldest"), (10, "e"), (11, "f"), (12, "g")):
        store.commit_models("d", model=path, model_id=mid, created=_created(day))
    store.delete_model("d", "c")
    store.create_model_state("prod")
    for mid in ("old", "a", "g"):
        store.set_model_state("d", mid, "prod")
    full = store.list_models("d")
    assert full == ["future", "g", "f", "e", "b", "a", "old", "oldest"]
    for n in range(len(full) + 2):
        assert store.list_models("d", limit=n) == full[:n]
        assert store.list_models("d", "prod", limit=n) == ["g", "a", "old"][:n]
    # every history commit bounds the creation times behind it
    head = store.refs.get(domain_ref("d"))
    assert head is not None and b"\nCas-Newest: " in store.odb.read(head, Commit).message
    # in creation order (no model from the future): the first page comes from the newest events,
    # the older models' commits are never read.  Those are written as loose objects (DEFER off:
    # the writer is not what this checks) so that they can be taken out and any read of them fails
    for day in range(1, 9):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(casstore.objects.odb, "DEFER", day > 3)
            store.commit_models("d2", model=path, model_id=f"m{day}", created=_created(day))
    for mid in ("m1", "m2", "m3"):
        sha = store.refs.get(model_ref("d2", mid))
        assert sha is not None
        _unlink_loose(store, sha)
    with pytest.raises(CasError):
        store.list_models("d2")
    assert store.list_models("d2", limit=4) == ["m8", "m7", "m6", "m5"]
    with pytest.raises(ValueError, match="limit must be >= 0"):
        store.list_models("d", limit=-1)
    with pytest.raises(casstore.DomainNotFoundException):
        store.list_models("nope", limit=3)
    with pytest.raises(casstore.StateNotFoundException):
        store.list_models("d", "staging", limit=3)


def test_list_models_limit_without_the_bound_or_with_a_ref_the_history_lacks(tmp_path: Path) -> None:
    store = casstore.open(tmp_path / "s")
    path = _file(tmp_path, "m.bin")
    for day, mid in ((2, "x"), (4, "y"), (3, "z")):
        store.commit_models("d", model=path, model_id=mid, created=_created(day))
    # a history older versions wrote (no Cas-Newest): still the full list's order
    flatten_histories(store)
    head = store.refs.get(domain_ref("d"))
    assert head is not None
    c = store.odb.read(head, Commit)
    assert isinstance(c, Commit)
    new = store.odb.write_commit(c.tree, c.parents, c.author, c.message.split(b"Cas-Newest")[0], c.author_time)
    assert store.refs.set_if_equals(domain_ref("d"), head, new)
    assert store.list_models("d", limit=2) == ["y", "z"]
    # its next write adds the bound, computed from the whole history once
    store.commit_models("d", model=path, model_id="w", created=_created(1))
    head = store.refs.get(domain_ref("d"))
    assert head is not None
    assert b"\nCas-Newest: " + str(int(_created(4).timestamp())).encode() + b"\n" in \
        store.odb.read(head, Commit).message
    assert store.list_models("d", limit=2) == ["y", "z"]
    # a ref the history does not record (a writer killed between its two steps) still counts
    sha = store.refs.get(model_ref("d", "y"))
    assert sha is not None and store.refs.add_if_new(model_ref("d", "yy"), sha)
    assert store.list_models("d", limit=2) == store.list_models("d")[:2] == ["yy", "y"]


def test_list_models_limit_after_a_pull_merged_two_histories(tmp_path: Path) -> None:
    path = _file(tmp_path, "m.bin")
    theirs = casstore.open(tmp_path / "theirs")
    ours = casstore.open(tmp_path / "ours")
    # creation times interleave across the two stores, so the merged walk must interleave too
    for day, mid in ((2, "t2"), (4, "t4"), (6, "t6"), (9, "t9")):
        theirs.commit_models("d", model=path, model_id=mid, created=_created(day))
    for day, mid in ((1, "o1"), (5, "o5"), (7, "o7"), (8, "o8")):
        ours.commit_models("d", model=path, model_id=mid, created=_created(day))
    assert ours.pull(str(theirs.path)).ok
    full = ["t9", "o8", "o7", "t6", "o5", "t4", "t2", "o1"]
    assert ours.list_models("d") == full
    for n in range(len(full) + 1):
        assert ours.list_models("d", limit=n) == full[:n]
    # the next write appends after the merge commit: its bound covers both sides
    ours.commit_models("d", model=path, model_id="o3", created=_created(3))
    head = ours.refs.get(domain_ref("d"))
    assert head is not None
    assert b"\nCas-Newest: " + str(int(_created(9).timestamp())).encode() + b"\n" in ours.odb.read(head, Commit).message
    full = ["t9", "o8", "o7", "t6", "o5", "t4", "o3", "t2", "o1"]
    assert ours.list_models("d") == full
    for n in range(len(full) + 1):
        assert ours.list_models("d", limit=n) == full[:n]


@pytest.mark.parametrize("layout", ["flat", "256-shard"])
def test_convert_layout_command(tmp_path: Path, layout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cas convert-layout` rewrites old-layout indexes now, one `layout` event each, and only once."""
    from casstore.model import indextree

    store = casstore.open(tmp_path / "s")
    path = _file(tmp_path, "m.bin")
    for mid in ("a", "b", "c"):
        store.commit_models("d", model=path, model_id=mid)
    store.commit_models("e", model=path, model_id="x")
    flatten_histories(store, layout)
    env = {**os.environ, "CAS_STORE": store.path}
    if layout == "256-shard":  # in the subprocess (bound 128): both small domains become flat
        r = subprocess.run([sys.executable, "-m", "casstore", "convert-layout"], capture_output=True, text=True,
                           env=env, check=False)
        assert r.returncode == 0 and r.stdout.split() == ["converted", "d", "converted", "e"], r.stdout + r.stderr
        assert _layout(store, "d") == _layout(store, "e") == "flat"
    else:  # flat and small is the current layout already; over the bound it splits
        monkeypatch.setattr(indextree, "LEAF_MAX", 2)
        assert casstore.Store(store.path).convert_layout() == ["d"]
        assert _layout(store, "d") == "split" and _layout(store, "e") == "flat"
    again = casstore.Store(store.path)
    assert again.convert_layout() == []  # already converted: no event
    assert sorted(again.list_models("d")) == ["a", "b", "c"] and again.list_models("e") == ["x"]
    assert [e.event for e in again.log("d")] == ["commit"] * 3  # the layout event is not a model event
    msgs = git(store.path, "log", "--format=%s", "refs/cas/domains/d").stdout.split("\n")
    assert msgs[0].startswith("layout")
    assert again.fsck().ok
    assert_git_fsck(store.path)
