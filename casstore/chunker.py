"""Content-defined chunking (FastCDC 2020) and chunk identity.

Chunk boundaries depend only on content, so an insertion or change in the middle of a
file moves at most the boundaries next to it and every other chunk keeps its identity.

A chunk's identity (its *key*) is BLAKE3-256 of its raw bytes: collision resistant,
so a chunk pulled from a hostile store can never stand in for one of ours.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import blake3
from pyfastcdc import FastCDC

#: pyfastcdc's real average is avg_size + min_size, so this gives ~64 KiB chunks.
AVG_SIZE = 48 * 1024
MIN_SIZE = 16 * 1024
MAX_SIZE = 256 * 1024
KEY_SIZE = 32


@dataclass(frozen=True)
class ChunkParams:
    avg_size: int = AVG_SIZE
    min_size: int = MIN_SIZE
    max_size: int = MAX_SIZE


DEFAULT_PARAMS = ChunkParams()


#: bytes read per block by :func:`iter_chunk_blocks`
BLOCK_SIZE = 4 << 20


def iter_chunk_blocks(
    f: BinaryIO, params: ChunkParams = DEFAULT_PARAMS, block_size: int = BLOCK_SIZE
) -> Iterator[list[memoryview]]:
    """Yield the chunks of a binary stream in order, a block's worth at a time.

    Each block is read into a buffer of its own and its chunks are views of it
    that stay valid, so they can be handed to other threads without a copy.

    A chunk is only taken from a block when it starts at least ``max_size``
    bytes before the block's end: FastCDC then saw exactly what a single pass
    over the whole stream sees, so the cut points do not depend on block
    boundaries.  The rest of the block is carried into the next one.
    """
    cdc = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size)
    block_size = max(block_size, 2 * params.max_size)
    carry: bytes | memoryview = b""
    while True:
        buf = bytearray(len(carry) + block_size)
        buf[: len(carry)] = carry
        view = memoryview(buf)
        filled = len(carry)
        while filled < len(buf):
            n = f.readinto(view[filled:])  # type: ignore[attr-defined]
            if not n:
                break
            filled += n
        eof = filled < len(buf)
        view = view[:filled]
        limit = filled if eof else filled - params.max_size
        out: list[memoryview] = []
        for chunk in cdc.cut_buf(view):
            if chunk.offset >= limit:
                carry = view[chunk.offset :]
                break
            out.append(chunk.data)
        else:
            carry = b""
        if out:
            yield out
        if eof:
            return


def iter_chunks(f: BinaryIO, params: ChunkParams = DEFAULT_PARAMS) -> Iterator[memoryview]:
    """Yield the chunks of a binary stream in order (views that stay valid)."""
    for block in iter_chunk_blocks(f, params):
        yield from block


def chunk_key(data: bytes | memoryview) -> bytes:
    """The identity of a raw chunk: BLAKE3-256."""
    return blake3.blake3(data).digest()  # type: ignore[no-any-return]

