"""`cas gc REMOTE` on bucket remotes (BucketClient.gc): what no ref reaches goes, safely.

On every bucket kind (moto, fake-gcs-server, Azurite): bytes freed after deleting
half the models, the grace period, --dry-run, a gc killed at each step, pushes and
pulls running during a gc, and a push that read the root before a gc's epoch swap.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

import casstore
from casstore.errors import RemoteError
from casstore.remote.bucket import BucketClient
from casstore.remote.bucket import gc as bucket_gc  # where STALE_LOCK is read
from casstore.remote.reftable import ROOT_KEY, RootTable
from tests.conftest import (
    assert_bucket_remote_fsck,
    assert_git_fsck,
    bucket_client,
    bucket_objects,
    make_per_ref_remote,
    run_py,
)
from tests.helpers.stores import _commit_random

CLI = "import sys; from casstore.cli import main; sys.exit(main(sys.argv[1:]))"




def _pack_bytes(url: str) -> int:
    return sum(len(v) for k, v in bucket_objects(url).items() if k.startswith("objects/pack/"))


def _fresh_clone_has(tmp_path: Path, url: str, ids: list[str], name: str = "fresh") -> casstore.Store:
    fresh = casstore.open(tmp_path / name)
    result = fresh.pull(url)
    assert result.ok and sorted(result.models_added) == sorted(f"d/{m}" for m in ids), result
    report = fresh.fsck(read_data=True)
    assert report.ok, report.problems
    assert_git_fsck(fresh.path)
    return fresh


def test_deleting_half_the_models_then_gc_frees_their_bytes(tmp_path: Path, bucket: str) -> None:
    """Eight models of 200 KB in one pack; four deleted; `cas gc REMOTE --grace 0` rewrites
    the pack: the bucket then holds within 1.1x the bytes of a fresh push of the four left."""
    a = casstore.open(tmp_path / "a")
    ids = [f"m{i}" for i in range(8)]
    for mid in ids:
        _commit_random(a, tmp_path / f"{mid}.bin", 200_000, mid)
    assert a.push(bucket).ok
    full = _pack_bytes(bucket)
    for mid in ids[::2]:
        a.delete_model("d", mid)
    assert a.push(bucket).ok
    dry = run_py(CLI, "gc", bucket, "--grace", "0", "--dry-run", env={"CAS_STORE": a.path})
    assert dry.returncode == 0 and "would remove" in dry.stdout, dry.stdout + dry.stderr
    assert _pack_bytes(bucket) >= full  # nothing removed by a dry run
    kept = run_py(CLI, "gc", bucket, env={"CAS_STORE": a.path})  # the default grace: two weeks
    assert kept.returncode == 0 and "removed 0 objects" in kept.stdout, kept.stdout + kept.stderr
    r = run_py(CLI, "gc", bucket, "--grace", "0", env={"CAS_STORE": a.path})
    assert r.returncode == 0 and "1 rewritten" in r.stdout, r.stdout + r.stderr
    after = _pack_bytes(bucket)
    _fresh_clone_has(tmp_path, bucket, ids[1::2])
    survivors = casstore.open(tmp_path / "survivors")
    assert survivors.pull(bucket).ok
    other = bucket.rsplit("/", 1)[0] + "/survivors-only"
    assert survivors.push(other).ok
    reference = _pack_bytes(other)
    assert after <= 1.1 * reference, (after, reference, full)
    assert after < 0.6 * full
    again = bucket_client(bucket).gc(0)
    assert not again.packs_deleted and not again.packs_rewritten and again.objects_removed == 0
    assert_bucket_remote_fsck(bucket)


def test_gc_of_a_format_1_remote_asks_for_the_upgrade(tmp_path: Path, s3_url: str) -> None:
    make_per_ref_remote(s3_url)
    a = casstore.open(tmp_path / "a")
    _commit_random(a, tmp_path / "m.bin", 100, "m")
    assert a.push(s3_url).ok
    with pytest.raises(RemoteError, match="remote upgrade"):
        bucket_client(s3_url).gc(0)


@pytest.mark.parametrize("step", ["upload", "swap", "delete"])
def test_a_gc_killed_at_each_step_loses_nothing(tmp_path: Path, bucket: str, step: str) -> None:
    """Killed after publishing its pack, after the epoch swap, or after its first
    deletion: every model still pulls, and the next gc (its lock stale: the holder is a
    dead process of this machine) finishes the work."""
    a = casstore.open(tmp_path / "a")
    ids = [f"m{i}" for i in range(4)]
    for mid in ids:
        _commit_random(a, tmp_path / f"{mid}.bin", 50_000, mid)
    assert a.push(bucket).ok
    a.delete_model("d", "m0")
    assert a.push(bucket).ok
    hook = {
        "upload": "real = client._upload\n"
                  "def hooked(key, path, sent):\n"
                  "    real(key, path, sent)\n"
                  "    if key.endswith('.idx'): os._exit(9)\n"
                  "client._upload = hooked\n",
        "swap": "real = client._put_ref\n"
                "def hooked(key, data, version):\n"
                "    ok = real(key, data, version)\n"
                "    if key.endswith('reftable/root'): os._exit(9)\n"
                "    return ok\n"
                "client._put_ref = hooked\n",
        "delete": "real = client._delete\n"
                  "def hooked(key):\n"
                  "    real(key)\n"
                  "    os._exit(9)\n"
                  "client._delete = hooked\n",
    }[step]
    killed = run_py("import os, sys\n"
                    "from casstore.remote.transports import open_bucket\n"
                    "client = open_bucket(sys.argv[1], cache_dir=sys.argv[2])\n"
                    + hook + "client.gc(0)\n", bucket, str(tmp_path / "killed-cache"))
    assert killed.returncode == 9, killed.stderr
    assert "locks/gc" in bucket_objects(bucket)  # left by the dead process
    _fresh_clone_has(tmp_path, bucket, ids[1:], "after-kill")
    report = bucket_client(bucket).gc(0)
    assert "locks/gc" not in bucket_objects(bucket)
    assert report.objects_removed or step != "upload"
    final = bucket_client(bucket).gc(0)
    assert final.objects_removed == 0 and not final.packs_deleted, final
    _fresh_clone_has(tmp_path, bucket, ids[1:], "after-gc")
    assert_bucket_remote_fsck(bucket)


def test_a_live_lock_is_respected_and_a_stale_one_removed(tmp_path: Path, s3_url: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import put_bucket_object

    a = casstore.open(tmp_path / "a")
    _commit_random(a, tmp_path / "m.bin", 100, "m")
    assert a.push(s3_url).ok
    put_bucket_object(s3_url, "locks/gc", b'{"host": "elsewhere", "pid": 1, "time": %f}' % time.time())
    with pytest.raises(RemoteError, match="another gc holds the lock"):
        bucket_client(s3_url).gc(0)
    monkeypatch.setattr(bucket_gc, "STALE_LOCK", 0.0)
    assert bucket_client(s3_url).gc(0).objects_removed == 0
    assert "locks/gc" not in bucket_objects(s3_url)


def test_a_push_that_read_the_root_before_a_gc_starts_again(tmp_path: Path, bucket: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A gc bumps the root's epoch between a push's read and its swap: the push does not
    swap onto the collected bucket with what it read, it starts again, and lands."""
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    _commit_random(a, tmp_path / "x.bin", 50_000, "x")
    _commit_random(a, tmp_path / "y.bin", 50_000, "y")
    assert a.push(bucket).ok
    a.delete_model("d", "x")
    assert a.push(bucket).ok
    assert b.pull(bucket).ok
    _commit_random(b, tmp_path / "z.bin", 50_000, "z")
    real = BucketClient.read_root
    reads: list[int] = []

    def gc_after_first_read(self: BucketClient, fresh: bool = False) -> tuple[RootTable, str | None]:
        got = real(self, fresh)
        reads.append(got[0].gc)
        if len(reads) == 1:
            with monkeypatch.context() as m:
                m.setattr(BucketClient, "read_root", real)
                assert bucket_client(bucket).gc(0).objects_removed > 0
        return got

    with monkeypatch.context() as m:
        m.setattr(BucketClient, "read_root", gc_after_first_read)
        result = b.push(bucket)
    assert result.ok and result.models_added == ["d/z"], result
    assert reads[0] == 0 and reads[-1] == 1, reads  # read again after the gc, then pushed
    assert RootTable.decode(bucket_objects(bucket)[ROOT_KEY], "root").gc == 1
    _fresh_clone_has(tmp_path, bucket, ["y", "z"])


def test_pushes_and_pulls_during_gcs_lose_nothing(tmp_path: Path, bucket: str) -> None:
    """A pusher adding and deleting models, a puller, and repeated `gc --grace 0`, all at
    once: every model the pusher last reported kept is in a fresh clone, which fsck accepts."""
    pusher, puller = casstore.open(tmp_path / "pusher"), casstore.open(tmp_path / "puller")
    _commit_random(pusher, tmp_path / "seed.bin", 20_000, "seed")
    assert pusher.push(bucket).ok
    stop = threading.Event()
    errors: list[BaseException] = []
    gcs: list[int] = []

    def gc_loop() -> None:
        client = bucket_client(bucket)
        while not stop.is_set():
            try:
                gcs.append(client.gc(0).objects_removed)
            except RemoteError as e:  # another gc's lock: not expected with one collector
                errors.append(e)

    def pull_loop() -> None:
        while not stop.is_set():
            try:
                assert puller.pull(bucket).ok
            except Exception as e:  # noqa: BLE001 - collected and reported below
                errors.append(e)

    threads = [threading.Thread(target=gc_loop), threading.Thread(target=pull_loop)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            _commit_random(pusher, tmp_path / f"p{i}.bin", 20_000, f"p{i}")
            if i % 2:
                pusher.delete_model("d", f"p{i - 1}")
            result = pusher.push(bucket)
            assert result.ok, result
    finally:
        deadline = time.monotonic() + 60
        while len(gcs) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(120)
    assert not errors, errors
    assert len(gcs) >= 2 and sum(gcs) > 0, gcs
    live = sorted(pusher.list_models("d"))
    assert live == ["p1", "p3", "p5", "seed"]
    _fresh_clone_has(tmp_path, bucket, live)
    assert puller.pull(bucket).ok and sorted(puller.list_models("d")) == live
    assert_bucket_remote_fsck(bucket)
    assert os.path.exists(tmp_path / "pusher")


def test_a_pull_racing_a_gc_reads_the_refs_again(tmp_path: Path, bucket: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """b's pull read the refs; before it reads any pack, a deletes a model and a gc with
    grace 0 rewrites the pack without it (the old one deleted): b's pull starts again
    from the new root instead of failing on the objects gone, and gets the model left."""
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    _commit_random(a, tmp_path / "kept.bin", 40_000, "kept")
    _commit_random(a, tmp_path / "doomed.bin", 40_000, "doomed")
    assert a.push(bucket).ok
    real = BucketClient._walk
    raced: list[bucket_gc.BucketGcReport] = []

    def walk_after_a_gc(self: BucketClient, *args: object) -> object:
        if not raced:
            raced.append(bucket_gc.BucketGcReport(bucket))
            a.delete_model("d", "doomed")
            assert a.push(bucket).ok
            raced[0] = bucket_client(bucket).gc(0)
        return real(self, *args)  # type: ignore[arg-type]

    with monkeypatch.context() as m:
        m.setattr(BucketClient, "_walk", walk_after_a_gc)
        pulled = b.pull(bucket)
    assert raced and (raced[0].packs_rewritten or raced[0].packs_deleted), raced
    assert pulled.ok and pulled.models_added == ["d/kept"], pulled
    assert b.fsck(read_data=True).ok
    _fresh_clone_has(tmp_path, bucket, ["kept"])
