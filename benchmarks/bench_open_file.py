"""Lazy reads (issue 14 item 5): one tensor out of a multi-GiB safetensors file.

A safetensors file of ``--tensors`` float32 tensors (``--size`` MiB in all, random
values) is committed as a model file.  Then, each in a fresh process (median of
``--runs``):

* ``Store.open_file`` + safetensors' header + one tensor from the middle of the file:
  bytes and chunks the stored file object read (its ``bytes_read``/``chunks_read``
  counters: raw chunk bytes decompressed and verified), time, peak RSS;
* the same tensor after ``cas download`` of the whole file (what a store without lazy
  reads does), for comparison.

The file is written by hand in the safetensors layout (an 8-byte little-endian header
length, a JSON header, the tensors' bytes), so the benchmark needs neither torch nor
the safetensors package.

    python benchmarks/bench_open_file.py [--size 2048] [--tensors 64] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MiB = 1 << 20

#: run in a fresh process: open the stored file, read safetensors' header, then one tensor
READ_ONE = r"""
import json, resource, struct, sys, time
import numpy as np
import casstore
store_path, name, want = sys.argv[1:4]
t0 = time.perf_counter()
with casstore.open(store_path, create=False) as store, store.open_file("d", "v1", name) as f:
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
    begin, end = header[want]["data_offsets"]
    f.seek(8 + n + begin)
    data = f.read(end - begin)
    arr = np.frombuffer(data, np.float32)
    took = time.perf_counter() - t0
    print(json.dumps({"s": took, "bytes_read": f.bytes_read, "chunks_read": f.chunks_read,
                      "tensor_bytes": len(data), "sum": float(arr[:1000].sum()),
                      "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

#: the same tensor from a downloaded copy of the whole file
READ_DOWNLOADED = r"""
import json, resource, struct, sys, time, tempfile, os, shutil
import numpy as np
import casstore
store_path, name, want = sys.argv[1:4]
out = tempfile.mkdtemp(prefix="bench-open-")
t0 = time.perf_counter()
with casstore.open(store_path, create=False) as store:
    store.download(out, "d", "v1")
with open(os.path.join(out, name), "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
    begin, end = header[want]["data_offsets"]
    f.seek(8 + n + begin)
    data = f.read(end - begin)
took = time.perf_counter() - t0
size = os.path.getsize(os.path.join(out, name))
shutil.rmtree(out)
print(json.dumps({"s": took, "bytes_read": size, "tensor_bytes": len(data),
                  "sum": float(np.frombuffer(data, np.float32)[:1000].sum()),
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_safetensors(path: Path, total: int, tensors: int) -> list[str]:
    """A safetensors file of ``tensors`` float32 tensors of ``total`` bytes in all; their names."""
    per = total // tensors // 4  # float32 values per tensor
    names = [f"layers.{i}.weight" for i in range(tensors)]
    header: dict[str, object] = {}
    offset = 0
    for n in names:
        header[n] = {"dtype": "F32", "shape": [per], "data_offsets": [offset, offset + per * 4]}
        offset += per * 4
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # safetensors pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        import numpy as np

        rng = np.random.default_rng(0)
        for _ in names:
            f.write(rng.standard_normal(per, dtype=np.float32).tobytes())
    return names


def run(code: str, *args: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CAS_PROGRESS": "0"}
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=2048, help="file size in MiB")
    ap.add_argument("--tensors", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-open-file-"))
    try:
        path = work / "model.safetensors"
        names = write_safetensors(path, args.size * MiB, args.tensors)
        want = names[len(names) // 2]
        store = work / "store"
        import casstore

        t0 = time.perf_counter()
        with casstore.open(store) as s:
            s.commit_models("d", model=str(path), model_id="v1")
        commit_s = time.perf_counter() - t0
        lazy = [run(READ_ONE, str(store), path.name, want) for _ in range(args.runs)]
        whole = [run(READ_DOWNLOADED, str(store), path.name, want) for _ in range(args.runs)]
        med = {k: statistics.median(r[k] for r in lazy) for k in ("s", "bytes_read", "chunks_read", "rss_mib")}
        wmed = {k: statistics.median(r[k] for r in whole) for k in ("s", "rss_mib")}
        tensor = lazy[0]["tensor_bytes"]
        assert all(r["sum"] == lazy[0]["sum"] for r in lazy + whole), "the two ways read different bytes"
        file_size = path.stat().st_size
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        print(f"# lazy reads ({when}, {machine}, load average {os.getloadavg()[0]:.1f}; "
              f"{args.size} MiB safetensors, {args.tensors} tensors of {tensor / MiB:.0f} MiB; "
              f"commit {commit_s:.1f} s; medians of {args.runs} fresh processes)\n")
        print("| one tensor from the stored file | bytes read | of the file | chunks read | time s | peak RSS MiB |")
        print("|---|---:|---:|---:|---:|---:|")
        print(f"| `open_file` + seek + read | {med['bytes_read'] / MiB:.1f} MiB | "
              f"{med['bytes_read'] / file_size:.2%} | {med['chunks_read']:.0f} | {med['s']:.2f} | "
              f"{med['rss_mib']:.0f} |")
        print(f"| `download` of the whole file, then read | {file_size / MiB:.1f} MiB | 100% | all | "
              f"{wmed['s']:.2f} | {wmed['rss_mib']:.0f} |")
        ratio = med["bytes_read"] / tensor
        print(f"\n| target | measured | limit | met |\n|---|---|---|---|\n"
              f"| bytes read / tensor bytes (\"about that tensor's bytes\") | {ratio:.3f} | 1.1 | "
              f"{'yes' if ratio <= 1.1 else 'NO'} |")
        if args.json:
            Path(args.json).write_text(json.dumps({"lazy": lazy, "whole": whole, "file_size": file_size,
                                                   "commit_s": commit_s, "when": when}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
