"""Buckets at scale: many small pushes to S3, with and without combining packs (part of `make bench`).

Against moto's S3 server in its own process on loopback (as the tests start it):

1. Per-operation cost: a small push (one new 4 KiB model) and a pull of it into a
   second store, in one process, alternating a service client made for every
   operation (what casstore did before ``bucket.shared_client``) with the shared one.
2. N small pushes (one new 4 KiB model each, default 200) to a fresh bucket, once with
   combining off (``MAX_SMALL_PACKS`` out of reach) and once on; then fresh pulls of
   everything (alternating off/on, median of ``--reps``): packs in the bucket, their
   bytes, requests sent by the client, wall and CPU seconds.

Requests are counted on the client (botocore's ``before-send`` event); CPU is this
process's (user + sys), which the shared machine's load disturbs much less than wall
time.  moto's times say little about a real object store; the counts of packs and
requests are what any S3 server would see.  Results: a markdown table on stdout
(and every run as JSON with ``--json``).

    python benchmarks/bench_bucket.py [--pushes N] [--reps N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = Path(os.environ.get("CAS_BENCH_DIR", "/tmp/casstore-bench-bucket"))
KiB = 1 << 10


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Requests:
    """Counts the requests the shared S3 client sends."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, **kwargs: Any) -> None:
        self.n += 1


@contextmanager
def measured(out: dict[str, list[float]], label: str, requests: Requests) -> Iterator[None]:
    before, cpu, t = requests.n, time.process_time(), time.perf_counter()
    yield
    out.setdefault(f"{label} s", []).append(time.perf_counter() - t)
    out.setdefault(f"{label} cpu s", []).append(time.process_time() - cpu)
    out.setdefault(f"{label} requests", []).append(requests.n - before)


def main() -> None:  # noqa: C901, PLR0915 - the benchmark's steps in the order they run
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pushes", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="also write every run here")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import boto3

    import casstore
    from casstore.remote.bucket import base as bucket_base
    from casstore.remote.bucket import combine as bucket_combine
    from casstore.remote.s3 import S3Client
    from tests.servers import s3_server

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    results: dict[str, list[float]] = {}
    requests = Requests()
    hooked: set[int] = set()
    real_s3 = S3Client.s3

    def counting_s3(self: S3Client) -> Any:
        client = real_s3.fget(self)  # type: ignore[attr-defined]
        if id(client) not in hooked:  # every client, the per-operation ones of part 1 included
            hooked.add(id(client))
            client.meta.events.register("before-send.s3", requests)
        return client

    S3Client.s3 = property(counting_s3)  # type: ignore[method-assign,assignment]
    model = WORK / "m.bin"

    def commit(s: casstore.Store, mid: str) -> None:
        model.write_bytes(os.urandom(4 * KiB))
        s.commit_models("d", model=str(model), model_id=mid)

    with s3_server() as endpoint:
        for k, v in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                     "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint}.items():
            os.environ[k] = v
        admin = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

        def new_url() -> str:
            bucket = "bench-" + uuid.uuid4().hex[:12]
            admin.create_bucket(Bucket=bucket)
            return f"s3://{bucket}/models"

        # 1. per-operation cost: a client per operation (as before) against the shared one
        url = new_url()
        a, b = casstore.open(WORK / "op-a"), casstore.open(WORK / "op-b")
        commit(a, "warm")
        a.push(url)
        b.pull(url)
        for rep in range(2 * args.reps + 2):
            mode = "client per operation" if rep % 2 == 0 else "shared client"
            commit(a, f"op{rep}")
            if mode == "client per operation":
                bucket_base._clients.clear()
            with measured(results, f"{mode}: small push", requests):
                assert a.push(url).ok
            if mode == "client per operation":
                bucket_base._clients.clear()
            with measured(results, f"{mode}: small pull", requests):
                assert b.pull(url).ok
        log("per-operation cost measured")

        # 2. N small pushes, combining off then on, then fresh pulls of each bucket
        urls: dict[str, str] = {}
        real_max = bucket_combine.MAX_SMALL_PACKS
        for mode in ("combining off", "combining on"):
            bucket_combine.MAX_SMALL_PACKS = 1 << 30 if mode == "combining off" else real_max
            url = urls[mode] = new_url()
            s = casstore.open(WORK / f"push-{mode.split()[-1]}")
            push_times: list[float] = []
            before, cpu, t0 = requests.n, time.process_time(), time.perf_counter()
            for i in range(args.pushes):
                commit(s, f"m{i:04d}")
                t = time.perf_counter()
                assert s.push(url).ok
                push_times.append(time.perf_counter() - t)
                if (i + 1) % 50 == 0:
                    log(f"{mode}: {i + 1} pushes")
            results[f"{mode}: {args.pushes} pushes (with commits) s"] = [time.perf_counter() - t0]
            results[f"{mode}: {args.pushes} pushes (with commits) cpu s"] = [time.process_time() - cpu]
            results[f"{mode}: push requests, all"] = [requests.n - before]
            results[f"{mode}: push s, median"] = [statistics.median(push_times)]
            results[f"{mode}: push s, slowest"] = [max(push_times)]
            listing = S3Client(url)._listing()
            results[f"{mode}: packs in the bucket"] = [sum(fn.endswith(".pack") for fn in listing)]
            results[f"{mode}: pack bytes in the bucket"] = [sum(n for fn, n in listing.items()
                                                                if fn.endswith((".pack", ".idx")))]
            shutil.rmtree(WORK / f"push-{mode.split()[-1]}", ignore_errors=True)
        bucket_combine.MAX_SMALL_PACKS = real_max

        def pull(mode: str, where: str) -> None:
            fresh = casstore.open(WORK / where)
            with measured(results, f"{mode}: fresh pull", requests):
                got = fresh.pull(urls[mode])
            assert got.ok and len(got.models_added) == args.pushes, got
            results.setdefault(f"{mode}: fresh pull MiB received", []).append(got.bytes / (1 << 20))
            shutil.rmtree(WORK / where, ignore_errors=True)

        for rep in range(args.reps):
            for mode in ("combining off", "combining on"):
                pull(mode, f"pull-{rep}-{mode.split()[-1]}")
    shutil.rmtree(WORK, ignore_errors=True)

    medians = {k: statistics.median(v) for k, v in results.items()}
    if args.json is not None:
        args.json.write_text(json.dumps({"pushes": args.pushes, "reps": args.reps,
                                     "load": os.getloadavg(), "runs": results, "median": medians}, indent=1))
    print(f"| measurement ({args.pushes} pushes, median of {args.reps}) | value |\n|---|---|")
    for name, value in medians.items():
        print(f"| {name} | {value:.3f} |" if not float(value).is_integer() else f"| {name} | {int(value)} |")


if __name__ == "__main__":
    main()
