"""A team's shared bucket at scale: requests per operation, whatever the bucket holds (part of `make bench`).

Issue 22's operations, on a bucket of N models in N/100 domains of 100:

* pull with nothing new (every domain),
* push of one new model,
* pull of that one new model (every domain),
* fresh pull of one domain of 100 models (``cas pull REMOTE DOMAIN``),
* ModelStore's cloud ``get_model_info`` / ``model_exists`` / ``list_models(domain)``
  on a warm cache (the ``ModelStore`` of a bucket, as ``from_aws_s3`` makes it).

Two buckets: moto's S3 server on loopback (requests counted by botocore's
``before-send`` event: every HTTP request, retries included), and an in-memory
bucket (``MemoryBucket`` below: the same ``BucketClient`` code over a dict,
one request counted per adapter call) for counts at sizes moto is too slow to
fill.  One domain (``d0000``) holds 100 real models, committed and pushed; the
other domains are copies of its ref table (its history and model refs under
other domain names) written straight into the bucket: every object exists, and
no operation measured reads them but the pulls of every domain.  A
format-2 remote (ref tables); ``--format 1`` measures the one object per ref
of casstore before them, for comparison.

    python benchmarks/bench_bucket_scale.py [--moto 100,1000] [--memory 100,10000] [--json PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from casstore.remote.bucket import BucketClient, ObjectGoneError  # noqa: E402

WORK = Path(os.environ.get("CAS_BENCH_DIR", "/tmp/casstore-bench-bucket-scale"))
PER_DOMAIN = 100
KiB = 1 << 10


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Requests:
    """A request counter (botocore calls it with keyword arguments)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, **kwargs: Any) -> None:
        self.n += 1


REQUESTS = Requests()
_BUCKETS: dict[str, dict[str, tuple[bytes, str]]] = {}
_versions = itertools.count(1)


class MemoryBucket(BucketClient):
    """``mem://bucket/prefix``: a bucket in this process's memory; each adapter call is one request."""

    scheme = "mem"
    kind = "memory"

    @property
    def objects(self) -> dict[str, tuple[bytes, str]]:
        return _BUCKETS.setdefault(self.bucket, {})

    def _list(self, sub: str) -> Iterator[tuple[str, int]]:
        keys = sorted(k for k in self.objects if k.startswith(self._key(sub)))
        REQUESTS.n += 1 + len(keys) // 1000  # a listing answers 1,000 keys a page
        for k in keys:
            yield k, len(self.objects[k][0])

    def _get(self, key: str, limit: int) -> tuple[bytes, str] | None:
        REQUESTS.n += 1
        got = self.objects.get(key)
        return None if got is None else (got[0][: limit + 1], got[1])

    def _get_if_changed(self, key: str, version: str, limit: int) -> tuple[bytes, str] | None | bool:
        got = self.objects.get(key)
        if got is not None and got[1] == version:
            REQUESTS.n += 1
            return True
        return self._get(key, limit)

    def _read_range(self, key: str, start: int, end: int) -> bytes:
        REQUESTS.n += 1
        if key not in self.objects:
            raise ObjectGoneError(self.url, key)
        return self.objects[key][0][start:end]

    def _delete(self, key: str) -> None:
        REQUESTS.n += 1
        self.objects.pop(key, None)

    def _put(self, key: str, data: bytes) -> None:
        REQUESTS.n += 1
        self.objects[key] = (bytes(data), str(next(_versions)))

    def _upload(self, key: str, path: str, sent: Callable[[int], None]) -> None:
        data = Path(path).read_bytes()
        self._put(key, data)
        sent(len(data))

    def _put_ref(self, key: str, data: bytes, version: str | None) -> bool:
        REQUESTS.n += 1
        now = self.objects.get(key)
        if (now is None) != (version is None) or (now is not None and now[1] != version):
            return False
        self.objects[key] = (bytes(data), str(next(_versions)))
        self.last_put_version = self.objects[key][1]
        return True

    def _delete_ref(self, key: str, version: str) -> bool:
        REQUESTS.n += 1
        now = self.objects.get(key)
        if now is None or now[1] != version:
            return False
        del self.objects[key]
        return True


def _install_memory_scheme() -> None:
    from casstore.remote import config, transport

    transport.SCHEMES["mem"] = lambda url, cache, progress: (MemoryBucket(url, cache, progress), url)
    if "mem" not in config.SCHEMES:
        config.SCHEMES = (*config.SCHEMES, "mem")  # type: ignore[misc]


def _client(url: str) -> BucketClient:
    from casstore.remote.transport import open_transport

    client, _ = open_transport(url)
    assert isinstance(client, BucketClient)
    return client


def _mark_format_1(url: str) -> None:
    client = _client(url)
    client._put(client._key("casstore-remote"), b"casstore-remote 1\n")


def _fill(url: str, commits: dict[str, bytes], domains: int) -> None:
    """Refs of ``domains`` more domains of ``PER_DOMAIN`` models naming the commits of ``d0000``."""
    from casstore.remote.reftable import DomainTable, digest

    client = _client(url)
    if client._check_marker(create=False) == 1:
        history = client.read_refs()[0][b"refs/cas/domains/d0000"]  # type: ignore[index]
        for i in range(1, domains + 1):
            client._put(client._key(f"refs/cas/domains/d{i:04d}"), history + b"\n")
            for mid, sha in commits.items():
                client._put(client._key(f"refs/cas/models/d{i:04d}/{mid}"), sha + b"\n")
        return
    root, version = client.read_root(fresh=True)
    real = client.read_table("d0000", root.domains["d0000"])  # the same history and models under each name
    tables = {}
    for i in range(1, domains + 1):
        name = f"d{i:04d}"
        tables[name] = DomainTable(name, real.history, dict(real.models))
        root.domains[name] = digest(tables[name].encode())
    assert client.write_root(root, tables, version)


def _model(path: Path) -> str:
    path.write_bytes(os.urandom(4 * KiB))
    return str(path)


def measure(url: str, n_models: int, work: Path, out: dict[str, Any]) -> None:
    """Every operation of the module docstring on a bucket of ``n_models`` at ``url``."""
    import casstore

    def op(label: str, fn: Callable[[], Any]) -> Any:
        before, t = REQUESTS.n, time.perf_counter()
        got = fn()
        out[label] = {"requests": REQUESTS.n - before, "seconds": round(time.perf_counter() - t, 3)}
        log(f"  {label}: {out[label]['requests']} requests, {out[label]['seconds']:.2f} s")
        return got

    writer = casstore.open(work / "writer")
    for j in range(min(PER_DOMAIN, n_models)):
        writer.commit_models("d0000", model=_model(work / "m.bin"), model_id=f"m{j:03d}")
    assert writer.push(url).ok
    commits = {m: writer.refs.get(f"refs/cas/models/d0000/{m}".encode()) for m in writer.list_models("d0000")}
    if n_models > PER_DOMAIN:
        _fill(url, commits, n_models // PER_DOMAIN - 1)  # type: ignore[arg-type]
    reader = casstore.open(work / "reader")
    t = time.perf_counter()
    # the real domain first: the other domains' refs then name commits the reader has
    # (a pull checks that a new model commit is the model its ref names)
    assert reader.pull(url, ["d0000"]).ok
    assert reader.pull(url).ok  # every domain merged locally
    log(f"  setup: first pull of {n_models} models: {time.perf_counter() - t:.1f} s")
    op("pull, nothing new", lambda: reader.pull(url))
    writer.commit_models("d0000", model=_model(work / "m.bin"), model_id="new")
    pushed = op("push of one new model", lambda: writer.push(url))
    assert pushed.models_added == ["d0000/new"], pushed
    out["push of one new model"]["pack bytes"] = pushed.bytes
    pulled = op("pull of one new model", lambda: reader.pull(url))
    assert pulled.models_added == ["d0000/new"], pulled
    out["pull of one new model"]["data bytes"] = pulled.bytes
    fresh = casstore.open(work / "fresh")
    got = op("fresh pull of one domain", lambda: fresh.pull(url, ["d0000"]))
    assert len(got.models_added) == PER_DOMAIN + 1 if n_models >= PER_DOMAIN else got.ok, got
    ms = casstore.ModelStore(casstore.open(work / "ms-cache"), url)
    ms.get_model_info("d0000", "new")  # the first read fills the cache: the rest are warm
    op("ModelStore get_model_info (warm)", lambda: ms.get_model_info("d0000", "new"))
    op("ModelStore model_exists (warm)", lambda: ms.model_exists("d0000", "m001"))
    op("ModelStore list_models(domain) (warm)", lambda: ms.list_models("d0000"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--moto", default="100,1000", help="bucket sizes (models) on moto's S3 server")
    ap.add_argument("--memory", default="100,10000", help="bucket sizes (models) on the in-memory bucket")
    ap.add_argument("--format", type=int, default=2, choices=(1, 2), help="remote format (1: one object per ref)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    from casstore.remote.s3 import S3Client
    from tests.servers import s3_server

    _install_memory_scheme()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    results: dict[str, dict[str, Any]] = {}
    hooked: set[int] = set()
    real_s3 = S3Client.s3

    def counting_s3(self: S3Client) -> Any:
        client = real_s3.fget(self)  # type: ignore[attr-defined]
        if id(client) not in hooked:
            hooked.add(id(client))
            client.meta.events.register("before-send.s3", REQUESTS)
        return client

    S3Client.s3 = property(counting_s3)  # type: ignore[method-assign,assignment]

    def one(kind: str, n: int, url: str) -> None:
        log(f"{kind}, {n} models:")
        if args.format == 1:
            _mark_format_1(url)
        results[f"{kind} {n}"] = out = {}
        measure(url, n, WORK / f"{kind}-{n}", out)
        shutil.rmtree(WORK / f"{kind}-{n}", ignore_errors=True)

    for n in [int(x) for x in args.memory.split(",") if x]:
        url = f"mem://bench-{uuid.uuid4().hex[:8]}/models"
        one("memory", n, url)
        _BUCKETS.clear()
    sizes = [int(x) for x in args.moto.split(",") if x]
    if sizes:
        import boto3

        with s3_server() as endpoint:
            for k, v in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                         "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint}.items():
                os.environ[k] = v
            admin = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            for n in sizes:
                bucket = "bench-" + uuid.uuid4().hex[:12]
                admin.create_bucket(Bucket=bucket)
                url = f"s3://{bucket}/models"
                one("moto", n, url)
    shutil.rmtree(WORK, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps({"format": args.format, "load": os.getloadavg(), "results": results},
                                        indent=1))
    columns = list(results)
    print(f"| operation (format {args.format}): requests (seconds) | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for label in next(iter(results.values()), {}):
        cells = [f"{r[label]['requests']} ({r[label]['seconds']:.2f} s)" if label in r else "-"
                 for r in results.values()]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
