"""Refs and histories stay consistent under concurrency and crashes.

gc against writers (every writer holds cas/gc.lock shared), a delete against the
commit of the same ID (the domain lock), damaged refs (gc stops before deleting
anything), writers killed between the model ref and the history append
(reconcile, SIGTERM held back), and gc's grace period and bounded wait.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dulwich.objects import Commit, ObjectID, Tree

import casstore
import casstore.model.commit
from casstore.errors import CorruptRefError, InvalidDurationError, StoreBusyError
from casstore.model.states import STATES_REF
from casstore.objects.refs import domain_ref
from tests.conftest import assert_git_fsck, write_random
from tests.helpers.cli import cas


def _file(tmp_path: Path, name: str, seed: int, size: int = 30_000) -> str:
    p = tmp_path / name
    write_random(p, size, seed=seed)
    return str(p)


def _problems(store: casstore.Store) -> list[str]:
    return [str(p) for p in store.fsck().problems]


def _object_files(store: casstore.Store) -> dict[str, int]:
    out = {}
    for d, _, files in os.walk(os.path.join(store.path, "objects")):
        for f in files:
            out[os.path.relpath(os.path.join(d, f), store.path)] = os.path.getsize(os.path.join(d, f))
    return out


def _wait_for(cond: Callable[[], bool], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


@pytest.fixture
def busy(tmp_path: Path) -> Iterator[casstore.Store]:
    """A store with d/v1 (in state prod) and d/v2, and the state staging."""
    s = casstore.open(tmp_path / "store")
    s.commit_models("d", model=_file(tmp_path, "v1.bin", 1), model_id="v1")
    s.commit_models("d", model=_file(tmp_path, "v2.bin", 2), model_id="v2")
    s.create_model_state("prod")
    s.create_model_state("staging")
    s.set_model_state("d", "v1", "prod")
    yield s
    s.close()


# -- case 4: gc --grace 0 against state changes and deletes -------------------------

OPS: dict[str, Callable[[casstore.Store], None]] = {
    "set-state": lambda s: s.set_model_state("d", "v2", "prod"),
    "unset-state": lambda s: s.remove_model_state("d", "v1", "prod"),
    "delete": lambda s: s.delete_model("d", "v1"),
    "create-state": lambda s: s.create_model_state("archived"),
    "delete-state": lambda s: s.delete_model_state("prod"),
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_gc_never_runs_between_a_writers_objects_and_its_ref(busy: casstore.Store, op: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Start `gc --grace 0` (another Store, as another process would) right when the
    # writer has written its new history/state commit and is about to point the ref
    # at it, and let the writer go on only once gc has finished or is waiting for it.
    gc_store = casstore.Store(busy.path)
    waiting, done = threading.Event(), threading.Event()
    gc_store.progress = lambda label, a, b: waiting.set() if label.startswith("waiting") else None
    errors: list[BaseException] = []

    def run_gc() -> None:
        try:
            gc_store.gc(grace_period=0)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)
        finally:
            done.set()

    real = busy.refs.set_if_equals
    threads: list[threading.Thread] = []

    def hooked(name: bytes, old: object, new: object) -> bool:
        if not threads and (name == STATES_REF or name.startswith(b"refs/cas/domains/")):
            threads.append(threading.Thread(target=run_gc))
            threads[0].start()
            _wait_for(lambda: done.is_set() or waiting.is_set())
        return real(name, old, new)  # type: ignore[arg-type]

    monkeypatch.setattr(busy.refs, "set_if_equals", hooked)
    OPS[op](busy)
    assert threads, "the writer never moved a history or state ref"
    threads[0].join(60)
    assert not errors, errors
    monkeypatch.undo()
    s = casstore.Store(busy.path)
    assert [e.event for e in s.log("d")]  # the history and all its ancestors are readable
    assert s.list_model_states()
    assert _problems(s) == []
    s.commit_models("d", model=str(Path(busy.path).parent / "v2.bin"), model_id="v3")  # the domain still works
    s.gc(grace_period=0)
    assert _problems(s) == []
    assert_git_fsck(s.path)


def test_commit_into_an_unreadable_history_fails_before_claiming_the_id(busy: casstore.Store,
                                                                        tmp_path: Path) -> None:
    head = busy.refs.get(domain_ref("d"))
    assert head is not None
    os.unlink(os.path.join(busy.path, "objects", head[:2].decode(), head[2:].decode()))
    with pytest.raises(casstore.CorruptObjectError):
        busy.commit_models("d", model=_file(tmp_path, "v3.bin", 3), model_id="v3")
    assert not busy.model_exists("d", "v3")  # the ID is not taken by a model the log can never show


# -- case 5: a delete racing the commit of the same ID --------------------------------


def test_delete_between_commit_ref_and_history_append_is_ordered(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    store = casstore.open(tmp_path / "store")
    store.commit_models("d", model=_file(tmp_path, "a.bin", 1), model_id="other")
    ref_created, delete_done = threading.Event(), threading.Event()
    real = casstore.model.commit.append_event

    def hooked(*args: object, **kwargs: object) -> object:
        if args[4] == "commit" and args[5] == "x":
            ref_created.set()
            delete_done.wait(1.0)  # the delete now runs to completion, or waits for us
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(casstore.model.commit, "append_event", hooked)
    committer = casstore.Store(store.path)
    t = threading.Thread(target=lambda: committer.commit_models("d", model=_file(tmp_path, "x.bin", 2),
                                                                model_id="x"))
    t.start()
    assert ref_created.wait(60)
    store.delete_model("d", "x")
    delete_done.set()
    t.join(60)
    monkeypatch.undo()
    assert not store.model_exists("d", "x")
    assert _problems(store) == []
    assert [(e.event, e.model_id) for e in store.log("d")][:2] == [("delete", "x"), ("commit", "x")]


def test_delete_racing_commit_of_same_id_never_leaves_a_deleted_model_listed(tmp_path: Path) -> None:
    store = casstore.open(tmp_path / "store")
    src = _file(tmp_path, "m.bin", 3, size=5_000)
    deleter = casstore.Store(store.path)
    for trial in range(8):
        mid = f"x{trial}"

        def delete_when_it_appears(mid: str = mid) -> None:
            _wait_for(lambda: deleter.model_exists("d", mid))
            deleter.delete_model("d", mid)

        t = threading.Thread(target=delete_when_it_appears)
        t.start()
        store.commit_models("d", model=src, model_id=mid)
        t.join(60)
        assert not store.model_exists("d", mid)
        assert _problems(store) == [], f"trial {trial}"
    assert [e.event for e in store.log("d")] == ["delete", "commit"] * 8


# -- case 8: damaged refs stop gc before it deletes anything ---------------------------


def _damage(store: casstore.Store, kind: str) -> tuple[str, bytes | None]:
    """Damage one ref; returns its name (as gc should report it) and its old content."""
    root = Path(store.path)
    if kind == "packed-refs":
        p = root / "packed-refs"
        old = p.read_bytes() if p.exists() else None
        p.write_bytes((old or b"") + b"this is not a ref line\n")
        return "packed-refs", old
    name, content = {
        "model-empty": ("refs/cas/models/d/v1", b""),
        "model-garbage": ("refs/cas/models/d/v1", b"garbage\n"),
        "model-symref": ("refs/cas/models/d/v1", b"ref: refs/cas/models/d/v2\n"),
        "model-blob": ("refs/cas/models/d/v1", b"BLOB"),
        "history-tree": ("refs/cas/domains/d", b"TREE"),
        "states-garbage": ("refs/cas/states", b"0123\n"),
    }[kind]
    p = root / name
    old = p.read_bytes()
    if content in (b"BLOB", b"TREE"):
        c = store.odb.read(ObjectID(old.strip()), Commit)
        assert isinstance(c, Commit)
        tree = store.odb.read(c.tree, Tree)
        assert isinstance(tree, Tree)
        content = (tree[b"manifest"][1] if content == b"BLOB" else c.tree) + b"\n"
    p.write_bytes(content)
    return name, old


@pytest.mark.parametrize("kind", ["model-empty", "model-garbage", "model-symref", "model-blob",
                                  "history-tree", "states-garbage", "packed-refs"])
def test_gc_stops_on_a_damaged_ref_before_deleting_anything(busy: casstore.Store, kind: str) -> None:
    busy.delete_model("d", "v2")  # something gc could free
    before = _object_files(busy)
    name, old = _damage(busy, kind)
    s = casstore.Store(busy.path)
    with pytest.raises(CorruptRefError) as e:
        s.gc(grace_period=0)
    assert e.value.ref == name and name in str(e.value)
    assert _object_files(s) == before
    if old is None:
        (Path(busy.path) / name).unlink()
    else:
        (Path(busy.path) / name).write_bytes(old)
    s = casstore.Store(busy.path)
    s.gc(grace_period=0)
    assert _problems(s) == []
    assert s.get_model_states("d", "v1") == ["prod"]
    s.download(Path(busy.path).parent / "out", "d", "v1")
    assert (Path(busy.path).parent / "out" / "v1.bin").read_bytes() == \
        (Path(busy.path).parent / "v1.bin").read_bytes()


def test_gc_refuses_a_damaged_ref_from_the_cli(busy: casstore.Store) -> None:
    (Path(busy.path) / "refs/cas/models/d/v1").write_bytes(b"")
    r = cas("gc", "--grace", "now", store=Path(busy.path), check=2)
    assert "refs/cas/models/d/v1" in r.stderr and "gc stopped before deleting anything" in r.stderr
    assert "Traceback" not in r.stderr


# -- case 11: a writer killed between the model ref and the history append -------------


def _crash_state(store: casstore.Store, src: str) -> None:
    """Commit d/k0-20, then set the history back to before its event: exactly what a
    writer killed between creating the model ref and appending the event leaves."""
    head = store.refs.get(domain_ref("d"))
    store.commit_models("d", model=src, model_id="k0-20", extra_metadata={"acc": 0.9})
    Path(store.path, "refs/cas/domains/d").write_bytes(head + b"\n")  # type: ignore[operator]
    assert "history d: model k0-20 is not in the domain history" in _problems(store)


def _remote_with_domain(store: casstore.Store, tmp_path: Path) -> str:
    remote = tmp_path / "remote.git"
    casstore.init_store(str(remote), bare_remote=True)
    result = store.push(str(remote))
    assert result.ok, result
    return str(remote)


@pytest.mark.parametrize("writer", ["commit", "delete", "state", "pull", "fsck-repair"])
def test_next_writer_records_the_commit_a_killed_writer_left_out(busy: casstore.Store, tmp_path: Path,
                                                                 writer: str) -> None:
    remote = _remote_with_domain(busy, tmp_path) if writer == "pull" else ""
    _crash_state(busy, _file(tmp_path, "k.bin", 5))
    if writer == "commit":
        busy.commit_models("d", model=_file(tmp_path, "n.bin", 7), model_id="new")
    elif writer == "delete":
        busy.delete_model("d", "v2")
    elif writer == "state":
        busy.set_model_state("d", "v2", "staging")
    elif writer == "pull":
        assert busy.pull(remote).ok
    else:
        assert busy.fsck(repair=True).repaired == ["d: recorded the commit of k0-20"]
    assert _problems(busy) == []
    ev = next(e for e in busy.log("d") if e.model_id == "k0-20")
    assert ev.event == "commit" and ev.model_commit == busy.get_model_info("d", "k0-20")["commit"]
    assert ev.frameworks == "model=model_file" and ev.summary == "acc=0.9"


def test_next_writer_records_a_deletion_a_killed_writer_left_out(busy: casstore.Store, tmp_path: Path) -> None:
    head = busy.refs.get(domain_ref("d"))
    busy.delete_model("d", "v1")
    Path(busy.path, "refs/cas/domains/d").write_bytes(head + b"\n")  # type: ignore[operator]
    assert "history d: history lists v1, which has no model ref" in _problems(busy)
    r = cas("fsck", "--repair", store=Path(busy.path))
    assert "repaired: d: recorded the deletion of v1" in r.stdout
    assert _problems(busy) == []
    top = busy.log("d")[0]
    assert (top.event, top.model_id) == ("delete", "v1")
    assert "v1" not in busy._index("d").states.get("prod", {})


KILLED = r"""
import os, signal, sys, casstore, casstore.model.commit
sig = int(sys.argv[3])
real = casstore.model.commit.append_event
def append_event(*args, **kwargs):
    if args[4] == "commit":  # the commit claims its model ref just before the history ref moves
        claim = kwargs["before_ref"]
        def killed():
            claim()  # the model ref exists now; its history event does not yet
            os.kill(os.getpid(), sig)
        kwargs["before_ref"] = killed
    return real(*args, **kwargs)
casstore.model.commit.append_event = append_event
casstore.open(sys.argv[1]).commit_models("d", model=sys.argv[2], model_id="k0-20")
print("returned", flush=True)
"""


def test_sigkill_between_ref_and_history_is_repaired_by_the_next_commit(busy: casstore.Store,
                                                                        tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-c", KILLED, busy.path, _file(tmp_path, "k.bin", 5),
                        str(int(signal.SIGKILL))], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert busy.model_exists("d", "k0-20")
    assert "history d: model k0-20 is not in the domain history" in _problems(busy)
    busy.commit_models("d", model=_file(tmp_path, "n.bin", 6), model_id="next")
    assert _problems(busy) == []
    assert [(e.event, e.model_id) for e in busy.log("d")][:2] == [("commit", "next"), ("commit", "k0-20")]
    assert_git_fsck(busy.path)


def test_sigterm_between_ref_and_history_is_held_until_the_event_is_recorded(busy: casstore.Store,
                                                                             tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-c", KILLED, busy.path, _file(tmp_path, "k.bin", 5),
                        str(int(signal.SIGTERM))], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGTERM, p.stderr  # it still ends, as SIGTERM asked
    assert "returned" not in p.stdout
    assert _problems(busy) == []  # but only after recording the event
    assert busy.log("d")[0].model_id == "k0-20"


# -- case 14: the grace period and gc's wait ----------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, -1.0, -math.inf])
def test_gc_refuses_a_grace_period_that_is_not_a_duration(busy: casstore.Store, bad: float) -> None:
    busy.delete_model("d", "v2")
    before = _object_files(busy)
    with pytest.raises(InvalidDurationError, match="grace period"):
        busy.gc(grace_period=bad)
    assert _object_files(busy) == before
    assert busy.gc(grace_period=math.inf).objects_removed == 0  # infinite: keep everything
    assert busy.gc(grace_period=0).objects_removed > 0


def test_gc_grace_and_wait_from_the_cli(busy: casstore.Store) -> None:
    store = Path(busy.path)
    busy.delete_model("d", "v2")
    for bad, why in (("nan", "NaN"), ("-3", "negative"), ("-inf", "negative"), ("2 fortnights", "duration")):
        r = cas("gc", f"--grace={bad}", store=store, check=2)
        assert why in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = cas("gc", "--grace", "2w", "--json", store=store)
    assert json.loads(r.stdout)["objects_removed"] == 0
    r = cas("gc", "--grace", "now", "--wait", "1m", "--json", store=store)
    assert json.loads(r.stdout)["objects_removed"] > 0
    assert _problems(busy) == []


HOLDER = r"""
import sys, time
from casstore.util.locking import store_lock
with store_lock(sys.argv[1]):  # a writer stalled while holding the shared lock
    print("held", flush=True)
    time.sleep(120)
"""


def test_gc_gives_up_waiting_for_a_stalled_writer_and_names_it(busy: casstore.Store) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, busy.repo.lockfile], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        told: list[str] = []
        t0 = time.monotonic()
        with pytest.raises(StoreBusyError) as e:
            busy.gc(grace_period=0, wait=0.5, on_wait=lambda holders, waited: told.append(holders))
        assert 0.5 <= time.monotonic() - t0 < 60  # gave up, long before the holder's 120 s (a busy machine is slow)
        assert f"pid {holder.pid}" in str(e.value) and any(f"pid {holder.pid}" in h for h in e.value.holders)
        assert told and f"pid {holder.pid}" in told[0]
        r = cas("gc", "--grace", "now", "--wait", "1", store=Path(busy.path), check=2)
        assert "waiting for writers in progress" in r.stderr and f"pid {holder.pid}" in r.stderr
        assert "gave up after waiting" in r.stderr and "Traceback" not in r.stderr
    finally:
        holder.kill()
        holder.wait()
    assert busy.gc(grace_period=0, wait=10).reachable > 0


@pytest.mark.parametrize("age", [3600.0, 0.0])
def test_ref_locks_left_by_a_killed_writer_do_not_block_the_domain(store: casstore.Store, tmp_path: Path,
                                                                  age: float) -> None:
    """Found by the long stateful run: a SIGKILL while dulwich held ``<ref>.lock`` blocked
    every later write to the domain (StoreLockedError after 30 s, for ever)."""
    store.commit_models("d", model=_file(tmp_path, "a", 1), model_id="v1")
    sha = store.refs.get(domain_ref("d"))
    assert sha is not None
    locks = [Path(store.path, "refs/cas/domains/d.lock"), Path(store.path, "refs/cas/models/d/v1.lock")]
    for lock in locks:
        lock.write_bytes(sha + b"\n")  # what dulwich had written when the writer died
        old = time.time() - age  # long ago, or just now (the next command right after the kill)
        os.utime(lock, (old, old))
    start = time.monotonic()
    with pytest.warns(UserWarning, match="left by a killed writer"):
        store.commit_models("d", model=_file(tmp_path, "b", 2), model_id="v2")
    assert time.monotonic() - start < 20  # well under the 30 s a held lock is waited for
    store.delete_model("d", "v1")  # the model ref whose lock was left behind
    assert not any(lock.exists() for lock in locks)
    assert store.list_models("d") == ["v2"] and not _problems(store)
    assert_git_fsck(store.path)


def test_a_live_ref_lock_is_waited_for_not_removed(store: casstore.Store, tmp_path: Path) -> None:
    """A lock that vanishes within the stale age is a live writer's (a git push into the store)."""
    store.commit_models("d", model=_file(tmp_path, "a", 1), model_id="v1")
    lock = Path(store.path, "refs/cas/domains/d.lock")
    lock.write_bytes(b"in progress\n")
    threading.Timer(0.5, lock.unlink).start()
    # a stale age far above the timer's 0.5 s: on a busy machine the timer may fire seconds late
    removed = store.refs.clear_stale_locks("d", min_age=60)
    assert removed == [] and not lock.exists()


def test_a_state_list_lock_left_by_a_killed_writer_does_not_block_states(store: casstore.Store) -> None:
    store.create_model_state("prod")
    lock = Path(store.path, "refs/cas/states.lock")
    lock.write_bytes(b"left behind\n")
    os.utime(lock, (time.time() - 3600, time.time() - 3600))
    with pytest.warns(UserWarning, match="left by a killed writer"):
        store.create_model_state("staging")
    assert store.list_model_states() == ["prod", "staging"] and not lock.exists()
