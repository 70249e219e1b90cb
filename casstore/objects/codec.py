"""The content of a chunk blob: a 4-byte header then the (compressed) bytes.

Over 500 lines because the encoder and the decoder of each encoding (zstd, raw, byte lanes)
share its headers, plans and lane layout, and must change together.

``CASZ`` + one zstd frame, or ``CASR`` + the raw bytes when zstd saves less than
``MIN_SAVING`` (already-compressed data), or ``CASB`` + the chunk's byte lanes
(see :func:`encode_pieces`: float tensors, whose exponent bytes compress and whose
mantissa bytes do not).  Git stores the blob in packs with zlib level 0, so
nothing is compressed twice.  The chunk's identity (its BLAKE3 key) is always
that of the raw bytes, so the same chunk dedups whichever way it was encoded.

Which encoding a file's chunks get is chosen once per file by :func:`probe` on
a few sampled chunks; each chunk still falls back to ``CASR`` on its own.

Decoding is bounded: a frame never inflates beyond the size the manifest says the
chunk (or the lane) has, so a hostile blob cannot be a decompression bomb.
"""

from __future__ import annotations

import array
import itertools
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import zstandard

from ..errors import CorruptObjectError
from ..util.lazy import numpy as np  # imported on first use (util/lazy.py)

ZSTD = b"CASZ"
RAW = b"CASR"
LANES = b"CASB"
#: every header this version reads: what recognises a chunk blob in a received pack
HEADERS = (ZSTD, RAW, LANES)
HEADER_SIZE = 4
DEFAULT_LEVEL = 3
MIN_SAVING = 0.03
#: byte-lane strides: 2 (float16, bfloat16), 4 (float32)
STRIDES = (2, 4)
#: lanes are chosen over one frame only when the probe finds them this much smaller:
#: they cost a transpose on write and on read (~1.5 GB/s each with numpy)
LANES_GAIN = 0.02
#: chunks a probe compresses each way; files with fewer new chunks are not probed
PROBE_CHUNKS = 8
#: no lanes for a chunk smaller than this: the lane table would eat the gain
MIN_LANES_CHUNK = 256

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    # ZstdCompressor objects are not thread safe: one per thread and level.
    cache = getattr(_local, "c", None)
    if cache is None:
        cache = _local.c = {}
    c = cache.get(level)
    if c is None:
        c = cache[level] = zstandard.ZstdCompressor(level=level, write_checksum=False)
    return c


#: zstd settings for a lane: byte lanes have few long matches worth finding, and the gain is in
#: the entropy coder; the fast strategy with zstd's longest minimum match (7) spends little on
#: match search.  Measured on a float32 exponent lane of 16 KiB: 76 us and 5.7 KB against level
#: 3's 199 us and 6.9 KB (benchmarks/bench_codec.py, docs/benchmarks.md).  The smallest hash
#: table (2^6 entries, zstd's minimum) halves that again and finds slightly fewer, longer-lived
#: matches: 0.49 against 0.88 CPU-s per GiB of W2 and 2 % smaller lanes (issue 26).
_LANE_PARAMS = {"window_log": 17, "hash_log": 6, "min_match": 7, "search_log": 1,
                "strategy": zstandard.STRATEGY_FAST, "write_checksum": 0, "write_content_size": 1}


def _lane_compressor() -> zstandard.ZstdCompressor:
    c = getattr(_local, "lane", None)
    if c is None:
        c = _local.lane = zstandard.ZstdCompressor(
            compression_params=zstandard.ZstdCompressionParameters(**_LANE_PARAMS))
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


def encode_parts(raw: bytes | memoryview, level: int = DEFAULT_LEVEL) -> tuple[bytes, bytes | memoryview]:
    """Blob content for a raw chunk as (header, payload), so that it need not be copied."""
    packed = _compressor(level).compress(raw)
    if len(packed) <= len(raw) * (1 - MIN_SAVING):
        return ZSTD, packed
    return RAW, raw


def encode(raw: bytes | memoryview, level: int = DEFAULT_LEVEL, plan: Plan | None = None, offset: int = 0) -> bytes:
    """Blob content for a raw chunk (found at ``offset`` in its file)."""
    return b"".join(encode_pieces(raw, level, plan or PLAIN, offset))


@dataclass(frozen=True)
class Plan:
    """How to encode the chunks of one file (see :func:`probe`).

    ``kind`` is ``"zstd"`` (one frame a chunk), ``"raw"`` (store the bytes, do not
    spend zstd's time on them) or ``"lanes"``: ``stride`` byte lanes, the lanes
    flagged in ``packed`` tried with zstd, the others stored as they are.  Lane
    ``j`` holds the bytes at file offsets ``j mod stride``, so that it is the same
    byte of every value in every chunk, wherever the chunker cut.
    """

    kind: str
    stride: int = 0
    packed: tuple[bool, ...] = ()


PLAIN = Plan("zstd")
STORE = Plan("raw")


def _lanes(raw: bytes | memoryview, s: int, skip: int) -> tuple[list[memoryview], memoryview]:
    """The ``s`` byte lanes of ``raw[skip:]`` (lane ``j``: bytes ``skip + j + k*s``), each contiguous,
    and the bytes in no lane (the ``skip`` first ones, then the tail that fills no row)."""
    a = np.frombuffer(raw, np.uint8)
    skip = min(skip, len(a))
    n = (len(a) - skip) // s * s
    rows = a[skip:skip + n].reshape(-1, s)
    view = memoryview(raw)
    rest = view[skip + n:] if not skip else memoryview(bytes(view[:skip]) + bytes(view[skip + n:]))
    return [np.ascontiguousarray(rows[:, j]).data for j in range(s)], rest


def _lane_frames(raw: bytes | memoryview, s: int, skip: int, packed: Sequence[bool]) -> tuple[
        list[bytes | memoryview], memoryview]:
    """Each lane as a zstd frame where ``packed`` says so and zstd saves ``MIN_SAVING``, else raw."""
    lanes, tail = _lanes(raw, s, skip)
    c = _lane_compressor()
    out: list[bytes | memoryview] = []
    for lane, pack in zip(lanes, packed, strict=True):
        frame = c.compress(lane) if pack else b""
        out.append(frame if pack and len(frame) <= len(lane) * (1 - MIN_SAVING) else lane)
    return out, tail


def encode_pieces(raw: bytes | memoryview, level: int, plan: Plan, offset: int = 0) -> tuple[
        bytes | memoryview, ...]:
    """Blob content for a raw chunk found at ``offset`` in its file, as pieces (the header
    first), so that it need not be copied.

    ``CASB`` layout: the header; one stride byte ``s``; one skip byte ``r < s``;
    ``s`` little-endian uint32 lane lengths; the lanes; then the bytes in no lane,
    raw: the ``r`` first bytes of the chunk and the ``(len(raw) - r) % s`` last.
    With ``m = (len(raw) - r) // s``, lane ``j`` holds bytes ``r + j + k*s`` for
    ``k < m``; its stored length is ``m`` when it is stored raw and less when it
    is a zstd frame (of ``m`` bytes).  ``r`` aligns the lanes with the file
    (``r = -offset mod s``); decoding does not need the offset.  A chunk whose
    lanes would not shrink it by ``MIN_SAVING`` is tried as one zstd frame (a
    part of the file that is not float values), and stored ``CASR`` if that does
    not either.
    """
    if plan.kind == "raw":
        return RAW, raw
    if plan.kind != "lanes" or len(raw) < MIN_LANES_CHUNK:
        return encode_parts(raw, level)
    s = plan.stride
    skip = -offset % s
    lanes, tail = _lane_frames(raw, s, skip, plan.packed)
    head = LANES + bytes([s, skip]) + struct.pack(f"<{s}I", *(len(x) for x in lanes))
    if len(head) + sum(len(x) for x in lanes) + len(tail) > len(raw) * (1 - MIN_SAVING):
        return encode_parts(raw, level)
    return (head, *lanes, tail) if len(tail) else (head, *lanes)


def encode_span(data: bytes | memoryview, start: int, sizes: Sequence[int], level: int, plan: Plan) -> list[
        bytes | memoryview]:
    """The blob content of consecutive chunks: ``data`` is the part of a file found at
    ``start``, cut into chunks of ``sizes``; returns each chunk's blob, the same bytes as
    :func:`encode_pieces` gives, in one buffer that shares no memory with ``data`` (so
    that the caller may read the next span into the same buffer).

    The work is done per span, not per chunk: the lanes to compress are gathered for the
    whole span (lanes are aligned with the file, so each chunk's lane ``j`` is a slice of
    the span's lane ``j``) and every zstd frame of the span is made in one call
    (``multi_compress_to_buffer``: one release of the GIL instead of one per lane).
    """
    view = memoryview(data)
    bounds = []
    pos = 0
    for n in sizes:
        bounds.append((pos, n))
        pos += n
    if pos != len(view):
        raise ValueError(f"chunk sizes add up to {pos}, the span has {len(view)} bytes")
    if plan.kind == "raw":
        return [b"".join((RAW, view[p:p + n])) for p, n in bounds]
    if plan.kind != "lanes":
        return _frames_or_raw(view, bounds, level)
    return _lanes_span(view, start, bounds, level, plan)


def _lanes_span(view: memoryview, start: int, bounds: Sequence[tuple[int, int]], level: int, plan: Plan) -> list[
        bytes | memoryview]:
    """:func:`encode_span` for a ``"lanes"`` plan: each chunk's blob in one buffer.

    Only the lanes to compress are gathered for the span first (for zstd, in one call);
    then each blob is written once, its raw lanes gathered straight from the span's rows
    into place: no lane is copied twice, and the pack writer gets one buffer a chunk.
    """
    s = plan.stride
    skip0 = -start % s
    a = np.frombuffer(view, np.uint8)
    rows = a[skip0:]
    rows = rows[:len(rows) // s * s].reshape(-1, s)
    packed = [j for j in range(s) if plan.packed[j]]
    span_lanes = {j: np.ascontiguousarray(rows[:, j]) for j in packed}
    # per chunk: (skip, lane length, first row in ``rows``)
    layouts: list[tuple[int, int, int] | None] = []
    to_pack: list[memoryview] = []
    for p, n in bounds:
        if n < MIN_LANES_CHUNK:
            layouts.append(None)
            continue
        skip = -(start + p) % s
        m = (n - skip) // s
        row = (p + skip - skip0) // s
        layouts.append((skip, m, row))
        to_pack.extend(span_lanes[j][row:row + m].data for j in packed)
    frames = iter(_multi_compress(_lane_compressor(), to_pack))
    out: list[bytes | memoryview] = []
    for (p, n), layout in zip(bounds, layouts, strict=True):
        if layout is None:
            out.append(b"".join(encode_parts(view[p:p + n], level)))
            continue
        skip, m, row = layout
        # each lane as stored: its frame where zstd saved MIN_SAVING, else None (the raw lane)
        stored: list[memoryview | None] = [None] * s
        for j in packed:
            frame = next(frames)
            stored[j] = frame if len(frame) <= m * (1 - MIN_SAVING) else None
        lengths = [m if x is None else len(x) for x in stored]
        head = LANES + bytes([s, skip]) + struct.pack(f"<{s}I", *lengths)
        total = len(head) + sum(lengths) + n - m * s
        if total > n * (1 - MIN_SAVING):
            out.append(b"".join(encode_parts(view[p:p + n], level)))
            continue
        blob = np.empty(total, np.uint8)
        blob[:len(head)] = np.frombuffer(head, np.uint8)
        pos = len(head)
        for j, (lane, length) in enumerate(zip(stored, lengths, strict=True)):
            blob[pos:pos + length] = rows[row:row + m, j] if lane is None else np.frombuffer(lane, np.uint8)
            pos += length
        blob[pos:pos + skip] = a[p:p + skip]  # the bytes in no lane: the skipped ones, then the tail
        blob[pos + skip:] = a[p + skip + m * s:p + n]
        out.append(blob.data)
    return out


def _multi_compress(c: zstandard.ZstdCompressor, buffers: Sequence[memoryview]) -> list[memoryview]:
    """One zstd frame of each buffer, all in one call (the same frames as ``c.compress`` of each)."""
    if not buffers:
        return []
    result = c.multi_compress_to_buffer(list(buffers))
    return [memoryview(result[i]) for i in range(len(buffers))]  # type: ignore[arg-type]  # BufferSegment


def _frames_or_raw(view: memoryview, bounds: Sequence[tuple[int, int]], level: int) -> list[bytes | memoryview]:
    """:func:`encode_parts` of each chunk, joined, the frames made in one call."""
    chunks = [view[p:p + n] for p, n in bounds]
    nonempty = [c for c in chunks if len(c)]
    frames = iter(_multi_compress(_compressor(level), nonempty))
    out: list[bytes | memoryview] = []
    for c in chunks:
        if not len(c):
            out.append(b"".join(encode_parts(c, level)))
            continue
        frame = next(frames)
        out.append(b"".join((ZSTD, frame) if len(frame) <= len(c) * (1 - MIN_SAVING) else (RAW, c)))
    return out


def probe(samples: Sequence[bytes | memoryview], level: int = DEFAULT_LEVEL,
          offsets: Sequence[int] | None = None) -> Plan:
    """The plan for a file, from a few of its chunks (found at ``offsets``) compressed each way.

    ``"raw"`` when zstd saves less than ``MIN_SAVING`` on the samples (zstd's time
    would be spent for nothing), ``"lanes"`` when byte lanes of some stride are at
    least ``LANES_GAIN`` smaller than one frame a chunk, else ``"zstd"``.  Only
    size and speed depend on the choice: every plan decodes to the same bytes.
    """
    total = sum(len(x) for x in samples)
    if not total:
        return PLAIN
    c = _compressor(level)
    plain = sum(min(len(c.compress(x)), len(x)) for x in samples)
    c = _lane_compressor()
    best, best_size = PLAIN, float(plain) * (1 - LANES_GAIN)
    for s in STRIDES:
        stored = [0] * s
        packed = [0] * s
        for i, x in enumerate(samples):
            lanes, _ = _lanes(x, s, -offsets[i] % s if offsets else 0)
            for j, lane in enumerate(lanes):
                stored[j] += len(lane)
                packed[j] += len(c.compress(lane))
        use = tuple(p <= n * (1 - MIN_SAVING) for p, n in zip(packed, stored, strict=True))
        size = total - sum(stored) + sum(p if u else n for p, n, u in zip(packed, stored, use, strict=True))
        if any(use) and size < best_size:
            best, best_size = Plan("lanes", s, use), size
    if best is PLAIN and plain > total * (1 - MIN_SAVING):
        return STORE
    return best


def _split(blob: bytes | Sequence[bytes | memoryview]) -> tuple[bytes, bytes | memoryview]:
    """(header, payload) of blob content, copying only a payload that spans pieces."""
    pieces = [memoryview(blob)] if isinstance(blob, bytes) else [memoryview(p) for p in blob]
    if not pieces or len(pieces[0]) < HEADER_SIZE:
        pieces = [memoryview(b"".join(pieces))]
    first = pieces[0]
    head = bytes(first[:HEADER_SIZE])
    rest = [first[HEADER_SIZE:]] + pieces[1:]
    rest = [p for p in rest if len(p)]
    if len(rest) == 1:
        return head, rest[0]
    return head, b"".join(rest)


def _inflate(frame: bytes | memoryview, raw_size: int, name: str, what: str = "") -> bytes:
    """One zstd frame that must inflate to exactly ``raw_size`` bytes."""
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as e:
        raise CorruptObjectError(name, f"bad zstd frame header{what}: {e}") from None
    # A frame that declares its size makes zstandard allocate that much:
    # refuse any size but the one the manifest gives before decompressing.
    if declared not in (raw_size, zstandard.CONTENTSIZE_UNKNOWN):
        raise CorruptObjectError(name, f"zstd frame{what} declares {declared} bytes, manifest says {raw_size}")
    try:
        out: bytes = _decompressor().decompress(frame, max_output_size=max(raw_size, 1))
    except zstandard.ZstdError as e:
        raise CorruptObjectError(name, f"bad zstd frame{what}: {e}") from None
    if len(out) != raw_size:
        raise CorruptObjectError(name, f"zstd frame{what} has {len(out)} bytes, should have {raw_size}")
    return out


@dataclass
class _LaneLayout:
    stride: int
    skip: int
    lane_size: int
    lanes: list[memoryview]  # as stored: a frame when shorter than lane_size
    rest: memoryview  # the skipped bytes, then the tail


def _lane_layout(payload: bytes | memoryview, raw_size: int, name: str) -> _LaneLayout:
    """The parts of a ``CASB`` payload, every length checked against ``raw_size``."""
    view = memoryview(payload)
    s = view[0] if len(view) else 0
    if s not in STRIDES:
        raise CorruptObjectError(name, f"byte-lane chunk with stride {s}")
    table = 2 + 4 * s
    if len(view) < table:
        raise CorruptObjectError(name, "byte-lane chunk shorter than its lane table")
    skip = view[1]
    if skip >= s or skip > raw_size:
        raise CorruptObjectError(name, f"byte-lane chunk skips {skip} bytes (stride {s}, {raw_size} bytes)")
    lengths = struct.unpack(f"<{s}I", view[2:table])
    m = (raw_size - skip) // s
    if any(n > m for n in lengths):
        raise CorruptObjectError(name, f"byte lane longer than the chunk's {m}-byte lanes")
    rest = raw_size - m * s
    if table + sum(lengths) + rest != len(view):
        raise CorruptObjectError(name, f"byte-lane chunk has {len(view) - table} bytes after its lane table, "
                                 f"its lengths and the manifest's size say {sum(lengths) + rest}")
    lanes, pos = [], table
    for n in lengths:
        lanes.append(view[pos:pos + n])
        pos += n
    return _LaneLayout(s, skip, m, lanes, view[pos:])


_U16 = "<u2"  # a dtype string: np.dtype() at import would import numpy (util/lazy.py)


def _interleave(layout: _LaneLayout, lanes: Sequence[bytes | memoryview]) -> memoryview:
    """The chunk from its raw lanes and the bytes in no lane."""
    a = np.empty(layout.lane_size * layout.stride + len(layout.rest), np.uint8)  # every byte is written
    _interleave_into(a, layout, lanes)
    return a.data


def _interleave_into(a: np.ndarray, layout: _LaneLayout, lanes: Sequence[bytes | memoryview]) -> None:
    """Write the chunk whose raw lanes are ``lanes`` into ``a`` (exactly its size).

    Two lanes are joined as 16-bit values (``lane1 << 8 | lane0``, two contiguous passes
    numpy vectorises: ~0.2 CPU-s per GiB here against ~0.37 for two strided byte copies);
    four are copied into place one strided column each (arithmetic on 32-bit values is no
    faster, and slower where the chunk's rows are not 4-byte aligned in ``a``).
    """
    s, r, m = layout.stride, layout.skip, layout.lane_size
    body = a[r:r + m * s]
    if s == 2:
        wide = body.view(_U16)  # little-endian: byte 0 of each value is lane 0
        np.left_shift(np.frombuffer(lanes[1], np.uint8), 8, out=wide, dtype=_U16)
        wide |= np.frombuffer(lanes[0], np.uint8)
    else:
        rows = body.reshape(-1, s)
        for j, lane in enumerate(lanes):
            rows[:, j] = np.frombuffer(lane, np.uint8)
    rest = np.frombuffer(layout.rest, np.uint8)
    a[:r] = rest[:r]
    a[r + m * s:] = rest[r:]


def decode(blob: bytes | Sequence[bytes | memoryview], raw_size: int, name: str) -> bytes | memoryview:
    """Raw chunk bytes from blob content (one buffer or its pieces), bounded by ``raw_size``.

    The result may be a view of ``blob`` (a raw chunk in one piece).

    Raises:
        CorruptObjectError: unknown header, bad frame, bad lane table, or wrong size.
    """
    head, payload = _split(blob)
    raw: bytes | memoryview
    if head == RAW:
        raw = payload
    elif head == ZSTD:
        raw = _inflate(payload, raw_size, name)
    elif head == LANES:
        layout = _lane_layout(payload, raw_size, name)
        m = layout.lane_size
        raw = _interleave(layout, [
            x if len(x) == m else _inflate(x, m, name, f" of byte lane {j}") for j, x in enumerate(layout.lanes)])
    else:
        raise CorruptObjectError(name, f"not a casstore chunk (header {head!r})")
    if len(raw) != raw_size:
        raise CorruptObjectError(name, f"chunk has {len(raw)} bytes, manifest says {raw_size}")
    return raw


def decode_many(
    blobs: Sequence[bytes | Sequence[bytes | memoryview]], raw_sizes: Sequence[int], names: Sequence[str]
) -> list[memoryview]:
    """:func:`decode` of many blobs: views of one :func:`decode_run` buffer, one a blob."""
    run = decode_run(blobs, raw_sizes, names)
    out, pos = [], 0
    for n in raw_sizes:
        out.append(run[pos:pos + n])
        pos += n
    return out


def decode_run(  # noqa: C901, PLR0912 - one branch per frame kind, in the decoder's hot loop
    blobs: Sequence[bytes | Sequence[bytes | memoryview]], raw_sizes: Sequence[int], names: Sequence[str]
) -> memoryview:
    """:func:`decode` of consecutive chunks into one buffer: their raw bytes end to end.

    The work is done per run, not per chunk: every zstd frame of the run (whole chunks
    and byte lanes) is inflated in one call (``multi_decompress_to_buffer``: one release
    of the GIL instead of one per frame), and each chunk is written once, into its place
    in a buffer allocated once for the run (lanes interleaved straight into it), so that
    the reader hashes and writes the run with one call each.  Output sizes come from the
    manifest, never from the frames.  Any error is reported by decoding the blobs one by
    one with :func:`decode`, so that it names the (first) bad blob; nothing of the run is
    returned then.
    """
    def one_by_one() -> memoryview:
        return memoryview(b"".join([decode(b, n, name) for b, n, name in zip(blobs, raw_sizes, names, strict=True)]))

    if len(blobs) != len(raw_sizes) or len(blobs) != len(names):
        raise ValueError(f"{len(blobs)} blobs, {len(raw_sizes)} sizes and {len(names)} names")
    starts = list(itertools.accumulate(raw_sizes, initial=0))
    frames: list[bytes | bytearray | memoryview] = []
    frame_sizes: list[int] = []
    # where each frame's output goes: (blob, -1) for a CASZ chunk, (blob, lane) for a CASB lane
    where: list[tuple[int, int]] = []
    copies: list[tuple[int, bytes | memoryview]] = []  # CASR chunks: (blob, payload)
    layouts: dict[int, tuple[_LaneLayout, list[bytes | memoryview]]] = {}
    shift = 0  # where the run starts in its buffer: 16-bit lanes land aligned (see _interleave_into)
    for i, blob in enumerate(blobs):
        head, payload = _split(blob)
        n = raw_sizes[i]
        if head == ZSTD and n > 0:
            frames.append(payload)
            frame_sizes.append(n)
            where.append((i, -1))
        elif head == RAW and len(payload) == n:
            copies.append((i, payload))
        elif head == LANES:
            try:
                layout = _lane_layout(payload, n, names[i])
            except CorruptObjectError:
                return one_by_one()
            if not layouts:
                shift = -(starts[i] + layout.skip) % 8
            layouts[i] = layout, list(layout.lanes)
            for j, x in enumerate(layout.lanes):
                if len(x) < layout.lane_size:
                    frames.append(x)
                    frame_sizes.append(layout.lane_size)
                    where.append((i, j))
        else:
            return one_by_one()
    buf = np.empty(starts[-1] + shift, np.uint8)
    out = buf[shift:]
    if frames:
        sizes = array.array("Q", frame_sizes)
        try:
            result = _decompressor().multi_decompress_to_buffer(frames, decompressed_sizes=memoryview(sizes))
        except zstandard.ZstdError:
            return one_by_one()
        for k, (i, j) in enumerate(where):
            view = memoryview(result[k])  # type: ignore[arg-type]  # BufferSegment is a buffer
            if len(view) != frame_sizes[k]:
                return one_by_one()
            if j < 0:
                out[starts[i]:starts[i + 1]] = np.frombuffer(view, np.uint8)
            else:
                layouts[i][1][j] = view
    for i, payload in copies:
        out[starts[i]:starts[i + 1]] = np.frombuffer(payload, np.uint8)
    for i, (layout, lanes) in layouts.items():
        _interleave_into(out[starts[i]:starts[i + 1]], layout, lanes)
    return out.data
