"""Store.open_file: random access to one stored file, reading and verifying only what a read touches."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import casstore
from casstore.errors import CorruptObjectError
from casstore.model.openfile import StoredFile
from casstore.model.reading import file_oids, read_model
from tests.conftest import write_random


@pytest.fixture
def big(store: casstore.Store, tmp_path: Path) -> bytes:
    data = write_random(tmp_path / "w.bin", 16 << 20)
    store.commit_models("d", model=str(tmp_path / "w.bin"), model_id="v1")
    return data


def test_reads_only_the_chunks_a_range_touches(store: casstore.Store, big: bytes) -> None:
    chunks = store.get_model_info("d", "v1")["files"][0]["chunks"]
    assert chunks > 100  # 16 MiB at ~64 KiB per chunk
    with store.open_file("d", "v1", "w.bin") as f:
        assert f.seekable() and f.readable() and not f.writable() and f.size == len(big)
        f.seek(10 << 20)
        assert f.read(4096) == big[10 << 20:(10 << 20) + 4096]
        assert f.chunks_read <= 2  # 4 KiB lie in one chunk, or straddle two
        f.seek(3 << 20)
        assert f.read(300_000) == big[3 << 20:(3 << 20) + 300_000]
        # 300 KB span about five chunks of ~64 KiB (the chunker's maximum is 256 KiB)
        assert f.chunks_read <= 2 + 300_000 // (16 << 10) + 2
        assert f.chunks_read < chunks // 10
        assert f.bytes_read < 300_000 + 4 * (256 << 10)  # the ranges plus at most a chunk at each of their ends
        assert f.tell() == (3 << 20) + 300_000
        f.seek(-10, io.SEEK_END)
        assert f.read() == big[-10:]
        assert f.read(5) == b""


def test_sequential_read_and_buffered_wrappers(store: casstore.Store, big: bytes) -> None:
    chunks = store.get_model_info("d", "v1")["files"][0]["chunks"]
    with store.open_file("d", "v1", "w.bin") as f:
        assert f.read() == big
        assert f.chunks_read == chunks
        f.seek(0)
        assert f.read(1000) == big[:1000] and f.chunks_read == chunks + 1  # the first chunk again
    with io.BufferedReader(store.open_file("d", "v1", "w.bin")) as b:  # type: ignore[arg-type]
        b.seek(5 << 20)
        assert b.read(10) == big[5 << 20:(5 << 20) + 10]
    with pytest.raises(FileNotFoundError, match="has no file 'nope'"):
        store.open_file("d", "v1", "nope")


def test_damaged_chunk_is_refused_and_other_ranges_still_read(store: casstore.Store, big: bytes) -> None:
    store.odb.index.refresh()
    m = read_model(store.repo, "d", "v1")
    entry = m.manifest.files[0]
    target = 40  # damage the 41st chunk in its pack
    loc = store.odb.index.lookup([entry.keys[target]])[0]
    assert loc is not None
    pack = Path(store.path) / "objects" / "pack" / (loc.pack + ".pack")
    os.chmod(pack, 0o644)
    with open(pack, "r+b") as fh:
        fh.seek(loc.offset + loc.length // 2)
        fh.write(b"\xff\xfe\xfd")
    start = sum(entry.sizes[:target])
    with store.open_file("d", "v1", "w.bin") as f:
        assert f.read(1000) == big[:1000]  # far from the damage: fine
        f.seek(start + 10)
        with pytest.raises(CorruptObjectError):
            f.read(100)


def test_whole_file_checksum_checked_when_read_in_order(store: casstore.Store, big: bytes) -> None:
    m = read_model(store.repo, "d", "v1")
    entry = m.manifest.files[0]
    oids = file_oids(store.repo, m.files_tree, m.manifest, 0)
    wrong = dataclasses.replace(entry, xxh3=bytes(16))  # a manifest whose digest disagrees with its chunks
    f = StoredFile(store.odb, wrong, oids)
    assert f.read(1 << 20) == big[: 1 << 20]
    with pytest.raises(CorruptObjectError, match="manifest checksum"):
        f.read()
    f = StoredFile(store.odb, wrong, oids)
    f.seek(len(big) - 100)  # skipped ahead: only the per-chunk checks apply
    assert f.read() == big[-100:]


def test_cas_cat_and_download_one_file(store: casstore.Store, big: bytes, tmp_path: Path) -> None:
    extra = tmp_path / "notes.txt"
    extra.write_text("hello")
    store.commit_models("d", model=str(tmp_path / "w.bin"), extra_files=[str(extra)], model_id="v2")
    cmd = [sys.executable, "-m", "casstore", "--store", store.path]
    r = subprocess.run([*cmd, "cat", "d", "v2", "w.bin"], capture_output=True, timeout=120)
    assert r.returncode == 0 and r.stdout == big and r.stderr == b""
    r = subprocess.run([*cmd, "cat", "d", "v2", "nope"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "has no file 'nope'" in r.stderr
    out = tmp_path / "out"
    r = subprocess.run([*cmd, "download", "d", "v2", str(out), "--file", "notes.txt"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["notes.txt"] and (out / "notes.txt").read_text() == "hello"
