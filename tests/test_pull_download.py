"""``cas pull --download DIR`` / ``Store.pull_download`` (issue 26 target 1): the pull writes the
files of the model it verifies while it checks them, so that each byte is decompressed and
hashed once for a pull and a download together; the promises of both stand (nothing
unverified is written, a hostile remote changes neither the store nor DIR)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import casstore
from casstore import CasError, DownloadConflictError
from casstore.objects import odb as odb_mod
from tests.helpers.hostile import forge_model, hostile_store, snapshot
from tests.servers import git_daemon

MiB = 1 << 20


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes that went through the store's chunk decoder (any thread)."""
    seen = [0]
    real = odb_mod.decode_run

    def counting(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        seen[0] += len(out)  # one buffer a run of chunks
        return out

    monkeypatch.setattr(odb_mod, "decode_run", counting)
    return seen


def _remote_with(tmp_path: Path, size: int, ids: tuple[str, ...] = ("v1",)) -> tuple[str, dict[str, bytes]]:
    a = casstore.open(tmp_path / "a")
    out = {}
    for seed, mid in enumerate(ids):
        data = np.random.default_rng(seed).standard_normal(size // 4, dtype=np.float32).tobytes()
        (tmp_path / "w.npy").write_bytes(data)
        a.commit_models("d", model=str(tmp_path / "w.npy"), model_id=mid)
        out[mid] = data
    remote = str(tmp_path / "remote.git")
    assert a.push(remote).ok
    return remote, out


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("tmp_"))


def test_pull_download_decompresses_each_byte_once(tmp_path: Path, decoded: list[int]) -> None:
    size = 8 * MiB
    remote, data = _remote_with(tmp_path, size)
    b = casstore.open(tmp_path / "b")
    result, done = b.pull_download(tmp_path / "out", "d", "v1", remote=remote)
    assert result.models_added == ["d/v1"]
    assert (tmp_path / "out" / "w.npy").read_bytes() == data["v1"]
    assert done.written == ("w.npy",) and oct(os.stat(tmp_path / "out" / "w.npy").st_mode & 0o777) == "0o644"
    # once: the pull's check (pull + download decompressed every byte twice)
    assert decoded[0] == size
    assert _leftovers(tmp_path) == []
    assert b.fsck(read_data=True).ok


def test_pull_download_over_git_daemon(tmp_path: Path, decoded: list[int]) -> None:
    """Over git:// the pack arrives through git's protocol; the model check, and so the
    staging, is the same."""
    size = 2 * MiB
    remote, data = _remote_with(tmp_path, size)
    b = casstore.open(tmp_path / "b")
    with git_daemon(tmp_path) as base:
        _, done = b.pull_download(tmp_path / "out", "d", "v1", remote=f"{base}/remote.git")
    assert (tmp_path / "out" / "w.npy").read_bytes() == data["v1"] and done.written == ("w.npy",)
    assert decoded[0] == size
    assert _leftovers(tmp_path) == []


def test_pull_download_without_an_id_takes_the_newest(tmp_path: Path, decoded: list[int]) -> None:
    size = 2 * MiB
    remote, data = _remote_with(tmp_path, size, ("v1", "v2"))
    b = casstore.open(tmp_path / "b")
    _, done = b.pull_download(tmp_path / "out", "d", remote=remote)
    assert (tmp_path / "out" / "w.npy").read_bytes() == data["v2"]
    assert decoded[0] == 2 * size  # each model checked once; v2 not read again to write it
    # a model the store holds already: an ordinary download
    decoded[0] = 0
    _, done = b.pull_download(tmp_path / "out1", "d", "v1", remote=remote)
    assert (tmp_path / "out1" / "w.npy").read_bytes() == data["v1"] and done.written == ("w.npy",)
    assert decoded[0] == size
    assert _leftovers(tmp_path) == []


def test_pull_download_keeps_the_download_rules(tmp_path: Path) -> None:
    """A file of another content in DIR: refused (the pull is done, nothing written), or
    replaced with force; the staged copy is deleted either way."""
    remote, data = _remote_with(tmp_path, MiB)
    b = casstore.open(tmp_path / "b")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "w.npy").write_bytes(b"mine")
    with pytest.raises(DownloadConflictError):
        b.pull_download(tmp_path / "out", "d", "v1", remote=remote)
    assert (tmp_path / "out" / "w.npy").read_bytes() == b"mine"
    assert b.list_models("d") == ["v1"]
    assert _leftovers(tmp_path) == []
    c = casstore.open(tmp_path / "c")
    _, done = c.pull_download(tmp_path / "out", "d", "v1", remote=remote, force=True)
    assert done.replaced == ("w.npy",) and (tmp_path / "out" / "w.npy").read_bytes() == data["v1"]
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("lie", ["digest", "key"])
def test_a_hostile_remote_changes_neither_the_store_nor_dir(tmp_path: Path, lie: str) -> None:
    """The staged model itself lies (its whole-file BLAKE3, or a chunk key): the pull is
    refused over a path and git://, the store stays byte-identical, DIR keeps what it had
    and no staged file is left anywhere."""
    s, path = hostile_store(tmp_path)

    def forged(doc: dict) -> None:  # type: ignore[type-arg]
        doc["model_id"] = "liar"
        if lie == "digest":
            doc["files"][0]["blake3"] = bytes(32)
        else:
            keys = bytearray(doc["files"][0]["chunk_keys"])
            keys[-1] ^= 1
            doc["files"][0]["chunk_keys"] = bytes(keys)

    forge_model(s, "liar", forged)
    s.refs.container.remove_if_equals(b"refs/cas/models/d/legit", None)  # the liar alone: it is verified
    victim = casstore.open(tmp_path / "victim")
    (tmp_path / "victim.bin").write_bytes(os.urandom(50_000))
    victim.commit_models("d", model=str(tmp_path / "victim.bin"), model_id="own")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    before, before_out = snapshot(victim.path), snapshot(str(out))
    with git_daemon(path.parent) as base:
        for url in (str(path), f"{base}/{path.name}"):
            with pytest.raises(CasError, match="BLAKE3"):
                victim.pull_download(out, "d", "liar", remote=url)
            assert snapshot(victim.path) == before
            assert snapshot(str(out)) == before_out
            assert _leftovers(tmp_path) == []
    assert victim.fsck(read_data=True).ok


def _cas(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "casstore", "--store", str(store), *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_cli_pull_download(tmp_path: Path) -> None:
    remote, data = _remote_with(tmp_path, MiB, ("v1", "v2"))
    casstore.open(tmp_path / "b").close()
    r = _cas(tmp_path / "b", "pull", remote, "d", "--download", str(tmp_path / "out"), "--model", "v1")
    assert r.returncode == 0, r.stderr
    assert "2 models added" in r.stdout and f"downloaded d/v1: 1 file into {tmp_path / 'out'}" in r.stdout
    assert (tmp_path / "out" / "w.npy").read_bytes() == data["v1"]
    casstore.open(tmp_path / "c").close()
    r = _cas(tmp_path / "c", "pull", remote, "d", "--download", str(tmp_path / "out2"), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["download"]["written"] == ["w.npy"] and sorted(doc["models_added"]) == ["d/v1", "d/v2"]
    assert (tmp_path / "out2" / "w.npy").read_bytes() == data["v2"]
    bad: list[Callable[[], subprocess.CompletedProcess[str]]] = [
        lambda: _cas(tmp_path / "c", "pull", remote, "--download", str(tmp_path / "o3")),  # no domain
        lambda: _cas(tmp_path / "c", "pull", remote, "d", "--model", "v1"),  # --model without --download
    ]
    for run in bad:
        r = run()
        assert r.returncode != 0 and "--download" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o3").exists()
