"""Reading packs (objects/packs.py): one reader, one entry check, shared by every copier."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest

from casstore import CorruptObjectError
from casstore.objects.packs import DeltaEntry, PackFile, PackReader, check_bounds, verify_entry
from casstore.objects.packwriter import PackWriter, encode_entry, object_header


def _pack(tmp_path: Path, blobs: list[bytes]) -> tuple[str, str, dict[bytes, tuple[int, int]]]:
    pack_dir = tmp_path / "pack"
    pack_dir.mkdir(exist_ok=True)
    with PackWriter(str(pack_dir), str(tmp_path), len(blobs)) as w:
        for b in blobs:
            w.add(encode_entry(b, level=1))
        name = w.finish()
    return str(pack_dir), name, w.locations


def test_verify_entry_accepts_the_object_and_refuses_anything_else() -> None:
    e = encode_entry(b"hello world", level=0)
    entry = e.header + b"".join(bytes(p) for p in e.parts)
    type_num, parts = verify_entry(entry, e.oid)
    assert type_num == 3 and b"".join(bytes(p) for p in parts) == b"hello world"
    with pytest.raises(CorruptObjectError, match="SHA-1"):
        verify_entry(entry, b"\x01" * 20)
    flipped = bytearray(entry)
    flipped[-1] ^= 1  # the Adler-32 of a stored-block stream (sliced, not inflated by zlib)
    with pytest.raises(CorruptObjectError, match="Adler"):
        verify_entry(bytes(flipped), e.oid)
    with pytest.raises(CorruptObjectError, match="unreadable pack entry"):
        verify_entry(entry + b"x", e.oid)  # bytes after the stream
    with pytest.raises(CorruptObjectError, match="truncated"):
        verify_entry(entry[:1] if entry[0] & 0x80 else b"\x80", e.oid)
    with pytest.raises(CorruptObjectError, match="out of bounds"):
        verify_entry(entry, e.oid, limit=5)
    delta = object_header(7, 3) + b"\x00" * 20 + zlib.compress(b"abc")  # a ref delta
    with pytest.raises(DeltaEntry):
        verify_entry(delta, e.oid)


def test_reader_locates_entries_and_leaves_out_a_pack_its_index_does_not_describe(tmp_path: Path) -> None:
    pack_dir, name, locations = _pack(tmp_path, [b"one", b"two"])
    reader = PackReader(pack_dir)
    try:
        oids = list(locations)
        where = reader.locate([*oids, b"\x02" * 20])
        assert where[2] is None
        for oid, loc in zip(oids, where[:2], strict=True):
            assert loc is not None and (loc[1], loc[2]) == locations[oid]
            verify_entry(reader.read(loc), oid)
    finally:
        reader.close()
    # the same .idx beside a .pack whose trailer differs (replaced, or damaged at the end)
    path = os.path.join(pack_dir, name + ".pack")
    os.chmod(path, 0o644)
    data = bytearray(Path(path).read_bytes())
    data[-1] ^= 1
    Path(path).write_bytes(bytes(data))
    with pytest.raises(CorruptObjectError, match="does not match its index"):
        PackFile.open(pack_dir, name)
    reader = PackReader(pack_dir)
    assert reader.packs == [] and reader.locate(oids) == [None, None]
    reader.close()


def test_check_bounds() -> None:
    import numpy as np

    assert check_bounds(np.array([12, 30]), np.array([30, 80]), 100)
    assert not check_bounds(np.array([12, 12]), np.array([12, 80]), 100)  # two entries at one offset
    assert not check_bounds(np.array([4]), np.array([80]), 100)  # inside the header
    assert not check_bounds(np.array([12]), np.array([90]), 100)  # into the trailer
