"""Reading a run of chunks at once (codec.decode_run, ObjectDB.read_run, readback.iter_file): the same
bytes as chunk by chunk, for every encoding, and a bad chunk in the middle of a run is named with
none of the run's bytes handed out (issue 26 target 3)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

import casstore
from casstore import CorruptObjectError
from casstore.objects import codec
from casstore.objects.chunker import ChunkParams
from casstore.util.parallel import batched_sizes
from tests.helpers.damage import flip_byte
from tests.helpers.weights import floats

MiB = 1 << 20

PLANS = [codec.PLAIN, codec.STORE, codec.Plan("lanes", 4, (False, False, True, True)),
         codec.Plan("lanes", 2, (False, True)), codec.Plan("lanes", 4, (True,) * 4),
         codec.Plan("lanes", 2, (False,) * 2)]


def _pieces(blob: bytes, cuts: list[int]) -> list[bytes]:
    """``blob`` cut at ``cuts`` (as a pack entry's stored blocks cut it)."""
    at = sorted({c % (len(blob) + 1) for c in cuts})
    return [blob[a:b] for a, b in itertools.pairwise([0, *at, len(blob)])]


@st.composite
def chunk_runs(draw: st.DrawFn) -> tuple[list[bytes], list[bytes | list[bytes]]]:
    """Consecutive chunks of a file (weights-like or arbitrary bytes, 0 to ~9000 bytes, odd sizes
    too), each encoded with any plan at its offset in the file, some in pieces."""
    raws: list[bytes] = []
    blobs: list[bytes | list[bytes]] = []
    offset = draw(st.integers(0, 7))
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            n = draw(st.integers(0, 9000))
            start = draw(st.integers(0, 3))
            raw = floats(n // 2 + 4, draw(st.sampled_from(["float32", "bfloat16"])), draw(st.integers(0, 3)))
            raw = raw[start:start + n]
        else:
            raw = draw(st.binary(max_size=3000))
        blob = codec.encode(raw, plan=draw(st.sampled_from(PLANS)), offset=offset)
        cuts = draw(st.lists(st.integers(0, 1 << 16), max_size=3))
        blobs.append(_pieces(blob, cuts) if cuts else blob)
        raws.append(raw)
        offset += len(raw)
    return raws, blobs


@given(chunk_runs())
@settings(max_examples=150, deadline=None)
def test_decode_run_is_decode_of_each_chunk(run: tuple[list[bytes], list[bytes | list[bytes]]]) -> None:
    raws, blobs = run
    sizes = [len(r) for r in raws]
    names = [f"n{i}" for i in range(len(raws))]
    one_by_one = [bytes(codec.decode(b, n, name)) for b, n, name in zip(blobs, sizes, names, strict=True)]
    assert one_by_one == raws
    assert bytes(codec.decode_run(blobs, sizes, names)) == b"".join(raws)
    assert [bytes(x) for x in codec.decode_many(blobs, sizes, names)] == raws


def _damaged(blob: bytes, how: str) -> bytes:
    if how == "header":
        return b"CASX" + blob[4:]
    if how == "truncated":
        return blob[:-3]
    if how == "lane table":  # a lane length one byte longer than the chunk's lanes
        head = bytearray(blob)
        head[6] ^= 0x01
        return bytes(head)
    assert how == "frame"
    return blob[:4] + zstandard.ZstdCompressor().compress(bytes(100_000))  # a frame bigger than the chunk


@pytest.mark.parametrize("how", ["header", "truncated", "lane table", "frame"])
def test_a_bad_blob_in_the_middle_of_a_run_is_named(how: str) -> None:
    data = floats(20_000)
    plan = codec.Plan("lanes", 4, (False, False, True, True))
    sizes = [10_000, 9_999, 20_003, 3, 39_995]
    offsets = [0, *itertools.accumulate(sizes)][:-1]
    raws = [data[o:o + n] for o, n in zip(offsets, sizes, strict=True)]
    blobs = [codec.encode(r, plan=plan, offset=o) for r, o in zip(raws, offsets, strict=True)]
    assert [b[:4] for b in blobs] == [codec.LANES] * 3 + [codec.RAW, codec.LANES]
    names = [f"n{i}" for i in range(5)]
    assert bytes(codec.decode_run(blobs, sizes, names)) == data[:sum(sizes)]
    bad = list(blobs)
    bad[2] = _damaged(blobs[2], how)
    with pytest.raises(CorruptObjectError) as e:
        codec.decode_run(bad, sizes, names)
    assert e.value.oid == "n2"


# -- through a store ----------------------------------------------------------------------------

def _content(kind: str, size: int) -> bytes:
    if kind == "f32":
        return floats(size // 4 + 1)[:size]
    if kind == "bf16":
        return floats(size // 2 + 1, "bfloat16")[:size]
    if kind == "raw":
        return np.random.default_rng(5).bytes(size)
    return b"".join(b"%d,%d\n" % (i, i * 7) for i in range(size // 6 + 1))[:size]


HEADER = {"f32": codec.LANES, "bf16": codec.LANES, "raw": codec.RAW, "zstd": codec.ZSTD}


@pytest.mark.parametrize("kind", ["f32", "bf16", "raw", "zstd"])
@pytest.mark.parametrize("chunks", ["small", "default"])
def test_every_encoding_round_trips_across_runs(tmp_path: Path, kind: str, chunks: str) -> None:
    """Files of 0, 1, an odd number of bytes and several runs read back byte for byte by each reader."""
    s = casstore.open(tmp_path / "s")
    if chunks == "small":  # ~1,300 chunks in 5 MiB: dozens per run, runs cut between any two
        s.params = ChunkParams(4096, min_size=1024, max_size=16384)
    files = {"empty.bin": b"", "one.bin": _content(kind, 1), "odd.bin": _content(kind, 4097),
             "big.bin": _content(kind, 5 * MiB + 3)}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    s.commit_models("d", model=str(tmp_path / "big.bin"), model_id="v1",
                    extra_files=[str(tmp_path / n) for n in files if n != "big.bin"])
    out = s.download(tmp_path / "out", "d", "v1")
    for name, content in files.items():
        assert (Path(out) / name).read_bytes() == content, name
        assert s.read_file("d", "v1", name) == content
        with s.open_file("d", "v1", name) as f:
            assert f.read() == content
        size, pieces = s.stream_file("d", "v1", name, 2)
        assert size == len(content) and b"".join(bytes(p) for p in pieces) == content
    heads = _headers(s)
    assert HEADER[kind] in heads


def _headers(s: casstore.Store) -> set[bytes]:
    from dulwich.repo import Repo
    objects = Repo(s.path).object_store
    return {h for h in (objects.get_raw(sha)[1][:4] for sha in objects) if h in codec.HEADERS}


def test_corruption_in_the_middle_of_a_run_is_named_and_none_of_the_run_handed_out(tmp_path: Path) -> None:
    s = casstore.open(tmp_path / "s")
    data = floats(3 * MiB // 4 * 3)  # 9 MiB of float32: several runs of ~2 MiB
    (tmp_path / "w.bin").write_bytes(data)
    s.commit_models("d", model=str(tmp_path / "w.bin"), model_id="v1")
    manifest = s._resolve("d", "v1")[1]
    entry = manifest.files[0]
    runs = list(batched_sizes(entry.sizes))
    assert len(runs) >= 3
    second = runs[1]
    bad = second.start + len(second) // 2  # a chunk in the middle of the second run
    run_start = sum(entry.sizes[:second.start])
    sl = slice(second.start, second.stop)
    locs = s.repo.odb.index.lookup(entry.keys[sl])
    loc = locs[bad - second.start]
    assert loc is not None and all(locs)
    flip_byte(os.path.join(s.repo.odb.pack_dir, loc.pack + ".pack"), loc.offset + loc.length // 2)
    oid = loc.oid.hex()

    s2 = casstore.open(tmp_path / "s")
    size, pieces = s2.stream_file("d", "v1", "w.bin", 1)
    got = bytearray()

    def take_all() -> None:
        for p in pieces:
            got.extend(p)

    with pytest.raises(CorruptObjectError) as e:
        take_all()
    assert e.value.oid == oid
    assert len(got) <= run_start and bytes(got) == data[:len(got)]  # nothing of the bad chunk's run
    with pytest.raises(CorruptObjectError, match=oid):
        s2.download(tmp_path / "out", "d", "v1")
    assert not (tmp_path / "out" / "w.bin").exists()
    assert not [p for p in (tmp_path / "out").iterdir()]
    oids = [x.oid for x in locs if x is not None]
    for check_keys in (True, False):  # without the keys the flip is in a raw lane: decoded, not named
        s3 = casstore.open(tmp_path / "s")
        if check_keys:
            with pytest.raises(CorruptObjectError, match=oid):
                s3.repo.odb.read_run(entry.keys[sl], oids, entry.sizes[sl], locs)
        else:
            run = s3.repo.odb.read_run(entry.keys[sl], oids, entry.sizes[sl], locs, check_keys=False)
            assert bytes(run) != data[run_start:run_start + len(run)]
