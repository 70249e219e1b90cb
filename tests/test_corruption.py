"""Corrupt or missing objects are detected and named; wrong bytes are never returned."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import casstore
from casstore import CorruptObjectError
from tests.conftest import write_random


def _commit_file(store: casstore.Store, tmp_path: Path, size: int = 1 << 20) -> tuple[dict, bytes]:
    f = tmp_path / "w.bin"
    data = write_random(f, size, seed=7)
    return store.commit_models("d", model=str(f), model_id="m"), data


def _flip(path: str, offset: int) -> None:
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


def _a_chunk(store: casstore.Store) -> tuple[str, int, int, str]:
    store.odb.index.refresh()
    sc = store.odb.index.sidecars[0]
    loc = sc.location(sc.count // 2)
    return os.path.join(store.odb.pack_dir, loc.pack + ".pack"), loc.offset, loc.length, loc.oid.hex()


def test_flipped_framing_byte_found_by_fsck_not_returned_wrong(store: casstore.Store, tmp_path: Path) -> None:
    """A flip in the zlib Adler-32 of a stored chunk leaves its content intact.

    load verifies content (BLAKE3) and returns the right bytes; fsck --read-data
    verifies pack checksums and names the damaged pack.
    """
    _, data = _commit_file(store, tmp_path)
    pack, off, length, oid = _a_chunk(store)
    _flip(pack, off + length - 2)
    store2 = casstore.open(store.path)
    assert Path(store2.load("d", "m")).read_bytes() == data
    report = store2.fsck(read_data=True)
    assert not report.ok and os.path.basename(pack) in str(report.problems)
    assert store2.fsck().ok  # without --read-data nothing is read


@pytest.mark.parametrize("where", ["header", "middle", "last-data-byte"])
def test_flipped_chunk_byte_is_named_on_load_and_download(store: casstore.Store, tmp_path: Path, where: str) -> None:
    _commit_file(store, tmp_path)
    pack, off, length, oid = _a_chunk(store)
    _flip(pack, off + {"header": 3, "middle": length // 2, "last-data-byte": length - 5}[where])
    store2 = casstore.open(store.path)  # fresh process view, no caches
    with pytest.raises(CorruptObjectError) as ei:
        store2.load("d", "m")
    assert ei.value.oid == oid
    out = tmp_path / "out"
    with pytest.raises(CorruptObjectError, match=oid):
        store2.download(out, "d", "m")
    assert not (out / "w.bin").exists()  # nothing partial under the final name
    assert not [p for p in out.iterdir()]
    report = store2.fsck(read_data=True)
    assert not report.ok and oid in str(report.problems[0])


def test_corruption_found_without_chunk_index_too(store: casstore.Store, tmp_path: Path) -> None:
    _, data = _commit_file(store, tmp_path)
    pack, off, length, oid = _a_chunk(store)
    shutil.rmtree(store.odb.cidx_dir)
    s2 = casstore.open(store.path)
    assert Path(s2.load("d", "m")).read_bytes() == data  # readable through dulwich by oid
    _flip(pack, off + length // 2)
    s3 = casstore.open(store.path)
    with pytest.raises(CorruptObjectError):
        s3.load("d", "m")


def test_corrupt_manifest_is_named(store: casstore.Store, tmp_path: Path) -> None:
    meta, _ = _commit_file(store, tmp_path)
    from dulwich.objects import Commit, Tree

    c = store.odb.read(meta["commit"].encode(), Commit)
    root = store.odb.read(c.tree, Tree)
    _, manifest_id = root[b"manifest"]
    hexs = manifest_id.decode()
    path = os.path.join(store.path, "objects", hexs[:2], hexs[2:])
    _flip(path, os.path.getsize(path) // 2)
    s2 = casstore.open(store.path)
    with pytest.raises(CorruptObjectError, match=hexs):
        s2.get_model_info("d", "m")
    report = s2.fsck()
    assert not report.ok and hexs in str(report.problems[0])


def test_missing_pack_is_reported(store: casstore.Store, tmp_path: Path) -> None:
    _commit_file(store, tmp_path)
    pack, _, _, oid = _a_chunk(store)
    os.unlink(pack)
    os.unlink(pack[:-5] + ".idx")
    s2 = casstore.open(store.path)
    with pytest.raises(casstore.MissingObjectError):
        s2.load("d", "m")
    report = s2.fsck()
    assert not report.ok
    assert any("missing" in str(p) for p in report.problems)


def test_clean_store_passes_fsck(store: casstore.Store, tmp_path: Path, forest: tuple) -> None:
    _commit_file(store, tmp_path)
    store.commit_models("d2", model=forest[0])
    report = store.fsck(read_data=True)
    assert report.ok, report.problems
    assert report.models == 2 and report.bytes_verified > 1 << 20
