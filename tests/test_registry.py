"""Issue 3 API: log, states, deletion, diff, du, gc, fsck."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import casstore
from casstore import ModelNotFoundException, StateNotFoundException
from tests.conftest import assert_git_fsck, write_random

MiB = 1 << 20


def test_log_events_newest_first_with_details(store: casstore.Store, iris_model: object) -> None:
    store.commit_models("d", model=iris_model, model_id="v1", extra_metadata={"accuracy": 0.9, "data": "v2"})
    store.commit_models("d", model=iris_model, model_id="v2")
    store.create_model_state("production")
    store.set_model_state("d", "v1", "production")
    store.remove_model_state("d", "v1", "production")
    store.delete_model("d", "v2")
    events = store.log("d")
    assert [(e.event, e.model_id, e.state) for e in events] == [
        ("delete", "v2", None),
        ("state-unset", "v1", "production"),
        ("state-set", "v1", "production"),
        ("commit", "v2", None),
        ("commit", "v1", None),
    ]
    first = events[-1]
    assert first.author == "Test User <test@example.com>"
    assert first.frameworks == "model=sklearn"
    assert first.summary == "accuracy=0.9 data=v2"
    assert first.model_commit == store.get_model_info("d", "v1")["commit"]
    assert events[0].as_dict()["event"] == "delete"


def test_states(store: casstore.Store, iris_model: object) -> None:
    for mid in ("a", "b", "c"):
        store.commit_models("d", model=iris_model, model_id=mid)
    with pytest.raises(StateNotFoundException):
        store.set_model_state("d", "a", "production")
    store.create_model_state("production")
    store.create_model_state("staging")
    store.create_model_state("production")  # idempotent
    assert store.list_model_states() == ["production", "staging"]
    store.set_model_state("d", "a", "production")
    store.set_model_state("d", "b", "production")
    store.set_model_state("d", "b", "staging")
    store.set_model_state("d", "b", "staging")  # no second event
    assert store.list_models("d", state_name="production") == ["b", "a"]
    assert store.list_models("d", state_name="staging") == ["b"]
    assert store.get_model_states("d", "b") == ["production", "staging"]
    assert store.get_model_states("d", "c") == []
    assert sum(e.event == "state-set" for e in store.log("d")) == 3
    with pytest.raises(ModelNotFoundException):
        store.set_model_state("d", "zz", "production")
    with pytest.raises(StateNotFoundException):
        store.list_models("d", state_name="nope")
    with pytest.raises(casstore.InvalidIdError):
        store.create_model_state("bad/name")
    store.delete_model_state("production")
    assert store.list_model_states() == ["staging"]
    assert store.get_model_states("d", "a") == []
    assert store.log("d")[0].event == "state-unset"
    assert store.fsck().ok


def test_delete_model(store: casstore.Store, iris_model: object, forest: tuple) -> None:
    store.commit_models("d", model=iris_model, model_id="v1")
    store.commit_models("d", model=iris_model, model_id="v2")
    store.create_model_state("prod")
    store.set_model_state("d", "v1", "prod")
    store.delete_model("d", "v1")
    assert store.list_models("d") == ["v2"]
    assert not store.model_exists("d", "v1")
    with pytest.raises(ModelNotFoundException):
        store.load("d", "v1")
    with pytest.raises(ModelNotFoundException):
        store.delete_model("d", "v1")
    assert store.list_models("d", state_name="prod") == []
    # committing under a deleted ID is allowed
    store.commit_models("d", model=forest[0], model_id="v1")
    assert type(store.load("d", "v1")).__name__ == "RandomForestClassifier"
    assert store.get_model_states("d", "v1") == []
    assert [e.event for e in store.log("d")][:2] == ["commit", "delete"]
    assert store.fsck().ok
    assert_git_fsck(store.path)


def test_delete_the_last_model_of_a_domain(store: casstore.Store, iris_model: object) -> None:
    store.commit_models("solo", model=iris_model, model_id="only")
    store.delete_model("solo", "only")
    assert store.list_models("solo") == []
    assert "solo" in store.list_domains()  # its history remains, with the deletion
    assert [e.event for e in store.log("solo")] == ["delete", "commit"]
    store.commit_models("solo", model=iris_model, model_id="only")
    assert store.list_models("solo") == ["only"]
    assert store.fsck().ok
    assert_git_fsck(store.path)


def _disk(store: casstore.Store) -> int:
    total = 0
    for dirpath, _, files in os.walk(os.path.join(store.path, "objects")):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total


def test_delete_then_gc_frees_unique_chunks(store: casstore.Store, tmp_path: Path) -> None:
    shared = np.random.default_rng(1).bytes(8 * MiB)
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(shared + np.random.default_rng(2).bytes(8 * MiB))  # 8 MiB unique to a
    b.write_bytes(shared + np.random.default_rng(3).bytes(4 * MiB))
    store.commit_models("d", model=str(a), model_id="a")
    store.commit_models("d", model=str(b), model_id="b")
    before = _disk(store)
    report = store.gc(grace_period=0)
    assert report.objects_removed == 0
    assert _disk(store) == before
    store.delete_model("d", "a")
    before = _disk(store)  # the deletion adds a history commit
    assert store.gc().objects_removed == 0  # default grace period keeps recent objects
    assert _disk(store) == before
    report = store.gc(grace_period=0)
    freed = before - _disk(store)
    assert 7.5 * MiB <= freed <= 9 * MiB, freed
    assert report.packs_rewritten == 1
    assert Path(store.load("d", "b")).read_bytes() == b.read_bytes()
    assert store.fsck(read_data=True).ok
    assert_git_fsck(store.path)
    # dedup keeps working against the rewritten pack
    meta = store.commit_models("d", model=str(b), model_id="b2")
    assert meta["stats"]["chunks_new"] == 0


def test_gc_removes_leftovers_of_crashed_writers(store: casstore.Store, iris_model: object) -> None:
    store.commit_models("d", model=iris_model)
    pack_dir = os.path.join(store.path, "objects", "pack")
    junk = [os.path.join(pack_dir, "tmp_pack_dead"), os.path.join(store.path, "cas", "tmp", "commit-dead"),
            os.path.join(pack_dir, "pack-" + "0" * 40 + ".pack")]
    for j in junk:
        Path(j).write_bytes(b"x")
    store.gc(grace_period=0)
    assert not any(os.path.exists(j) for j in junk)
    assert store.fsck(read_data=True).ok


def test_gc_stops_when_a_reachable_tree_is_missing(store: casstore.Store, iris_model: object,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import casstore.objects.odb

    monkeypatch.setattr(casstore.objects.odb, "DEFER", False)  # the tree as a loose file, to remove it
    meta = store.commit_models("d", model=iris_model)
    from dulwich.objects import Commit

    c = store.odb.read(meta["commit"].encode(), Commit)
    tree = c.tree.decode()
    os.unlink(os.path.join(store.path, "objects", tree[:2], tree[2:]))
    before = _disk(store)
    with pytest.raises(casstore.CorruptObjectError, match="gc stopped"):
        store.gc(grace_period=0)
    assert _disk(store) == before


def test_diff(store: casstore.Store, tmp_path: Path) -> None:
    base = np.random.default_rng(4).bytes(4 * MiB)
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    v1.mkdir()
    v2.mkdir()
    (v1 / "w.bin").write_bytes(base)
    (v2 / "w.bin").write_bytes(base[: 2 * MiB] + np.random.default_rng(5).bytes(MiB) + base[3 * MiB :])
    (v1 / "same.txt").write_text("same")
    (v2 / "same.txt").write_text("same")
    (v1 / "old.txt").write_text("old")
    (v2 / "new.txt").write_text("new")
    store.commit_models("d", model=str(v1 / "w.bin"), extra_files=[v1 / "same.txt", v1 / "old.txt"],
                        model_id="v1", extra_metadata={"acc": 0.8, "gone": 1})
    store.commit_models("d", model=str(v2 / "w.bin"), extra_files=[v2 / "same.txt", v2 / "new.txt"],
                        model_id="v2", extra_metadata={"acc": 0.9, "new": 2})
    d = store.diff("d", "v1", "v2")
    assert d["added"] == ["new.txt"] and d["removed"] == ["old.txt"] and d["unchanged"] == ["same.txt"]
    (ch,) = d["changed"]
    assert ch["path"] == "w.bin"
    assert ch["bytes_shared"] + ch["bytes_new"] == 4 * MiB
    assert 0.9 * MiB <= ch["bytes_new"] <= 1.5 * MiB
    assert ch["chunks_shared"] + ch["chunks_new"] == ch["chunks"]
    assert d["metadata"] == {"added": {"new": 2}, "removed": {"gone": 1}, "changed": {"acc": [0.8, 0.9]}}


def test_du(store: casstore.Store, tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    write_random(f, 2 * MiB)
    store.commit_models("a", model=str(f))
    store.commit_models("a", model=str(f))
    store.commit_models("b", model=str(f))
    du = store.du()
    assert du["domains"]["a"]["models"] == 2
    assert du["domains"]["a"]["logical_bytes"] == 4 * MiB
    assert 2 * MiB <= du["domains"]["a"]["stored_bytes"] <= 2.1 * MiB  # dedup: stored once
    assert du["domains"]["b"]["logical_bytes"] == 2 * MiB
    assert du["total"]["logical_bytes"] == 6 * MiB
    assert 2 * MiB <= du["total"]["stored_bytes"] <= 2.3 * MiB


def test_fsck_reports_history_disagreeing_with_refs(store: casstore.Store, iris_model: object) -> None:
    store.commit_models("d", model=iris_model, model_id="v1")
    # a model ref created behind casstore's back (e.g. a crash between ref and history)
    sha = store.refs.get(b"refs/cas/models/d/v1")
    store.refs.container.set_if_equals(b"refs/cas/models/d/v2", None, sha)
    report = store.fsck()
    assert not report.ok
    assert any("v2" in p.detail for p in report.problems)
