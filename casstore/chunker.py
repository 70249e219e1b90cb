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


def iter_chunks(f: BinaryIO, params: ChunkParams = DEFAULT_PARAMS) -> Iterator[memoryview]:
    """Yield the chunks of a binary stream in order.

    Each memoryview is valid only until the next one is requested: copy it
    (``bytes(view)``) to keep it.  Memory is bounded by pyfastcdc's read buffer.
    """
    cdc = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size)
    for chunk in cdc.cut_stream(f):
        yield chunk.data


def chunk_key(data: bytes | memoryview) -> bytes:
    """The identity of a raw chunk: BLAKE3-256."""
    return blake3.blake3(data).digest()  # type: ignore[no-any-return]

