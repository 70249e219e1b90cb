"""Maintenance on a store in use: gc's report, gc against steady writers, fsck during commits.

Issue 21 items 7-9.  The concurrency tests run real ``cas`` processes against one store,
bounded in count and time, and poll with timeouts (never assert at once).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

import casstore
from tests.conftest import write_random
from tests.helpers.cli import cas

# -- item 9: gc says what the grace period kept, and grace= works from Python -------


def test_gc_after_rm_says_what_the_grace_period_kept(tmp_path: Path) -> None:
    """Regression: `cas gc` after `cas rm` printed "freed 0 B" and nothing about why."""
    store = tmp_path / "store"
    cas("init", str(store))
    f = tmp_path / "model.onnx"
    write_random(f, 300_000)
    cas("commit", "fraud", str(f), "--id", "v1", store=store)
    cas("rm", "fraud", "v1", store=store)
    r = cas("gc", store=store)
    lines = r.stdout.splitlines()
    assert lines[0].endswith("freed 0 B"), r.stdout
    m = lines[1]  # the deleted model is kept whole for the grace period, restorable (cas restore)
    assert m.startswith("kept 1 deleted model (") and "deleted less than the grace period (2w) ago" in m, m
    assert "KiB" in m and "`cas restore`" in m and "`cas gc --grace now` frees them now" in m, m
    doc = json.loads(cas("gc", "--grace", "1d", "--json", store=store).stdout)
    assert doc["models_kept_restorable"] == 1 and doc["bytes_kept_deleted"] >= 250_000, doc
    assert doc["grace_period"] == 86400 and doc["bytes_freed"] == 0
    # following the advice frees it, and then nothing more is kept
    r = cas("gc", "--grace", "now", store=store)
    assert "kept" not in r.stdout and not r.stdout.endswith("freed 0 B\n"), r.stdout
    assert json.loads(cas("gc", "--grace", "never", "--json", store=store).stdout)["grace_period"] is None


def test_store_gc_takes_grace_as_the_cli_names_it(store: casstore.Store, tmp_path: Path) -> None:
    """Regression: ``store.gc(grace=...)`` raised TypeError (the parameter was grace_period only)."""
    f = tmp_path / "m.bin"
    write_random(f, 100_000)
    store.commit_models("d", model=str(f), model_id="v1")
    store.delete_model("d", "v1")
    kept = store.gc(grace="2w")  # the deleted model is kept whole: restorable for two weeks
    assert kept.objects_removed == 0 and kept.models_kept_restorable == 1 and kept.bytes_kept_deleted >= 90_000
    assert store.gc(grace=math.inf).models_kept_restorable == 1
    assert store.gc(grace_period=3600.0).objects_removed == 0  # the old name still works
    with pytest.raises(TypeError, match="not both"):
        store.gc(grace=0, grace_period=0)
    freed = store.gc(grace="now")
    assert freed.objects_removed == kept.objects_kept_deleted and freed.models_kept_restorable == 0
    assert freed.objects_kept_young == 0
    assert store.fsck().ok


# -- item 8: gc gets its turn on a store that writers keep busy -----------------------

WRITER = r"""
import os, sys, time
import casstore
store, tag, model, stop, limit, mode = *sys.argv[1:5], float(sys.argv[5]), sys.argv[6]
s = casstore.open(store)
deadline = time.monotonic() + limit
i = 0
while not os.path.exists(stop) and time.monotonic() < deadline:
    if mode == "varied":  # new bytes each time: new packs, and the roll-ups that follow them
        with open(model, "wb") as f:
            f.write(os.urandom(30_000))
    s.commit_models("d", model=model, model_id=f"{tag}-{i}")
    if mode == "varied" and i % 3 == 2:
        s.delete_model("d", f"{tag}-{i - 1}")
        print(f"deleted {tag}-{i - 1}", flush=True)
    i += 1
    print(i, flush=True)
"""


class Writers:
    """Real processes committing small models in loops until told to stop (or ``limit`` seconds)."""

    def __init__(self, tmp_path: Path, store: Path, n: int, limit: float = 90.0, mode: str = "same") -> None:
        self.stop = tmp_path / "stop"
        models = [tmp_path / f"small{k}.bin" for k in range(n)]
        for m in models:
            write_random(m, 20_000)
        self.outs = [(tmp_path / f"writer{k}.out").open("w+") for k in range(n)]
        self.procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store), f"w{k}", str(models[k]),
                                        str(self.stop), str(limit), mode],
                                       stdout=out, stderr=subprocess.STDOUT, text=True)
                      for k, out in enumerate(self.outs)]

    def counts(self) -> list[int]:
        out = []
        for f in self.outs:
            f.seek(0)
            lines = [x for x in f.read().splitlines() if x.isdigit()]
            out.append(int(lines[-1]) if lines else 0)
        return out

    def wait_for(self, each: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while min(self.counts()) < each:
            assert all(p.poll() is None for p in self.procs), self.output()
            assert time.monotonic() < deadline, f"writers too slow: {self.counts()}"
            time.sleep(0.1)

    def output(self) -> str:
        """The last lines each writer printed; readable after ``finish`` closed the files too."""
        texts = []
        for f in self.outs:
            if f.closed:
                texts.append(Path(f.name).read_text(errors="replace"))
            else:
                f.seek(0)
                texts.append(f.read())
        return "\n".join(f"--- writer {k} (exit {p.returncode}):\n{t[-2000:]}"
                         for k, (t, p) in enumerate(zip(texts, self.procs, strict=True)))

    def finish(self) -> list[int]:
        self.stop.touch()
        for p in self.procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        counts = self.counts()
        for f in self.outs:
            f.close()
        return counts


def test_gc_gets_its_turn_between_steady_writers(tmp_path: Path) -> None:
    """Regression: two processes committing in loops kept the store lock shared for good; gc --wait gave up."""
    store = tmp_path / "store"
    cas("init", str(store))
    writers = Writers(tmp_path, store, 2)
    try:
        writers.wait_for(3)
        before = writers.counts()
        t0 = time.monotonic()
        r = cas("gc", "--grace", "now", "--wait", "20s", store=store, check=None)
        took = time.monotonic() - t0
        assert r.returncode == 0, (r.stdout, r.stderr, writers.counts())
        assert took < 20, took
        print(f"gc took {took:.1f}s with writers at {before} -> {writers.counts()}")
        # and the writers go on after it: they waited for gc, they were not refused
        writers.wait_for(max(before) + 3)
    finally:
        counts = writers.finish()
    assert all(p.returncode == 0 for p in writers.procs), writers.output()
    s = casstore.open(store)
    assert sorted(s.list_models("d")) == sorted(f"w{k}-{i}" for k, n in enumerate(counts) for i in range(n))
    assert s.fsck().ok


# -- item 7: fsck on a store in use reports only real problems -----------------------


def test_fsck_during_commits_and_deletes_raises_no_false_alarm(tmp_path: Path) -> None:
    """Regression: fsck during commits said "history lists cN, which has no model ref" (exit 1) in about
    half the runs, and exited 2 when a pack roll-up removed an .idx it was reading."""
    store = tmp_path / "store"
    cas("init", str(store))
    writers = Writers(tmp_path, store, 2, mode="varied")
    reports: list[tuple[int, str]] = []
    try:
        writers.wait_for(2)
        deadline = time.monotonic() + 45
        while len(reports) < 20 and time.monotonic() < deadline:
            read_data = ["--read-data"] if len(reports) % 3 == 2 else []
            r = cas("fsck", *read_data, store=store, check=None)
            reports.append((r.returncode, r.stdout + r.stderr))
        moved = writers.counts()
    finally:
        counts = writers.finish()
    assert all(p.returncode == 0 for p in writers.procs), writers.output()
    assert len(reports) >= 5 and min(moved) >= 4, (len(reports), moved)
    print(f"{len(reports)} fsck runs while the writers went from 2 to {moved} commits each")
    bad = [(rc, out) for rc, out in reports if rc != 0 or "problem" in out]
    assert not bad, f"{len(bad)} of {len(reports)} fsck runs during commits failed: {bad[:3]}"
    s = casstore.open(store)
    assert sum(counts) > 0 and s.fsck().ok
    assert s.fsck().ok


def test_bulk_tree_read_falls_back_when_a_rollup_removed_an_index_not_yet_loaded(tmp_path: Path) -> None:
    """Regression: fsck during commits said "history d: corrupt object ...: does not parse: 'None' is
    not an instance of 'bytes'": a reader that listed the packs before another process's roll-up
    deleted them failed to load a listed pack's ``.idx`` and dropped the tree instead of reading it
    from the rolled-up pack."""
    from dulwich.objects import Blob, Tree

    from casstore.objects.bulkread import read_trees
    from casstore.objects.maintenance import copy_packs

    writer = casstore.open(tmp_path / "store")
    ids = []
    for k in range(2):  # two packs, one tree each
        with writer.odb.deferred():
            t = Tree()
            t.add(b"f%d" % k, 0o100644, writer.odb.write_loose(Blob.from_string(b"blob %d" % k)))
            ids.append(writer.odb.write_loose(t))
    packs = sorted(p.stem for p in (tmp_path / "store").rglob("pack-*.idx"))
    assert len(packs) == 2
    reader = casstore.open(tmp_path / "store")
    reader.odb.rescan_packs()  # the reader lists both packs; dulwich loads an .idx at its first lookup
    new, _ = copy_packs(writer.repo, packs)  # the roll-up: one new pack, the two listed ones deleted
    assert new is not None and new not in packs
    assert read_trees(reader.odb, ids) == [reader.odb.read_raw(i)[1] for i in ids]
    assert reader.fsck().ok


def test_a_read_finds_an_object_another_process_packs_while_it_looks(tmp_path: Path) -> None:
    """Regression: fsck during commits said "history d: corrupt object ...: object is missing": dulwich
    looks in the packs, then in the loose objects, and another process's pack_loose moved a delete's
    loose history objects into a new pack between the two looks."""
    from dulwich.objects import Blob

    from casstore.objects.maintenance import pack_loose

    writer = casstore.open(tmp_path / "store")
    oid = writer.odb.write_loose(Blob.from_string(b"a delete's history tree"))  # not deferred: loose
    reader = casstore.open(tmp_path / "store")
    reader.odb.rescan_packs()
    look_loose = reader.odb.store._get_loose_object
    moved = []

    def other_process_packs_first(sha: bytes) -> object:  # the other process's real pack_loose, just then
        if not moved:
            moved.append(pack_loose(writer.repo))
        return look_loose(sha)

    reader.odb.store._get_loose_object = other_process_packs_first  # type: ignore[method-assign]
    assert reader.odb.read_raw(oid) == (Blob.type_num, b"a delete's history tree")
    assert moved == [1]
    assert reader.fsck().ok


GC_WAITER = r"""
import sys, time
from casstore.util.locking import yielding_lock
with yielding_lock(sys.argv[1], exclusive=True, timeout=60):
    print("got it", flush=True)
"""


def test_a_writer_nested_in_its_own_shared_hold_does_not_queue_behind_gc(tmp_path: Path) -> None:
    """While gc waits (in another process), a writer that already holds the store lock may take it again:
    queueing behind gc would wait for a gc that waits for it."""
    from casstore.util.locking import lock_holders, queue_lock_path, yielding_lock

    lock = str(tmp_path / "cas" / "gc.lock")
    with yielding_lock(lock):
        gc = subprocess.Popen([sys.executable, "-c", GC_WAITER, lock], stdout=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not any(f"pid {gc.pid}" in h for h in lock_holders(queue_lock_path(lock))):
                assert time.monotonic() < deadline and gc.poll() is None, "gc never queued"
                time.sleep(0.05)
            t0 = time.monotonic()
            with yielding_lock(lock, timeout=10):  # nested: must not wait for gc
                assert time.monotonic() - t0 < 5
            # a writer of another process queues behind gc instead
            other = subprocess.run([sys.executable, "-c", "import sys\nfrom casstore.util.locking import "
                                    "yielding_lock\nwith yielding_lock(sys.argv[1], timeout=0.5): pass", lock],
                                   capture_output=True, text=True, timeout=60)
            assert other.returncode != 0 and "StoreBusyError" in other.stderr, other.stderr
            assert gc.poll() is None  # gc still waits for us
        except BaseException:
            gc.kill()
            raise
    assert gc.stdout is not None and gc.stdout.readline().strip() == "got it"
    assert gc.wait(timeout=30) == 0
