"""CPU-seconds per GiB of ``cas download``, two checkouts interleaved (docs/benchmarks.md, issue 26 target 3).

Usage: python benchmarks/bench_restore.py OLD NEW [--mib N] [--reps R]

OLD and NEW are directories holding a ``casstore`` package (``git archive <commit> | tar -x -C
/tmp/old``; NEW may be this checkout).  Two files of N MiB (256) are committed once, by NEW, to
one store: W2 (float32 N(0,1) ``.npy``, bench.py's W2) and a bfloat16 safetensors file of
N(0, 0.02) weights.  Then, R times (5) and alternately, each checkout downloads each file in
a child process: "process" is the child's user + system CPU (start-up included), "download"
the CPU of the ``cas download`` call alone (``time.process_time``, every thread, after the
imports).  Prints the medians, per GiB, as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np

CHILD = """
import sys, time
sys.argv = ['cas']
from casstore.cli import main
store, domain, model, out = {args!r}
t = time.process_time()
main(['--store', store, 'download', domain, model, out])
print('CPU', time.process_time() - t)
"""


def make_files(work: str, mib: int) -> dict[str, str]:
    rng = np.random.default_rng(1)
    w2 = os.path.join(work, "w2.npy")
    np.save(w2, rng.standard_normal((mib << 20) // 4, dtype=np.float32))
    # bfloat16 is the top half of a float32: safetensors' layout, written without torch
    v = (rng.standard_normal((mib << 20) // 2, dtype=np.float32) * 0.02).view(np.uint32) >> 16
    header = json.dumps({"w": {"dtype": "BF16", "shape": [len(v)], "data_offsets": [0, 2 * len(v)]}}).encode()
    header += b" " * (-len(header) % 8)
    bf16 = os.path.join(work, "bf16.safetensors")
    with open(bf16, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header)
        f.write(v.astype("<u2").tobytes())
    return {"W2 (float32 .npy)": w2, "bf16 safetensors": bf16}


def run(code: str, python: str, args: tuple[str, str, str, str]) -> tuple[float, float]:
    """(process CPU, download CPU) of one child downloading with the casstore under ``code``."""
    shutil.rmtree(args[3], ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=code)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([python, "-c", CHILD.format(args=args)], env=env, check=True,
                         capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return cpu, float(out.split("CPU")[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench_restore_")
    try:
        files = make_files(work, a.mib)
        store = os.path.join(work, "store")
        env = dict(os.environ, PYTHONPATH=a.new)
        subprocess.run([sys.executable, "-m", "casstore", "init", store], env=env, check=True, capture_output=True)
        for i, path in enumerate(files.values()):
            subprocess.run([sys.executable, "-m", "casstore", "--store", store, "commit", "--id", "v1", f"d{i}",
                            path], env=env, check=True, capture_output=True)
        gib = a.mib / 1024
        cpu: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(a.reps):
            for i, name in enumerate(files):
                for label, code in (("before", a.old), ("after", a.new)):
                    got = run(code, sys.executable, (store, f"d{i}", "v1", os.path.join(work, "out")))
                    cpu.setdefault((name, label), []).append(got)
        print(f"| CPU-s per GiB, medians of {a.reps} | before | after | after / before |")
        print("|---|---:|---:|---:|")
        for name in files:
            for k, what in ((1, "`cas download` call"), (0, "whole `cas download` process")):
                b = statistics.median(x[k] for x in cpu[(name, "before")]) / gib
                n = statistics.median(x[k] for x in cpu[(name, "after")]) / gib
                print(f"| {name}: {what} | {b:.2f} | {n:.2f} | {n / b:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
