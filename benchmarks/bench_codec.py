"""Chunk encodings measured on model-like files: `make bench` (or run directly).

For each file the chunks are cut as a commit cuts them (casstore's FastCDC, ~64 KiB),
then each encoding is applied to every chunk:

* ``raw``: zstd of the chunk's bytes (what ``CASZ`` stores);
* ``lanes2`` / ``lanes4``: the chunk's byte lanes (below) each its own zstd frame, or raw
  when zstd saves < 3 % of it (what ``CASB`` stores);
* ``probe``: what a commit stores: the plan ``codec.probe`` picks from 8 of the file's
  chunks (``zstd``, ``raw``, or ``lanesS`` with ``z``/``r`` for each lane tried with zstd
  or stored raw), then ``codec.encode_pieces`` of every chunk; decompression is
  ``codec.decode_many`` in batches of 64, as a load reads;
* ``g2`` / ``g4``: one zstd frame of of the chunk *byte-grouped* with stride 2 / 4 (the bytes at
  positions ``i mod s`` together: the exponent bytes of float32/bf16/float16 values end up
  in one lane, which zstd's entropy coder then packs well).  A chunk starts at any byte
  offset, so its lanes are rotated, but they are still separated.

Reported per file and encoding, at zstd levels 1 and 3: size after encoding (each chunk
kept raw when zstd saves less than 3 %, as the codec does), compression MB/s on one
thread and on two (a thread pool, as a commit runs), decompression MB/s on one thread
(grouping included).  One-thread figures are CPU seconds of the
thread (``time.thread_time``), much less sensitive to the machine's other load than wall
time, and the cost of the grouping transform alone (numpy).

Files (generated into --dir, default /tmp/casstore-bench-codec, reused when present):
  w2        float32 N(0,1), --w2-mib MiB (bench.py's W2 data)
  lm-f32    bench_torch_dedup's TinyLM state dict as safetensors, float32
  lm-bf16   the same in bfloat16;  lm-f16: in float16
  mlp-f32   a torch MLP trained for a few seconds on make_classification, safetensors
  zip       a .zip of random bytes (already compressed)
  w1        bench.py's W1: a pickled RandomForestClassifier(200 trees)

    python benchmarks/bench_codec.py [--dir DIR] [--w2-mib 64] [--reps 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import zstandard
from pyfastcdc.cy import FastCDC

from casstore.objects import codec
from casstore.objects.chunker import DEFAULT_PARAMS

HERE = Path(__file__).resolve().parent
MiB = 1 << 20
MIN_SAVING = 0.03


def log(msg: str) -> None:
    print(f"[bench_codec] {msg}", file=sys.stderr, flush=True)


def group(chunk: bytes, s: int) -> np.ndarray:
    """Bytes at positions i mod s together (lane 0, lane 1, ...); the tail that fills no row last."""
    a = np.frombuffer(chunk, np.uint8)
    n = len(a) - len(a) % s
    out = np.empty(len(a), np.uint8)
    out[:n].reshape(s, -1)[...] = a[:n].reshape(-1, s).T
    out[n:] = a[n:]
    return out


def ungroup(grouped: bytes | np.ndarray, s: int) -> np.ndarray:
    g = np.frombuffer(grouped, np.uint8)
    n = len(g) - len(g) % s
    out = np.empty(len(g), np.uint8)
    out[:n].reshape(-1, s)[...] = g[:n].reshape(s, -1).T
    out[n:] = g[n:]
    return out


def lanes_of(chunk: bytes, s: int) -> list[np.ndarray]:
    """The ``s`` byte lanes of a chunk, each contiguous, then its tail (``len % s`` bytes)."""
    a = np.frombuffer(chunk, np.uint8)
    n = len(a) - len(a) % s
    rows = a[:n].reshape(-1, s)
    return [np.ascontiguousarray(rows[:, j]) for j in range(s)] + [a[n:]]


def pack_lanes(c: zstandard.ZstdCompressor, chunk: bytes, s: int) -> list[bytes | np.ndarray]:
    """Each lane its own zstd frame, or raw when zstd saves < 3 % of it."""
    *lanes, tail = lanes_of(chunk, s)
    out: list[bytes | np.ndarray] = []
    for lane in lanes:
        f = c.compress(lane)
        out.append(f if len(f) <= len(lane) * (1 - MIN_SAVING) else lane)
    return out + [tail]


def unpack_lanes(d: zstandard.ZstdDecompressor, parts: list[bytes | np.ndarray], size: int, s: int) -> np.ndarray:
    m = size // s
    out = np.empty(size, np.uint8)
    rows = out[:m * s].reshape(-1, s)
    for j, p in enumerate(parts[:s]):
        rows[:, j] = np.frombuffer(d.decompress(p, max_output_size=m) if len(p) < m else p, np.uint8)
    out[m * s:] = np.frombuffer(parts[s], np.uint8)
    return out


def make_data(root: Path, w2_mib: int) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    files = {k: root / v for k, v in [
        ("w2", "w2.bin"), ("lm-f32", "lm-f32.safetensors"), ("lm-bf16", "lm-bf16.safetensors"),
        ("lm-f16", "lm-f16.safetensors"), ("mlp-f32", "mlp-f32.safetensors"), ("zip", "random.zip"),
        ("w1", "w1.joblib")]}
    if not files["w2"].exists() or files["w2"].stat().st_size != w2_mib * MiB:
        log(f"w2: {w2_mib} MiB float32 N(0,1)")
        rng = np.random.default_rng(0)
        files["w2"].write_bytes(rng.standard_normal(w2_mib * MiB // 4, dtype=np.float32).tobytes())
    if not all(files[k].exists() for k in ("lm-f32", "lm-bf16", "lm-f16", "mlp-f32")):
        import torch
        from safetensors.torch import save_file

        sys.path.insert(0, str(HERE))
        from bench_torch_dedup import TinyLM

        torch.manual_seed(0)
        torch.set_num_threads(2)
        sd = {k: v.contiguous() for k, v in TinyLM().state_dict().items()}
        log("lm-*: TinyLM state dict")
        save_file(sd, files["lm-f32"])
        save_file({k: v.to(torch.bfloat16) for k, v in sd.items()}, files["lm-bf16"])
        save_file({k: v.to(torch.float16) for k, v in sd.items()}, files["lm-f16"])
        log("mlp-f32: training a torch MLP for ~5 s on make_classification")
        from sklearn.datasets import make_classification

        X, y = make_classification(20000, 256, n_informative=64, n_classes=4, random_state=0)
        xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
        mlp = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024),
                                  torch.nn.ReLU(), torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
                                  torch.nn.Linear(1024, 4))
        opt = torch.optim.Adam(mlp.parameters(), lr=1e-3)
        start = time.monotonic()
        while time.monotonic() - start < 5:
            for i in range(0, len(xt), 256):
                loss = torch.nn.functional.cross_entropy(mlp(xt[i:i + 256]), yt[i:i + 256])
                opt.zero_grad()
                loss.backward()
                opt.step()
        save_file({k: v.contiguous() for k, v in mlp.state_dict().items()}, files["mlp-f32"])
    if not files["zip"].exists():
        log("zip: 32 MiB of random bytes, deflated")
        with zipfile.ZipFile(files["zip"], "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("random.bin", np.random.default_rng(1).bytes(32 * MiB))
    if not files["w1"].exists():
        w1 = HERE / "data" / "w1.joblib"
        if w1.exists():
            files["w1"].symlink_to(w1)
        else:
            log("w1: RandomForestClassifier(200 trees)")
            import joblib
            from sklearn.datasets import make_classification
            from sklearn.ensemble import RandomForestClassifier

            X, y = make_classification(20000, 20, random_state=0)
            joblib.dump(RandomForestClassifier(200, random_state=0, n_jobs=2).fit(X, y), files["w1"])
    return files


def chunks_of(path: Path) -> list[bytes]:
    data = path.read_bytes()
    p = DEFAULT_PARAMS
    cdc = FastCDC(p.avg_size, min_size=p.min_size, max_size=p.max_size)
    return [bytes(c.data) for c in cdc.cut_buf(data)]


def best_of(reps: int, fn: Callable[[], object], wall: bool = False) -> float:
    """Median seconds of ``reps`` runs: CPU seconds of this thread, or wall seconds."""
    clock = time.perf_counter if wall else time.thread_time
    times = []
    for _ in range(reps):
        t = clock()
        fn()
        times.append(clock() - t)
    return statistics.median(times)


def measure_plan(chunks: list[bytes], level: int, reps: int) -> dict[str, object]:
    """What a commit does: ``codec.probe`` on 8 chunks, then ``encode_pieces``; a load: ``decode_many``."""
    total = sum(len(c) for c in chunks)
    offsets = [0]
    for c in chunks:
        offsets.append(offsets[-1] + len(c))
    step = max(len(chunks) / codec.PROBE_CHUNKS, 1)
    picks = [int(k * step) for k in range(min(codec.PROBE_CHUNKS, len(chunks)))]
    samples, sample_offsets = [chunks[i] for i in picks], [offsets[i] for i in picks]
    plan = codec.probe(samples, level, sample_offsets)
    blobs = [b"".join(codec.encode_pieces(c, level, plan, o)) for c, o in zip(chunks, offsets, strict=False)]
    sizes = [len(c) for c in chunks]
    names = [str(i) for i in range(len(chunks))]

    def comp() -> None:
        codec.probe(samples, level, sample_offsets)
        for c, o in zip(chunks, offsets, strict=False):
            codec.encode_pieces(c, level, plan, o)

    def comp2() -> None:
        def part(k: int) -> None:
            for c, o in zip(chunks[k::2], offsets[k::2], strict=False):
                codec.encode_pieces(c, level, plan, o)
        codec.probe(samples, level, sample_offsets)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(part, range(2)))

    def decomp() -> None:
        for i in range(0, len(blobs), 64):  # batches as a load reads them
            codec.decode_many(blobs[i:i + 64], sizes[i:i + 64], names[i:i + 64])

    desc = plan.kind + (f"{plan.stride} " + "".join("z" if p else "r" for p in plan.packed)
                        if plan.kind == "lanes" else "")
    t1, t2, td = best_of(reps, comp), best_of(reps, comp2, wall=True), best_of(reps, decomp)
    return {"enc": f"zstd-{level} **probe: {desc}**", "ratio": sum(len(b) for b in blobs) / total,
            "comp1_MBps": total / t1 / 1e6, "comp2_MBps": total / t2 / 1e6, "decomp1_MBps": total / td / 1e6}


def measure(chunks: list[bytes], reps: int) -> list[dict[str, object]]:  # noqa: C901 - one loop over every codec and level measured
    total = sum(len(c) for c in chunks)
    rows: list[dict[str, object]] = []
    grouped = {s: [group(c, s) for c in chunks] for s in (2, 4)}
    for s in (2, 4):
        g_s = best_of(reps, lambda s=s: [group(c, s) for c in chunks])  # type: ignore[misc]
        u_s = best_of(reps, lambda s=s: [ungroup(g, s) for g in grouped[s]])  # type: ignore[misc]
        rows.append({"enc": f"g{s} transform", "group_MBps": total / g_s / 1e6, "ungroup_MBps": total / u_s / 1e6})
    for level in (1, 3):
        rows.append(measure_plan(chunks, level, reps))
        cctx = zstandard.ZstdCompressor(level=level, write_checksum=False)
        for s in (2, 4):
            packed = [pack_lanes(cctx, c, s) for c in chunks]
            kept = sum(len(p) if isinstance(p, bytes) else p.nbytes for ps in packed for p in ps)

            def lcomp(s: int = s, level: int = level) -> None:
                c = zstandard.ZstdCompressor(level=level, write_checksum=False)
                for x in chunks:
                    pack_lanes(c, x, s)

            def lcomp2(s: int = s, level: int = level) -> None:
                def part(xs: list[bytes]) -> None:
                    c = zstandard.ZstdCompressor(level=level, write_checksum=False)
                    for x in xs:
                        pack_lanes(c, x, s)
                with ThreadPoolExecutor(2) as pool:
                    list(pool.map(part, [chunks[i::2] for i in range(2)]))

            def ldecomp(s: int = s, packed: list[list[bytes | np.ndarray]] = packed) -> None:
                d = zstandard.ZstdDecompressor()
                for ps, x in zip(packed, chunks, strict=True):
                    unpack_lanes(d, ps, len(x), s)

            t1, t2, td = best_of(reps, lcomp), best_of(reps, lcomp2, wall=True), best_of(reps, ldecomp)
            rows.append({"enc": f"zstd-{level} lanes{s}", "ratio": kept / total, "comp1_MBps": total / t1 / 1e6,
                         "comp2_MBps": total / t2 / 1e6, "decomp1_MBps": total / td / 1e6})
        for enc, inputs, s in [("raw", chunks, 1), ("g2", grouped[2], 2), ("g4", grouped[4], 4)]:
            frames = [cctx.compress(c) for c in inputs]
            kept = sum(len(f) if len(f) <= len(c) * (1 - MIN_SAVING) else len(c)
                       for f, c in zip(frames, inputs, strict=True))

            def comp(s: int = s, level: int = level) -> None:
                c = zstandard.ZstdCompressor(level=level, write_checksum=False)
                for x in chunks:
                    c.compress(group(x, s) if s > 1 else x)

            def comp2(s: int = s, level: int = level) -> None:
                def part(xs: list[bytes]) -> None:
                    c = zstandard.ZstdCompressor(level=level, write_checksum=False)
                    for x in xs:
                        c.compress(group(x, s) if s > 1 else x)
                with ThreadPoolExecutor(2) as pool:
                    list(pool.map(part, [chunks[i::2] for i in range(2)]))

            dctx = zstandard.ZstdDecompressor()

            def decomp(s: int = s, frames: list[bytes] = frames,
                       dctx: zstandard.ZstdDecompressor = dctx) -> None:
                for f, x in zip(frames, chunks, strict=True):
                    out = dctx.decompress(f, max_output_size=len(x))
                    if s > 1:
                        ungroup(out, s)

            t1, t2, td = best_of(reps, comp), best_of(reps, comp2, wall=True), best_of(reps, decomp)
            rows.append({"enc": f"zstd-{level} {enc}", "ratio": kept / total, "comp1_MBps": total / t1 / 1e6,
                         "comp2_MBps": total / t2 / 1e6, "decomp1_MBps": total / td / 1e6})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default="/tmp/casstore-bench-codec")
    ap.add_argument("--w2-mib", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", help="comma-separated file names to measure")
    ap.add_argument("--json", help="write the results here as JSON too")
    args = ap.parse_args()
    files = make_data(Path(args.dir), args.w2_mib)
    only = set(args.only.split(",")) if args.only else set(files)
    results = {}
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"zstandard {zstandard.__version__}, load {os.getloadavg()[0]:.2f}; size = encoded / raw; "
          f"MB/s of raw bytes per CPU-second of one thread (2 thr: per wall second), median of {args.reps}\n")
    print("| file | MiB | encoding | size | compress 1 thr MB/s | 2 thr MB/s | decompress 1 thr MB/s |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name, path in files.items():
        if name not in only:
            continue
        chunks = chunks_of(path)
        rows = measure(chunks, args.reps)
        results[name] = {"bytes": path.stat().st_size, "chunks": len(chunks), "rows": rows}
        mib = f"{path.stat().st_size / MiB:.1f}"
        for r in rows:
            if "ratio" in r:
                print(f"| {name} | {mib} | {r['enc']} | {r['ratio']:.3f} | {r['comp1_MBps']:.0f} | "
                      f"{r['comp2_MBps']:.0f} | {r['decomp1_MBps']:.0f} |", flush=True)
            else:
                print(f"| {name} | {mib} | {r['enc']} | | group {r['group_MBps']:.0f} | | "
                      f"ungroup {r['ungroup_MBps']:.0f} |", flush=True)
    print(f"\nload after: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
