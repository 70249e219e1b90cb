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


def test_find_first_takes_the_first_index_holding_each_oid(tmp_path: Path) -> None:
    """One lookup for the local reader and the bucket: the first pack that holds an oid wins."""
    from casstore.objects.packidx import PackIdx
    from casstore.objects.packs import find_first

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    pack_dir, first, loc_a = _pack(tmp_path / "a", [b"shared", b"only in a"])
    _, second, loc_b = _pack(tmp_path / "b", [b"shared", b"only in b"])
    idxs = [PackIdx(os.path.join(pack_dir, first + ".idx")),
            PackIdx(os.path.join(str(tmp_path / "b" / "pack"), second + ".idx"))]
    shared, only_a = list(loc_a)
    only_b = [o for o in loc_b if o != shared][0]
    found = find_first(idxs, [only_b, shared, b"\x03" * 20, only_a])
    assert found[0] is not None and found[0][0] == 1
    assert found[1] is not None and found[1][0] == 0  # in both: the first index
    assert found[2] is None
    assert found[3] is not None and found[3][0] == 0
    for (n, pos), oid in ((found[0], only_b), (found[1], shared), (found[3], only_a)):
        assert idxs[n].sha(pos) == oid
    assert find_first([], [shared]) == [None]


def test_pack_layout_of_a_pack_read_by_ranges(tmp_path: Path) -> None:
    """PackLayout (the bucket's packs): the entries by .idx position and in pack order; an index
    of another pack, or offsets past the size the bucket lists, are refused."""
    from casstore.objects.packidx import PackIdx
    from casstore.objects.packs import PackLayout

    pack_dir, name, locations = _pack(tmp_path, [b"one", b"two", b"three"])
    idx = PackIdx(os.path.join(pack_dir, name + ".idx"))
    size = os.path.getsize(os.path.join(pack_dir, name + ".pack"))
    layout = PackLayout.of(name, idx, size, "here")
    for pos in range(idx.count):
        start, end = layout.entry(pos)
        assert (start, end - start) == locations[bytes(idx.sha(pos))]
    assert list(layout.sorted_starts) == sorted(layout.starts.tolist())
    assert [int(layout.starts[i]) for i in layout.order] == list(layout.sorted_starts)
    with pytest.raises(CorruptObjectError, match="belongs to another pack"):
        PackLayout.of("pack-" + "0" * 40, idx, size, "here")
    with pytest.raises(CorruptObjectError, match="do not fit the pack"):
        PackLayout.of(name, idx, 40, "here")  # the bucket lists a shorter .pack than the index describes
