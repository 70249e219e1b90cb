"""The bucket protocol on the in-memory bucket (tests/fakes/bucket.py): the fast tier.

The same ``BucketClient`` code as on S3, GCS and Azure, over a dict with the
services' conditional-write semantics, so that races and faults can be placed
exactly: another client's push landing between two of our requests, a request
failing, a write whose answer is lost.  The real services' tests (test_buckets.py,
test_bucket_reftables.py, test_bucket_gc.py on moto, fake-gcs-server, Azurite)
stay: this tier adds to them.  Runs under both version styles: generation
numbers (GCS) and ETags that are the MD5 of the bytes (S3).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import casstore
from casstore.errors import RemoteError
from casstore.remote.bucket import BucketClient
from casstore.remote.reftable import ROOT_KEY, RootTable
from casstore.remote.transports import open_bucket
from tests.conftest import assert_git_fsck
from tests.fakes.bucket import Fault, MemoryService, install, uninstall
from tests.helpers.remotes import count_table_reads


@pytest.fixture(params=["generation", "etag"])
def mem(request: pytest.FixtureRequest) -> Iterator[MemoryService]:
    service = install(MemoryService(etags=request.param == "etag"))
    yield service
    uninstall()


@pytest.fixture
def url(mem: MemoryService) -> str:
    return f"mem://cas-{uuid.uuid4().hex[:12]}/team/models"


def _client(url: str) -> BucketClient:
    client = open_bucket(url)
    assert isinstance(client, BucketClient)
    return client


def _commit(s: casstore.Store, tmp_path: Path, model_id: str, size: int = 3000, domain: str = "d") -> None:
    path = tmp_path / f"{model_id}.bin"
    path.write_bytes(os.urandom(size))
    s.commit_models(domain, model=str(path), model_id=model_id)


def _objects(mem: MemoryService, url: str) -> dict[str, bytes]:
    bucket, _, prefix = url.split("://", 1)[1].partition("/")
    return {k[len(prefix) + 1:]: v for k, v in mem.objects(bucket).items()}


def _pack_bytes(mem: MemoryService, url: str) -> int:
    return sum(len(v) for k, v in _objects(mem, url).items() if k.startswith("objects/pack/"))


def _fresh(tmp_path: Path, url: str, expected: list[str], name: str = "fresh") -> casstore.Store:
    """A new store that pulls ``url``: it gets exactly the models ``expected``, fsck-clean."""
    fresh = casstore.open(tmp_path / name)
    result = fresh.pull(url)
    assert result.ok and sorted(result.models_added) == sorted(expected), result
    report = fresh.fsck(read_data=True)
    assert report.ok, report.problems
    assert_git_fsck(fresh.path)
    return fresh


def test_round_trip_and_requests(tmp_path: Path, mem: MemoryService, url: str) -> None:
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    _commit(a, tmp_path, "one")
    _commit(a, tmp_path, "two", domain="e")
    assert a.push(url).ok
    assert {"casstore-remote", ROOT_KEY} <= set(_objects(mem, url))
    assert sorted(b.pull(url).models_added) == ["d/one", "e/two"]
    before = mem.total()
    assert b.pull(url).ok
    assert mem.total() - before == 2  # the marker, and the root answered "unchanged"
    _commit(a, tmp_path, "three")
    before = mem.total()
    assert a.push(url).models_added == ["d/three"]
    assert mem.total() - before <= 10
    a.delete_model("d", "one")
    assert a.push(url).models_deleted == ["d/one"]
    pulled = b.pull(url)
    assert pulled.models_added == ["d/three"] and pulled.models_deleted == ["d/one"], pulled
    _fresh(tmp_path, url, ["d/three", "e/two"])


def test_racing_creates_of_one_id_exactly_one_wins(tmp_path: Path, mem: MemoryService, url: str) -> None:
    """b pushes the same ID (another model) just before a's root swap: a is told it exists."""
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    _commit(a, tmp_path, "seed", domain="other")
    assert a.push(url).ok
    _commit(a, tmp_path, "race")
    _commit(b, tmp_path, "race")
    fault = mem.inject(Fault("put_ref", key=ROOT_KEY, action="run", run=lambda: b.push(url)))
    result = a.push(url)
    assert fault.fired == 1
    assert result.rejected == {"refs/cas/models/d/race": "already exists on the remote",
                               "refs/cas/domains/d": "not moved: a model ref of this domain was refused"}, result
    fresh = _fresh(tmp_path, url, ["d/race", "other/seed"])
    assert fresh.refs.get(b"refs/cas/models/d/race") == b.refs.get(b"refs/cas/models/d/race")


def test_a_history_moved_meanwhile_is_decided_again(tmp_path: Path, mem: MemoryService, url: str) -> None:
    """b pushes another model of the same domain before a's root swap: a's swap is
    refused, a reads the root again; its model ref lands, its history (which lacks
    b's event) is refused; a pull merges and the next push moves the history."""
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    _commit(a, tmp_path, "one")
    assert a.push(url).ok
    assert b.pull(url).ok
    _commit(a, tmp_path, "two")
    _commit(b, tmp_path, "three")
    mem.inject(Fault("put_ref", key=ROOT_KEY, action="run", run=lambda: b.push(url)))
    result = a.push(url)
    assert result.rejected == {"refs/cas/domains/d": "changed on the remote meanwhile"}, result
    assert a.pull(url).models_added == ["d/three"]
    assert a.push(url).ok
    fresh = _fresh(tmp_path, url, ["d/one", "d/two", "d/three"])
    assert sorted(e.model_id for e in fresh.log("d")) == ["one", "three", "two"]


def test_gc_frees_deleted_models_and_respects_the_grace_period(tmp_path: Path, mem: MemoryService,
                                                               url: str) -> None:
    a = casstore.open(tmp_path / "a")
    ids = [f"m{i}" for i in range(8)]
    for mid in ids:
        _commit(a, tmp_path, mid, size=50_000)
    assert a.push(url).ok
    full = _pack_bytes(mem, url)
    for mid in ids[::2]:
        a.delete_model("d", mid)
    assert a.push(url).ok
    young = _client(url).gc(3600, dry_run=False)
    assert young.objects_removed == 0 and young.packs_young >= 1 and _pack_bytes(mem, url) >= full
    dry = _client(url).gc(0, dry_run=True)
    assert dry.objects_removed > 0 and _pack_bytes(mem, url) >= full
    mem.age(7200)
    report = _client(url).gc(3600)
    assert report.objects_removed > 0 and report.packs_rewritten, report
    assert _pack_bytes(mem, url) < 0.6 * full
    assert "locks/gc" not in _objects(mem, url)
    _fresh(tmp_path, url, [f"d/{m}" for m in ids[1::2]])
    again = _client(url).gc(0)
    assert not again.packs_deleted and not again.packs_rewritten and again.objects_removed == 0


def test_upgrade_of_a_format_1_remote(tmp_path: Path, mem: MemoryService, url: str) -> None:
    a = casstore.open(tmp_path / "a")
    _client(url)._put(_client(url)._key("casstore-remote"), b"casstore-remote 1\n")
    _commit(a, tmp_path, "one")
    _commit(a, tmp_path, "two", domain="e")
    assert a.push(url).ok
    per_ref = [k for k in _objects(mem, url) if k.startswith("refs/cas/")]
    assert "refs/cas/models/d/one" in per_ref and len(per_ref) == 4  # 2 models, 2 histories
    with pytest.raises(RemoteError, match="remote upgrade"):
        _client(url).gc(0)
    result = _client(url).upgrade(settle=0)
    assert result.old_format == 1 and result.refs == len(per_ref) and not result.left, result
    assert not any(k.startswith("refs/") for k in _objects(mem, url))
    root = RootTable.decode(_objects(mem, url)[ROOT_KEY], "root")
    assert sorted(root.domains) == ["d", "e"]
    _commit(a, tmp_path, "three")
    assert a.push(url).models_added == ["d/three"]
    _fresh(tmp_path, url, ["d/one", "d/three", "e/two"])
    assert _client(url).upgrade(settle=0).old_format == 2  # idempotent


def test_a_failed_request_is_a_clear_error_and_loses_nothing(tmp_path: Path, mem: MemoryService, url: str) -> None:
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    _commit(a, tmp_path, "one")
    mem.inject(Fault("upload"))
    with pytest.raises(RemoteError, match=f"{url}.*injected: connection reset"):
        a.push(url)
    assert ROOT_KEY not in _objects(mem, url)  # no ref names the missing pack
    assert a.push(url).models_added == ["d/one"]
    mem.inject(Fault("read_range", nth=2))
    with pytest.raises(RemoteError, match="injected"):
        b.pull(url)
    assert b.refs.get(b"refs/cas/models/d/one") is None and b.fsck().ok
    assert b.pull(url).models_added == ["d/one"]


def test_a_lost_answer_to_the_root_swap(tmp_path: Path, mem: MemoryService, url: str) -> None:
    """The swap happened, the client heard a failure: pushing again finds the work done."""
    a = casstore.open(tmp_path / "a")
    _commit(a, tmp_path, "one")
    assert a.push(url).ok
    _commit(a, tmp_path, "two")
    mem.inject(Fault("put_ref", key=ROOT_KEY, action="lose"))
    with pytest.raises(RemoteError, match="the request was done"):
        a.push(url)
    again = a.push(url)
    assert again.ok and again.models_added == [], again
    _fresh(tmp_path, url, ["d/one", "d/two"])


def _push_attempt(tmp_path: Path, url: str, name: str) -> casstore.Store:
    s = casstore.open(tmp_path / name)
    _commit(s, tmp_path, "base")
    return s


@pytest.mark.parametrize("action", ["fail", "lose"])
def test_any_request_of_a_push_or_gc_failing_loses_nothing(tmp_path: Path, mem: MemoryService, action: str) -> None:
    """Each request of a push, then of a gc, fails (or its answer is lost) in turn; the
    client reports an error or succeeds, a second attempt completes, and a fresh clone
    gets every model, fsck-clean."""
    probe = f"mem://probe-{uuid.uuid4().hex[:8]}/p"
    s = _push_attempt(tmp_path, probe, "probe")
    before = mem.total()
    assert s.push(probe).ok
    push_requests = mem.total() - before
    for nth in range(1, push_requests + 1):
        u = f"mem://f{nth}-{uuid.uuid4().hex[:8]}/p"
        s = _push_attempt(tmp_path, u, f"push{nth}")
        fault = mem.inject(Fault("*", nth=nth, action=action))
        try:
            s.push(u)
        except RemoteError as e:
            assert "injected" in str(e) and u in str(e), e  # noqa: PT017 - a lost answer may not raise
        mem.faults.remove(fault)
        assert fault.fired == 1
        assert s.push(u).ok
        _fresh(tmp_path, u, ["d/base"], name=f"fresh-push{nth}")
    # the gc: the last bucket, with a model deleted so that there is something to remove
    u = f"mem://gc-{uuid.uuid4().hex[:8]}/p"
    s = _push_attempt(tmp_path, u, "gc")
    _commit(s, tmp_path, "gone")
    assert s.push(u).ok
    s.delete_model("d", "gone")
    assert s.push(u).ok
    full = _pack_bytes(mem, u)
    nth = 1
    while True:
        fault = mem.inject(Fault("*", nth=nth, action=action, key="/"))
        try:
            _client(u).gc(0)
        except RemoteError as e:
            assert "injected" in str(e) or "another gc holds the lock" in str(e), e  # noqa: PT017 - may not raise
        mem.faults.remove(fault)
        _fresh(tmp_path, u, ["d/base"], name=f"fresh-gc{nth}")
        if not fault.fired:
            break  # the gc finished before the nth request: every request had its turn
        for key in [k for k in _objects(mem, u) if k == "locks/gc"]:  # a killed gc's lock: stale
            _client(u)._delete(_client(u)._key(key))
        nth += 1
    assert nth > 3
    _client(u).gc(0)  # whatever the interrupted ones left
    again = _client(u).gc(0)
    assert again.objects_removed == 0 and not again.packs_deleted and not again.packs_rewritten, again
    assert _pack_bytes(mem, u) < full  # "gone"'s objects were collected
    _fresh(tmp_path, u, ["d/base"], name="fresh-final")


def test_a_pull_with_nothing_new_reads_no_table_of_an_unchanged_domain(
        tmp_path: Path, mem: MemoryService, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pull decodes and checks only the tables of the domains that changed since it
    merged them: its time does not grow with the models of the others (it did: 0.04 s
    at 100 models, 0.42 s at 10,000).  A listing of the remote's refs still has them all."""
    from casstore.remote.sync import list_refs

    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    for domain in ("d", "e", "f"):
        _commit(a, tmp_path, "one", domain=domain)
    assert a.push(url).ok
    assert b.pull(url).ok
    read = count_table_reads(monkeypatch)
    assert b.pull(url).ok
    assert read == []
    _commit(a, tmp_path, "two", domain="e")
    assert a.push(url).ok
    read.clear()
    assert b.pull(url).models_added == ["e/two"]
    assert read == ["e"]
    read.clear()
    assert sorted(list_refs(b.repo, url).models) == ["d", "e", "f"]
    assert sorted(read) == ["d", "e", "f"]


def test_a_push_reads_only_the_tables_of_the_domains_it_pushes(
        tmp_path: Path, mem: MemoryService, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``send``'s ``domains``: a push of one domain reads that domain's table, not the others'."""
    a = casstore.open(tmp_path / "a")
    for domain in ("d", "e", "f"):
        _commit(a, tmp_path, "one", domain=domain)
    assert a.push(url).ok
    read = count_table_reads(monkeypatch)
    _commit(a, tmp_path, "two", domain="e")
    assert a.push(url, ["e"]).models_added == ["e/two"]
    assert read == ["e"]
    read.clear()
    _commit(a, tmp_path, "two", domain="f")
    assert a.push(url).models_added == ["f/two"]
    assert sorted(read) == ["d", "e", "f"]
    fresh = casstore.open(tmp_path / "fresh")
    assert sorted(fresh.pull(url).models_added) == ["d/one", "e/one", "e/two", "f/one", "f/two"]
    assert_git_fsck(fresh.path)


def _race_setup(tmp_path: Path, url: str) -> tuple[casstore.Store, casstore.Store]:
    """a pushed "kept" and "doomed"; b has pulled nothing yet."""
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    _commit(a, tmp_path, "kept", size=40_000)
    _commit(a, tmp_path, "doomed", size=40_000)
    assert a.push(url).ok
    return a, b


def _delete_and_gc(a: casstore.Store, url: str) -> None:
    a.delete_model("d", "doomed")
    assert a.push(url).ok
    report = _client(url).gc(0)
    assert report.packs_rewritten or report.packs_deleted, report


def test_a_pull_racing_a_gc_reads_the_refs_again(tmp_path: Path, mem: MemoryService, url: str) -> None:
    """Between b's read of the refs and its first read of a pack, a deletes a model and
    a gc (grace 0) rewrites the pack without it: b's pull starts again from the new root."""
    a, b = _race_setup(tmp_path, url)
    fault = mem.inject(Fault("read_range", key="objects/pack/", action="run", run=lambda: _delete_and_gc(a, url)))
    pulled = b.pull(url)
    assert fault.fired == 1
    assert pulled.ok and pulled.models_added == ["d/kept"], pulled
    assert b.fsck(read_data=True).ok
    _fresh(tmp_path, url, ["d/kept"])


def test_a_pull_receiving_what_a_gc_deletes_fails_cleanly(tmp_path: Path, mem: MemoryService, url: str) -> None:
    """The gc lands after b sent the first bytes of its pack (its commits and trees): b
    cannot start again; it says so, changes nothing, and the next pull succeeds."""
    a, b = _race_setup(tmp_path, url)
    reads = mem.requests["read_range"]
    assert b.pull(url, ["d"]).ok  # how many ranged reads a pull of these two models takes
    reads = mem.requests["read_range"] - reads
    assert reads >= 2
    b = casstore.open(tmp_path / "b2")
    fault = mem.inject(Fault("read_range", nth=reads, key="objects/pack/", action="run",
                             run=lambda: _delete_and_gc(a, url)))
    with pytest.raises(RemoteError, match="deleted objects this pull was receiving.*pull again"):
        b.pull(url)
    assert fault.fired == 1
    assert b.refs.get(b"refs/cas/models/d/kept") is None and b.fsck().ok
    assert b.pull(url).models_added == ["d/kept"]


def test_a_gc_whose_lock_request_was_retried_by_the_sdk_holds_the_lock(mem: MemoryService, url: str,
                                                                        tmp_path: Path) -> None:
    """The lock's conditional create went through, its answer was lost, the SDK sent it
    again and was refused by its own first attempt: the lock is ours, not another gc's."""
    a = casstore.open(tmp_path / "a")
    _commit(a, tmp_path, "one")
    assert a.push(url).ok
    fault = mem.inject(Fault("put_ref", key="locks/gc", action="retry"))
    report = _client(url).gc(0)
    assert fault.fired == 1 and report.objects_removed == 0, report
    assert "locks/gc" not in _objects(mem, url)
    _fresh(tmp_path, url, ["d/one"])
