"""The load cache: loads of file models reuse one verified copy, bounded, listed and cleared by `cas cache`."""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import casstore
from casstore.cli import main as cli_main
from tests.conftest import write_random


def _cached_files(store: casstore.Store) -> list[str]:
    root = os.path.join(store.path, "cas", "cache", "load")
    return sorted(p for p in glob.glob(os.path.join(root, "**"), recursive=True)
                  if os.path.isfile(p) and not p.endswith("entry.json"))


def test_hundred_loads_leave_one_copy(store: casstore.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: every load of a model_file model left a casstore-load-* directory in /tmp forever."""
    f = tmp_path / "model.onnx"
    write_random(f, 200_000)
    store.commit_models("d", model=str(f), model_id="v1")
    # a temporary directory of our own: other processes' files in /tmp must not count
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    paths = {store.load("d", "v1") for _ in range(100)}
    assert len(paths) == 1
    (path,) = paths
    assert Path(path).read_bytes() == f.read_bytes()
    assert _cached_files(store) == [path]
    assert os.listdir(tmp_path / "tmp") == []


def test_a_changed_cached_file_is_never_returned(store: casstore.Store, tmp_path: Path) -> None:
    f = tmp_path / "model.onnx"
    write_random(f, 50_000)
    store.commit_models("d", model=str(f), model_id="v1")
    path = store.load("d", "v1")
    with open(path, "r+b") as out:  # same size, one byte different: only the checksum can tell
        out.write(b"\0" if f.read_bytes()[:1] != b"\0" else b"\1")
    again = store.load("d", "v1")
    assert Path(again).read_bytes() == f.read_bytes()
    os.truncate(again, 10)
    assert Path(store.load("d", "v1")).read_bytes() == f.read_bytes()


def test_cache_is_bounded_least_recently_used_first(store: casstore.Store, tmp_path: Path) -> None:
    _set_limit(store, "100k")
    store = casstore.open(store.path)  # reads the new cas.loadCacheLimit
    for i in range(4):
        f = tmp_path / f"m{i}.bin"
        write_random(f, 40_000, seed=i)
        store.commit_models("d", model=str(f), model_id=f"v{i}")
    for i in (0, 1, 2):
        store.load("d", f"v{i}")
    os.utime(os.path.dirname(os.path.dirname(store.load("d", "v0"))), (1, 1))  # v0: the least recently used
    store.load("d", "v1")
    store.load("d", "v3")  # 4 x 40 kB > 100 KiB: the oldest (v0) goes
    entries = store.load_cache().entries()
    assert [e.model_id for e in entries][0] == "v3"
    assert "v0" not in {e.model_id for e in entries}
    assert sum(e.bytes for e in entries) <= 100 << 10
    # a model bigger than the limit still loads, alone
    big = tmp_path / "big.bin"
    write_random(big, 300_000)
    store.commit_models("d", model=str(big), model_id="big")
    assert Path(store.load("d", "big")).read_bytes() == big.read_bytes()
    assert [e.model_id for e in store.load_cache().entries()] == ["big"]


def _set_limit(store: casstore.Store, limit: str) -> None:
    from dulwich.config import ConfigFile

    path = os.path.join(store.path, "config")
    cfg = ConfigFile.from_path(path)
    cfg.set((b"cas",), b"loadCacheLimit", limit.encode())
    cfg.write_to_path(path)


def test_cas_cache_ls_and_clear(store: casstore.Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "model.onnx"
    write_random(f, 100_000)
    store.commit_models("fraud", model=str(f), model_id="v1")
    store.load("fraud", "v1")
    assert cli_main(["cache", "--store", store.path]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fraud/v1 ") and "97.7 KiB" in out and "\n1 cached model, 97.7 KiB" in out
    assert cli_main(["cache", "--json", "--store", store.path]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(e["domain"], e["model_id"], e["bytes"]) for e in doc["entries"]] == [("fraud", "v1", 100_000)]
    assert doc["limit"] == 4 << 30
    assert cli_main(["cache", "clear", "--store", store.path]) == 0
    assert capsys.readouterr().out == "removed 1 cached model, freed 97.7 KiB\n"  # one model, singular
    assert _cached_files(store) == []
    # and the next load fills it again
    assert Path(store.load("fraud", "v1")).read_bytes() == f.read_bytes()


def test_a_forged_keyword_cannot_escape_the_cache(tmp_path: Path) -> None:
    """Regression: a manifest's keyword became a directory name unchecked (``../../x`` wrote outside)."""
    from tests.helpers.hostile import forge_model, hostile_store

    s, _ = hostile_store(tmp_path)

    def evil(doc: dict) -> None:  # type: ignore[type-arg]
        doc["model_id"] = "evil"
        doc["frameworks"][0]["kwarg"] = "../../../../escaped"

    forge_model(s, "evil", evil)
    with pytest.raises(casstore.UnsafePathError, match="escaped"):
        s.load("d", "evil")
    assert list(tmp_path.rglob("escaped")) == []
    assert Path(s.load("d", "legit")).read_bytes() == (tmp_path / "legit.bin").read_bytes()


@pytest.mark.parametrize("stray", ["file", "symlink-to-dir", "symlink-to-file", "dangling-symlink", "kwarg-symlink"])
def test_a_stray_entry_is_rebuilt_never_followed(store: casstore.Store, tmp_path: Path, stray: str) -> None:
    """Regression: a file or symlink at cas/cache/load/<commit> failed every load until `cas cache clear`."""
    f = tmp_path / "model.onnx"
    write_random(f, 50_000)
    store.commit_models("d", model=str(f), model_id="v1")
    commit = store.get_model_info("d", "v1")["commit"]
    first = Path(store.load("d", "v1"))
    kwarg = first.relative_to(store.path, "cas", "cache", "load", commit).parts[0]
    entry = Path(store.path, "cas", "cache", "load", commit)
    # a copy of the right entry outside the cache: a link to it must still not be used
    outside = tmp_path / "outside"
    shutil.copytree(entry, outside)
    shutil.rmtree(entry)
    before = {str(p.relative_to(outside)): p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    if stray == "file":
        entry.write_bytes(b"not a directory")
    elif stray == "symlink-to-dir":
        entry.symlink_to(outside)
    elif stray == "symlink-to-file":
        entry.symlink_to(f)
    elif stray == "dangling-symlink":
        entry.symlink_to(tmp_path / "nowhere")
    else:
        entry.mkdir()
        (entry / kwarg).symlink_to(outside / kwarg)
        shutil.copy(outside / "entry.json", entry / "entry.json")
    path = Path(store.load("d", "v1"))
    assert path.read_bytes() == f.read_bytes()
    assert os.path.realpath(path).startswith(os.path.realpath(entry) + os.sep)
    assert not entry.is_symlink() and not (entry / kwarg).is_symlink()
    # what a link pointed at is left as it was
    assert {str(p.relative_to(outside)): p.read_bytes() for p in outside.rglob("*") if p.is_file()} == before
    assert f.exists() and f.stat().st_size == 50_000
    assert Path(store.load("d", "v1")) == path
