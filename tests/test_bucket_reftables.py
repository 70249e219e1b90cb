"""Bucket remotes of format 2: refs in ref tables (casstore/remote/reftable.py, docs/format.md).

On every bucket kind (moto, fake-gcs-server, Azurite): racing clients, stale
compare-and-swaps, hostile tables, partial pulls, the upgrade from format 1 and
a real format-1 client (casstore's code before ref tables) next to a new one.
Request counts are checked on moto, where boto3 reports each request it sends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import casstore
from casstore import CorruptObjectError
from casstore.errors import RemoteError
from casstore.remote.bucket import BucketClient
from casstore.remote.reftable import ROOT_KEY, TABLES, DomainTable, RootTable, digest
from tests.conftest import (
    assert_bucket_remote_fsck,
    assert_git_fsck,
    bucket_client,
    bucket_objects,
    bucket_refs,
    delete_bucket_object,
    make_per_ref_remote,
    put_bucket_object,
    run_py,
)
from tests.helpers.remotes import count_table_reads
from tests.helpers.stores import _commit_random, _snapshot, _stores

#: the last commit whose bucket remotes held one object per ref (format 1): the "old client"
FORMAT_1_COMMIT = "b9fddb6"
CLI = "import sys; from casstore.cli import main; sys.exit(main(sys.argv[1:]))"




def test_a_new_remote_holds_ref_tables(tmp_path: Path, bucket: str) -> None:
    a, b = _stores(tmp_path)
    _commit_random(a, tmp_path / "m.bin", 1000, "m")
    _commit_random(a, tmp_path / "n.bin", 1000, "n", domain="e")
    assert a.push(bucket).ok
    objects = bucket_objects(bucket)
    assert objects["casstore-remote"] == b"casstore-remote 2\n"
    assert not [k for k in objects if k.startswith("refs/")]  # no object per ref
    root = RootTable.decode(objects[ROOT_KEY], "root")
    assert sorted(root.domains) == ["d", "e"]
    for name in root.domains.values():
        assert digest(objects[TABLES + name]) == name
    assert bucket_refs(bucket)["refs/cas/models/e/n"].encode() == a.refs.get(b"refs/cas/models/e/n")
    assert sorted(b.pull(bucket).models_added) == ["d/m", "e/n"]
    a.delete_model("d", "m")
    assert a.push(bucket).models_deleted == ["d/m"]
    assert b.pull(bucket).models_deleted == ["d/m"]
    assert "refs/cas/models/d/m" not in bucket_refs(bucket)
    assert_bucket_remote_fsck(bucket)


def test_racing_pushes_of_one_id_exactly_one_wins(tmp_path: Path, bucket: str) -> None:
    """Four stores push a different model under the same ID at the same moment: the
    root's compare-and-swap lets exactly one in; the others are told the ID exists."""
    stores = [casstore.open(tmp_path / f"s{i}") for i in range(4)]
    for i, s in enumerate(stores):
        _commit_random(s, tmp_path / f"{i}.bin", 2000, "race")
    seed = casstore.open(tmp_path / "seed")  # the bucket made, so that the racers' first requests overlap
    _commit_random(seed, tmp_path / "seed.bin", 100, "seed", domain="other")
    assert seed.push(bucket).ok
    barrier = threading.Barrier(len(stores))
    results: dict[int, casstore.SyncResult] = {}

    def push(i: int) -> None:
        barrier.wait()
        results[i] = stores[i].push(bucket)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == len(stores)
    winners = [i for i, r in results.items() if r.ok]
    assert len(winners) == 1, {i: r.rejected for i, r in results.items()}
    for i, r in results.items():
        if i not in winners:
            assert "already exists" in r.rejected["refs/cas/models/d/race"], r
    won = stores[winners[0]].refs.get(b"refs/cas/models/d/race")
    assert bucket_refs(bucket)["refs/cas/models/d/race"].encode() == won
    fresh = casstore.open(tmp_path / "fresh")
    assert sorted(fresh.pull(bucket).models_added) == ["d/race", "other/seed"]
    assert fresh.refs.get(b"refs/cas/models/d/race") == won
    assert_bucket_remote_fsck(bucket)


def test_a_push_that_read_a_stale_root_is_decided_again(tmp_path: Path, bucket: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The root moved between our read and our swap (another client pushed another
    domain and another model of ours): the swap fails, the push reads again and lands
    everything that does not conflict."""
    a, b = _stores(tmp_path)
    _commit_random(a, tmp_path / "one.bin", 1000, "one")
    assert a.push(bucket).ok
    assert b.pull(bucket).ok
    _commit_random(a, tmp_path / "two.bin", 1000, "two")
    _commit_random(b, tmp_path / "x.bin", 1000, "x", domain="e")
    real = BucketClient.read_root
    pushed_meanwhile: list[bool] = []

    def stale(self: BucketClient, fresh: bool = False) -> tuple[RootTable, str | None]:
        got = real(self, fresh)
        if not pushed_meanwhile:
            pushed_meanwhile.append(True)
            with monkeypatch.context() as m:
                m.setattr(BucketClient, "read_root", real)
                assert a.push(bucket).models_added == ["d/two"]
        return got

    with monkeypatch.context() as m:
        m.setattr(BucketClient, "read_root", stale)
        result = b.push(bucket)
    assert result.ok and result.models_added == ["e/x"], result
    refs = bucket_refs(bucket)
    assert {"refs/cas/models/d/one", "refs/cas/models/d/two", "refs/cas/models/e/x"} <= set(refs)
    fresh = casstore.open(tmp_path / "c")
    assert sorted(fresh.pull(bucket).models_added) == ["d/one", "d/two", "e/x"]
    assert [e.model_id for e in fresh.log("d")] == ["two", "one"]
    assert_bucket_remote_fsck(bucket)


def test_hostile_ref_tables_change_nothing_locally(tmp_path: Path, bucket: str) -> None:
    a, b = _stores(tmp_path)
    _commit_random(a, tmp_path / "m.bin", 3000, "m")
    _commit_random(b, tmp_path / "mine.bin", 1000, "keep", domain="mine")
    assert a.push(bucket).ok
    objects = bucket_objects(bucket)
    root = RootTable.decode(objects[ROOT_KEY], "root")
    name = root.domains["d"]
    table = DomainTable.decode(objects[TABLES + name], "d", name)
    before = _snapshot(b)

    def refused(key: str, data: bytes, match: str, error: type[Exception] = CorruptObjectError) -> None:
        put_bucket_object(bucket, key, data)
        with pytest.raises(error, match=match):
            b.pull(bucket)
        assert _snapshot(b) == before
        put_bucket_object(bucket, key, objects[key])

    # a table altered under its name; a root naming a table of another domain; bad names
    refused(TABLES + name, objects[TABLES + name] + b"model evil " + b"1" * 40 + b"\n", "does not hash")
    evil = DomainTable("other", table.history, table.models).encode()
    put_bucket_object(bucket, TABLES + digest(evil), evil)
    refused(ROOT_KEY, RootTable(None, {"d": digest(evil)}).encode(), "for domain 'd'")
    bad = objects[TABLES + name].replace(b"model m ", b"model ../../m ")
    put_bucket_object(bucket, TABLES + digest(bad), bad)
    refused(ROOT_KEY, RootTable(None, {"d": digest(bad)}).encode(), "bad ref name")
    refused(ROOT_KEY, objects[ROOT_KEY].replace(b"domain d ", b"domain ../d "), "bad ref name")
    refused(ROOT_KEY, b"casstore-reftable-root 1\ndomain d " + b"0" * 64 + b"\n", "not there", Exception)
    refused(ROOT_KEY, b"<html>not a table</html>", "not a ref table")
    assert sorted(b.pull(bucket).models_added) == ["d/m"]  # the bucket repaired: the same pull completes
    assert b.fsck(read_data=True).ok


def test_partial_pull_reads_only_its_domains(tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cas pull REMOTE DOMAIN`: only that domain's table is read, and only its models come."""
    a, b = _stores(tmp_path)
    for d in ("d1", "d2", "d3"):
        _commit_random(a, tmp_path / f"{d}.bin", 1000, "m", domain=d)
    assert a.push(bucket).ok
    read = count_table_reads(monkeypatch)
    r = run_py(CLI, "pull", bucket, "d2", env={"CAS_STORE": b.path})
    assert r.returncode == 0, r.stderr
    assert b.list_domains() == ["d2"]
    assert b.pull(bucket, ["d3"]).models_added == ["d3/m"]
    assert read == ["d3"]
    assert sorted(b.list_domains()) == ["d2", "d3"]


# -- the format-1 client, and the upgrade -----------------------------------------------


@contextmanager
def _format_1_client(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a casstore from before ref tables (its source at FORMAT_1_COMMIT)."""
    root = Path(__file__).resolve().parents[1]
    tree = tmp_path / "old-casstore"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(root), "archive", FORMAT_1_COMMIT, "casstore"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    assert b"FORMAT = 1\n" in (tree / "casstore/remote/bucket.py").read_bytes()
    yield {"PYTHONPATH": str(tree)}


def _cas(env: dict[str, str], store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI of the casstore on ``env``'s PYTHONPATH (run from elsewhere: ``-c`` puts the cwd first)."""
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env, "CAS_STORE": str(store)}, cwd=store.parent, check=False)


def test_an_old_and_a_new_client_then_the_upgrade(tmp_path: Path, bucket: str) -> None:
    """A format-1 remote used by an old casstore and a new one together; `cas remote
    upgrade` converts it in place; the old client is then refused with a clear error,
    and nothing pushed by either is lost."""
    new_env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with _format_1_client(tmp_path) as old_env:
        old, new = tmp_path / "old", tmp_path / "new"
        (tmp_path / "m1.bin").write_bytes(os.urandom(5000))
        (tmp_path / "m2.bin").write_bytes(os.urandom(5000))
        assert _cas(old_env, old, "init").returncode == 0
        r = _cas(old_env, old, "commit", "d", str(tmp_path / "m1.bin"), "--id", "m1")
        assert r.returncode == 0, r.stderr
        r = _cas(old_env, old, "push", bucket)
        assert r.returncode == 0, r.stderr
        assert bucket_objects(bucket)["casstore-remote"] == b"casstore-remote 1\n"
        n = casstore.open(new)
        assert n.pull(bucket).models_added == ["d/m1"]  # the new client reads format 1...
        n.commit_models("d", model=str(tmp_path / "m2.bin"), model_id="m2")
        assert n.push(bucket).models_added == ["d/m2"]  # ...and writes it, one object per ref
        assert "refs/cas/models/d/m2" in bucket_objects(bucket)
        r = _cas(old_env, old, "pull", bucket)
        assert r.returncode == 0 and "1 model added" in r.stdout, r.stdout + r.stderr

        r = _cas(new_env, new, "remote", "upgrade", bucket, "--settle", "0")
        assert r.returncode == 0 and "format 1 -> 2" in r.stdout and "3 refs" in r.stdout, r.stdout + r.stderr
        objects = bucket_objects(bucket)
        assert objects["casstore-remote"] == b"casstore-remote 2\n"
        assert not [k for k in objects if k.startswith("refs/")]
        for verb in ("pull", "push"):
            r = _cas(old_env, old, verb, bucket)
            assert r.returncode != 0 and "newer casstore" in r.stderr, r.stderr
        assert n.pull(bucket).ok
        (tmp_path / "m3.bin").write_bytes(os.urandom(5000))
        n.commit_models("d", model=str(tmp_path / "m3.bin"), model_id="m3")
        assert n.push(bucket).models_added == ["d/m3"]
        fresh = casstore.open(tmp_path / "fresh")
        assert sorted(fresh.pull(bucket).models_added) == ["d/m1", "d/m2", "d/m3"]
        assert [e.model_id for e in fresh.log("d")] == ["m3", "m2", "m1"]
        assert fresh.fsck(read_data=True).ok
        assert_git_fsck(fresh.path)
        r = _cas(new_env, new, "remote", "upgrade", bucket, "--settle", "0")
        assert r.returncode == 0 and "already format 2" in r.stdout, r.stdout + r.stderr
    assert_bucket_remote_fsck(bucket)


def test_an_upgrade_folds_in_a_late_format_1_write(tmp_path: Path, bucket: str) -> None:
    """A format-1 push that read the marker before the upgrade wrote its ref after: the
    remote has both; running the upgrade again folds it in, and a conflicting value is
    left in place and reported."""
    make_per_ref_remote(bucket)
    a, b = _stores(tmp_path)
    _commit_random(a, tmp_path / "m1.bin", 1000, "m1")
    _commit_random(a, tmp_path / "late.bin", 1000, "late")
    assert a.push(bucket).ok
    late = bucket_objects(bucket)["refs/cas/models/d/late"]
    delete_bucket_object(bucket, "refs/cas/models/d/late")  # its objects are there, its ref not yet
    result = bucket_client(bucket).upgrade(settle=0)
    assert result.old_format == 1 and result.refs == 2 and not result.left  # m1 and the history
    put_bucket_object(bucket, "refs/cas/models/d/late", late)  # what the late client wrote
    put_bucket_object(bucket, "refs/cas/models/d/m1", b"1" * 40 + b"\n")  # conflicts with the table
    result = bucket_client(bucket).upgrade(settle=0)
    assert result.refs == 1 and result.left == {"refs/cas/models/d/m1": "1" * 40}, result
    assert bucket_refs(bucket)["refs/cas/models/d/late"].encode() == late.strip()
    delete_bucket_object(bucket, "refs/cas/models/d/m1")
    assert b.pull(bucket, ["d"]).ok and sorted(b.list_models("d")) == ["late", "m1"]
    assert_bucket_remote_fsck(bucket)


def test_a_push_waits_for_an_upgrade_in_progress(tmp_path: Path, bucket: str) -> None:
    """Marker written, root not yet: pulls read the format-1 refs, pushes are refused clearly."""
    make_per_ref_remote(bucket)
    a, b = _stores(tmp_path)
    _commit_random(a, tmp_path / "m1.bin", 1000, "m1")
    assert a.push(bucket).ok
    put_bucket_object(bucket, "casstore-remote", b"casstore-remote 2\n")  # step 1 of an upgrade
    assert b.pull(bucket).models_added == ["d/m1"]
    _commit_random(a, tmp_path / "m2.bin", 1000, "m2")
    with pytest.raises(RemoteError, match="being upgraded"):
        a.push(bucket)
    assert bucket_client(bucket).upgrade(settle=0).refs == 2
    assert a.push(bucket).models_added == ["d/m2"]


def test_requests_per_operation_do_not_grow_with_the_bucket(tmp_path: Path, s3_url: str) -> None:
    """Counted by botocore on moto (every HTTP request): with 5 domains of 4 models or with
    one domain of 1 model, a pull with nothing new costs 2 requests, a push of one model
    7, a pull of it 7 (+ its data), and a warm ModelStore read 2; format 1 grew with every ref."""
    from casstore.remote.s3 import S3Client

    counted: list[int] = []
    client = S3Client(s3_url).s3  # the process's shared client: every S3Client uses it
    hook = lambda **kwargs: counted.append(1)  # noqa: E731
    client.meta.events.register("before-send.s3", hook)

    def cost(fn: object) -> int:
        before = len(counted)
        fn()  # type: ignore[operator]
        return len(counted) - before

    try:
        a, b = _stores(tmp_path)
        for d in range(5):
            for m in range(4):
                _commit_random(a, tmp_path / "x.bin", 500, f"m{m}", domain=f"d{d}")
        assert a.push(s3_url).ok
        assert b.pull(s3_url).ok
        assert cost(lambda: b.pull(s3_url)) == 2  # the marker, and the root answered 304
        _commit_random(a, tmp_path / "x.bin", 500, "new", domain="d3")
        assert cost(lambda: a.push(s3_url)) == 7
        pulled = cost(lambda: b.pull(s3_url))
        assert pulled <= 10, pulled
        assert b.list_models("d3")[0] == "new"
        ms = casstore.ModelStore(casstore.open(tmp_path / "ms"), s3_url)
        assert ms.model_exists("d3", "new")
        assert cost(lambda: ms.get_model_info("d3", "new")) == 2
        assert cost(lambda: ms.list_models("d3")) == 2
        assert cost(lambda: ms.model_exists("d3", "m1")) == 2
        assert sorted(ms.store.list_domains()) == ["d3"]  # only the domain read was pulled
    finally:
        client.meta.events.unregister("before-send.s3", hook)
