"""The content of a chunk blob: a 4-byte header then the (compressed) bytes.

``CASZ`` + one zstd frame, or ``CASR`` + the raw bytes when zstd saves less than
``MIN_SAVING`` (already-compressed data).  Git stores the blob in packs with
zlib level 0, so nothing is compressed twice.

Decoding is bounded: a frame never inflates beyond the size the manifest says the
chunk has, so a hostile blob cannot be a decompression bomb.
"""

from __future__ import annotations

import array
import threading
from collections.abc import Sequence

import zstandard

from ..errors import CorruptObjectError

ZSTD = b"CASZ"
RAW = b"CASR"
HEADER_SIZE = 4
DEFAULT_LEVEL = 3
MIN_SAVING = 0.03

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


def encode(raw: bytes | memoryview, level: int = DEFAULT_LEVEL) -> bytes:
    """Blob content for a raw chunk."""
    return b"".join(encode_parts(raw, level))


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


def decode(blob: bytes | Sequence[bytes | memoryview], raw_size: int, name: str) -> bytes | memoryview:
    """Raw chunk bytes from blob content (one buffer or its pieces), bounded by ``raw_size``.

    The result may be a view of ``blob`` (a raw chunk in one piece).

    Raises:
        CorruptObjectError: unknown header, bad frame, or wrong size.
    """
    head, payload = _split(blob)
    raw: bytes | memoryview
    if head == RAW:
        raw = payload
    elif head == ZSTD:
        frame = payload
        try:
            declared = zstandard.frame_content_size(frame)
        except zstandard.ZstdError as e:
            raise CorruptObjectError(name, f"bad zstd frame header: {e}") from None
        # A frame that declares its size makes zstandard allocate that much:
        # refuse any size but the one the manifest gives before decompressing.
        if declared not in (raw_size, zstandard.CONTENTSIZE_UNKNOWN):
            raise CorruptObjectError(
                name, f"zstd frame declares {declared} bytes, manifest says {raw_size}"
            )
        try:
            raw = _decompressor().decompress(
                frame, max_output_size=max(raw_size, 1)
            )
        except zstandard.ZstdError as e:
            raise CorruptObjectError(name, f"bad zstd frame: {e}") from None
    else:
        raise CorruptObjectError(name, f"not a casstore chunk (header {head!r})")
    if len(raw) != raw_size:
        raise CorruptObjectError(name, f"chunk has {len(raw)} bytes, manifest says {raw_size}")
    return raw


def decode_many(
    blobs: Sequence[bytes | Sequence[bytes | memoryview]], raw_sizes: Sequence[int], names: Sequence[str]
) -> list[bytes | memoryview]:
    """:func:`decode` of many blobs, the zstd frames in one call.

    One call (one release of the GIL) for a batch instead of one per chunk: a
    thread decoding chunks then rarely has to take the GIL back from a thread
    running Python, such as an unpickler reading the file being decoded.  Output
    sizes come from the manifest, never from the frames.  Any error is reported
    by decoding the blobs one by one, so that it names the blob.
    """
    def one_by_one() -> list[bytes | memoryview]:
        return [decode(b, n, name) for b, n, name in zip(blobs, raw_sizes, names, strict=True)]

    split = [_split(b) for b in blobs]
    out: list[bytes | memoryview] = [b""] * len(split)
    frames: list[bytes | bytearray | memoryview] = []
    where: list[int] = []
    for i, (head, payload) in enumerate(split):
        if head == ZSTD and raw_sizes[i] > 0:
            frames.append(payload)
            where.append(i)
        elif head == RAW and len(payload) == raw_sizes[i]:
            out[i] = payload
        else:
            return one_by_one()
    if frames:
        sizes = array.array("Q", (raw_sizes[i] for i in where))
        try:
            result = _decompressor().multi_decompress_to_buffer(frames, decompressed_sizes=memoryview(sizes))
        except zstandard.ZstdError:
            return one_by_one()
        for j, i in enumerate(where):
            view = memoryview(result[j])  # type: ignore[arg-type]  # BufferSegment is a buffer
            if len(view) != raw_sizes[i]:
                return one_by_one()
            out[i] = view
    return out
