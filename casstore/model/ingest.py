"""Streaming ingest: files -> content-defined chunks -> one new pack.

Two passes over each file, so that memory stays bounded by chunk size times
threads whatever the file size, and so that known chunks are never compressed:

1. *Hash.*  Cut every file into chunks and hash them (BLAKE3 keys), blocks in
   parallel in a thread pool (see ``chunker.iter_file_chunks``); hash whole files
   in order on one more thread.  Look all keys up in the chunk index: what the
   store has costs nothing more.
2. *Store.*  Re-read only the new chunks (a run of consecutive ones with one read),
   compress and encode them in the pool, a run at a time (``codec.encode_span``),
   each file's chunks as a probe of a few of them chose (``codec.probe``: one zstd
   frame, byte lanes for float tensors, or raw for data zstd cannot shrink), and
   stream them in order into a single pack whose object count is now known.
   A re-read chunk whose BLAKE3 differs from its key means the source file changed
   under us: the commit fails instead of storing bytes that do not match their key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field

import blake3
import xxhash

from ..errors import CasError
from ..objects.chunker import DEFAULT_PARAMS, ChunkParams, SourceShrankError, chunk_key, iter_file_chunks
from ..objects.codec import DEFAULT_LEVEL, PLAIN, PROBE_CHUNKS, Plan, encode_span, probe
from ..objects.odb import ObjectDB
from ..objects.packwriter import EncodedEntry, encode_entry
from ..util.parallel import batched_sizes, default_workers, gc_paused, ordered
from ..util.progress import Counter, ProgressFn

Progress = Callable[[int], None]  # called with bytes just processed


class SourceChangedError(CasError):
    """A file changed while it was being committed."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} changed while it was being committed; nothing was stored")


@dataclass(frozen=True)
class Source:
    """A file to store: its path in the manifest and on the local disk."""

    path: str
    local: str
    kind: str  # "model" or "extra"


@dataclass
class IngestedFile:
    path: str
    kind: str
    size: int = 0
    blake3: bytes = b""
    xxh3: bytes = b""
    keys: list[bytes] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    oids: list[bytes] = field(default_factory=list)


@dataclass
class IngestStats:
    bytes_given: int = 0
    bytes_stored: int = 0
    chunks_total: int = 0
    chunks_new: int = 0
    pack: str | None = None


def _hash_file(  # noqa: PLR0913 - what hashing a file needs, passed from ingest
    src: Source, params: ChunkParams, pool: ThreadPoolExecutor, seq: ThreadPoolExecutor,
    window: int, progress: Progress | None,
) -> IngestedFile:
    out = IngestedFile(src.path, src.kind)
    whole_b3 = blake3.blake3()
    whole_xx = xxhash.xxh3_128()

    def whole(batch: list[memoryview]) -> None:
        for c in batch:
            whole_b3.update(c)
            whole_xx.update(c)

    seq_futures: list[Future[None]] = []
    with open(src.local, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            for views, keys in iter_file_chunks(f.fileno(), size, pool, window, params):
                sizes = [len(v) for v in views]
                out.keys.extend(keys)
                out.sizes.extend(sizes)
                seq_futures.append(seq.submit(whole, views))
                if progress:
                    progress(sum(sizes))
                # The whole-file hasher holds every batch queued for it: wait for it when it
                # falls behind (CPU contention), or memory would grow with the file size.
                while seq_futures and (seq_futures[0].done() or len(seq_futures) > window):
                    seq_futures.pop(0).result()
        except SourceShrankError:
            raise SourceChangedError(src.local) from None
        for fut in seq_futures:
            fut.result()
        if os.fstat(f.fileno()).st_size != size:
            raise SourceChangedError(src.local)
    out.size = size
    out.blake3 = whole_b3.digest()
    out.xxh3 = whole_xx.digest()
    return out


def _plans(fds: Sequence[int], todo: Sequence[tuple[bytes, tuple[int, int, int]]], level: int) -> dict[int, Plan]:
    """How to encode each file's new chunks: ``codec.probe`` of up to ``PROBE_CHUNKS`` of them, evenly spread.

    A file with fewer new chunks than that is not probed (one zstd frame a chunk, as
    before): for small files the probe would cost more than it could save.  Only the
    encoding depends on it; chunk keys, and so dedup, do not.
    """
    per_file: dict[int, list[tuple[int, int]]] = {}
    for _, (fi, off, size) in todo:
        per_file.setdefault(fi, []).append((off, size))
    plans = {}
    for fi, spans in per_file.items():
        if len(spans) < PROBE_CHUNKS:
            continue
        step = len(spans) / PROBE_CHUNKS
        samples = [spans[int(k * step)] for k in range(PROBE_CHUNKS)]
        plans[fi] = probe([os.pread(fds[fi], size, off) for off, size in samples], level,
                          [off for off, _ in samples])
    return plans


def _runs(todo: Sequence[tuple[bytes, tuple[int, int, int]]], batch: range) -> list[range]:
    """``batch`` cut into runs of chunks that follow each other in one file: each run is
    read with one ``pread`` and encoded as one span (``codec.encode_span``)."""
    runs = []
    first = batch.start
    for i in range(batch.start + 1, batch.stop):
        fi, off, _ = todo[i][1]
        pfi, poff, psize = todo[i - 1][1]
        if fi != pfi or off != poff + psize:
            runs.append(range(first, i))
            first = i
    if first < batch.stop:
        runs.append(range(first, batch.stop))
    return runs


def ingest(  # noqa: C901, PLR0913 - chunk, look up, compress and write in parallel; its tuning options
    odb: ObjectDB,
    sources: Sequence[Source],
    *,
    params: ChunkParams = DEFAULT_PARAMS,
    level: int = DEFAULT_LEVEL,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> tuple[list[IngestedFile], IngestStats]:
    """Store every chunk of ``sources`` that the store lacks, in one new pack.

    Returns the files with their chunk keys and blob oids, and statistics.  On
    any exception, including KeyboardInterrupt, the partial pack is removed and
    the store is unchanged.
    """
    workers = workers or default_workers()
    window = 2 * workers + 2
    stats = IngestStats()
    with gc_paused(), ThreadPoolExecutor(workers, thread_name_prefix="cas-ingest") as pool, \
            ThreadPoolExecutor(1, thread_name_prefix="cas-wholefile") as seq:
        hashing = Counter(progress, "hashing", sum(os.path.getsize(s.local) for s in sources))
        files = [_hash_file(s, params, pool, seq, window, hashing) for s in sources]

        odb.index.refresh()
        all_keys = [k for f in files for k in f.keys]
        locations = odb.index.lookup(all_keys)
        known: dict[bytes, bytes] = {}
        for key, loc in zip(all_keys, locations, strict=True):
            if loc is not None:
                known[key] = loc.oid
        # new chunks, first occurrence only: (file index, offset, size)
        new: dict[bytes, tuple[int, int, int]] = {}
        for fi, f in enumerate(files):
            offset = 0
            for key, size in zip(f.keys, f.sizes, strict=True):
                if key not in known and key not in new:
                    new[key] = (fi, offset, size)
                offset += size
        stats.bytes_given = sum(f.size for f in files)
        stats.chunks_total = len(all_keys)
        stats.chunks_new = len(new)

        if new:
            storing = Counter(progress, "storing", sum(v[2] for v in new.values()))
            # a small commit's chunks go into the commit's one pack (ObjectDB.deferred)
            with ExitStack() as opened, odb.chunk_writer(len(new), storing.total) as writer:
                handles = [opened.enter_context(open(s.local, "rb")) for s in sources]
                todo = list(new.items())
                plans = _plans([h.fileno() for h in handles], todo, level)

                def store_batch(batch: range) -> list[EncodedEntry]:
                    out: list[EncodedEntry] = []
                    for run in _runs(todo, batch):
                        fi, start = todo[run[0]][1][0], todo[run[0]][1][1]
                        sizes = [todo[i][1][2] for i in run]
                        data = os.pread(handles[fi].fileno(), sum(sizes), start)
                        if len(data) != sum(sizes):
                            raise SourceChangedError(sources[fi].local)
                        view = memoryview(data)
                        pos = 0
                        for i, size in zip(run, sizes, strict=True):
                            # re-read: the bytes must still be the ones whose key pass 1 computed
                            if chunk_key(view[pos:pos + size]) != todo[i][0]:
                                raise SourceChangedError(sources[fi].local)
                            pos += size
                        out.extend(encode_entry(blob) for blob in encode_span(
                            view, start, sizes, level, plans.get(fi, PLAIN)))
                    return out

                batches = list(batched_sizes([v[2] for _, v in todo]))
                jobs = (lambda b=b: store_batch(b) for b in batches)  # type: ignore[misc]
                for batch, entries in zip(batches, ordered(pool, window, jobs), strict=True):
                    for i, entry in zip(batch, entries, strict=True):
                        key, (_, _, size) = todo[i]
                        writer.add(entry, key, size)
                        storing(size)
                        known[key] = entry.oid
                        stats.bytes_stored += entry.length
                stats.pack = writer.finish()
            odb.index.refresh()

    for f in files:
        f.oids = [known[k] for k in f.keys]
    return files, stats
