"""`cas serve`: time to render the first page of a domain with 100,000 models (issue 15).

Generating 100,000 models with ``commit_models`` would take hours (each commit
fsyncs its objects and its ref), so the domain is written directly with the same
objects a commit writes:

* one real model is committed to a seed domain; its file (one chunk, its chunk
  tree and files tree) is shared by every generated model, as identical files are;
* per model: a manifest blob, a root tree and a model commit exactly as
  ``model/commit.py``'s ``write_model`` makes them (same message and trailers), and a loose ref
  ``refs/cas/models/bench/<id>`` (what casstore writes: no packed-refs);
* per model: one domain-history commit with the same message and trailers as
  ``append_event`` writes.  The only shortcut: a history commit's tree (the
  domain index after the event) is written every 10,000 events instead of after
  each one (100,000 trees of up to 100,000 entries would be ~300 GB); the first
  page never reads those trees, and the head's tree is the exact final index.

All objects go into one pack (no fsync: this is a benchmark fixture).  Then:
the first page through ``data.list_page`` in-process, and ``GET /d/bench`` and
``GET /api/domains/bench/models`` over HTTP from a real ``cas serve`` process
(first request, then the median of 5), the same page with metric columns, and
pages sorted and filtered by a metric once the domain's table is built (how long
that takes is printed too).  ``Store.list_models`` is timed once for comparison.

    python benchmarks/bench_serve.py [--models 100000] [--store DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from dulwich.objects import Blob, Commit, ObjectID, Tree

import casstore
from casstore.model.history import GITLINK, TREE, _message
from casstore.model.manifest import Manifest
from casstore.objects.packwriter import encode_entry
from casstore.objects.refs import domain_ref, model_ref

BLOB, TREE_T, COMMIT = 3, 2, 1
CHECKPOINT = 10_000
T0 = 1_700_000_000


def _index_tree(models: dict[str, ObjectID], objs: list[tuple[bytes, int]]) -> ObjectID:
    t = Tree()
    for mid, sha in models.items():
        t.add(mid.encode(), GITLINK, sha)
    root = Tree()
    root.add(b"models", TREE, t.id)
    objs.append((t.as_raw_string(), TREE_T))
    objs.append((root.as_raw_string(), TREE_T))
    return root.id


def generate(store_path: str, n: int) -> float:  # noqa: PLR0915 - builds the store step by step, timing each
    """Write the seed model and ``n`` generated models; returns the seconds it took."""
    t = time.perf_counter()
    store = casstore.open(store_path)
    with tempfile.TemporaryDirectory() as tmp:
        f = os.path.join(tmp, "model.bin")
        with open(f, "wb") as fh:
            fh.write(os.urandom(4096))
        store.commit_models("seed", model=f, model_id="seed", extra_metadata={"accuracy": 0.5})
    _, seed, seed_files = store._resolve("seed", "seed")
    author = b"Bench <bench@example.com>"
    objs: list[tuple[bytes, int]] = []
    models: dict[str, ObjectID] = {}
    refs: list[tuple[bytes, ObjectID]] = []
    parent: ObjectID | None = None
    index_tree = _index_tree({}, objs)
    for i in range(n):
        mid = f"m{i:06d}"
        when = T0 + i
        created = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(when))
        m = Manifest(domain="bench", model_id=mid, created=created, author=author.decode(),
                     frameworks=seed.frameworks, files=seed.files,
                     extra_metadata={"accuracy": 0.5 + 0.4 * i / n, "loss": 1.0 - 0.5 * i / n, "i": i},
                     environment=seed.environment, stats=seed.stats)
        blob = Blob.from_string(m.encode())
        root = Tree()
        root.add(b"manifest", 0o100644, blob.id)
        root.add(b"files", TREE, seed_files.id)
        c = Commit()
        c.tree, c.parents = root.id, []
        c.author = c.committer = author
        c.author_time = c.commit_time = when
        c.author_timezone = c.commit_timezone = 0
        c.message = (f"model bench/{mid}\n\nmodel=model_file\n\nCas-Domain: bench\nCas-Model: {mid}\n"
                     f"Cas-Created: {created}\n").encode()
        objs += [(blob.as_raw_string(), BLOB), (root.as_raw_string(), TREE_T), (c.as_raw_string(), COMMIT)]
        models[mid] = c.id
        refs.append((model_ref("bench", mid), c.id))
        if (i + 1) % CHECKPOINT == 0 or i == n - 1:
            index_tree = _index_tree(models, objs)
        h = Commit()
        h.tree, h.parents = index_tree, [parent] if parent else []
        h.author = h.committer = author
        h.author_time = h.commit_time = when
        h.author_timezone = h.commit_timezone = 0
        h.message = _message("commit", mid, c.id, None, {"Frameworks": "model=model_file",
                                                          "Summary": f"accuracy={0.5 + 0.4 * i / n}"})
        objs.append((h.as_raw_string(), COMMIT))
        parent = h.id
    from casstore.objects.packwriter import PackWriter

    w = PackWriter(store.odb.pack_dir, os.path.join(store.path, "cas", "chunkidx"), len(objs), durable=False)
    for raw, type_num in objs:
        w.add(encode_entry(raw, type_num=type_num))
    w.finish()
    for name, sha in refs:
        p = os.path.join(store.path, os.fsdecode(name))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(sha + b"\n")
    assert parent is not None
    p = os.path.join(store.path, os.fsdecode(domain_ref("bench")))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as fh:
        fh.write(parent + b"\n")
    store.close()
    return time.perf_counter() - t


def _get(host: str, port: int, path: str) -> tuple[float, int, int]:
    t = time.perf_counter()
    c = http.client.HTTPConnection(host, port, timeout=600)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return time.perf_counter() - t, r.status, len(body)


def main() -> None:  # noqa: PLR0915 - the benchmark's steps in the order they run
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=100_000)
    ap.add_argument("--store", help="reuse (or build) the store here instead of a temp dir")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bench-serve-")
    path = args.store or os.path.join(tmp.name, "store")
    if not os.path.exists(os.path.join(path, "refs", "cas", "domains", "bench")):
        took = generate(path, args.models)
        print(f"generated {args.models} models in {took:.1f}s")

    from casstore.serve import data

    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    store = casstore.open(path)
    t = time.perf_counter()
    page = data.list_page(store, "bench", limit=50, count=lambda: None)
    print(f"data.list_page, first 50 (no total), fresh Store: {time.perf_counter() - t:.3f}s")
    assert [r["model_id"] for r in page["models"]][:2] == [f"m{args.models - 1:06d}", f"m{args.models - 2:06d}"]
    t = time.perf_counter()
    total = data.count_models(store, "bench")
    print(f"counting the {total} model refs (the server does it in the background): "
          f"{time.perf_counter() - t:.3f}s")
    store.close()

    proc = subprocess.Popen([sys.executable, "-m", "casstore", "--store", path, "serve", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        host, port = line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)
        for url in ("/d/bench", "/api/domains/bench/models", "/d/bench?page=20", "/d/bench?cols=accuracy,loss"):
            first, status, size = _get(host, int(port), url)
            assert status == 200, (url, status)
            runs = [_get(host, int(port), url)[0] for _ in range(5)]
            print(f"GET {url}: first {first:.3f}s, then median of 5 {statistics.median(runs):.3f}s ({size} bytes)")
        # sorted by a metric: the first request starts building the domain's table in the
        # background (one manifest per model) and answers newest first; once built, every
        # sort or filter works on the cached table until the domain's history moves
        url = "/api/domains/bench/models?sort=accuracy&limit=50"
        t = time.perf_counter()
        first, status, _ = _get(host, int(port), url)
        while True:
            c = http.client.HTTPConnection(host, int(port), timeout=600)
            c.request("GET", url)
            body = c.getresponse().read()
            c.close()
            if not json.loads(body)["pending"]:
                break
            time.sleep(1)
        print(f"GET {url}: first (table being built) {first:.3f}s; table built after {time.perf_counter() - t:.1f}s")
        for url in ("/d/bench?sort=accuracy", "/d/bench?sort=loss&order=asc&filter=accuracy+>+0.8",
                    "/d/bench?sort=accuracy&page=100"):
            first, status, size = _get(host, int(port), url)
            assert status == 200, (url, status)
            runs = [_get(host, int(port), url)[0] for _ in range(5)]
            print(f"GET {url}: first {first:.3f}s, then median of 5 {statistics.median(runs):.3f}s ({size} bytes)")
    finally:
        proc.terminate()
        proc.wait()

    store = casstore.open(path)
    t = time.perf_counter()
    ids = store.list_models("bench")
    print(f"for comparison, Store.list_models (reads every model commit): {time.perf_counter() - t:.2f}s "
          f"for {len(ids)} IDs")
    store.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
