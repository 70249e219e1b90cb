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
bucket (tests/fakes/bucket.py: the same ``BucketClient`` code over a dict,
requests counted per adapter call as the service would answer them) for counts at sizes moto is too slow to
fill.  One domain (``d0000``) holds 100 real models, committed and pushed; the
other domains are copies of its ref table (its history and model refs under
other domain names) written straight into the bucket: every object exists, and
no operation measured reads them but the pulls of every domain.  A
format-2 remote (ref tables); ``--format 1`` measures the one object per ref
of casstore before them, for comparison.

    python benchmarks/bench_bucket_scale.py [--moto 100,1000] [--memory 100,10000] [--json PATH]
    python benchmarks/bench_bucket_scale.py --moto 100,100000 --memory 100,1000000   # issue 22's sizes

The setup (not measured) runs without fsync.  Above ``--full-reader-max`` models
the reader holds ``d0000`` only and its pulls are ``cas pull REMOTE d0000``.
"""

from __future__ import annotations

import argparse
import contextlib
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

from casstore.remote.bucket import BucketClient  # noqa: E402
from tests.fakes.bucket import MemoryService, install  # noqa: E402

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
#: the in-memory bucket's service: requests counted per adapter call (tests/fakes/bucket.py)
MEMORY = MemoryService()


def requests() -> int:
    """Requests answered so far by moto (counted by botocore) and the in-memory bucket."""
    return REQUESTS.n + MEMORY.total()


def _client(url: str) -> BucketClient:
    from casstore.remote.transports import open_bucket

    client = open_bucket(url)
    assert isinstance(client, BucketClient)
    return client


def _mark_format_1(url: str) -> None:
    client = _client(url)
    client._put(client._key("casstore-remote"), b"casstore-remote 1\n")


#: models per generated pack: a bucket of 1,000,000 gets 10 packs, fewer than a push's combine
#: threshold (MAX_SMALL_PACKS), so that the push measured does not combine the generated ones
FILL_PACK = 100_000


def _fill(url: str, writer: Any, domains: int) -> None:
    """``domains`` more domains of ``PER_DOMAIN`` models each, written straight into the bucket.

    Each model is a real model commit naming its own domain and ID (a pull checks
    that a ref carries the model its name says): ``d0000``'s ``m000`` with the
    manifest's domain and ID changed, sharing its files (so its chunks). They are
    encoded as they are made (commits and trees first, manifests after, as every
    bucket pack is) into packs of ``FILL_PACK`` models, then the domains' tables
    (models only, no history: a history is what the real domain ``d0000``
    exercises) go up with one root swap; on a format-1 remote one ref object each.
    """
    import tempfile

    from dulwich.objects import Blob, Tree

    from casstore.model.manifest import decode
    from casstore.objects.packwriter import PackWriter, encode_entry
    from casstore.remote.reftable import DomainTable, digest

    client = _client(url)
    odb = writer.repo.odb
    base = odb.read(writer.refs.get(b"refs/cas/models/d0000/m000"))
    base_tree = odb.read(base.tree)
    files_id = base_tree[b"files"][1]
    manifest = decode(odb.read(base_tree[b"manifest"][1]).as_raw_string())
    names = [f"d{i:04d}" for i in range(1, domains + 1)]
    models: dict[str, dict[str, bytes]] = {}
    per_pack = max(1, FILL_PACK // PER_DOMAIN)
    for first in range(0, len(names), per_pack):
        batch = names[first : first + per_pack]
        with tempfile.TemporaryDirectory(dir=WORK) as work:
            pack = PackWriter(work, work, 3 * PER_DOMAIN * len(batch), durable=False)
            blobs = []
            for domain in batch:
                models[domain] = {}
                for j in range(PER_DOMAIN):
                    manifest.domain, manifest.model_id = domain, f"m{j:03d}"
                    blob = Blob.from_string(manifest.encode())
                    tree = Tree()
                    tree.add(b"files", 0o040000, files_id)
                    tree.add(b"manifest", 0o100644, blob.id)
                    commit = base.copy()
                    commit.tree = tree.id
                    for obj in (tree, commit):
                        pack.add(encode_entry(obj.as_raw_string(), type_num=obj.type_num, level=1))
                    blobs.append(encode_entry(blob.as_raw_string(), level=1))
                    models[domain][manifest.model_id] = commit.id
            for entry in blobs:
                pack.add(entry)
            name = pack.finish()
            for ext in (".pack", ".idx"):
                client._upload(client._key(f"objects/pack/{name}{ext}"), os.path.join(work, name + ext),
                               lambda n: None)
    if client._check_marker(create=False) == 1:
        for domain, refs in models.items():
            for mid, sha in refs.items():
                client._put(client._key(f"refs/cas/models/{domain}/{mid}"), sha + b"\n")
        return
    root, version = client.read_root(fresh=True)
    tables = {}
    for domain, refs in models.items():
        tables[domain] = DomainTable(domain, None, dict(refs))  # type: ignore[arg-type]
        root.domains[domain] = digest(tables[domain].encode())
    assert client.write_root(root, tables, version)


@contextlib.contextmanager
def _no_fsync() -> Iterator[None]:
    """No fsync while the stores are set up (not measured): a first pull of 100,000 models
    creates 100,000 local refs, each made durable with two fsyncs (half its time)."""
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


def _model(path: Path) -> str:
    path.write_bytes(os.urandom(4 * KiB))
    return str(path)


def measure(url: str, n_models: int, work: Path, out: dict[str, Any], full_reader: bool) -> None:
    """Every operation of the module docstring on a bucket of ``n_models`` at ``url``.

    ``full_reader``: the reader pulls every domain (its setup is a first pull of
    every model); else it holds ``d0000`` only and its pulls are of that domain.
    """
    import casstore

    def op(label: str, fn: Callable[[], Any], repeat: int = 1) -> Any:
        """Measure ``fn``; an operation that changes nothing is run ``repeat`` times: the median."""
        runs = []
        for _ in range(repeat):
            before, t = requests(), time.perf_counter()
            got = fn()
            runs.append((time.perf_counter() - t, requests() - before))
        seconds, n = sorted(runs)[len(runs) // 2]
        out[label] = {"requests": n, "seconds": round(seconds, 3)}
        log(f"  {label}: {n} requests, {seconds:.3f} s")
        return got

    with _no_fsync():
        writer = casstore.open(work / "writer")
        for j in range(min(PER_DOMAIN, n_models)):
            writer.commit_models("d0000", model=_model(work / "m.bin"), model_id=f"m{j:03d}")
        assert writer.push(url).ok
        if n_models > PER_DOMAIN:
            t = time.perf_counter()
            _fill(url, writer, n_models // PER_DOMAIN - 1)
            log(f"  setup: bucket filled to {n_models} models: {time.perf_counter() - t:.1f} s")
        reader = casstore.open(work / "reader")
        t = time.perf_counter()
        assert reader.pull(url, ["d0000"]).ok
        if full_reader:
            assert reader.pull(url).ok  # every domain merged locally
        log(f"  setup: first pull of {n_models if full_reader else PER_DOMAIN} models: "
            f"{time.perf_counter() - t:.1f} s")
    domains = None if full_reader else ["d0000"]
    out["reader"] = "every domain" if full_reader else "d0000"
    op("pull, nothing new", lambda: reader.pull(url, domains), repeat=5)
    writer.commit_models("d0000", model=_model(work / "m.bin"), model_id="new")
    pushed = op("push of one new model", lambda: writer.push(url))
    assert pushed.models_added == ["d0000/new"], pushed
    out["push of one new model"]["pack bytes"] = pushed.bytes
    pulled = op("pull of one new model", lambda: reader.pull(url, domains))
    assert pulled.models_added == ["d0000/new"], pulled
    out["pull of one new model"]["data bytes"] = pulled.bytes
    fresh = casstore.open(work / "fresh")
    got = op("fresh pull of one domain", lambda: fresh.pull(url, ["d0000"]))
    assert len(got.models_added) == PER_DOMAIN + 1 if n_models >= PER_DOMAIN else got.ok, got
    ms = casstore.ModelStore(casstore.open(work / "ms-cache"), url)
    ms.get_model_info("d0000", "new")  # the first read fills the cache: the rest are warm
    op("ModelStore get_model_info (warm)", lambda: ms.get_model_info("d0000", "new"), repeat=5)
    op("ModelStore model_exists (warm)", lambda: ms.model_exists("d0000", "m001"), repeat=5)
    op("ModelStore list_models(domain) (warm)", lambda: ms.list_models("d0000"), repeat=5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--moto", default="100,1000", help="bucket sizes (models) on moto's S3 server")
    ap.add_argument("--memory", default="100,10000", help="bucket sizes (models) on the in-memory bucket")
    ap.add_argument("--format", type=int, default=2, choices=(1, 2), help="remote format (1: one object per ref)")
    ap.add_argument("--full-reader-max", type=int, default=100_000,
                    help="above this many models the reader pulls d0000 only (a first pull of every model "
                         "creates one local ref per model: ~25 minutes at 100,000 here, hours at 1,000,000)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    from casstore.remote.s3 import S3Client
    from tests.servers import s3_server

    install(MEMORY)
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
        measure(url, n, WORK / f"{kind}-{n}", out, n <= args.full_reader_max)
        shutil.rmtree(WORK / f"{kind}-{n}", ignore_errors=True)

    for n in [int(x) for x in args.memory.split(",") if x]:
        url = f"mem://bench-{uuid.uuid4().hex[:8]}/models"
        one("memory", n, url)
        MEMORY.buckets.clear()
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
    print(table(results, args.format))


#: issue 22's target for each operation, on a bucket of 100,000 models in 1,000 domains
TARGETS = {
    "pull, nothing new": "<= 5",
    "push of one new model": "<= 10 + pack",
    "pull of one new model": "<= 10 + data",
    "fresh pull of one domain": "independent of the other domains",
    "ModelStore get_model_info (warm)": "<= 3",
    "ModelStore model_exists (warm)": "<= 3",
    "ModelStore list_models(domain) (warm)": "<= 3",
}


def table(results: dict[str, dict[str, Any]], fmt: int) -> str:
    """Issue 22's target table: requests per operation and, for each bucket kind, the wall
    time over the same operation's on that kind's smallest bucket (target: <= 1.2x)."""
    columns = list(results)
    smallest: dict[str, str] = {}
    for col in columns:
        kind, n = col.split()
        if kind not in smallest or int(n) < int(smallest[kind].split()[1]):
            smallest[kind] = col
    head = [f"{c} models" + (" (pulls: d0000)" if results[c].get("reader") == "d0000" else "") for c in columns]
    lines = [f"| operation (format {fmt}): requests, wall s (x vs smallest) | " + " | ".join(head) + " | target |",
             "|---|" + "---|" * (len(columns) + 1)]
    for label, target in TARGETS.items():
        cells = []
        for col in columns:
            r = results[col].get(label)
            if r is None:
                cells.append("-")
                continue
            base = results[smallest[col.split()[0]]].get(label)
            ratio = f" ({r['seconds'] / base['seconds']:.2f}x)" if base and base["seconds"] else ""
            cells.append(f"{r['requests']}, {r['seconds']:.2f} s{ratio}")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {target} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
