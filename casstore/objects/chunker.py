"""Content-defined chunking (FastCDC 2020) and chunk identity.

Chunk boundaries depend only on content, so an insertion or change in the middle of a
file moves at most the boundaries next to it and every other chunk keeps its identity.

A chunk's identity (its *key*) is BLAKE3-256 of its raw bytes: collision resistant,
so a chunk pulled from a hostile store can never stand in for one of ours.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import blake3
from pyfastcdc import FastCDC

from ..util.parallel import ordered

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


#: bytes per block of :func:`iter_file_chunks`
BLOCK_SIZE = 4 << 20


class SourceShrankError(Exception):
    """The file got shorter while it was being read."""


@dataclass
class _Guess:
    start: int  # file offset of buf[0]
    buf: memoryview  # the block and ``max_size`` bytes after it (less at the end of the file)
    limit: int  # chunks starting before this offset belong to this block
    ends: list[int]  # ends of the chunks cut from ``start``, as if a chunk began there
    keys: list[bytes]


def _guess(fd: int, start: int, limit: int, size: int, params: ChunkParams) -> _Guess:
    """Read one block and cut it as if a chunk started at its first byte (in a worker thread)."""
    want = min(limit - start + params.max_size, size - start)
    data = os.pread(fd, want, start)
    if len(data) != want:
        raise SourceShrankError(f"read {len(data)} of {want} bytes at offset {start}")
    cdc = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size)
    ends, keys = [], []
    for chunk in cdc.cut_buf(data):
        if start + chunk.offset >= limit:
            break
        ends.append(start + chunk.offset + chunk.length)
        keys.append(chunk_key(chunk.data))
    return _Guess(start, memoryview(data), limit, ends, keys)


def iter_file_chunks(  # noqa: PLR0913 - the file, the thread pool, the read window and the chunking parameters
    fd: int, size: int, pool: ThreadPoolExecutor, window: int, params: ChunkParams = DEFAULT_PARAMS,
    block_size: int = BLOCK_SIZE,
) -> Iterator[tuple[list[memoryview], list[bytes]]]:
    """The chunks of the first ``size`` bytes of a file and their keys, a block at a time.

    FastCDC is sequential: where a chunk ends depends on where it began.  Blocks
    are cut in parallel as if a chunk began at each block's first byte, and
    hashed there too.  The true cut that enters a block rarely falls on that
    guess, but the two chains of cuts meet after a chunk or two, because a cut
    depends only on the bytes since the previous one: from the first true cut
    that is also a guessed one, the block's guesses are the true cuts.  Only the
    chunks before that point are cut (and hashed) here, in order.  Each block
    is read with ``max_size`` bytes of the next one, so that every chunk
    starting in it is whole and cut exactly as in one pass (tested against one).

    Raises:
        SourceShrankError: the file has fewer than ``size`` bytes.
    """
    block_size = max(block_size, 2 * params.max_size)
    cdc = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size)
    starts = []
    pos = 0
    while pos < size:
        # the last block takes the whole tail: no block may start within max_size of the end
        limit = size if size - pos <= block_size + params.max_size else pos + block_size
        starts.append((pos, limit))
        pos = limit
    jobs = (lambda s=s, lim=lim: _guess(fd, s, lim, size, params) for s, lim in starts)  # type: ignore[misc]
    pos = 0
    for g in ordered(pool, window, jobs):
        views: list[memoryview] = []
        keys: list[bytes] = []
        guessed = {end: i + 1 for i, end in enumerate(g.ends)}  # cut -> index of the guessed chunk after it
        guessed[g.start] = 0
        while pos < g.limit and pos not in guessed:
            rel = pos - g.start
            n = next(iter(cdc.cut_buf(g.buf[rel:]))).length
            views.append(g.buf[rel : rel + n])
            keys.append(chunk_key(views[-1]))
            pos += n
        if pos < g.limit:
            for i in range(guessed[pos], len(g.ends)):
                views.append(g.buf[pos - g.start : g.ends[i] - g.start])
                keys.append(g.keys[i])
                pos = g.ends[i]
        yield views, keys


def iter_chunks(f: BinaryIO, params: ChunkParams = DEFAULT_PARAMS) -> Iterator[memoryview]:
    """Yield the chunks of a binary stream in order, in one pass: the definition of the cut
    points (:func:`iter_file_chunks` is tested against it).

    Each memoryview is valid only until the next one is requested.
    """
    cdc = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size)
    for chunk in cdc.cut_stream(f):
        yield chunk.data


def chunk_key(data: bytes | memoryview) -> bytes:
    """The identity of a raw chunk: BLAKE3-256."""
    return blake3.blake3(data).digest()  # type: ignore[no-any-return]

