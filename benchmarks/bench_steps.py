"""CPU-seconds per GiB of each step of a commit and a download (docs/benchmarks.md, issue 26).

Usage: python benchmarks/bench_steps.py [FILE] [--mib N]

FILE defaults to N MiB (256) of float32 N(0,1) values, as bench.py's W2.  Each step is
timed alone on one thread (``time.thread_time``) calling casstore's own functions the way
its pipeline does, then a whole ``cas commit`` and ``cas download`` run in this process
(``time.process_time``: every thread, start-up left out).  Run it with PYTHONPATH pointing
at two checkouts, interleaved, to compare them: it works with the code before and after
``codec.encode_span`` (issue 26).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Sequence

import blake3
import numpy as np
import xxhash
from pyfastcdc import FastCDC

from casstore.cli import main as cas
from casstore.objects import codec, packwriter
from casstore.objects.chunker import DEFAULT_PARAMS, chunk_key

Buffer = bytes | memoryview
RUN = 2 << 20  # the commit's batches (util.parallel.batched_sizes)


class Steps:
    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.t = time.thread_time()

    def start(self) -> None:
        self.t = time.thread_time()

    def done(self, name: str) -> None:
        t = time.thread_time()
        self.cpu[name] = self.cpu.get(name, 0.0) + t - self.t
        self.t = t


def entry(steps: Steps, pieces: Sequence[Buffer], pack_sha: hashlib._Hash, fd: int) -> None:
    """What ``encode_entry`` and ``PackWriter.add`` do with one chunk blob, step by step."""
    if len(pieces) > 1 and hasattr(codec, "encode_span"):  # encode_entry joins the pieces since
        pieces = (b"".join(pieces),)
        steps.done("c2 join the blob's pieces")
    oid = hashlib.sha1(b"blob %d\x00" % sum(len(p) for p in pieces))
    for p in pieces:
        oid.update(p)
    steps.done("c2 git object SHA-1")
    parts = packwriter.deflate_stored_parts(*pieces)
    steps.done("c2 zlib stored-block framing + Adler-32")
    crc = 0
    for p in parts:
        crc = zlib.crc32(p, crc)
    steps.done("c2 CRC-32 for the .idx")
    for p in parts:
        pack_sha.update(p)
    steps.done("c2 pack trailer SHA-1")
    os.writev(fd, parts)
    steps.done("c2 write the pack")


def commit_steps(path: str, work: str, steps: Steps) -> list[tuple[list[int], list[Buffer]]]:
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    p = DEFAULT_PARAMS
    cdc = FastCDC(p.avg_size, min_size=p.min_size, max_size=p.max_size)
    spans: list[tuple[int, int, bytes]] = []
    whole_b3, whole_xx = blake3.blake3(), xxhash.xxh3_128()
    steps.start()
    for off in range(0, size, 4 << 20):
        data = os.pread(fd, 4 << 20, off)
        steps.done("c1 read the file")
        cuts = list(cdc.cut_buf(data))
        steps.done("c1 FastCDC")
        spans.extend((off + c.offset, c.length, chunk_key(c.data)) for c in cuts)
        steps.done("c1 BLAKE3 chunk keys")
        whole_b3.update(data)
        whole_xx.update(data)
        steps.done("c1 whole-file BLAKE3 + xxh3")
    sample = spans[:: max(1, len(spans) // 8)][:8]
    plan = codec.probe([os.pread(fd, n, o) for o, n, _ in sample], 3, [o for o, _, _ in sample])
    runs: list[list[tuple[int, int, bytes]]] = [[]]
    for s in spans:
        if sum(n for _, n, _ in runs[-1]) >= RUN:
            runs.append([])
        runs[-1].append(s)
    out = os.open(os.path.join(work, "pack"), os.O_WRONLY | os.O_CREAT, 0o600)
    pack_sha = hashlib.sha1()
    blobs: list[tuple[list[int], list[Buffer]]] = []
    new = hasattr(codec, "encode_span")
    for run in runs:
        steps.start()
        sizes = [n for _, n, _ in run]
        encoded: list[Sequence[Buffer]] = []
        if new:
            data = os.pread(fd, sum(sizes), run[0][0])
            steps.done("c2 re-read the new chunks")
            view, pos = memoryview(data), 0
            for _, n, key in run:
                assert chunk_key(view[pos:pos + n]) == key
                pos += n
            steps.done("c2 BLAKE3 re-check")
            encoded = [(b,) for b in codec.encode_span(view, run[0][0], sizes, 3, plan)]
            steps.done("c2 byte lanes + zstd")
        else:
            for o, n, key in run:
                data = os.pread(fd, n, o)
                steps.done("c2 re-read the new chunks")
                assert chunk_key(data) == key
                steps.done("c2 BLAKE3 re-check")
                encoded.append(codec.encode_pieces(data, 3, plan, o))
                steps.done("c2 byte lanes + zstd")
        for pieces in encoded:
            entry(steps, pieces, pack_sha, out)
        blobs.append((sizes, [b"".join(pieces) for pieces in encoded]))  # for the download steps, untimed
    os.close(out)
    os.close(fd)
    return blobs


def download_steps(blobs: list[tuple[list[int], list[Buffer]]], work: str, steps: Steps) -> None:
    """What ``readback.write_file`` does with each run of chunks, step by step: decode the run,
    then hash and write it piece by piece (a run in 256 KiB pieces since ``codec.decode_run``,
    one piece a chunk before)."""
    whole_b3, whole_xx = blake3.blake3(), xxhash.xxh3_128()
    piece = 256 << 10
    with open(os.path.join(work, "out"), "wb") as f:
        for sizes, run in blobs:
            steps.start()
            if hasattr(codec, "decode_run"):
                buf = codec.decode_run(run, sizes, ["x"] * len(run))
                raws: Sequence[Buffer] = [buf[p:p + piece] for p in range(0, len(buf), piece)]
            else:
                raws = codec.decode_many(run, sizes, ["x"] * len(run))
            steps.done("d decode (zstd + byte-lane interleave)")
            for r in raws:
                whole_b3.update(r)
                steps.done("d whole-file BLAKE3")
                whole_xx.update(r)
                steps.done("d whole-file xxh3")
                f.write(r)
                steps.done("d write the file")


def whole(path: str, work: str) -> tuple[float, float]:
    """CPU-s of ``cas commit`` and ``cas download`` of ``path`` in this process."""
    store, out = os.path.join(work, "store"), os.path.join(work, "dl")
    cas(["init", store])
    t = time.process_time()
    cas(["--store", store, "commit", "--id", "v1", "w", path])
    c = time.process_time() - t
    t = time.process_time()
    cas(["--store", store, "download", "w", "v1", out])
    return c, time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", nargs="?")
    ap.add_argument("--mib", type=int, default=256)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench_steps_")
    try:
        path = args.file
        if path is None:
            path = os.path.join(work, "w2.npy")
            rng = np.random.default_rng(1)
            np.save(path, rng.standard_normal((args.mib << 20) // 4, dtype=np.float32))
        gib = os.path.getsize(path) / (1 << 30)
        steps = Steps()
        blobs = commit_steps(path, work, steps)
        download_steps(blobs, work, steps)
        c, d = whole(path, work)
        result = {k: round(v / gib, 3) for k, v in steps.cpu.items()}
        result["whole commit, in one process"] = round(c / gib, 3)
        result["whole download, in one process"] = round(d / gib, 3)
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
