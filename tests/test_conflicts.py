"""Issue 9: a conflict or a delete never loses a model, through the CLI, with two machines.

Stores A and B commit ``d/v1`` with different bytes; A pushes first.  Every
scenario runs on a path remote, git://, S3, GCS and Azure (``any_remote``), drives ``cas``
as a user would, and after each step checks on both stores and on the remote
that the domain history agrees with the model refs (see ``assert_consistent``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import casstore
from tests.conftest import assert_s3_remote_fsck
from tests.helpers.cli import cas
from tests.helpers.conflicts import _file, assert_consistent, commit_of, conflict_setup, model_bytes
from tests.helpers.remotes import check_all

Remote = tuple[str, Path | str]


def test_merge_applies_a_deletion_only_to_the_commit_it_names() -> None:
    from dulwich.objects import ObjectID

    from casstore.model.history import DomainIndex
    from casstore.remote.merge import merge_indexes

    c0, ca, cb = (ObjectID(c * 40) for c in (b"0", b"a", b"b"))

    def merge(loc: ObjectID | None, rem: ObjectID | None, loc_del: frozenset[ObjectID] = frozenset(),
              rem_del: frozenset[ObjectID] = frozenset()) -> tuple[dict[str, ObjectID], list[str]]:
        sides = [DomainIndex({"v1": c} if c else {}) for c in (loc, rem)]
        r = merge_indexes(DomainIndex(), sides[0], sides[1], {"v1": set(loc_del)}, {"v1": set(rem_del)})
        back = merge_indexes(DomainIndex(), sides[1], sides[0], {"v1": set(rem_del)}, {"v1": set(loc_del)})
        assert (back.index.models, back.conflicts) == (r.index.models, r.conflicts)  # symmetric
        return r.index.models, r.conflicts

    assert merge(ca, ca) == ({"v1": ca}, [])
    assert merge(None, ca) == ({"v1": ca}, [])  # an addition
    assert merge(None, ca, loc_del=frozenset({ca})) == ({}, [])  # our deletion of exactly ca travels
    assert merge(None, ca, loc_del=frozenset({cb})) == ({"v1": ca}, [])  # we deleted cb: ca is untouched
    assert merge(cb, None, rem_del=frozenset({ca})) == ({"v1": cb}, [])
    assert merge(cb, ca) == ({}, ["v1"])  # a conflict has no merged value
    assert merge(cb, ca, rem_del=frozenset({c0})) == ({}, ["v1"])
    assert merge(cb, c0, loc_del=frozenset({c0})) == ({"v1": cb}, [])  # deleted c0, committed cb anew


def remote_view(tmp_path: Path, url: str, remote: Path | str) -> casstore.Store:
    """The remote as a store: itself for a git remote, a fresh full pull of it for S3."""
    if isinstance(remote, Path):
        return casstore.Store(str(remote))
    fresh = tmp_path / f"view-{len(os.listdir(tmp_path))}"
    view = casstore.open(fresh)
    assert view.pull(url).ok
    return view


def remote_refs(url: str, remote: Path | str) -> dict[str, str]:
    if isinstance(remote, Path):
        s = casstore.Store(str(remote))
        return {"refs/cas/" + k.decode(): v.decode() for k, v in s.refs.container.as_dict(b"refs/cas").items()}
    from tests.conftest import bucket_refs

    return bucket_refs(url)


def check_everything(tmp_path: Path, url: str, remote: Path | str, a: Path, b: Path) -> None:
    check_all(a, b, remote)
    for p in (a, b):
        s = casstore.Store(str(p))
        assert s.fsck().ok
        assert_consistent(s)
    assert_consistent(remote_view(tmp_path, url, remote))


def test_deleting_ours_never_deletes_theirs(tmp_path: Path, any_remote: Remote) -> None:  # noqa: F811 - the fixture
    """Case 1 and the "delete ours" resolution: B drops its v1 and ends with A's."""
    url, remote = any_remote
    a, b, bytes_a, _ = conflict_setup(tmp_path, url)
    commit_a = commit_of(a, "v1")
    cas("rm", "d", "v1", store=b)
    r = json.loads(cas("pull", url, "--json", store=b).stdout)
    assert r["models_added"] == ["d/v1"] and r["models_deleted"] == [], r
    assert commit_of(b, "v1") == commit_a
    r = json.loads(cas("push", url, "--json", store=b).stdout)
    assert r["models_deleted"] == [] and r["conflicts"] == [], r
    assert remote_refs(url, remote)["refs/cas/models/d/v1"] == commit_a
    r = json.loads(cas("pull", url, "--json", store=a).stdout)
    assert r["models_deleted"] == [], r
    assert cas("ls", "d", store=a).stdout.split() == ["v1"]
    assert model_bytes(tmp_path, a, "v1") == bytes_a
    assert model_bytes(tmp_path, b, "v1") == bytes_a
    check_everything(tmp_path, url, remote, a, b)


def test_conflicting_push_changes_nothing_on_the_remote(tmp_path: Path, any_remote: Remote) -> None:  # noqa: F811 - the fixture
    """Case 2: a push with a conflict sends no history, and says so every time."""
    url, remote = any_remote
    a, b, bytes_a, _ = conflict_setup(tmp_path, url)
    commit_a, commit_b = commit_of(a, "v1"), commit_of(b, "v1")
    before = remote_refs(url, remote)
    for _ in range(2):
        r = json.loads(cas("push", url, "--json", store=b, check=1).stdout)
        assert r["conflicts"] == ["d/v1"] and r["models_added"] == [] and r["models_deleted"] == [], r
        assert remote_refs(url, remote) == before
    r = json.loads(cas("pull", url, "--json", store=a).stdout)
    assert r["models_added"] == [] and r["models_deleted"] == [] and r["conflicts"] == [], r
    assert commit_b not in {e["model_commit"] for e in json.loads(cas("log", "d", "--json", store=a).stdout)}
    assert commit_of(a, "v1") == commit_a
    assert model_bytes(tmp_path, a, "v1") == bytes_a
    # and B still sees it on every pull until it is resolved
    assert json.loads(cas("pull", url, "--json", store=b, check=1).stdout)["conflicts"] == ["d/v1"]
    check_everything(tmp_path, url, remote, a, b)


def test_keep_theirs_with_pull_theirs(tmp_path: Path, any_remote: Remote) -> None:  # noqa: F811 - the fixture
    """Case 3, "keep theirs": one command on B; A is untouched and both logs agree."""
    url, remote = any_remote
    a, b, bytes_a, _ = conflict_setup(tmp_path, url)
    commit_a, commit_b = commit_of(a, "v1"), commit_of(b, "v1")
    r = json.loads(cas("pull", url, "--theirs", "--json", store=b).stdout)
    # a replacement, reported as one, naming both commits (issue 21)
    assert r["conflicts"] == [] and r["models_replaced"] == ["d/v1"] and r["models_added"] == [], r
    assert [(c["old"], c["new"]) for c in r["changes"]] == [(commit_b, commit_a)], r
    assert model_bytes(tmp_path, b, "v1") == bytes_a
    deletes = [e for e in json.loads(cas("log", "d", "--json", store=b).stdout) if e["event"] == "delete"]
    assert [(e["model_id"], e["model_commit"]) for e in deletes] == [("v1", commit_b)]
    r = json.loads(cas("push", url, "--json", store=b).stdout)
    assert r["models_added"] == r["models_deleted"] == r["models_replaced"] == [] and r["ok"], r
    r = json.loads(cas("pull", url, "--json", store=a).stdout)
    assert r["models_added"] == r["models_deleted"] == r["models_replaced"] == [] and r["ok"], r
    assert commit_of(a, "v1") == commit_a and model_bytes(tmp_path, a, "v1") == bytes_a
    def events(store: Path) -> list[dict[str, object]]:
        # whether a deletion can be restored is this store's own (are its objects here?)
        local = ("restorable", "kept_until", "id_taken")
        return [{k: v for k, v in e.items() if k not in local}
                for e in json.loads(cas("log", "d", "--json", store=store).stdout)]

    assert events(a) == events(b)  # one history on both machines
    check_everything(tmp_path, url, remote, a, b)


def test_keep_ours_under_a_new_id(tmp_path: Path, any_remote: Remote) -> None:  # noqa: F811 - the fixture
    """Case 3, "keep ours under a new ID": cas cp (no re-serialising), then take theirs."""
    url, remote = any_remote
    a, b, bytes_a, bytes_b = conflict_setup(tmp_path, url)
    info = json.loads(cas("cp", "d", "v1", "v1-b", "--json", store=b).stdout)
    assert info["model_id"] == "v1-b" and info["stats"] == json.loads(
        cas("show", "d", "v1", "--json", store=b).stdout)["stats"]
    s = casstore.Store(str(b))
    assert s.fsck(read_data=True).ok
    cas("cp", "d", "v1", "v1-b", store=b, check=2)  # the new ID is taken now
    assert json.loads(cas("pull", url, "--theirs", "--json", store=b).stdout)["ok"]
    r = json.loads(cas("push", url, "--json", store=b).stdout)
    assert r["models_added"] == ["d/v1-b"] and r["ok"], r
    r = json.loads(cas("pull", url, "--json", store=a).stdout)
    assert r["models_added"] == ["d/v1-b"] and r["models_deleted"] == [] and r["ok"], r
    for store in (a, b):
        assert sorted(cas("ls", "d", store=store).stdout.split()) == ["v1", "v1-b"]
        assert model_bytes(tmp_path, store, "v1") == bytes_a
        assert model_bytes(tmp_path, store, "v1-b") == bytes_b
    check_everything(tmp_path, url, remote, a, b)


def test_ours_wins_when_theirs_is_deleted_where_it_was_made(tmp_path: Path, any_remote: Remote) -> None:
    """The other way round: A deletes its v1; B's v1 then stops conflicting and travels."""
    url, remote = any_remote
    a, b, _, bytes_b = conflict_setup(tmp_path, url)
    commit_b = commit_of(b, "v1")
    cas("rm", "d", "v1", store=a)
    r = json.loads(cas("push", url, "--json", store=a).stdout)
    assert r["models_deleted"] == ["d/v1"] and r["ok"], r
    r = json.loads(cas("pull", url, "--json", store=b).stdout)
    assert r["models_deleted"] == [] and r["conflicts"] == [], r  # A deleted A's commit, not B's
    r = json.loads(cas("push", url, "--json", store=b).stdout)
    assert r["models_added"] == ["d/v1"] and r["ok"], r
    r = json.loads(cas("pull", url, "--json", store=a).stdout)
    assert r["models_added"] == ["d/v1"] and r["ok"], r
    assert commit_of(a, "v1") == commit_b and model_bytes(tmp_path, a, "v1") == bytes_b
    check_everything(tmp_path, url, remote, a, b)


def test_s3_refused_history_leaves_remote_models_alone(
        tmp_path: Path, s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 has no atomic push: a deletion waits until the history that records it has moved,
    so a refused compare-and-swap never leaves the remote without a model its history lists."""
    from casstore.remote.s3 import S3Client
    from tests.conftest import make_per_ref_remote, s3_objects

    make_per_ref_remote(s3_url)  # format 1: one object per ref (ref tables: test_buckets.py)
    a = casstore.open(tmp_path / "a")
    for mid in ("v1", "v2"):
        a.commit_models("d", model=str(_file(tmp_path, mid)), model_id=mid)
    assert a.push(s3_url).ok
    a.delete_model("d", "v1")
    real = S3Client.read_ref_objects

    def history_moved_meanwhile(self: S3Client) -> tuple[dict, dict]:
        refs, etags = real(self)
        return refs, {k: '"0123456789abcdef0123456789abcdef"' if k.startswith(b"refs/cas/domains/") else v
                      for k, v in etags.items()}

    with monkeypatch.context() as m:
        m.setattr(S3Client, "read_ref_objects", history_moved_meanwhile)
        pushed = a.push(s3_url)
    assert "changed on the remote" in pushed.rejected["refs/cas/domains/d"]
    assert "refs/cas/models/d/v1" in pushed.rejected and pushed.models_deleted == []
    assert "refs/cas/models/d/v1" in s3_objects(s3_url)
    assert_consistent(remote_view(tmp_path, s3_url, s3_url))
    pushed = a.push(s3_url)
    assert pushed.ok and pushed.models_deleted == ["d/v1"]
    assert "refs/cas/models/d/v1" not in s3_objects(s3_url)
    assert_consistent(remote_view(tmp_path, s3_url, s3_url))
    assert_s3_remote_fsck(s3_url)
