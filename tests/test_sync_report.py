"""Every push and pull names what it did to each model, and a deleted model can be restored (issue 21, items 2, 3).

Two stores A and B and a remote, over a path and over a real ``git daemon``
(``remote_url``); users' steps go through ``cas``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import casstore
from casstore import ModelExistsException, ModelStateLostWarning
from casstore.errors import RestoreError
from tests.helpers.cli import cas
from tests.helpers.conflicts import assert_consistent, commit_of, conflict_setup, model_bytes
from tests.helpers.remotes import check_all

Remote = tuple[str, Path]


def _two(tmp_path: Path, url: str) -> tuple[Path, Path, str]:
    """A commits d/v1 and pushes; B pulls it.  Returns (a, b, the model commit)."""
    a, b = tmp_path / "a", tmp_path / "b"
    for s in (a, b):
        cas("init", str(s))
    f = tmp_path / "model.bin"
    f.write_bytes(os.urandom(120_000))
    cas("commit", "d", str(f), "--id", "v1", store=a)
    cas("state", "create", "production", store=a)
    cas("push", url, store=a)
    r = json.loads(cas("pull", url, "--json", store=b).stdout)
    assert r["models_added"] == ["d/v1"]
    v1 = commit_of(a, "v1")
    assert [(c["model"], c["change"], c["new"]) for c in r["changes"]] == [("d/v1", "added", v1)]
    return a, b, v1


def test_pull_theirs_reports_a_replacement_naming_both_commits(tmp_path: Path, remote_url: Remote) -> None:  # noqa: F811
    url, remote = remote_url
    a, b, bytes_a, bytes_b = conflict_setup(tmp_path, url)
    ours, theirs = commit_of(b, "v1"), commit_of(a, "v1")
    r = cas("pull", url, "--theirs", store=b)
    summary, line = r.stdout.splitlines()[:2]
    assert summary.startswith(f"pull {url}: 0 models added, 0 deleted, 1 replaced;"), r.stdout
    assert line == f"  replaced  d/v1: ours {ours[:10]} by theirs {theirs[:10]} (--theirs)", r.stdout
    # JSON: the replacement, with both commits
    restore_from = json.loads(cas("log", "d", "--json", store=b).stdout)
    assert [e["model_commit"] for e in restore_from if e["event"] == "delete"] == [ours]
    assert model_bytes(tmp_path, b, "v1") == bytes_a

    # the same through --json, on a third machine in B's place
    c = tmp_path / "c"
    cas("init", str(c))
    f = tmp_path / "model-c.bin"
    f.write_bytes(bytes_b)
    cas("commit", "d", str(f), "--id", "v1", store=c)
    mine = commit_of(c, "v1")
    j = json.loads(cas("pull", url, "--theirs", "--json", store=c).stdout)
    assert j["models_replaced"] == ["d/v1"] and j["models_added"] == j["models_deleted"] == [], j
    assert j["changes"] == [{"model": "d/v1", "change": "replaced", "old": mine, "new": theirs, "states": [],
                             "reason": "theirs"}]
    check_all(a, b, c, remote)


def test_pull_names_a_deleted_model_and_warns_about_its_state(tmp_path: Path, remote_url: Remote) -> None:  # noqa: F811
    """A promoted v1 to production while B deleted it: A's pull names v1 and the state, loudly."""
    url, remote = remote_url
    a, b, v1 = _two(tmp_path, url)
    cas("state", "set", "d", "v1", "production", store=a)
    cas("rm", "d", "v1", store=b)
    r = cas("push", url, store=b)
    assert r.stdout.splitlines()[1] == f"  deleted   d/v1 ({v1[:10]})", r.stdout

    r = cas("pull", url, store=a)
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"pull {url}: 0 models added, 1 deleted, 0 replaced;"), r.stdout
    assert lines[1] == f"  deleted   d/v1 ({v1[:10]}); it was in state production here", r.stdout
    assert f"cas: warning: d/v1 ({v1[:10]}) held state production here and was deleted by this pull" in r.stderr
    assert "cas restore d v1 --states" in r.stderr
    assert cas("ls", "d", store=a).stdout.split() == []

    # Python: a ModelStateLostWarning, and the JSON/result says which state
    s = casstore.Store(str(a))
    s.commit_models("d", model=str(tmp_path / "model.bin"), model_id="v2")
    s.set_model_state("d", "v2", "production")
    assert s.push(url).ok
    b_store = casstore.Store(str(b))
    assert b_store.pull(url).models_added == ["d/v2"]
    b_store.delete_model("d", "v2")
    with pytest.warns(ModelStateLostWarning, match=r"d/v2 \(.*\) held state production on .* deleted by this push"):
        pushed = b_store.push(url)
    assert pushed.models_deleted == ["d/v2"] and pushed.changes[0].states == ["production"]
    check_all(a, b, remote)


def test_restore_a_deleted_model_with_its_states_and_it_travels(tmp_path: Path, remote_url: Remote) -> None:  # noqa: F811
    url, remote = remote_url
    a, b, v1 = _two(tmp_path, url)
    cas("state", "set", "d", "v1", "production", store=a)
    cas("rm", "d", "v1", store=b)
    cas("push", url, store=b)
    with pytest.warns(ModelStateLostWarning):
        casstore.Store(str(a)).pull(url)

    # cas log says it can be restored, and until when (the deletion + gc's two weeks)
    log = cas("log", "d", store=a).stdout
    assert f"Restore: `cas restore d v1 --commit {v1[:10]}`, until " in log, log
    gone = [e for e in json.loads(cas("log", "d", "--json", store=a).stdout) if e["event"] == "delete"]
    assert gone[0]["restorable"] is True and gone[0]["model_commit"] == v1
    deleted_at = time.mktime(time.strptime(gone[0]["time"], "%Y-%m-%dT%H:%M:%SZ"))
    until = time.mktime(time.strptime(gone[0]["kept_until"], "%Y-%m-%dT%H:%M:%SZ"))
    assert until - deleted_at == 14 * 24 * 3600

    # gc with its default grace keeps the deleted model, however old its files are
    store_a = casstore.Store(str(a))
    old = time.time() - 30 * 24 * 3600
    for dirpath, _, files in os.walk(os.path.join(a, "objects")):
        for fn in files:
            os.utime(os.path.join(dirpath, fn), (old, old))
    store_a.gc()

    r = cas("restore", "d", "v1", "--states", store=a)
    assert r.stdout.startswith("restored d/v1 (") and f"from its deleted commit {v1[:10]}" in r.stdout
    assert "back in state production" in r.stdout
    store_a = casstore.Store(str(a))
    assert store_a.list_models("d", "production") == ["v1"]
    assert model_bytes(tmp_path, a, "v1") == (tmp_path / "model.bin").read_bytes()
    restored = commit_of(a, "v1")
    assert restored != v1  # a new commit, so that the old deletion does not apply to it
    events = store_a.log("d")
    assert [(e.event, e.model_id) for e in events[:2]] == [("state-set", "v1"), ("commit", "v1")]
    assert store_a.fsck(read_data=True).ok
    assert_consistent(store_a)
    with pytest.raises(ModelExistsException):  # a live ID is never replaced
        store_a.restore_model("d", "v1")
    assert "already exists" in cas("restore", "d", "v1", store=a, check=2).stderr

    # the restore travels: B gets v1 back (an addition), and the remote holds it
    r = json.loads(cas("push", url, "--json", store=a).stdout)
    assert r["models_added"] == ["d/v1"] and r["ok"], r
    r = json.loads(cas("pull", url, "--json", store=b).stdout)
    assert r["models_added"] == ["d/v1"] and r["ok"], r
    assert commit_of(b, "v1") == restored
    assert casstore.Store(str(b)).list_models("d", "production") == ["v1"]
    for s in (a, b):
        assert_consistent(casstore.Store(str(s)))
    check_all(a, b, remote)


def test_restore_refusals_name_the_problem(tmp_path: Path, store: casstore.Store) -> None:
    f = tmp_path / "m.bin"
    f.write_bytes(os.urandom(50_000))
    store.commit_models("d", model=str(f), model_id="v1")
    with pytest.raises(RestoreError, match="no deletion of that ID"):
        store.restore_model("d", "v2")
    store.delete_model("d", "v1")
    with pytest.raises(RestoreError, match="never deleted at a commit 0000"):
        store.restore_model("d", "v1", commit="0000")
    store.gc(grace_period=0)  # a grace of 0 frees it now: nothing can restore it then
    with pytest.raises(RestoreError, match="gc has freed its objects"):
        store.restore_model("d", "v1")
    assert json.loads(cas("log", "d", "--json", store=Path(store.path)).stdout)[0]["restorable"] is False
    assert "Restore: no: gc has freed its objects" in cas("log", "d", store=Path(store.path)).stdout


def test_restore_again_and_under_another_id(tmp_path: Path, store: casstore.Store) -> None:
    f = tmp_path / "m.bin"
    f.write_bytes(os.urandom(50_000))
    x0 = store.commit_models("d", model=str(f), model_id="v1")["commit"]
    store.delete_model("d", "v1")
    x1 = store.restore_model("d", "v1")["commit"]
    store.delete_model("d", "v1")
    # the newest deletion (of x1), restored as yet another commit: no deletion names it
    x2 = store.restore_model("d", "v1")["commit"]
    assert len({x0, x1, x2}) == 3
    info = store.restore_model("d", "v1", commit=x0[:8], new_id="v1-old")
    assert info["model_id"] == "v1-old" and info["restored_from"] == x0
    assert Path(store.load("d", "v1-old")).read_bytes() == f.read_bytes()
    with pytest.raises(ModelExistsException):
        store.restore_model("d", "v1", commit=x0, new_id="v1-old")
    events = [(e.event, e.model_id) for e in store.log("d")]
    assert events == [("commit", "v1-old"), ("commit", "v1"), ("delete", "v1"), ("commit", "v1"),
                      ("delete", "v1"), ("commit", "v1")]
    assert store.fsck(read_data=True).ok
    assert_consistent(store)
