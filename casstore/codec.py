"""The content of a chunk blob: a 4-byte header then the (compressed) bytes.

``CASZ`` + one zstd frame, or ``CASR`` + the raw bytes when zstd saves less than
``MIN_SAVING`` (already-compressed data).  Git stores the blob in packs with
zlib level 0, so nothing is compressed twice.

Decoding is bounded: a frame never inflates beyond the size the manifest says the
chunk has, so a hostile blob cannot be a decompression bomb.
"""

from __future__ import annotations

import threading

import zstandard

from .errors import CorruptObjectError

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


def encode(raw: bytes | memoryview, level: int = DEFAULT_LEVEL) -> bytes:
    """Blob content for a raw chunk."""
    packed = _compressor(level).compress(raw)
    if len(packed) <= len(raw) * (1 - MIN_SAVING):
        return ZSTD + packed
    return RAW + bytes(raw)


def decode(blob: bytes, raw_size: int, name: str) -> bytes:
    """Raw chunk bytes from blob content, bounded by ``raw_size``.

    Raises:
        CorruptObjectError: unknown header, bad frame, or wrong size.
    """
    head = blob[:HEADER_SIZE]
    if head == RAW:
        raw = blob[HEADER_SIZE:]
    elif head == ZSTD:
        frame = blob[HEADER_SIZE:]
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
