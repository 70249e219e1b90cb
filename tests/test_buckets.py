"""Bucket remotes -- S3, GCS and Azure Blob -- against real emulators on loopback.

Each test runs on every bucket kind (``bucket`` fixture): moto's S3 server,
fake-gcs-server and Azurite, each started by the tests in a process of its own.
The scenarios every transport shares (dedup, merges, conflicts, deletions,
states) run on these through ``any_remote`` in test_remote.py and
test_conflicts.py; here: what is particular to buckets -- the layout,
conditional writes between racing clients, a hostile bucket, a cut connection.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import casstore
from casstore import CorruptObjectError
from casstore.errors import MissingObjectError, RemoteError
from casstore.remote.bucket import BucketClient
from tests.conftest import (
    BUCKET_URL_FIXTURES,
    assert_bucket_remote_fsck,
    assert_git_fsck,
    bucket_client,
    bucket_objects,
    bucket_refs,
    delete_bucket_object,
    make_per_ref_remote,
    put_bucket_object,
)
from tests.helpers.stores import _commit_random, _snapshot, _stores
from tests.servers import dying_proxy, free_port

MiB = 1 << 20




def test_round_trip(tmp_path: Path, bucket: str) -> None:
    a, b = _stores(tmp_path)
    one = _commit_random(a, tmp_path / "one.bin", 3 * MiB, "one")
    events: list[tuple[str, int, int]] = []
    a.progress = lambda label, done, total: events.append((label, done, total))
    result = a.push(bucket)
    uploads = [e for e in events if e[0] == "uploading"]
    assert uploads and uploads[-1][1] == uploads[-1][2] > 0  # the bar reaches the pack's size
    assert result.ok and result.models_added == ["d/one"], result
    keys = bucket_objects(bucket)
    assert keys["casstore-remote"] == b"casstore-remote 2\n"
    assert bucket_refs(bucket)["refs/cas/models/d/one"].encode() == a.refs.get(b"refs/cas/models/d/one")
    assert len([k for k in keys if k.endswith(".pack")]) == 1
    assert b.pull(bucket).models_added == ["d/one"]
    assert Path(b.load("d", "one")).read_bytes() == one.read_bytes()
    assert b.get_model_info("d", "one") == a.get_model_info("d", "one")
    assert a.push(bucket).objects == 0  # nothing new: no upload, no download
    again = b.pull(bucket)
    assert again.ok and again.bytes == 0 and not again.models_added
    for s in (a, b):
        assert_git_fsck(s.path)
        assert s.fsck(read_data=True).ok
    assert_bucket_remote_fsck(bucket)


def test_racing_creates_exactly_one_wins(bucket: str) -> None:
    """Eight clients create the same ref at the same moment: the service lets exactly one write."""
    clients = [bucket_client(bucket) for _ in range(8)]
    key = clients[0]._key("refs/cas/models/d/race")
    clients[0]._list("refs/")  # connections made before the start, so that the writes overlap
    barrier = threading.Barrier(len(clients))
    won: dict[int, bool] = {}

    def create(i: int) -> None:
        barrier.wait()
        won[i] = clients[i]._put_ref(key, b"%040d\n" % i, None)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, ok in won.items() if ok]
    assert len(won) == len(clients) and len(winners) == 1, won
    assert bucket_objects(bucket)["refs/cas/models/d/race"] == b"%040d\n" % winners[0]


def test_racing_push_of_the_same_id_is_refused_by_the_service(
        tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between reading the remote's refs and writing its own, another client created the
    same model ID: the conditional create refuses, nothing is overwritten, and the
    domain's history is left alone."""
    make_per_ref_remote(bucket)  # format 1, one object per ref: its own rules
    a, b = _stores(tmp_path)
    a_file = _commit_random(a, tmp_path / "a.bin", 100_000, "m")
    _commit_random(b, tmp_path / "b.bin", 100_000, "m")
    assert a.push(bucket).ok
    history = bucket_objects(bucket)["refs/cas/domains/d"]
    real = BucketClient.read_ref_objects

    def before_a_pushed(self: BucketClient) -> tuple[dict, dict]:  # type: ignore[type-arg]
        refs, versions = real(self)
        return ({k: v for k, v in refs.items() if not k.startswith(b"refs/cas/")},
                {k: v for k, v in versions.items() if not k.startswith(b"refs/cas/")})

    with monkeypatch.context() as m:
        m.setattr(BucketClient, "read_ref_objects", before_a_pushed)
        pushed = b.push(bucket)
    assert not pushed.ok
    assert "already exists" in pushed.rejected["refs/cas/models/d/m"]
    assert "refused" in pushed.rejected["refs/cas/domains/d"]
    objects = bucket_objects(bucket)
    assert objects["refs/cas/domains/d"] == history
    assert objects["refs/cas/models/d/m"].strip() == a.refs.get(b"refs/cas/models/d/m")
    fresh = casstore.open(tmp_path / "c")
    assert fresh.pull(bucket).ok
    assert Path(fresh.load("d", "m")).read_bytes() == a_file.read_bytes()
    assert_bucket_remote_fsck(bucket)


def test_a_create_whose_answer_was_lost_is_not_reported_as_refused(
        tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A create retried after its answer was lost finds the ref it wrote itself: that is success.

    The bucket is put in the state a lost answer leaves (the model ref already holds
    our commit, while the refs we read do not show it)."""
    make_per_ref_remote(bucket)  # format 1, one object per ref: its own rules
    a, _ = _stores(tmp_path)
    _commit_random(a, tmp_path / "m.bin", 1000, "m")
    put_bucket_object(bucket, "refs/cas/models/d/m", a.refs.get(b"refs/cas/models/d/m") + b"\n")
    real = BucketClient.read_ref_objects

    def answer_lost(self: BucketClient) -> tuple[dict, dict]:  # type: ignore[type-arg]
        refs, versions = real(self)
        return ({k: v for k, v in refs.items() if k != b"refs/cas/models/d/m"},
                {k: v for k, v in versions.items() if k != b"refs/cas/models/d/m"})

    with monkeypatch.context() as m:
        m.setattr(BucketClient, "read_ref_objects", answer_lost)
        pushed = a.push(bucket)
    assert pushed.ok and pushed.models_added == ["d/m"], pushed
    assert casstore.open(tmp_path / "c").pull(bucket).models_added == ["d/m"]


def test_stale_history_is_a_failed_compare_and_swap(
        tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another client rewrote the history after we read it (a new version):
    the compare-and-swap refuses ours; with fresh versions the push goes through."""
    make_per_ref_remote(bucket)  # format 1, one object per ref: its own rules
    a, _ = _stores(tmp_path)
    one = _commit_random(a, tmp_path / "one.bin", 1000, "one")
    assert a.push(bucket).ok
    a.commit_models("d", model=str(one), model_id="two")
    real = BucketClient.read_ref_objects

    def rewritten_meanwhile(self: BucketClient) -> tuple[dict, dict]:  # type: ignore[type-arg]
        refs, versions = real(self)
        # the same commit in other bytes: a new version everywhere (S3's ETag is the bytes' MD5)
        put_bucket_object(bucket, "refs/cas/domains/d", refs[b"refs/cas/domains/d"] + b"\n\n")
        return refs, versions

    with monkeypatch.context() as m:
        m.setattr(BucketClient, "read_ref_objects", rewritten_meanwhile)
        pushed = a.push(bucket)
    assert "changed on the remote" in pushed.rejected["refs/cas/domains/d"]
    assert "refs/cas/models/d/two" in bucket_objects(bucket)  # created: harmless, the history follows
    assert a.push(bucket).ok  # with the real versions it goes through
    fresh = casstore.open(tmp_path / "c")
    assert sorted(fresh.pull(bucket).models_added) == ["d/one", "d/two"]
    assert [e.model_id for e in fresh.log("d")] == ["two", "one"]
    assert_bucket_remote_fsck(bucket)


# fake-gcs-server ignores ifGenerationMatch on DELETE (it deletes whatever the
# generation), so a stale conditional delete can only be shown refused on S3 and Azure.
@pytest.mark.parametrize("kind", ["s3", "azure"])
def test_stale_conditional_delete_is_refused(request: pytest.FixtureRequest, kind: str) -> None:
    url = str(request.getfixturevalue(BUCKET_URL_FIXTURES[kind]))
    client = bucket_client(url)
    key = client._key("refs/cas/models/d/x")
    assert client._put_ref(key, b"1" * 40 + b"\n", None)
    got = client._get(key, 100)
    assert got is not None
    assert client._put_ref(key, b"2" * 40 + b"\n", got[1])  # moves on: the version read is now stale
    assert not client._delete_ref(key, got[1])
    assert bucket_objects(url)["refs/cas/models/d/x"] == b"2" * 40 + b"\n"
    fresh = client._get(key, 100)
    assert fresh is not None and client._delete_ref(key, fresh[1])
    assert "refs/cas/models/d/x" not in bucket_objects(url)


def test_hostile_bucket_changes_nothing_locally(tmp_path: Path, bucket: str) -> None:
    make_per_ref_remote(bucket)  # format 1, one object per ref: its own rules
    a, b = _stores(tmp_path)
    m_file = _commit_random(a, tmp_path / "m.bin", 300_000, "m")
    _commit_random(b, tmp_path / "mine.bin", 1000, "keep", domain="mine")
    assert a.push(bucket).ok
    before = _snapshot(b)
    objects = bucket_objects(bucket)
    model_ref = objects["refs/cas/models/d/m"]

    def refused(key: str, data: bytes, error: type[Exception], match: str | None = None) -> None:
        put_bucket_object(bucket, key, data)
        with pytest.raises(error, match=match):
            b.pull(bucket)
        assert _snapshot(b) == before
        assert os.listdir(os.path.join(b.path, "cas", "tmp")) == []
        delete_bucket_object(bucket, key)

    # ref names that are not casstore names, path traversal included
    refused("refs/cas/models/d/..bad", model_ref, CorruptObjectError, "bad ref name")
    traversal = "../../../../../.."
    if bucket.startswith("az://"):
        # Azure resolves "../" in a blob's URL: such a name cannot even be written
        from azure.core.exceptions import HttpResponseError

        with pytest.raises(HttpResponseError):
            put_bucket_object(bucket, f"refs/cas/models/d/{traversal}/escape", model_ref)
        traversal = "..%2F..%2F..%2F..%2F..%2F.."  # what an attacker can write there instead
    refused(f"refs/cas/models/d/{traversal}/escape", model_ref, CorruptObjectError, "bad ref name")
    # a ref to an object no pack holds; a ref far bigger than an object id
    refused("refs/cas/models/d/ghost", b"1" * 40 + b"\n", MissingObjectError)
    refused("refs/cas/models/d/huge", b"1" * 4096, CorruptObjectError, "larger than")
    # a pack whose name climbs out of the index cache
    name = f"{traversal}/tmp/casstore-escape-{uuid.uuid4().hex}"
    put_bucket_object(bucket, f"objects/pack/{name}.pack", b"PACK")
    refused(f"objects/pack/{name}.idx", b"\0" * 64, CorruptObjectError, "bad name")
    delete_bucket_object(bucket, f"objects/pack/{name}.pack")
    assert not [f for f in os.listdir("/tmp") if f.startswith("casstore-escape-")]
    # a pack whose chunk bytes were altered (the index still claims the old ids)
    pack_key = next(k for k in objects if k.endswith(".pack"))
    data = bytearray(objects[pack_key])
    data[len(data) - 5000] ^= 0xFF  # inside the last chunk blob
    put_bucket_object(bucket, pack_key, bytes(data))
    with pytest.raises(CorruptObjectError):  # MissingObjectError included
        b.pull(bucket)
    assert _snapshot(b) == before
    assert b.fsck(read_data=True).ok

    put_bucket_object(bucket, pack_key, objects[pack_key])  # repaired: the same pull now completes
    assert b.pull(bucket).models_added == ["d/m"]
    assert Path(b.load("d", "m")).read_bytes() == m_file.read_bytes()
    assert_bucket_remote_fsck(bucket)
    # issue 20 item 3: a ref aliasing d/m's commit, which b now holds: no hook on a bucket, b refuses it
    before = _snapshot(b)
    refused("refs/cas/models/d/alias", model_ref, CorruptObjectError, "ref d/alias carries model d/m")


@contextmanager
def _through(url: str, port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the bucket client of ``url`` at 127.0.0.1:``port`` (a proxy, or nothing) for a while."""
    name = {"s3": "AWS_ENDPOINT_URL_S3", "gs": "STORAGE_EMULATOR_HOST",
            "az": "AZURE_STORAGE_CONNECTION_STRING"}[url.split("://")[0]]
    real = os.environ[name]
    endpoint = real.split("BlobEndpoint=", 1)[-1].split(";")[0]  # the whole value, except on Azure
    host_port = endpoint.split("/")[2]
    with monkeypatch.context() as m:
        m.setenv(name, real.replace(host_port, f"127.0.0.1:{port}"))
        yield


def _emulator_port(url: str) -> int:
    name = {"s3": "AWS_ENDPOINT_URL_S3", "gs": "STORAGE_EMULATOR_HOST",
            "az": "AZURE_STORAGE_CONNECTION_STRING"}[url.split("://")[0]]
    endpoint = os.environ[name].split("BlobEndpoint=", 1)[-1].split(";")[0]
    return int(endpoint.split("/")[2].rsplit(":", 1)[1])


def test_server_killed_mid_transfer_then_retry(tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service dies (every connection cut, then refused) 2 MiB into a pull, and 2 MiB
    into a push's upload: nothing changes on either side, both pass fsck, and the same
    commands then complete against the live service."""
    import casstore.remote.gcs

    monkeypatch.setattr(casstore.remote.gcs, "RETRY_SECONDS", 3.0)  # the service is gone: fail sooner
    a, b = _stores(tmp_path)
    big = _commit_random(a, tmp_path / "big", 8 * MiB, "big")
    assert a.push(bucket).ok
    with dying_proxy(_emulator_port(bucket), after=2 * MiB) as proxy, _through(bucket, proxy, monkeypatch):
        with pytest.raises(RemoteError):
            b.pull(bucket)
    assert b.list_domains() == []
    assert os.listdir(os.path.join(b.path, "cas", "tmp")) == []
    assert os.listdir(os.path.join(b.path, "objects", "pack")) == []
    _commit_random(a, tmp_path / "big2", 8 * MiB, "big2")
    with dying_proxy(_emulator_port(bucket), after=2 * MiB) as proxy, _through(bucket, proxy, monkeypatch):
        with pytest.raises(RemoteError):  # killed mid-upload: no ref moves
            a.push(bucket)
    assert "refs/cas/models/d/big2" not in bucket_refs(bucket)
    assert_bucket_remote_fsck(bucket)
    for s in (a, b):
        assert s.fsck(read_data=True).ok
        assert_git_fsck(s.path)
    assert b.pull(bucket).models_added == ["d/big"]
    assert a.push(bucket).models_added == ["d/big2"]
    assert b.pull(bucket).models_added == ["d/big2"]
    assert Path(b.load("d", "big")).read_bytes() == big.read_bytes()
    assert_bucket_remote_fsck(bucket)


def test_dead_endpoint_missing_bucket_and_bad_url_are_clear_errors(
        tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import casstore.remote.gcs

    monkeypatch.setattr(casstore.remote.gcs, "RETRY_SECONDS", 3.0)
    a, _ = _stores(tmp_path)
    _commit_random(a, tmp_path / "m.bin", 5, "m")
    scheme = bucket.split("://")[0]
    with _through(bucket, free_port(), monkeypatch):
        with pytest.raises(RemoteError, match=f"{scheme}://"):
            a.push(bucket)
    with pytest.raises(RemoteError, match=f"{scheme}://no-such-bucket-here"):
        a.pull(f"{scheme}://no-such-bucket-here/x")
    with pytest.raises(RemoteError, match=f"not an? .* URL: {scheme}://bucket"):
        a.pull(f"{scheme}:///no-bucket")
    put_bucket_object(bucket, "casstore-remote", b"casstore-remote 99\n")
    with pytest.raises(RemoteError, match="newer casstore"):
        a.push(bucket)
    assert "refs/cas/models/d/m" not in bucket_refs(bucket)
    assert a.fsck().ok


def test_configuration_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Azure remote without an account is a clear error, as is an account without credentials."""
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    with pytest.raises(RemoteError, match="AZURE_STORAGE_CONNECTION_STRING"):
        assert bucket_client("az://c/p").az is None  # never reached: opening the container raises
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "someaccount")
    try:
        import azure.identity  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises(RemoteError, match="azure-identity"):
            assert bucket_client("az://c/p").az is None  # never reached
    else:  # pragma: no cover - azure-identity is not a test dependency
        assert bucket_client("az://c/p").az.url.startswith("https://someaccount.blob.core.windows.net/c")


def test_one_service_client_per_process_and_configuration(tmp_path: Path, bucket: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Pushes and pulls reuse one service client (boto3's costs 0.2-0.5 s to make);
    another endpoint in the environment gets a client of its own."""
    from casstore.remote.bucket import base as bucket_base  # where the service clients are kept

    monkeypatch.setattr(bucket_base, "_clients", {})
    a, b = _stores(tmp_path)
    _commit_random(a, tmp_path / "m.bin", 1000, "m")
    assert a.push(bucket).ok
    assert b.pull(bucket).models_added == ["d/m"]
    assert b.pull(bucket).ok
    assert len(bucket_base._clients) == 1
    with _through(bucket, free_port(), monkeypatch):  # made on first use: no request is sent
        getattr(bucket_client(bucket), {"s3": "s3", "gs": "gcs", "az": "az"}[bucket.split("://")[0]])
    assert len(bucket_base._clients) == 2


# -- combining small packs ----------------------------------------------------------


def _packs(url: str) -> list[str]:
    """Names of the published packs of a bucket remote (those with an index)."""
    listing = bucket_client(url)._listing()
    return sorted(fn[:-5] for fn in listing if fn.endswith(".pack") and fn[:-5] + ".idx" in listing)


def _push_models(s: casstore.Store, tmp_path: Path, url: str, ids: list[str]) -> None:
    for mid in ids:
        _commit_random(s, tmp_path / f"{mid}.bin", 3000, mid)
        assert s.push(url).ok


def _assert_pulls_everything(tmp_path: Path, url: str, ids: list[str], name: str = "fresh") -> None:
    fresh = casstore.open(tmp_path / name)
    result = fresh.pull(url)
    assert result.ok and sorted(result.models_added) == sorted(f"d/{m}" for m in ids), result
    assert fresh.fsck(read_data=True).ok
    assert_git_fsck(fresh.path)


def test_many_small_pushes_leave_a_bounded_number_of_packs(
        tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """20 pushes of one small model each, with the threshold at 5 small packs (16 by
    default; benchmarks/bench_bucket.py pushes 200 times with it): never more than 5
    packs, every model still pulls, and a reader's cache of remote indexes follows
    the combines."""
    from casstore.remote.bucket import combine  # where MAX_SMALL_PACKS is read
    from casstore.remote.config import cache_dir

    monkeypatch.setattr(combine, "MAX_SMALL_PACKS", 5)
    a, b = _stores(tmp_path)
    ids = [f"m{i:02d}" for i in range(20)]
    counts = []
    for i, mid in enumerate(ids):
        _push_models(a, tmp_path, bucket, [mid])
        counts.append(len(_packs(bucket)))
        if i == 3:
            assert b.pull(bucket).ok  # caches the indexes of the four packs there are now
    assert counts[:6] == [1, 2, 3, 4, 5, 1], counts  # one pack per push, then all combined
    assert max(counts) <= 5 and counts.count(1) >= 2, counts  # bounded, and combined again later
    _assert_pulls_everything(tmp_path, bucket, ids)
    assert b.pull(bucket).ok
    cache = Path(cache_dir(b.repo, bucket))
    assert sorted(p.stem for p in cache.iterdir() if p.suffix == ".idx") == _packs(bucket)
    assert_bucket_remote_fsck(bucket)


def test_a_reader_that_listed_before_a_combine_still_gets_every_object(
        tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Packs combined and deleted after a reader listed them: it lists again and reads
    the combined pack, in the walk of commits and trees and in the blob transfer alike."""
    from casstore.remote.bucket import combine  # where MAX_SMALL_PACKS is read

    monkeypatch.setattr(combine, "MAX_SMALL_PACKS", 1000)  # pushes leave their packs alone
    a, _ = _stores(tmp_path)
    first = [f"a{i}" for i in range(5)]
    _push_models(a, tmp_path, bucket, first)
    real_read_root, real_send = BucketClient.read_root, BucketClient._send
    combined: list[combine.CombineResult | None] = []

    def combine_elsewhere() -> None:
        combined.append(bucket_client(bucket).combine_packs(force=True))

    def listed_then_combined(self: BucketClient, fresh: bool = False) -> tuple[object, str | None]:
        root = real_read_root(self, fresh)
        self._load_packs()
        combine_elsewhere()
        return root

    with monkeypatch.context() as m:
        m.setattr(BucketClient, "read_root", listed_then_combined)
        _assert_pulls_everything(tmp_path, bucket, first, "b1")
    assert combined[-1] is not None and len(combined[-1].combined) == 5
    assert _packs(bucket) == [combined[-1].pack]

    second = [f"b{i}" for i in range(3)]
    _push_models(a, tmp_path, bucket, second)

    def send_after_a_combine(self: BucketClient, *args: object) -> None:
        combine_elsewhere()  # the walk listed the packs: the blobs are to be read from deleted ones
        real_send(self, *args)  # type: ignore[arg-type]

    with monkeypatch.context() as m:
        m.setattr(BucketClient, "_send", send_after_a_combine)
        _assert_pulls_everything(tmp_path, bucket, first + second, "b2")
    assert combined[-1] is not None and len(combined[-1].combined) == 4
    assert _packs(bucket) == [combined[-1].pack]
    assert_bucket_remote_fsck(bucket)


def test_two_machines_combining_at_once(tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One combiner is held between its upload and its deletions while a pusher adds a
    pack and a second combiner runs to the end: the first deletes only packs it listed,
    and nothing is lost."""
    from casstore.remote.bucket import combine  # where MAX_SMALL_PACKS is read

    monkeypatch.setattr(combine, "MAX_SMALL_PACKS", 1000)
    a, _ = _stores(tmp_path)
    ids = [f"m{i}" for i in range(6)]
    _push_models(a, tmp_path, bucket, ids)
    listed = _packs(bucket)
    first, second = bucket_client(bucket), bucket_client(bucket)
    uploaded, go_on = threading.Event(), threading.Event()
    deleted: list[str] = []
    real_delete = first._delete

    def held_delete(key: str) -> None:
        uploaded.set()
        assert go_on.wait(60)
        deleted.append(key.rsplit("/", 1)[-1].rsplit(".", 1)[0])
        real_delete(key)

    first._delete = held_delete  # type: ignore[method-assign]
    results: list[combine.CombineResult | None] = []
    thread = threading.Thread(target=lambda: results.append(first.combine_packs(force=True)))
    thread.start()
    try:
        assert uploaded.wait(60)
        _push_models(a, tmp_path, bucket, ["late"])  # a pusher, between the first's upload and deletions
        late = sorted(set(_packs(bucket)) - set(listed))
        assert len(late) == 2  # the late push's pack and the first combiner's
        other = second.combine_packs(force=True)
        assert other is not None and sorted(other.combined) == sorted(listed + late)
    finally:
        go_on.set()
        thread.join()
    assert results[0] is not None and sorted(results[0].combined) == listed
    assert set(deleted) == set(listed)  # never the late pack, nor its own
    assert _packs(bucket) == [other.pack]
    _assert_pulls_everything(tmp_path, bucket, [*ids, "late"])
    assert_bucket_remote_fsck(bucket)


def test_a_combine_killed_between_upload_and_delete(tmp_path: Path, bucket: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A combining process killed after publishing its pack, before deleting: duplicates
    only, every model pulls, and the next combine removes them."""
    from casstore.remote.bucket import combine  # where MAX_SMALL_PACKS is read
    from tests.conftest import run_py

    monkeypatch.setattr(combine, "MAX_SMALL_PACKS", 4)
    a, _ = _stores(tmp_path)
    ids = [f"m{i}" for i in range(4)]
    _push_models(a, tmp_path, bucket, ids)
    before = _packs(bucket)
    killed = run_py("import os, sys\n"
                    "from casstore.remote.transports import open_bucket\n"
                    "client = open_bucket(sys.argv[1], cache_dir=sys.argv[2])\n"
                    "client._delete = lambda key: os._exit(9)\n"
                    "client.combine_packs(force=True)\n", bucket, str(tmp_path / "killed-cache"))
    assert killed.returncode == 9, killed.stderr
    after = _packs(bucket)
    assert len(after) == 5 and set(before) < set(after)  # the combined pack next to the old ones
    _assert_pulls_everything(tmp_path, bucket, ids)
    _push_models(a, tmp_path, bucket, ["next"])  # six small packs > 4: this push combines them
    (final,) = _packs(bucket)
    assert final not in after
    _assert_pulls_everything(tmp_path, bucket, [*ids, "next"], "fresh2")
    assert_bucket_remote_fsck(bucket)


def test_a_failed_combine_does_not_fail_the_push(tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    from casstore.remote.bucket import combine  # where MAX_SMALL_PACKS is read

    monkeypatch.setattr(combine, "MAX_SMALL_PACKS", 2)
    a, _ = _stores(tmp_path)
    _push_models(a, tmp_path, bucket, ["m0", "m1"])

    def broken(self: BucketClient, small: list, work: str) -> tuple[str, int]:  # type: ignore[type-arg]
        raise RemoteError(self.url, "the service went away")

    monkeypatch.setattr(BucketClient, "_write_combined", broken)
    with caplog.at_level("WARNING", logger="casstore"):
        _push_models(a, tmp_path, bucket, ["m2"])
    assert "combining small packs failed" in caplog.text and "went away" in caplog.text
    assert len(_packs(bucket)) == 3
    _assert_pulls_everything(tmp_path, bucket, ["m0", "m1", "m2"])


def test_a_pack_twice_as_big_as_the_smaller_ones_together_is_not_rewritten(
        tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The geometric rule: combining leaves a big pack alone, so early pushes are not
    rewritten by every combine."""
    from casstore.remote.bucket import combine  # where MAX_SMALL_PACKS is read

    monkeypatch.setattr(combine, "MAX_SMALL_PACKS", 3)
    a, _ = _stores(tmp_path)
    _commit_random(a, tmp_path / "big.bin", 200_000, "big")
    assert a.push(bucket).ok
    (big,) = _packs(bucket)
    _push_models(a, tmp_path, bucket, ["s0", "s1", "s2"])  # the fourth small pack: a combine
    after = _packs(bucket)
    assert len(after) == 2 and big in after
    _assert_pulls_everything(tmp_path, bucket, ["big", "s0", "s1", "s2"])
