"""Races, interrupts, full disks and big files: the store stays consistent."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import casstore
from tests.conftest import assert_git_fsck, run_py, write_random

RACE = r"""
import sys, time, os, casstore
store_path, go, payload, out = sys.argv[1:5]
s = casstore.open(store_path)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
try:
    s.commit_models("race", model=payload, model_id="same")
    print("WON")
except casstore.ModelExistsException:
    print("LOST")
"""


def test_racing_commits_of_one_id_exactly_one_wins(tmp_path: Path) -> None:
    store = casstore.open(tmp_path / "store")
    go = tmp_path / "go"
    procs = []
    payloads = []
    for i in range(6):
        p = tmp_path / f"payload{i}.bin"
        payloads.append(write_random(p, 200_000 + i, seed=i))
        procs.append(subprocess.Popen([sys.executable, "-c", RACE, store.path, str(go), str(p), ""],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:  # every process has imported casstore and waits at the line (however long that took)
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n", proc.communicate(timeout=120)
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    outs = [o.strip() for o, _ in results]
    assert outs.count("WON") == 1, results
    assert outs.count("LOST") == 5, results
    winner = outs.index("WON")
    s2 = casstore.open(store.path)
    assert Path(s2.load("race", "same")).read_bytes() == payloads[winner]
    assert [e.model_id for e in s2.log("race")] == ["same"]
    assert s2.fsck(read_data=True).ok
    assert_git_fsck(store.path)


CONCURRENT = r"""
import sys, casstore
s = casstore.open(sys.argv[1])
for i in range(5):
    s.commit_models("busy", model=sys.argv[2], model_id=f"{sys.argv[3]}-{i}")
"""


def test_concurrent_commits_of_different_ids_all_land(tmp_path: Path) -> None:
    store = casstore.open(tmp_path / "store")
    f = tmp_path / "m.bin"
    write_random(f, 100_000)
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, store.path, str(f), f"p{i}"])
             for i in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert len(store.list_models("busy")) == 20
    assert len(store.log("busy")) == 20  # no history event lost to a race
    assert store.fsck().ok
    assert_git_fsck(store.path)


MEASURE = r"""
import sys, json, casstore
op, store_path, arg = sys.argv[1:4]
s = casstore.open(store_path)
if op == "commit":
    meta = s.commit_models("big", model=arg, model_id="big")
else:
    s.download(arg, "big", "big")
# VmHWM is this address space's peak RSS; ru_maxrss would carry over the parent's peak across exec
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(json.dumps({"maxrss_mib": int(hwm.split()[1]) / 1024}))
"""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


@pytest.mark.parametrize("threads", ["1", "2", "8"])
def test_commit_and_download_stream_in_bounded_memory(tmp_path: Path, threads: str) -> None:
    """A 1 GiB file: peak RSS of commit and download stays far below its size.

    Also with CPU contention (8 threads on 2 cores, and the rest of the suite
    running beside it): no queue may grow with the file size.
    """
    src = tmp_path / "weights.bin"
    with open(src, "wb") as f:
        import numpy as np

        rng = np.random.default_rng(5)
        for _ in range(64):  # 1 GiB in 16 MiB pieces, half compressible
            f.write(rng.bytes(8 << 20) + bytes(8 << 20))
    store = tmp_path / "store"
    casstore.open(store)
    r = run_py(MEASURE, "commit", str(store), str(src), env={"CAS_THREADS": threads})
    assert r.returncode == 0, r.stderr
    commit_rss = json.loads(r.stdout)["maxrss_mib"]
    assert commit_rss < 300, commit_rss
    out = tmp_path / "out"
    r = run_py(MEASURE, "download", str(store), str(out), env={"CAS_THREADS": threads})
    assert r.returncode == 0, r.stderr
    download_rss = json.loads(r.stdout)["maxrss_mib"]
    assert _sha256(out / "weights.bin") == _sha256(src)
    assert download_rss < 300, download_rss


INTERRUPTIBLE = r"""
import sys, casstore
s = casstore.open(sys.argv[1])
print("start", flush=True)
s.commit_models("d", model=sys.argv[2], model_id="v1")
print("done", flush=True)
"""


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0])
def test_ctrl_c_mid_commit_leaves_store_consistent(tmp_path: Path, delay: float) -> None:
    src = tmp_path / "big.bin"
    write_random(src, 512 << 20, seed=9)
    store = casstore.open(tmp_path / "store")
    p = subprocess.Popen([sys.executable, "-c", INTERRUPTIBLE, store.path, str(src)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "start"
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    s2 = casstore.open(store.path)
    if "done" in out:  # the commit won the race against the signal: it must be whole
        assert s2.fsck(read_data=True).ok
        return
    assert "KeyboardInterrupt" in err
    assert not s2.model_exists("d", "v1")
    dirs = ("objects/pack", "cas/tmp", "cas/chunkidx")
    leftovers = [f for d in dirs for f in os.listdir(os.path.join(store.path, d))]
    # Stopped after its pack was published (.idx in place), the commit leaves that pack:
    # other commits may already deduplicate against it, so only gc may remove it.
    published = {f[: -len(".idx")] for f in leftovers if f.endswith(".idx")}
    assert all(f.rsplit(".", 1)[0] in published for f in leftovers), leftovers
    if published:
        s2.gc(grace_period=0)
        assert [f for d in dirs for f in os.listdir(os.path.join(store.path, d))] == []
    assert s2.fsck().ok
    assert_git_fsck(store.path)
    # and the same ID can be committed afterwards
    s2.commit_models("d", model=str(src), model_id="v1")
    assert s2.fsck().ok


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")
def test_full_disk_gives_clear_error_and_loses_nothing(tmp_path: Path, forest: tuple) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    try:
        store = casstore.open(mnt / "store")
        store.commit_models("d", model=forest[0], model_id="ok")
        big = tmp_path / "big.bin"
        write_random(big, 16 << 20)
        with pytest.raises(OSError, match="No space left") as ei:
            store.commit_models("d", model=str(big), model_id="too-big")
        assert str(store.path) in str(ei.value)
        assert not store.model_exists("d", "too-big")
        assert store.list_models("d") == ["ok"]
        assert store.fsck(read_data=True).ok
        assert [f for f in os.listdir(mnt / "store" / "objects" / "pack") if f.startswith("tmp_")] == []
        assert_git_fsck(store.path)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_file_changed_during_commit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytes that changed between hashing and storing would not match their keys: refused."""
    from casstore.model.ingest import SourceChangedError

    store = casstore.open(tmp_path / "store")
    src = tmp_path / "w.bin"
    write_random(src, 4 << 20, seed=11)
    lookup = store.odb.index.lookup

    def lookup_then_edit(keys):  # type: ignore[no-untyped-def]
        result = lookup(keys)
        with open(src, "r+b") as f:  # the user's training job rewrites the file meanwhile
            f.seek(1 << 20)
            f.write(b"\x00" * 4096)
        return result

    monkeypatch.setattr(store.odb.index, "lookup", lookup_then_edit)
    with pytest.raises(SourceChangedError, match="changed while it was being committed"):
        store.commit_models("d", model=str(src), model_id="v1")
    assert not store.model_exists("d", "v1")
    assert [f for f in os.listdir(os.path.join(store.path, "objects", "pack")) if f.startswith("tmp_")] == []
    monkeypatch.undo()
    store.commit_models("d", model=str(src), model_id="v1")  # the file as it is now
    assert Path(store.load("d", "v1")).read_bytes() == src.read_bytes()
    assert store.fsck(read_data=True).ok
