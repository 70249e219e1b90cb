"""`cas log` on a domain with 1,000 models: time to the first screen (issue 3).

Builds (once) a store with N small models in one domain, then times whole
`cas log DOMAIN` processes whose output goes to a pipe that is closed after the
first screen (40 lines), as `cas log | head -40` does.  Median of 5 runs.

    python benchmarks/bench_log.py [--models 1000] [--store DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def build(store_path: str, n: int) -> None:
    import casstore

    store = casstore.open(store_path)
    have = set(store.list_models("bench")) if "bench" in store.list_domains() else set()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        times = []
        for i in range(n):
            mid = f"model-{i:05d}"
            if mid in have:
                continue
            f = os.path.join(tmp, "model.bin")
            with open(f, "wb") as fh:
                fh.write(os.urandom(4096))
            t0 = time.perf_counter()
            store.commit_models("bench", model=f, model_id=mid, extra_metadata={"i": i, "acc": i / n})
            times.append(time.perf_counter() - t0)
        if times:
            print(f"built {len(times)} models in {time.perf_counter() - t:.1f}s; commit time first 10 "
                  f"median {statistics.median(times[:10]) * 1000:.1f} ms, last 10 median "
                  f"{statistics.median(times[-10:]) * 1000:.1f} ms")


def first_screen(store_path: str, lines: int = 40) -> float:
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "casstore", "--store", store_path, "log", "bench"],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    for _ in range(lines):
        if not p.stdout.readline():
            break
    took = time.perf_counter() - t
    p.stdout.close()
    p.wait()
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--store", default=os.path.join(os.path.dirname(__file__), "data", "log-store"))
    args = ap.parse_args()
    build(args.store, args.models)
    runs = [first_screen(args.store) for _ in range(5)]
    full = time.perf_counter()
    subprocess.run([sys.executable, "-m", "casstore", "--store", args.store, "log", "bench"],
                   stdout=subprocess.DEVNULL, check=True)
    full = time.perf_counter() - full
    baseline = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    baseline = time.perf_counter() - baseline
    print(f"cas log, {args.models} models: first screen median {statistics.median(runs):.3f}s "
          f"(runs {', '.join(f'{r:.3f}' for r in runs)}); whole log {full:.2f}s; "
          f"bare python start {baseline:.3f}s")


if __name__ == "__main__":
    main()
