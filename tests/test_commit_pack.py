"""A commit's objects go into its one pack, made durable before any ref names them (ObjectDB.deferred)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import casstore
import casstore.store
from casstore.objects.odb import ObjectDB
from tests.conftest import assert_git_fsck, write_random


def _file(tmp_path: Path, name: str, seed: int, size: int = 20_000) -> str:
    p = tmp_path / name
    write_random(p, size, seed=seed)
    return str(p)


def _packs(store: casstore.Store) -> set[str]:
    return {f for f in os.listdir(os.path.join(store.path, "objects", "pack")) if f.endswith(".pack")}


def _loose(store: casstore.Store) -> list[str]:
    objects = os.path.join(store.path, "objects")
    return [f"{d}/{f}" for d in os.listdir(objects) if len(d) == 2 for f in os.listdir(os.path.join(objects, d))]


def test_a_small_commit_makes_one_pack_and_a_handful_of_fsyncs(store: casstore.Store, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    store.commit_models("d", model=_file(tmp_path, "a.bin", 1), model_id="a")
    monkeypatch.setattr(casstore.model.commit, "maintain", lambda repo: None)  # pack roll-ups are counted apart
    calls: list[int] = []
    for name in ("fsync", "fdatasync"):
        real = getattr(os, name)

        def counted(fd: int, real: Callable[[int], None] = real) -> None:
            calls.append(fd)
            real(fd)

        monkeypatch.setattr(os, name, counted)
    before = _packs(store)
    store.commit_models("d", model=_file(tmp_path, "b.bin", 2), model_id="b")
    # the pack (file, .cidx and its directory, .idx, pack directory), the model ref and the history
    # ref (file and directory each); loose objects cost three each, ~40 in all before
    assert len(calls) <= 9, len(calls)
    assert len(_packs(store) - before) == 1
    assert _loose(store) == []
    assert store.fsck(read_data=True).ok
    assert Path(store.load("d", "b")).read_bytes() == Path(tmp_path / "b.bin").read_bytes()
    assert_git_fsck(store.path)


def _reachable_on_disk(path: str, sha: bytes) -> None:
    """Read ``sha`` and every tree and blob under it through a new view of the store's files."""
    odb = ObjectDB(path)
    try:
        todo = [sha]
        while todo:
            obj = odb.read(todo.pop())
            if obj.type_name == b"commit":
                todo.append(obj.tree)  # type: ignore[attr-defined]
            elif obj.type_name == b"tree":
                todo += [e.sha for e in obj.items() if e.mode != 0o160000]  # type: ignore[attr-defined]
    finally:
        odb.close()


def test_every_ref_names_only_objects_already_on_disk(store: casstore.Store, tmp_path: Path) -> None:
    container = store.refs.container
    seen: list[bytes] = []

    def checked(real: Callable[..., bool], new_at: int) -> Callable[..., bool]:
        def call(*args: Any, **kwargs: Any) -> bool:
            new = args[new_at]
            _reachable_on_disk(store.path, new)  # raises MissingObjectError if still held back
            seen.append(args[0])
            return real(*args, **kwargs)
        return call

    container.add_if_new = checked(container.add_if_new, 1)  # type: ignore[method-assign]
    container.set_if_equals = checked(container.set_if_equals, 2)  # type: ignore[method-assign]
    store.commit_models("d", model=_file(tmp_path, "a.bin", 1), model_id="a")
    store.commit_models("d", model=_file(tmp_path, "b.bin", 2), model_id="b", extra_files=[_file(tmp_path, "x", 3)])
    store.copy_model("d", "b", "c")
    assert seen.count(b"refs/cas/domains/d") == 3 and b"refs/cas/models/d/b" in seen


def test_a_commit_that_fails_leaves_nothing_held_back(store: casstore.Store, tmp_path: Path) -> None:
    store.commit_models("d", model=_file(tmp_path, "a.bin", 1), model_id="a")
    before = _packs(store)
    with pytest.raises(casstore.ModelExistsException):
        store.commit_models("d", model=_file(tmp_path, "b.bin", 2), model_id="a")
    assert _packs(store) == before and _loose(store) == []
    assert store.odb.flush() is None  # nothing held back for a later ref to publish
    store.commit_models("d", model=_file(tmp_path, "b.bin", 2), model_id="b")
    assert store.fsck(read_data=True).ok


KILLED = r"""
import os, sys, casstore, casstore.objects.odb as odb, casstore.objects.packwriter as pw
where = sys.argv[3]
if where == "in-pack":  # the pack is written and fsynced, its .idx not yet in place
    real_publish = odb.PackWriter.finish
    def finish(self):
        os.fsync(self._fd)
        os.kill(os.getpid(), 9)
    odb.PackWriter.finish = finish
else:  # "after-pack": the pack is published, no ref names it yet
    real_flush = odb.ObjectDB.flush
    def flush(self):
        name = real_flush(self)
        if name:
            os.kill(os.getpid(), 9)
        return name
    odb.ObjectDB.flush = flush
casstore.open(sys.argv[1]).commit_models("d", model=sys.argv[2], model_id="k")
print("returned", flush=True)
"""


@pytest.mark.parametrize("where", ["in-pack", "after-pack"])
def test_a_commit_killed_at_its_pack_loses_nothing(store: casstore.Store, tmp_path: Path, where: str) -> None:
    store.commit_models("d", model=_file(tmp_path, "a.bin", 1), model_id="a")
    p = subprocess.run([sys.executable, "-c", KILLED, store.path, _file(tmp_path, "k.bin", 5), where],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    fresh = casstore.open(store.path)
    assert not fresh.model_exists("d", "k")
    assert [str(x) for x in fresh.fsck(read_data=True).problems] == []
    assert Path(fresh.load("d", "a")).read_bytes() == (tmp_path / "a.bin").read_bytes()
    fresh.commit_models("d", model=str(tmp_path / "k.bin"), model_id="k")
    assert Path(fresh.load("d", "k")).read_bytes() == (tmp_path / "k.bin").read_bytes()
    assert [e.model_id for e in fresh.log("d")] == ["k", "a"]
    fresh.gc(grace_period=0)
    assert fresh.fsck(read_data=True).ok
    assert_git_fsck(store.path)


def test_cas_start_up_leaves_out_modules_a_commit_does_not_need() -> None:
    """``cas`` builds every command's parser; the modelstore compatibility layer, its importer,
    the remote transports and importlib.metadata are imported only by what uses them."""
    code = ("import sys, casstore, casstore.cli; casstore.cli.build_parser(); print(sorted(m for m in "
            "('casstore.compat.modelstore', 'casstore.compat.importer', 'importlib.metadata', 'tarfile', "
            "'casstore.remote.sync', 'dulwich.client') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
    assert casstore.ModelStore.__name__ == "ModelStore"  # still there when asked for
