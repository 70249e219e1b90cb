"""Object layer: chunker, codec, pack writer, chunk index."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from casstore import CorruptObjectError
from casstore.objects import codec
from casstore.objects.chunker import DEFAULT_PARAMS, ChunkParams, chunk_key, iter_chunks
from casstore.objects.chunkindex import ChunkIndex, IndexEntry, Sidecar, write_cidx
from casstore.objects.packwriter import PackWriter, encode_entry, object_header, parse_object_header


def chunks_of(data: bytes, params: ChunkParams = DEFAULT_PARAMS) -> list[bytes]:
    return [bytes(c) for c in iter_chunks(io.BytesIO(data), params)]


def test_chunks_reassemble_and_respect_bounds() -> None:
    data = np.random.default_rng(0).bytes(3 << 20)
    parts = chunks_of(data)
    assert b"".join(parts) == data
    p = ChunkParams()
    assert all(len(c) <= p.max_size for c in parts)
    assert all(len(c) >= p.min_size for c in parts[:-1])
    assert 30 <= len(parts) <= 80  # ~64 KiB average


def test_split_points_are_pinned() -> None:
    """Changing chunk boundaries silently would break dedup with existing stores."""
    # a byte stream that depends on nothing but hashlib
    data = b"".join(hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(1 << 15))
    sizes = [len(c) for c in chunks_of(data)]
    digest = hashlib.sha256(repr(sizes).encode()).hexdigest()
    assert sizes[:4] == PINNED_FIRST_SIZES
    assert digest == PINNED_DIGEST


PINNED_FIRST_SIZES = [88202, 124454, 46965, 40748]
PINNED_DIGEST = "a71bc0f22914345a6bb0fb04f19e2ac9b4170460ab33d23ac88795f9cb846982"


@pytest.mark.parametrize("kind", ["random", "zeros", "mixed"])
def test_parallel_block_cutting_equals_one_pass(tmp_path: Path, kind: str) -> None:
    """Blocks cut in parallel from guessed starts give exactly the one-pass chunks and keys,
    also where the guessed and true cut chains never meet (zeros: every cut at max_size)."""
    from concurrent.futures import ThreadPoolExecutor

    from pyfastcdc import FastCDC

    from casstore.objects.chunker import iter_file_chunks

    p = DEFAULT_PARAMS
    rng = np.random.default_rng(3)
    data = {"random": rng.bytes(5_000_000), "zeros": bytes(3_000_000),
            "mixed": bytes(1_000_000) + rng.bytes(2_000_000) + bytes(700_000) + rng.bytes(1234)}[kind]
    path = tmp_path / "f"
    path.write_bytes(data)
    one_pass = [bytes(c.data) for c in FastCDC(p.avg_size, min_size=p.min_size, max_size=p.max_size).cut_buf(data)]
    with open(path, "rb") as f, ThreadPoolExecutor(2) as pool:
        for block in (2 * p.max_size, 600_001, 4 << 20):  # 600_001: guesses start off the max_size grid
            got, keys = [], []
            for views, ks in iter_file_chunks(f.fileno(), len(data), pool, 4, p, block):
                got += [bytes(v) for v in views]
                keys += ks
            assert got == one_pass
            assert keys == [chunk_key(c) for c in one_pass]


def test_file_shorter_than_announced_is_an_error(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from casstore.objects.chunker import SourceShrankError, iter_file_chunks

    path = tmp_path / "f"
    path.write_bytes(os.urandom(3_000_000))
    with open(path, "rb") as f, ThreadPoolExecutor(2) as pool, pytest.raises(SourceShrankError):
        for _ in iter_file_chunks(f.fileno(), 5_000_000, pool, 4, DEFAULT_PARAMS, 1 << 20):
            pass


def test_decode_many_matches_decode_and_names_the_bad_blob() -> None:
    rng = np.random.default_rng(7)
    raws = [b"a" * 70_000, rng.bytes(50_000), b"xyz" * 30_000, rng.bytes(10)]
    blobs = [codec.encode(r) for r in raws]
    assert [blobs[i][:4] for i in range(4)] == [codec.ZSTD, codec.RAW, codec.ZSTD, codec.RAW]
    names = ["n0", "n1", "n2", "n3"]
    sizes = [len(r) for r in raws]
    assert [bytes(x) for x in codec.decode_many(blobs, sizes, names)] == raws
    # the same blobs in pieces, as they come out of a pack
    pieces = [[b[:2], b[2:9], b[9:]] for b in blobs]
    assert [bytes(x) for x in codec.decode_many(pieces, sizes, names)] == raws
    bad = list(blobs)
    bad[2] = bad[2][:-7] + b"garbage"
    with pytest.raises(CorruptObjectError, match="n2"):
        codec.decode_many(bad, sizes, names)
    # a frame that inflates past the manifest's size (a bomb) is refused, and named
    bomb = codec.ZSTD + zstandard.ZstdCompressor().compress(bytes(10_000_000))
    with pytest.raises(CorruptObjectError, match="n1"):
        codec.decode_many([blobs[0], bomb], [sizes[0], 1000], ["n0", "n1"])
    no_size = codec.ZSTD + zstandard.ZstdCompressor(write_content_size=False).compress(bytes(10_000_000))
    with pytest.raises(CorruptObjectError, match="n1"):
        codec.decode_many([blobs[0], no_size], [sizes[0], 1000], ["n0", "n1"])


def test_insertion_only_changes_nearby_chunks() -> None:
    data = np.random.default_rng(1).bytes(4 << 20)
    edited = data[: 2 << 20] + b"inserted bytes" + data[2 << 20 :]
    a, b = set(chunks_of(data)), set(chunks_of(edited))
    assert len(a - b) <= 3


@given(st.binary(max_size=300_000))
@settings(max_examples=30, deadline=None)
def test_chunker_round_trip(data: bytes) -> None:
    assert b"".join(chunks_of(data, ChunkParams(1024, min_size=256, max_size=4096))) == data


@given(st.binary(max_size=100_000))
@settings(max_examples=50, deadline=None)
def test_codec_round_trip(data: bytes) -> None:
    blob = codec.encode(data)
    assert codec.decode(blob, len(data), "x") == data


def test_codec_stores_incompressible_raw() -> None:
    data = os.urandom(50_000)
    assert codec.encode(data)[:4] == codec.RAW
    assert codec.encode(b"a" * 50_000)[:4] == codec.ZSTD


def test_codec_refuses_bombs_and_garbage() -> None:
    bomb = codec.ZSTD + zstandard.ZstdCompressor().compress(b"\0" * (8 << 20))
    with pytest.raises(CorruptObjectError, match="declares"):
        codec.decode(bomb, 1000, "bomb")
    # a frame without a declared size is bounded by max_output_size
    cobj = zstandard.ZstdCompressor(write_content_size=False)
    nosize = codec.ZSTD + cobj.compress(b"\0" * (8 << 20))
    with pytest.raises(CorruptObjectError):
        codec.decode(nosize, 1000, "bomb2")
    with pytest.raises(CorruptObjectError, match="not a casstore chunk"):
        codec.decode(b"JUNKJUNK", 4, "junk")
    with pytest.raises(CorruptObjectError, match="bytes, manifest says"):
        codec.decode(codec.RAW + b"abc", 4, "short")


@pytest.mark.parametrize("size", [0, 1, 15, 16, 2047, 2048, 1 << 20, (1 << 35) + 7])
def test_object_header_round_trip(size: int) -> None:
    h = object_header(3, size)
    assert parse_object_header(h + b"rest") == (3, size, len(h))


def _write_pack(tmp_path: Path, blobs: list[bytes]) -> tuple[str, str, str]:
    pack_dir = tmp_path / "objects" / "pack"
    cidx_dir = tmp_path / "cidx"
    pack_dir.mkdir(parents=True)
    cidx_dir.mkdir()
    w = PackWriter(str(pack_dir), str(cidx_dir), len(blobs))
    for b in blobs:
        w.add(encode_entry(b), chunk_key(b), len(b))
    return w.finish(), str(pack_dir), str(cidx_dir)


def test_pack_accepted_by_git_verify_pack(tmp_path: Path) -> None:
    blobs = [os.urandom(n) for n in (0, 1, 100, 70_000, 300_000)] + [b"x" * 100_000]
    name, pack_dir, _ = _write_pack(tmp_path, blobs)
    r = subprocess.run(["git", "verify-pack", "-v", os.path.join(pack_dir, name + ".idx")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for b in blobs:
        oid = hashlib.sha1(b"blob %d\0" % len(b) + b).hexdigest()
        assert oid in r.stdout
    assert not [f for f in os.listdir(pack_dir) if f.startswith("tmp_")]


def test_pack_of_blobs_in_pieces_and_partial_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries given in pieces (codec header + payload), more parts than one writev takes,
    and short writes all give a pack that git accepts and that reads back."""
    from casstore.objects import packwriter

    real_writev = os.writev
    calls = []

    def short_writev(fd: int, bufs: list[bytes]) -> int:
        calls.append(len(bufs))
        if len(calls) % 2:  # the kernel may write less than asked
            return real_writev(fd, [memoryview(bufs[0])[: max(1, len(bufs[0]) // 2)]])
        return real_writev(fd, bufs)  # EINVAL if over IOV_MAX buffers

    monkeypatch.setattr(packwriter.os, "writev", short_writev)
    monkeypatch.setattr(PackWriter, "_WRITEBACK_BYTES", 1 << 20)
    big = os.urandom(1 << 20) * 40  # 640 stored blocks: over IOV_MAX parts in one flush
    pieces = [(codec.ZSTD, big), (b"CA", b"SR" + bytes(1000)), (b"", b"tail"), (big[:70_000],)]
    pack_dir, cidx_dir = tmp_path / "objects" / "pack", tmp_path / "cidx"
    pack_dir.mkdir(parents=True)
    cidx_dir.mkdir()
    w = PackWriter(str(pack_dir), str(cidx_dir), len(pieces))
    for p in pieces:
        w.add(encode_entry(*p))
    name = w.finish()
    r = subprocess.run(["git", "verify-pack", "-v", str(pack_dir / (name + ".idx"))], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for p in pieces:
        content = b"".join(p)
        assert hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest() in r.stdout
    assert max(calls) == 1024
    assert codec.decode([b"CA", b"SR" + b"abc"], 3, "x") == b"abc"  # a header split across pieces


def test_pack_writer_abort_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    w = PackWriter(str(tmp_path / "p"), str(tmp_path), 2)
    w.add(encode_entry(b"one"), chunk_key(b"one"), 3)
    w.abort()
    assert os.listdir(tmp_path / "p") == []
    w = PackWriter(str(tmp_path / "p"), str(tmp_path), 2)
    w.add(encode_entry(b"one"), chunk_key(b"one"), 3)
    with pytest.raises(ValueError, match="announced 2"):
        w.finish()


def test_pack_writer_as_context_manager(tmp_path: Path) -> None:
    """Leaving the block without finish() (an error) removes the partial pack; after finish() the pack stays."""
    (tmp_path / "p").mkdir()
    def stopped_midway() -> None:
        with PackWriter(str(tmp_path / "p"), str(tmp_path), 2) as w:
            w.add(encode_entry(b"one"), chunk_key(b"one"), 3)
            raise RuntimeError("stopped")

    with pytest.raises(RuntimeError, match="stopped"):
        stopped_midway()
    assert os.listdir(tmp_path / "p") == []
    with PackWriter(str(tmp_path / "p"), str(tmp_path), 1) as w:
        w.add(encode_entry(b"one"), chunk_key(b"one"), 3)
    assert os.listdir(tmp_path / "p") == []  # never finished: nothing published or left behind
    with PackWriter(str(tmp_path / "p"), str(tmp_path), 1) as w:
        w.add(encode_entry(b"one"), chunk_key(b"one"), 3)
        name = w.finish()
    assert sorted(os.listdir(tmp_path / "p")) == [name + ".idx", name + ".pack"]


def test_chunk_index_lookup_with_awkward_bytes(tmp_path: Path) -> None:
    # oids and keys that end in NUL bytes, and keys sharing an 8-byte prefix
    entries = [
        IndexEntry(b"\x00" * 32, b"\x01" + b"\x00" * 19, 12, 100, 50),
        IndexEntry(b"\x00" * 8 + b"\xff" * 24, b"\x02" * 19 + b"\x00", 112, 10, 5),
        IndexEntry(b"\x7f" * 31 + b"\x00", b"\x03" * 20, 122, 10, 5),
    ]
    (tmp_path / "pack").mkdir()
    (tmp_path / "cidx").mkdir()
    (tmp_path / "pack" / "pack-a.idx").write_bytes(b"")
    (tmp_path / "pack" / "pack-a.pack").write_bytes(bytes(200))  # as long as its chunk index says
    write_cidx(str(tmp_path / "cidx" / "pack-a.cidx"), b"\x00" * 20, entries)
    idx = ChunkIndex(str(tmp_path / "cidx"), str(tmp_path / "pack"))
    idx.refresh()
    found = idx.lookup([e.key for e in entries] + [b"\x00" * 31 + b"\x01", b"\xff" * 32])
    for e, loc in zip(entries, found[:3], strict=True):
        assert loc is not None and loc.oid == e.oid and loc.offset == e.offset
        assert loc.length == e.length and loc.raw_size == e.raw_size
    assert found[-2:] == [None, None]


def test_chunk_index_ignores_sidecar_without_pack_and_detects_corruption(tmp_path: Path) -> None:
    (tmp_path / "pack").mkdir()
    (tmp_path / "cidx").mkdir()
    e = IndexEntry(b"\x05" * 32, b"\x06" * 20, 12, 10, 5)
    write_cidx(str(tmp_path / "cidx" / "pack-b.cidx"), b"\x00" * 20, [e])
    idx = ChunkIndex(str(tmp_path / "cidx"), str(tmp_path / "pack"))
    idx.refresh()
    assert idx.lookup([e.key]) == [None]
    path = tmp_path / "cidx" / "pack-b.cidx"
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[40] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptObjectError, match="checksum"):
        Sidecar(str(path), "pack-b")


@pytest.mark.parametrize("n", [0, 1, 100, 65535, 65536, 65537, 300_001])
def test_stored_deflate_matches_zlib(n: int) -> None:
    import zlib

    from casstore.objects.packwriter import deflate_stored, inflate

    data = os.urandom(n)
    z = deflate_stored(data)
    assert zlib.decompress(z) == data  # a valid zlib stream (zlib itself frames blocks of 65531)
    assert inflate(z, n) == data
    assert inflate(zlib.compress(data, 6), n) == data  # non-stored streams go through zlib
    with pytest.raises(zlib.error):
        inflate(z[:-5], n)


def test_publishing_a_pack_the_store_already_has_never_touches_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A pack written again byte for byte (a copy of one pack by maintenance or gc, a
    pull of a pack we hold) has the same name: a failure while publishing it (a full
    disk writing its .idx) must leave the published pack whole, not remove its file."""
    from casstore.objects import packwriter

    (tmp_path / "p").mkdir()

    def write() -> str:
        with PackWriter(str(tmp_path / "p"), str(tmp_path), 1) as w:
            w.add(encode_entry(b"one"), chunk_key(b"one"), 3)
            return w.finish()

    name = write()
    before = {f: (tmp_path / "p" / f).read_bytes() for f in os.listdir(tmp_path / "p")}

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(packwriter, "write_pack_index_v2", disk_full)
    assert write() == name  # the same bytes: already there, nothing to write
    assert {f: (tmp_path / "p" / f).read_bytes() for f in os.listdir(tmp_path / "p")} == before
