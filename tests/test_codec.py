"""Chunk blob encodings, the per-file probe and the byte-lane format (casstore/objects/codec.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import zstandard
from dulwich.repo import Repo
from hypothesis import given, settings
from hypothesis import strategies as st

import casstore
from casstore import CorruptObjectError
from casstore.objects import codec
from tests.helpers.remotes import check_all
from tests.helpers.weights import floats

MiB = 1 << 20


def lanes_blob(raw: bytes, stride: int, packed: tuple[bool, ...] | None = None, offset: int = 0) -> bytes:
    return codec.encode(raw, plan=codec.Plan("lanes", stride, packed or (True,) * stride), offset=offset)


@given(st.binary(max_size=20_000), st.sampled_from(codec.STRIDES), st.data())
@settings(max_examples=60, deadline=None)
def test_lanes_round_trip(data: bytes, stride: int, draw: st.DataObject) -> None:
    packed = tuple(draw.draw(st.lists(st.booleans(), min_size=stride, max_size=stride)))
    blob = lanes_blob(data, stride, packed, draw.draw(st.integers(0, 7)))
    assert bytes(codec.decode(blob, len(data), "x")) == data
    assert [bytes(x) for x in codec.decode_many([blob, blob], [len(data)] * 2, ["x", "y"])] == [data, data]


@pytest.mark.parametrize(("dtype", "stride"), [("float32", 4), ("bfloat16", 2), ("float16", 2)])
def test_float_chunks_are_stored_as_lanes_and_smaller(dtype: str, stride: int) -> None:
    raw = floats(16384, dtype)[1:65536 - 2]  # a chunk cut anywhere: lanes align with the file
    blob = lanes_blob(raw, stride, offset=1)
    assert blob[:4] == codec.LANES and blob[4] == stride and blob[5] == stride - 1
    assert len(blob) < 0.95 * len(codec.encode(raw))  # the exponent lane gets its own entropy coder
    assert bytes(codec.decode(blob, len(raw), "x")) == raw
    # odd sizes and a chunk split across pieces decode too
    mixed = [blob[:3], blob[3:100], blob[100:]]
    assert bytes(codec.decode(mixed, len(raw), "x")) == raw
    assert bytes(codec.decode_many([mixed], [len(raw)], ["x"])[0]) == raw


def test_probe_picks_per_kind_of_data() -> None:
    rng = np.random.default_rng(0)
    f32 = [floats(16384, seed=i) for i in range(8)]
    plan = codec.probe(f32)
    assert plan.kind == "lanes" and plan.stride == 4
    assert plan.packed[3] and not plan.packed[0]  # the exponent lane compresses, the low mantissa does not
    # chunks cut at any offset: lanes are aligned with the file, so the same lanes are chosen
    offsets = [7 + 65533 * i for i in range(8)]
    cut = [x[o % 4:] for x, o in zip(f32, offsets, strict=True)]
    assert codec.probe(cut, offsets=offsets) == plan
    rotated = codec.encode(cut[1], plan=plan, offset=offsets[1])
    assert rotated[:4] == codec.LANES and len(rotated) < 0.9 * len(cut[1])
    assert bytes(codec.decode(rotated, len(cut[1]), "x")) == cut[1]
    assert codec.probe([floats(32768, "bfloat16", seed=i) for i in range(8)]).kind == "lanes"
    assert codec.probe([rng.bytes(65536) for _ in range(8)]) == codec.STORE  # zstd would save nothing
    text = [b"".join(b"line %d of a config file\n" % (i * 1000 + j) for j in range(2000)) for i in range(8)]
    assert codec.probe(text) == codec.PLAIN
    # a raw plan still stores a chunk, and decodes
    assert codec.encode(text[0], plan=codec.STORE)[:4] == codec.RAW
    # a lanes plan on a chunk that lanes do not shrink: one frame if that does, else raw
    junk = rng.bytes(4096)
    assert lanes_blob(junk, 4)[:4] == codec.RAW
    # (here a plan that tries no lane, on text: the lanes save nothing, one frame saves much)
    assert codec.encode(text[0], plan=codec.Plan("lanes", 4, (False,) * 4))[:4] == codec.ZSTD


def _corrupt(blob: bytes, size: int, match: str) -> None:
    with pytest.raises(CorruptObjectError, match=match) as e:
        codec.decode(blob, size, "deadbeef")
    assert e.value.oid == "deadbeef"
    ok = codec.encode(b"fine" * 100)
    with pytest.raises(CorruptObjectError, match=match) as e:
        codec.decode_many([ok, blob], [400, size], ["ok", "deadbeef"])
    assert e.value.oid == "deadbeef"


def test_small_files_are_not_probed(tmp_path: Path) -> None:
    """Fewer than PROBE_CHUNKS new chunks: one zstd frame a chunk, as before lanes existed."""
    (tmp_path / "small.bin").write_bytes(floats(40_000))  # 160 KB: ~3 chunks
    a = casstore.open(tmp_path / "a")
    a.commit_models("d", model=str(tmp_path / "small.bin"), model_id="v1")
    assert set(_chunk_headers(a)) == {codec.ZSTD}


def test_hostile_lane_blobs_are_corrupt_objects() -> None:
    raw = floats(4096)
    blob = lanes_blob(raw, 4)
    n = len(raw)
    _corrupt(codec.LANES + b"\x03" + blob[5:], n, "stride 3")
    _corrupt(codec.LANES + b"\x04\x04" + blob[6:], n, "skips 4 bytes")
    _corrupt(codec.LANES + b"\x00", n, "stride 0")
    _corrupt(codec.LANES, n, "stride 0")
    _corrupt(blob[:6] + b"\x00" * 3, n, "shorter than its lane table")
    # a lane claiming more bytes than a lane has, and lengths that do not add up
    _corrupt(blob[:6] + struct.pack("<4I", n, 0, 0, 0) + blob[22:], n, "longer than")
    _corrupt(blob[:-1], n, "after its lane table")
    _corrupt(blob + b"x", n, "after its lane table")
    _corrupt(blob, n + 1, "after its lane table")  # the manifest's size disagrees
    # a frame in a lane that would inflate past the lane's size (a bomb)
    m = 1000
    bomb = zstandard.ZstdCompressor().compress(b"\0" * (8 << 20))
    lengths = struct.pack("<2I", len(bomb), m)
    _corrupt(codec.LANES + b"\x02\x00" + lengths + bomb + b"\0" * m, 2 * m, "declares")
    nosize = zstandard.ZstdCompressor(write_content_size=False).compress(b"\0" * (8 << 20))
    lengths = struct.pack("<2I", len(nosize), m)
    _corrupt(codec.LANES + b"\x02\x00" + lengths + nosize + b"\0" * m, 2 * m, "frame of byte lane 0")


def _chunk_headers(store: casstore.Store) -> list[bytes]:
    objects = Repo(store.path).object_store
    heads = [objects.get_raw(sha)[1][:4] for sha in objects]
    return [h for h in heads if h in codec.HEADERS]


def test_float_model_round_trips_through_every_reader(tmp_path: Path) -> None:
    """A float32 file is committed as byte lanes; load, download, open_file, fsck, push and pull read it."""
    data = floats(1 << 20)  # 4 MiB: ~64 chunks, enough for the probe
    text = b"".join(b"%d,%d\n" % (i, i * i) for i in range(200_000))  # compresses as one frame
    noise = np.random.default_rng(3).bytes(2 * MiB)  # does not compress at all
    for name, content in [("w.bin", data), ("t.csv", text), ("n.bin", noise)]:
        (tmp_path / name).write_bytes(content)
    a = casstore.open(tmp_path / "a")
    a.commit_models("d", model=str(tmp_path / "w.bin"), extra_files=[str(tmp_path / "t.csv"),
                                                                      str(tmp_path / "n.bin")], model_id="v1")
    heads = _chunk_headers(a)
    assert {codec.LANES, codec.ZSTD, codec.RAW} <= set(heads)
    stored = sum(p.stat().st_size for p in (Path(a.path) / "objects" / "pack").glob("*.pack"))
    assert stored < 0.88 * len(data) + len(text) // 2 + len(noise) * 1.01  # float32 lanes: ~0.85 of raw

    out = tmp_path / "out"
    a.download(str(out), "d", "v1")
    for name, content in [("w.bin", data), ("t.csv", text), ("n.bin", noise)]:
        assert (out / name).read_bytes() == content
    with a.open_file("d", "v1", "w.bin") as f:
        f.seek(1_000_003)
        assert f.read(100_000) == data[1_000_003:1_100_003]
    size, pieces = a.stream_file("d", "v1", "w.bin")  # what `cas serve` sends
    assert size == len(data) and b"".join(bytes(p) for p in pieces) == data
    assert Path(a.load("d", "v1")).read_bytes() == data

    # the same bytes dedup whatever encoding their chunks got: keys are BLAKE3 of raw bytes
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "w.bin").write_bytes(data)
    again = a.commit_models("d", model=str(tmp_path / "copy" / "w.bin"), model_id="v2")
    assert again["stats"]["chunks_new"] == 0 and again["stats"]["chunks_total"] > 8

    remote, url_remote = tmp_path / "remote", tmp_path / "url-remote"
    url_remote.mkdir()
    for url, where in [(str(remote), remote), (f"file://{url_remote}", url_remote)]:
        assert a.push(url).ok
        b = casstore.open(tmp_path / f"b-{where.name}")
        assert b.pull(url).ok
        b.download(str(tmp_path / f"out-{where.name}"), "d", "v1")
        assert (tmp_path / f"out-{where.name}" / "w.bin").read_bytes() == data
        assert codec.LANES in _chunk_headers(b)
        check_all(a.path, b.path, where)


@pytest.mark.parametrize("plan", [codec.Plan("lanes", 4, (False, False, False, True)),
                                  codec.Plan("lanes", 2, (True, True)), codec.PLAIN, codec.STORE],
                         ids=["lanes4", "lanes2", "zstd", "raw"])
@pytest.mark.parametrize("start", [0, 1, 3])
def test_encode_span_is_encode_pieces_of_each_chunk(plan: codec.Plan, start: int) -> None:
    """A commit encodes a run of chunks at once (one lane split, one zstd call): the same
    blobs, byte for byte, as one chunk at a time, whatever the cuts (small chunks, odd
    offsets, a part of the span that is not floats and falls back to one frame or raw),
    and none of them a view of the span (the commit reads the next span into its buffer)."""
    rng = np.random.default_rng(start)
    data = floats(60_000) + bytes(3_000) + rng.bytes(70_000) + floats(30_000, seed=1)[:-1]
    sizes = [100, 255, 256, 257, 65_537, 3, 40_000, 90_001, 1]
    sizes.append(len(data) - sum(sizes))
    span = bytearray(data)
    got = codec.encode_span(span, start, sizes, 3, plan)
    span[:] = bytes(len(span))  # the buffer reused for the next span: no blob may change
    pos = 0
    for size, blob in zip(sizes, got, strict=True):
        want = b"".join(codec.encode_pieces(data[pos:pos + size], 3, plan, start + pos))
        assert bytes(blob) == want
        assert bytes(codec.decode(want, size, "x")) == data[pos:pos + size]
        pos += size
    with pytest.raises(ValueError, match="add up to"):
        codec.encode_span(data, start, sizes[:-1], 3, plan)
