"""Scale of a store (issue 14, item 3): a 100,000-model domain and 1,000 domains.

Two stores are built in the same run: **small** (one domain ``d`` with
``--recent`` + 1 models: as few as a first page needs) and **big** (domain ``d``
with ``--models`` models, plus ``--domains`` other domains of one model each).
Both start from a model committed through the API; the rest is generated
directly (see ``build``: model commits with their own manifests sharing the first
model's ``files`` tree in one pack, loose refs, one history commit listing the
bulk, then ``--recent`` real history appends), which takes minutes instead of
hours.  Every *measured* operation is the real API or CLI, in a fresh process,
median of ``--runs``:

* ``commit``: ``commit_models`` of a 20 KB file (after import and ``Store()``);
* ``event bytes``: bytes the commit added under ``objects/`` (loose metadata objects
  and its pack), that is, what one event costs the store;
* ``log -n 40``, ``ls | head``: whole ``cas`` processes, output to a pipe;
* ``first page``: the newest 50 IDs (``iter_models`` when the code has it,
  else ``list_models()[:50]``);
* ``model_exists``, ``load`` of one model (after import and ``Store()``).

Ratios big / small are what the targets (within 1.2x) are about.  Run against
another checkout (``PYTHONPATH=/path/to/checkout``) to measure the code before a
change: the generator writes the flat history layout when the code has no
``shard_of``.

    python benchmarks/bench_scale.py [--models 100000] [--domains 1000] [--runs 3] [--dir DIR]

``--events 100,100000,1000000`` instead measures, in one run, the bytes one event
adds, the commit's time and a full read of the index for domains of those sizes
(``event_costs``; a faster generator, ``build_index_only``); ``--layouts`` computes
what an event writes in several index layouts without building a store.
``--full-read N,N --baseline CHECKOUT`` compares a full read of the index by two
checkouts in one run; ``--merge N`` measures a merge of two histories of N models that
both added models; ``--serve N,N`` measures ``list_models(limit=50)`` and ``cas serve``'s
domain page (issue 28; docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

WORKER = r"""
import itertools, json, os, sys, time
op, path, arg = sys.argv[1], sys.argv[2], sys.argv[3]
import casstore
from casstore.objects.refs import domain_ref
store = casstore.Store(path)
def objects_bytes():
    total = 0
    for root, _, files in os.walk(os.path.join(path, "objects")):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total
t = time.perf_counter()
c0 = time.process_time()
out = {}
if op == "commit":
    before = objects_bytes()
    t = time.perf_counter()
    c1 = time.process_time()
    store.commit_models("d", model=arg, model_id="new-" + os.urandom(6).hex())
    out["s"] = time.perf_counter() - t
    out["commit op cpu"] = time.process_time() - c1
    out["bytes"] = objects_bytes() - before
elif op == "first_page":  # list_models' first 50: limit= when the code has it
    try:
        ids = store.list_models("d", limit=50)
    except TypeError:
        ids = store.list_models("d")[:50]
    out["s"] = time.perf_counter() - t
    assert len(ids) == 50
elif op == "iter_page":  # the history order's first 50 (the same IDs, see Store.iter_models)
    ids = list(itertools.islice(store.iter_models("d"), 50))
    out["s"] = time.perf_counter() - t
elif op == "log":  # what `cas log -n 40` does after opening the store
    from casstore.model.history import iter_log
    events = list(itertools.islice(iter_log(store.odb, store.refs.get(domain_ref("d"))), 40))
    out["s"] = time.perf_counter() - t
    assert len(events) == 40
elif op == "full_read":  # what fsck (and a merge comparing indexes) reads: every tree of the index
    from casstore.model.history import read_index
    n = len(read_index(store.odb, store.refs.get(domain_ref("d")), full=True).models)
    out["s"] = time.perf_counter() - t
    out["models"] = n
elif op == "exists":
    assert store.model_exists("d", arg)
    out["s"] = time.perf_counter() - t
elif op == "load":
    store.load("d", arg)
    out["s"] = time.perf_counter() - t
out["op cpu"] = time.process_time() - c0
print(json.dumps(out))
"""


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_worker(op: str, store: str, arg: str, code: str | None = None) -> dict[str, float]:
    """One fresh process: the operation's own time ("s") and CPU seconds ("op cpu"), the process's ("cpu").

    ``code``: a casstore checkout to run instead of the one on ``PYTHONPATH``.
    """
    cpu = _children_cpu()
    env = None if code is None else {**os.environ, "PYTHONPATH": code}
    # not in a checkout's directory: ``python -c`` puts the working directory first on sys.path
    r = subprocess.run([sys.executable, "-c", WORKER, op, store, arg], capture_output=True, text=True, check=True,
                       env=env, cwd=os.path.dirname(os.path.abspath(store)))
    out: dict[str, float] = json.loads(r.stdout.strip().splitlines()[-1])
    out["cpu"] = _children_cpu() - cpu
    return out


def run_cli(store: str, args: list[str], lines: int) -> float:
    """Wall time of a whole ``cas`` process until ``lines`` lines of output (or its end)."""
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "casstore", "--store", store, *args], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    assert p.stdout is not None
    for _ in range(lines):
        if not p.stdout.readline():
            break
    took = time.perf_counter() - t
    p.stdout.close()
    p.wait()
    return took


def build(path: str, models: int, domains: int, model_file: str, recent: int) -> float:  # noqa: PLR0915 - builds the store step by step, timing each
    """A store: domain d with ``models`` models, and ``domains`` more domains of one model.

    The model commits (own manifest, the first model's ``files`` tree) go into one
    pack and their refs are written as loose files, as casstore writes them.  The
    history of d is the first model's, then one commit whose index lists every
    generated model but the newest ``recent``, then one real ``append_event`` per
    recent model (so ``log`` and the first page read real events).  Indexes are
    written by the code under test (``DomainIndex.to_tree``): its own layout.
    """
    from dulwich.objects import Blob, Commit, Tree

    import casstore
    from casstore.model import history
    from casstore.model.history import DomainIndex, append_event, read_index
    from casstore.model.manifest import decode

    t0 = time.perf_counter()
    store = casstore.open(path)
    base = 1_700_000_000
    # created before the generated models, as if committed first: the history is in time order
    store.commit_models("d", model=model_file, model_id="m0000000",
                        created=datetime.datetime.fromtimestamp(base - 1, datetime.timezone.utc))
    sha = store.refs.get(b"refs/cas/models/d/m0000000")  # type: ignore[arg-type]
    assert sha
    c = store.odb.read(sha, Commit)
    assert isinstance(c, Commit)
    root = store.odb.read(c.tree, Tree)
    assert isinstance(root, Tree)
    template = decode(store.odb.read(root[b"manifest"][1]).as_raw_string())  # type: ignore[union-attr]
    files = root[b"files"][1]
    jobs = [("d", f"m{i:07d}") for i in range(1, models)] + [(f"dom{j:04d}", "m0") for j in range(domains)]
    objects: list[tuple[object, None]] = []
    commits: dict[tuple[str, str], tuple[bytes, int]] = {}
    for k, (domain, mid) in enumerate(jobs):
        when = base + k
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime(when))
        blob = Blob.from_string(dataclasses.replace(template, domain=domain, model_id=mid, created=created).encode())
        tree = Tree()
        tree.add(b"manifest", 0o100644, blob.id)
        tree.add(b"files", 0o040000, files)
        commit = Commit()
        commit.tree = tree.id
        commit.author = commit.committer = b"bench <bench@bench.invalid>"
        commit.author_time = commit.commit_time = when
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = (f"model {domain}/{mid}\n\nmodel=model_file\n\nCas-Domain: {domain}\nCas-Model: {mid}\n"
                          f"Cas-Created: {created}\n").encode()
        objects += [(blob, None), (tree, None), (commit, None)]
        commits[(domain, mid)] = (commit.id, when)
    store.odb.store.add_objects(objects)  # type: ignore[arg-type]
    for (domain, mid), (cid, _) in commits.items():
        d = os.path.join(path, "refs", "cas", "models", domain)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, mid), "wb") as f:
            f.write(cid + b"\n")
    who = b"bench <bench@bench.invalid>"
    by_domain: dict[str, dict[str, bytes]] = {}
    for (domain, mid), (cid, _) in commits.items():
        by_domain.setdefault(domain, {})[mid] = cid
    d_models = by_domain.pop("d", {})
    ordered = sorted(d_models)
    bulk, late = ordered[: len(ordered) - recent], ordered[len(ordered) - recent:]
    head = store.refs.get(b"refs/cas/domains/d")  # type: ignore[arg-type]
    if not d_models:
        return time.perf_counter() - t0
    idx = read_index(store.odb, head)
    merged = dict(idx.models)
    merged.update({m: d_models[m] for m in bulk})  # type: ignore[misc]
    message = "commit bulk\n\nCas-Event: merge\n"
    if hasattr(history, "newest_created"):
        # what append_event writes on every history commit: the newest creation time (s) it records
        newest = max([commits[("d", m)][1] for m in bulk] + [history.newest_created(store.odb, head) or 0])
        message += f"Cas-Newest: {newest}\n"
    new = store.odb.write_commit(DomainIndex(models=merged).to_tree(store.odb),  # type: ignore[arg-type]
                                 [head], who, message.encode(), base)  # type: ignore[list-item]
    assert store.refs.set_if_equals(b"refs/cas/domains/d", head, new)  # type: ignore[arg-type]
    for mid in late:
        cid, when = commits[("d", mid)]

        def add(i: DomainIndex, mid: str = mid, cid: bytes = cid) -> None:
            i.models[mid] = cid  # type: ignore[assignment]

        append_event(store.odb, store.refs, "d", who, "commit", mid, cid, add, when=when)  # type: ignore[arg-type]
    for domain, ms in by_domain.items():
        (mid, cid), = ms.items()
        hist = store.odb.write_commit(DomainIndex(models=dict(ms)).to_tree(store.odb), [], who,  # type: ignore[arg-type]
                                      f"commit {mid}\n\nCas-Event: commit\nCas-Model: {mid}\nCas-Commit: "
                                      f"{cid.decode()}\n".encode(), base)
        assert store.refs.add_if_new(f"refs/cas/domains/{domain}".encode(), hist)  # type: ignore[arg-type]
    return time.perf_counter() - t0


def measure_once(store: str, model_file: str, out: dict[str, list[float]]) -> None:
    """One fresh process per operation; appends to ``out``."""
    r = run_worker("commit", store, model_file)
    out.setdefault("commit s", []).append(r["s"])
    out.setdefault("commit cpu", []).append(r["cpu"])
    out.setdefault("event bytes", []).append(r["bytes"])
    cpu = _children_cpu()
    out.setdefault("cas log -n 40 s", []).append(run_cli(store, ["log", "-n", "40", "--no-pager", "d"], 10_000))
    out.setdefault("cas log -n 40 cpu", []).append(_children_cpu() - cpu)
    cpu = _children_cpu()
    out.setdefault("cas ls | head s", []).append(run_cli(store, ["ls", "d"], 10))
    out.setdefault("cas ls | head cpu", []).append(_children_cpu() - cpu)
    for op, label, arg in (("log", "log 40 events", ""), ("first_page", "list_models 50", ""),
                           ("iter_page", "iter_models 50", ""), ("exists", "model_exists", "m0000000"),
                           ("load", "load", "m0000000")):
        r = run_worker(op, store, arg)
        out.setdefault(f"{label} s", []).append(r["s"])
        out.setdefault(f"{label} cpu", []).append(r["cpu"])
        out.setdefault(f"{label} op cpu", []).append(r["op cpu"])


COMMITTER = r"""
import sys, casstore
store = casstore.Store(sys.argv[1])
store.commit_models(sys.argv[2], model=sys.argv[3], model_id=sys.argv[4])
"""


def concurrent(work: str, n: int, size: int) -> dict[str, float]:
    """``n`` processes committing one ``size``-byte model each: one after another, then at once.

    Wall time of the whole batch, for the same domain and for ``n`` domains, each
    into a fresh store (after one warm-up commit).
    """
    import casstore

    files = []
    for i in range(n):
        f = os.path.join(work, f"par-{i}.bin")
        with open(f, "wb") as fh:
            fh.write(os.urandom(size))
        files.append(f)
    out: dict[str, float] = {}
    for layout in ("same domain", "different domains"):
        for how in ("sequential", "parallel"):
            path = os.path.join(work, "par-store")
            shutil.rmtree(path, ignore_errors=True)
            casstore.open(path).commit_models("d0", model=files[0], model_id="warm")
            cmds = [[sys.executable, "-c", COMMITTER, path, "d0" if layout == "same domain" else f"d{i}",
                     files[i], f"m{i}"] for i in range(n)]
            t = time.perf_counter()
            if how == "sequential":
                for c in cmds:
                    subprocess.run(c, check=True)
            else:
                procs = [subprocess.Popen(c) for c in cmds]
                assert all(p.wait() == 0 for p in procs)
            out[f"{n} commits, {layout}, {how} s"] = time.perf_counter() - t
            assert len(casstore.Store(path).list_models("d0")) == (n + 1 if layout == "same domain" else 2)
    return out


OPENER = r"""
import os, sys, time
t = time.perf_counter()
import casstore
t_import = time.perf_counter() - t
t = time.perf_counter()
store = casstore.Store(sys.argv[1])
keys = [os.urandom(32) for _ in range(16384)]  # a 1 GiB model's chunk keys: all misses
store.odb.index.lookup(keys)
t_open = time.perf_counter() - t
t = time.perf_counter()
store.commit_models("d", model=sys.argv[2], model_id="c-" + os.urandom(4).hex())
print(t_open, time.perf_counter() - t)
"""


def big_chunk_index(work: str, entries: int, runs: int) -> dict[str, float]:
    """A store whose chunk index holds ``entries`` entries (one sidecar), as ~1 TB of chunks would.

    The sidecar of a real pack is replaced by one holding its real entries plus
    ``entries`` made-up ones (random keys; oid, offset and length of a real entry,
    so the truncation check passes), written with numpy in the documented layout.
    Measured per fresh process: opening the store plus one lookup of 16,384 keys
    (a 1 GiB model's chunks), then a whole ``commit_models`` of a 1 MiB file.
    """
    import hashlib

    import numpy as np

    import casstore
    from casstore.objects import chunkindex as ci

    path = os.path.join(work, "cidx-store")
    shutil.rmtree(path, ignore_errors=True)
    model = os.path.join(work, "cidx-model.bin")
    with open(model, "wb") as fh:
        fh.write(os.urandom(1 << 20))
    first = os.path.join(work, "cidx-first.bin")
    with open(first, "wb") as fh:
        # big enough that the measured commits' small packs never roll up into it
        fh.write(os.urandom(64 << 20))
    store = casstore.open(path)
    store.commit_models("d", model=first, model_id="first")
    os.unlink(first)
    (sc,) = store.odb.index.sidecars
    n = sc.count + entries
    rng = np.random.default_rng(0)
    keys = np.empty((n, 32), dtype=np.uint8)
    keys[: sc.count] = np.frombuffer(b"".join(sc.key(i) for i in range(sc.count)), dtype=np.uint8).reshape(-1, 32)
    keys[sc.count:] = rng.integers(0, 256, size=(entries, 32), dtype=np.uint8)
    table = np.empty(n, dtype=ci.entry_dtype())
    table[: sc.count] = sc.entries
    table[sc.count:] = sc.entries[0]
    prefixes = keys[:, :8].copy().view(">u8").reshape(n)
    order = np.argsort(prefixes, kind="stable")
    prefixes, keys, table = prefixes[order], keys[order], table[order]
    target = sc.path
    store.close()
    h = hashlib.sha1()
    tmp = target + ".tmp"
    with open(tmp, "wb") as f:
        for part in (ci._HEADER.pack(ci.MAGIC, ci.VERSION, n, sc.pack_checksum), prefixes.tobytes(),
                     keys.tobytes(), table.tobytes()):
            h.update(part)
            f.write(part)
        f.write(h.digest())
    del keys, table, prefixes, order
    os.chmod(target, 0o644)
    os.replace(tmp, target)
    out: dict[str, list[float]] = {}
    for i in range(runs + 1):
        r = subprocess.run([sys.executable, "-c", OPENER, path, model], capture_output=True, text=True, check=True)
        t_open, t_commit = map(float, r.stdout.split())
        label = "first process" if i == 0 else "later processes"
        out.setdefault(f"{label}: open + lookup s", []).append(t_open)
        out.setdefault(f"{label}: commit s", []).append(t_commit)
    res = {k: statistics.median(v) for k, v in out.items()}
    res["sidecar MiB"] = os.path.getsize(target) / 2**20
    return res


def _hash2(model_id: str, mul: int) -> int:
    h = 0
    for b in model_id.encode():
        h = (h * mul + b) % 1000003
    return h


def layouts(sizes: list[int], sample: int = 20) -> dict[str, dict[str, float]]:  # noqa: C901, PLR0915 - one loop over every layout measured
    """What one event writes, and what a full read of the index touches, per index layout.

    No store is built: for a domain of each size (UUID4 IDs, as ``new_model_id``), the
    trees of each layout are serialised and zlib-compressed as git's loose objects are,
    and one event (a new model) rewrites the trees on its path.  ``event B``: the
    compressed trees that event writes, mean of ``sample`` events; ``trees``: how many
    trees a full read of the index reads; ``parse s``: CPU time to parse them all
    with dulwich (the floor of a full read: merge, fsck, gc; the hook parses in C).

    * ``256``: today's ``models/<xx>/<id>``;
    * ``256x256``: ``models/<xx>/<yy>/<id>`` for every domain;
    * ``256+split``: a shard above 256 entries becomes 256 sub-shards;
    * ``16x16x16``: three levels of one hex digit each;
    * ``split128``: the layout casstore writes (indextree.py): leaves of at most 128
      IDs, split 16 ways by the next digit of the ID's key.
    """
    import random
    import uuid
    import zlib

    from dulwich.objects import ObjectID, Tree

    from casstore.model.indextree import key_of

    def compressed(t: Tree) -> int:
        raw = t.as_raw_string()
        return len(zlib.compress(b"tree %d\x00" % len(raw) + raw))

    def tree_of(entries: dict[str, bytes]) -> Tree:
        t = Tree()
        for name, sha in entries.items():
            t.add(name.encode(), 0o160000 if len(name) > 4 else 0o040000, ObjectID(sha.hex().encode()))
        return t

    def path_of(layout: str, mid: str, big: set[str]) -> list[str]:
        if layout == "split128":
            k = key_of(mid)
            d = 0
            while d < 10 and prefix_count.get(k[:d], 0) > 128:
                d += 1
            return list(k[:d])
        a = f"{_hash2(mid, 131) % 256:02x}"
        b = f"{_hash2(mid, 257) % 256:02x}"
        if layout == "256":
            return [a]
        if layout == "256x256" or (layout == "256+split" and a in big):
            return [a, b]
        if layout == "256+split":
            return [a]
        h = _hash2(mid, 131) % 4096
        return [f"{h >> 8:x}", f"{(h >> 4) & 15:x}", f"{h & 15:x}"]

    rng = random.Random(0)
    out: dict[str, dict[str, float]] = {}
    for n in sizes:
        ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
        first = {f"{_hash2(m, 131) % 256:02x}" for m in ids}
        counts: dict[str, int] = {}
        for m in ids:
            a = f"{_hash2(m, 131) % 256:02x}"
            counts[a] = counts.get(a, 0) + 1
        big = {a for a, c in counts.items() if c > 256}
        assert first
        prefix_count: dict[str, int] = {}
        for m in ids:
            k = key_of(m)
            for d in range(11):
                prefix_count[k[:d]] = prefix_count.get(k[:d], 0) + 1
        for layout in ("256", "256x256", "256+split", "16x16x16", "split128"):
            tree: dict[tuple[str, ...], dict[str, bytes]] = {}
            for m in ids:
                p = tuple(path_of(layout, m, big))
                tree.setdefault(p, {})[m] = os.urandom(20)
                for k in range(len(p)):
                    sub = tree.setdefault(p[:k], {})
                    if p[k] not in sub:
                        sub[p[k]] = os.urandom(20)  # a sub-tree's id: random, as a hash is
            t0 = time.process_time()
            raws = {p: tree_of(e).as_raw_string() for p, e in tree.items()}
            for raw in raws.values():
                Tree.from_string(raw)
            parse = time.process_time() - t0
            written = []
            for _ in range(sample):
                mid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                p = tuple(path_of(layout, mid, big))
                total = 0
                for k in range(len(p) + 1):
                    entries = dict(tree.get(p[:k], {}))
                    entries[mid if k == len(p) else p[k]] = os.urandom(20)
                    total += compressed(tree_of(entries))
                written.append(total)
            out[f"{n} models, {layout}"] = {"event B": statistics.mean(written), "trees": len(tree),
                                            "parse s": parse}
    return out


@contextlib.contextmanager
def _workdir(args: argparse.Namespace, new_model: bool = False) -> Iterator[tuple[str, str]]:
    """(the work directory, a 20 KB model file in it): ``--dir`` or a temporary directory,
    removed after a run that ends normally unless it is ``--dir``.  The model file is
    kept when it is there, unless ``new_model``."""
    work = args.dir or tempfile.mkdtemp(prefix="bench-scale-")
    os.makedirs(work, exist_ok=True)
    model_file = os.path.join(work, "model.bin")
    if new_model or not os.path.exists(model_file):
        with open(model_file, "wb") as f:
            f.write(os.urandom(20_000))
    yield work, model_file
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:  # noqa: C901, PLR0912, PLR0915 - the benchmark's steps and their report, in order
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=100_000)
    ap.add_argument("--domains", type=int, default=1_000)
    ap.add_argument("--recent", type=int, default=60, help="models of d appended as real events")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--chart", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs",
                                                    "benchmarks-scale.png"),
                    help="where a run at 100,000 models or more draws its chart ('' for none)")
    ap.add_argument("--reuse", action="store_true", help="measure the stores already in --dir")
    ap.add_argument("--parallel", type=int, default=0, metavar="N",
                    help="instead: N processes committing at once vs one after another")
    ap.add_argument("--parallel-size", type=int, default=32 << 20)
    ap.add_argument("--cidx", type=int, default=0, metavar="N",
                    help="instead: open and dedupe in a store whose chunk index has N entries")
    ap.add_argument("--events", default=None, metavar="N,N,...",
                    help="instead: bytes per event, commit time and a full read, for domains of these sizes")
    ap.add_argument("--events-chart", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                           "docs", "benchmarks-events.png"))
    ap.add_argument("--full-read", default=None, metavar="N,N,...",
                    help="instead: a full read of the index by this checkout and --baseline's, one run")
    ap.add_argument("--baseline", default=None, help="the checkout --full-read compares with")
    ap.add_argument("--serve", default=None, metavar="N,N,...",
                    help="instead: list_models(limit=50) and cas serve's domain page for domains of these sizes")
    ap.add_argument("--serve-packed", action="store_true",
                    help="--serve on stores whose every ref is in packed-refs (as git pack-refs --all leaves them)")
    ap.add_argument("--merge", default=None, metavar="N,N,...",
                    help="instead: a merge of two histories of N models after both sides added --merge-added")
    ap.add_argument("--merge-added", type=int, default=3)
    ap.add_argument("--layouts", default=None, metavar="N,N,...",
                    help="instead: bytes one event writes per index layout, for domains of these sizes")
    args = ap.parse_args()
    if args.events:
        with _workdir(args) as (work, model_file):
            sizes = [int(x) for x in args.events.split(",")]
            res = event_costs(work, sizes, args.runs, model_file)
            first = res[sizes[0]]
            print(f"{'models':>10} {'event B':>9} {'ratio':>6} {'commit s':>9} {'ratio':>6} {'op cpu':>7} {'ratio':>6} "
                  f"{'proc cpu':>8} {'full read s':>11}")
            for n in sizes:
                r = res[n]
                print(f"{n:>10,} {r['event bytes']:>9,.0f} {r['event bytes'] / first['event bytes']:>5.2f}x "
                      f"{r['commit s']:>9.4f} {r['commit s'] / first['commit s']:>5.2f}x {r['commit op cpu']:>7.3f} "
                      f"{r['commit op cpu'] / first['commit op cpu']:>5.2f}x {r['commit cpu']:>8.3f} "
                      f"{r['full read s']:>11.2f}")
            if args.json:
                with open(args.json, "w") as f:
                    json.dump({str(n): r for n, r in res.items()}, f, indent=1)
            if args.events_chart:
                when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
                events_chart(res, f"one event (commit_models of 20 KB) by domain size: {when}, {os.cpu_count()} cores, "
                                  f"medians of {args.runs}, load average {os.getloadavg()[0]:.1f}", args.events_chart)
        return
    if args.full_read:
        assert args.baseline, "--full-read needs --baseline CHECKOUT"
        with _workdir(args) as (work, model_file):
            sizes = [int(x) for x in args.full_read.split(",")]
            print(f"{'models':>10} {'before s':>9} {'after s':>9} {'ratio':>6} {'before cpu':>10} {'after cpu':>10} "
                  f"{'ratio':>6}")
            for n, r in full_read_compare(work, sizes, args.runs, model_file, args.baseline).items():
                print(f"{n:>10,} {r['before s']:>9.2f} {r['after s']:>9.2f} {r['after s'] / r['before s']:>5.2f}x "
                      f"{r['before cpu']:>10.2f} {r['after cpu']:>10.2f} {r['after cpu'] / r['before cpu']:>5.2f}x")
        return
    if args.serve:
        with _workdir(args) as (work, model_file):
            for n, r in serve_cost(work, [int(x) for x in args.serve.split(",")], args.runs, model_file,
                                   packed=args.serve_packed).items():
                for k, v in r.items():
                    print(f"{n:>10,} {k:<28} {v:8.3f}")
        return
    if args.merge:
        with _workdir(args) as (work, model_file):
            for n in [int(x) for x in args.merge.split(",")]:
                for k, v in merge_cost(work, n, args.merge_added, model_file).items():
                    print(f"{n:>10,} {k:<24} {v:10.3f}")
        return
    if args.layouts:
        for k, row in layouts([int(x) for x in args.layouts.split(",")]).items():
            print(f"{k:<32} {row['event B']:>9.0f} B/event {row['trees']:>7.0f} trees "
                  f"{row['parse s']:>7.2f} s to parse")
        return
    if args.cidx:
        with _workdir(args) as (work, _):
            for k, v in big_chunk_index(work, args.cidx, args.runs).items():
                print(f"{k:<40} {v:10.3f}")
        return
    if args.parallel:
        with _workdir(args) as (work, _):
            for k, v in concurrent(work, args.parallel, args.parallel_size).items():
                print(f"{k:<45} {v:8.2f}")
        return
    with _workdir(args, new_model=not args.reuse) as (work, model_file):
        small = args.recent + 1  # the baseline: a domain with just the models a first page shows
        for name, models, domains, recent in (("small", small, 0, args.recent),
                                              ("big", args.models, args.domains, args.recent)):
            path = os.path.join(work, name)
            if not (args.reuse and os.path.isdir(path)):
                shutil.rmtree(path, ignore_errors=True)
                took = build(path, models, domains, model_file, recent)
                print(f"built {name}: {models} models in d, {domains} more domains, {took:.1f} s", flush=True)
            # one commit through the API, not measured: a store casstore has written to before
            # (the first writer after the generator reconciles the refs it wrote behind casstore's back)
            run_worker("commit", path, model_file)
        # small and big alternate, so that the machine's other load weighs on both alike
        raw: dict[str, dict[str, list[float]]] = {"small": {}, "big": {}}
        for _ in range(args.runs):
            for name in ("small", "big"):
                measure_once(os.path.join(work, name), model_file, raw[name])
        results = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in raw.items()}
        print(f"{'measurement':<24} {'small':>10} {'big':>10} {'big/small':>10}")
        for k in results["small"]:
            e, b = results["small"][k], results["big"][k]
            print(f"{k:<24} {e:>10.4f} {b:>10.4f} {b / e if e else float('nan'):>9.2f}x")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
        if args.chart and args.models >= 100_000:  # the scale: only such a run redraws the doc's chart
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            chart(results, f"casstore at scale: a domain of {args.models:,} models + {args.domains:,} domains "
                           f"vs one of {small} models\n{when}, {os.uname().machine}, {os.cpu_count()} cores, "
                           f"medians of {args.runs}, load average {os.getloadavg()[0]:.1f}", args.chart)


def build_index_only(path: str, models: int, model_file: str, packed_refs: bool = False) -> float:
    """A store whose domain ``d`` lists ``models`` models: what an event's cost depends on.

    One model is committed through the API; one history commit then lists it and
    ``models - 1`` more IDs, each with a distinct random 20-byte commit id (as in a
    real domain), its index written by the code under test (``DomainIndex.to_tree``:
    its own layout) into one pack instead of loose objects (quicker to build; what
    an event writes later is loose either way).  Neither the model commits behind
    those ids nor their refs are written (a million ref files take ~20 minutes to
    create on this machine's disk): the generator writes the refs stamp that
    casstore's last writer would have left (docs/format.md, "Refs stamp"), so the
    measured writers take the path they take in a store casstore wrote, which
    never reads the other models' refs or commits.  ``cas fsck`` of such a store
    reports every one of them; these stores serve this measurement only.
    """
    import casstore
    from casstore.model.history import DomainIndex

    t0 = time.perf_counter()
    store = casstore.open(path)
    base = 1_700_000_000
    store.commit_models("d", model=model_file, model_id="m0000000",
                        created=datetime.datetime.fromtimestamp(base - 1, datetime.timezone.utc))
    sha = store.refs.get(b"refs/cas/models/d/m0000000")  # type: ignore[arg-type]
    assert sha
    ids = [f"m{i:07d}" for i in range(models)]
    shas = {mid: os.urandom(20).hex().encode() for mid in ids[1:]}
    shas[ids[0]] = sha
    head = store.refs.get(b"refs/cas/domains/d")  # type: ignore[arg-type]
    objects: list[tuple[object, None]] = []
    odb = store.odb

    def collect(obj: object) -> bytes:
        objects.append((obj, None))
        return obj.id  # type: ignore[attr-defined, no-any-return]

    odb.write_loose = collect  # type: ignore[method-assign, assignment]
    tree = DomainIndex(models=shas).to_tree(odb)  # type: ignore[arg-type]
    odb.store.add_objects(objects)  # type: ignore[arg-type]
    del odb.write_loose
    message = f"commit bulk\n\nCas-Event: merge\nCas-Newest: {base}\n".encode()
    new = odb.write_commit(tree, [head], b"bench <bench@bench.invalid>", message, base)  # type: ignore[list-item]
    assert store.refs.set_if_equals(b"refs/cas/domains/d", head, new)  # type: ignore[arg-type]
    if packed_refs:  # every generated model's ref, as ``git pack-refs`` leaves them (one file)
        assert not os.path.exists(os.path.join(path, "packed-refs"))
        with open(os.path.join(path, "packed-refs"), "wb") as f:
            f.write(b"# pack-refs with: peeled fully-peeled sorted \n")
            f.writelines(b"%s refs/cas/models/d/%s\n" % (shas[mid], mid.encode()) for mid in sorted(ids[1:]))
    from casstore.model import writer
    from casstore.util.locking import domain_lock_path

    time.sleep(0.05)  # the stamp counts only when written in a later tick than what it describes
    with open(domain_lock_path(path, "d")[: -len(".lock")] + ".stamp", "w") as f:
        f.write(writer._refs_stamp(store.repo, "d")[0])
    return time.perf_counter() - t0


def event_costs(work: str, sizes: list[int], runs: int, model_file: str) -> dict[int, dict[str, float]]:
    """Bytes one event adds, commit time and a full read of the index, per domain size, one run.

    Each size gets its own store (``build_index_only``), then one unmeasured commit
    (the first writer after the generator reconciles its refs); then ``runs`` rounds,
    every size once per round (so the machine's load weighs on all alike), each a
    fresh process: ``commit_models`` of a 20 KB file (wall, its own CPU and the
    process's, bytes added under ``objects/``), and ``read_index(full=True)`` (wall).
    """
    for n in sizes:
        path = os.path.join(work, f"events-{n}")
        if not os.path.isdir(path):
            took = build_index_only(path, n, model_file)
            print(f"built a domain of {n:,} models in {took:.1f} s", flush=True)
        run_worker("commit", path, model_file)
    raw: dict[int, dict[str, list[float]]] = {n: {} for n in sizes}
    for _ in range(runs):
        for n in sizes:
            path = os.path.join(work, f"events-{n}")
            r = run_worker("commit", path, model_file)
            raw[n].setdefault("commit s", []).append(r["s"])
            raw[n].setdefault("commit cpu", []).append(r["cpu"])
            raw[n].setdefault("commit op cpu", []).append(r["commit op cpu"])
            raw[n].setdefault("event bytes", []).append(r["bytes"])
    for n in sizes:
        r = run_worker("full_read", os.path.join(work, f"events-{n}"), "")
        raw[n]["full read s"] = [r["s"]]
    return {n: {k: statistics.median(v) for k, v in r.items()} for n, r in raw.items()}


MERGER = r"""
import json, sys, time
t0 = time.perf_counter()
c0 = time.process_time()
import casstore
from casstore.objects.refs import domain_ref
from casstore.model.writer import domain_writer
from casstore.remote import sync
store = casstore.Store(sys.argv[1])
repo = store.repo
out = {}
def step(name, t, c):
    out[name + " s"] = time.perf_counter() - t
    out[name + " cpu"] = time.process_time() - c
t, c = time.perf_counter(), time.process_time()
# what the remote advertises (its side of a real pull: the path transport's git-upload-pack advert)
remote = sync.parse_refs(sync._open(repo, sys.argv[2], None).read_refs(), sys.argv[2])
step("their ref advert (path transport's read_refs, parse_refs)", t, c)
t, c = time.perf_counter(), time.process_time()
ours, local = sync._local_index(repo, "d")
out["local models"] = len(local.models)
step("list our model refs (_local_index)", t, c)
t, c = time.perf_counter(), time.process_time()
result = sync.SyncResult(sys.argv[2])
import cProfile, os, pstats
prof = cProfile.Profile() if os.environ.get("BENCH_PROFILE") else None
with repo.lock(), domain_writer(repo, "d"):
    if prof:
        prof.enable()
    sync._pull_domain(repo, "d", remote, sys.argv[2], result, False)
    if prof:
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumtime").print_stats(25)
step("pull's merge (_pull_domain, under domain_writer)", t, c)
assert not result.conflicts, result.conflicts
out["added"] = len(result.models_added)
out["merge s"] = time.perf_counter() - t0
out["merge cpu"] = time.process_time() - c0
t, c = time.perf_counter(), time.process_time()
head = repo.refs.get(domain_ref("d"))
out["models"] = len(sync.read_index(store.odb, head, full=True).models)
step("read merged index back (a check, not part of a merge)", t, c)
print(json.dumps(out))
"""


def merge_cost(work: str, n: int, added: int, model_file: str) -> dict[str, float]:
    """A pull's merge of two histories of ``n`` models after each side added ``added`` (one fresh process).

    Store ``ours`` is built by ``build_index_only`` with every model's ref in
    ``packed-refs``; ``theirs`` is a copy of it.  Each side then commits ``added``
    models through the API (real events, loose refs), the objects of ``theirs``
    are copied into ``ours`` (what a fetch does), and one process merges the two
    as a pull does (``MERGER``): their refs as advertised (``parse_refs``), our
    model refs listed (``_local_index``), then ``_pull_domain`` under the domain
    lock (merge base, deletions, ``merge_indexes``, the refs moved, the merged
    index written, the new head set); the merged index is then read back whole
    as a check.  Wall and CPU time of each step and of the whole process
    (imports included, the check not).
    """
    import casstore
    from casstore.objects.refs import domain_ref

    ours, theirs = os.path.join(work, f"merge-{n}-ours"), os.path.join(work, f"merge-{n}-theirs")
    if not os.path.isdir(ours):
        took = build_index_only(ours, n, model_file, packed_refs=True)
        print(f"built a domain of {n:,} models in {took:.1f} s", flush=True)
        run_worker("commit", ours, model_file)
    shutil.rmtree(theirs, ignore_errors=True)
    shutil.copytree(ours, theirs, symlinks=True)
    # the refs stamp describes the refs directory it was written for: write the copy's own
    # (as build_index_only does), or its first writer records every generated model as deleted
    from casstore.model import writer
    from casstore.util.locking import domain_lock_path

    time.sleep(0.05)
    with open(domain_lock_path(theirs, "d")[: -len(".lock")] + ".stamp", "w") as f:
        f.write(writer._refs_stamp(casstore.Store(theirs).repo, "d")[0])
    for path in (ours, theirs):
        for _ in range(added):
            run_worker("commit", path, model_file)
    for root, _, files in os.walk(os.path.join(theirs, "objects")):
        dest = os.path.join(ours, os.path.relpath(root, theirs))
        os.makedirs(dest, exist_ok=True)
        for f in files:
            if not os.path.exists(os.path.join(dest, f)):
                shutil.copy2(os.path.join(root, f), os.path.join(dest, f))
    head = casstore.Store(theirs).refs.get(domain_ref("d"))
    assert head is not None
    cpu = _children_cpu()
    r = subprocess.run([sys.executable, "-c", MERGER, ours, theirs], capture_output=True, text=True,
                       check=True)
    if os.environ.get("BENCH_PROFILE"):  # the profile of _pull_domain (cProfile, cumulative time)
        print(r.stderr, file=sys.stderr)
    out: dict[str, float] = json.loads(r.stdout.strip().splitlines()[-1])
    out["process cpu"] = _children_cpu() - cpu
    assert out["added"] == added, out
    assert out["models"] >= n + 1 + 2 * added, out  # the warm-up commit, then each side's (more: a rerun)
    shutil.rmtree(theirs, ignore_errors=True)
    return out


def full_read_compare(work: str, sizes: list[int], runs: int, model_file: str,
                      baseline: str) -> dict[int, dict[str, float]]:
    """A full read of the index (``read_index(full=True)``: what fsck reads) by two checkouts, in one run.

    Per size, one store built by each checkout's own generator path (``build_index_only``
    run with that checkout: the 256-shard layout for a checkout before issue 28), then
    ``runs`` rounds, each a fresh process per checkout, alternating: medians of the
    read's wall time and CPU time.
    """
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    codes = {"before": baseline, "after": here}
    raw: dict[int, dict[str, list[float]]] = {n: {} for n in sizes}
    for n in sizes:
        for label, code in codes.items():
            path = os.path.join(work, f"full-{label}-{n}")
            if not os.path.isdir(path):
                subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                                "import bench_scale; bench_scale.build_index_only(sys.argv[2], int(sys.argv[3]), "
                                "sys.argv[4])",
                                os.path.dirname(os.path.abspath(__file__)), path, str(n), model_file],
                               check=True, env={**os.environ, "PYTHONPATH": code}, cwd=work)
                print(f"built {label}'s domain of {n:,} models", flush=True)
    for _ in range(runs):
        for n in sizes:
            for label, code in codes.items():
                r = run_worker("full_read", os.path.join(work, f"full-{label}-{n}"), "", code)
                assert r["models"] == n, r
                raw[n].setdefault(f"{label} s", []).append(r["s"])
                raw[n].setdefault(f"{label} cpu", []).append(r["op cpu"])
    return {n: {k: statistics.median(v) for k, v in r.items()} for n, r in raw.items()}


RECENT = r"""
import sys, casstore
store = casstore.Store(sys.argv[1])
for i in range(int(sys.argv[3])):
    store.commit_models("d", model=sys.argv[2], model_id=f"recent-{i:04d}")
"""


def _get(url: str) -> float:
    """Wall time of one GET (status 200 required)."""
    import urllib.request

    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as r:
        r.read()
        assert r.status == 200, r.status
    return time.perf_counter() - t


def serve_cost(work: str, sizes: list[int], runs: int, model_file: str,  # noqa: PLR0913 - the benchmark's options
               recent: int = 60, packed: bool = False) -> dict[int, dict[str, float]]:
    """``list_models(limit=50)`` and ``cas serve``'s domain page, per domain size, one run.

    Each store is ``build_index_only``'s plus ``recent`` models committed through
    the API (real events, newer than the generated ones: the first page).  Per
    round and size: ``list_models("d", limit=50)`` in a fresh process; then a fresh
    ``cas serve`` and, once it listens, GET ``/d/d`` (the domain page, newest first:
    what a visitor opens) twice and ``/api/domains/d/models`` once (wall times).
    ``packed``: every generated model's ref is in ``packed-refs`` (a million lines
    at 1,000,000), the API's commits' refs loose, the refs stamp valid: a store
    whose refs ``git pack-refs`` packed before casstore's last write.  (Packed
    after it, the stamp no longer holds and ``list_models(limit=)`` reads every
    model's ref and commit, which the generated refs do not name: not measured.)
    """
    raw: dict[int, dict[str, list[float]]] = {n: {} for n in sizes}
    label = "serve-packed" if packed else "serve"
    for n in sizes:
        path = os.path.join(work, f"{label}-{n}")
        if not os.path.isdir(path):
            t0 = time.perf_counter()
            build_index_only(path, n, model_file, packed_refs=packed)
            subprocess.run([sys.executable, "-c", RECENT, path, model_file, str(recent)], check=True)
            print(f"built a domain of {n:,} models + {recent} committed in {time.perf_counter() - t0:.1f} s",
                  flush=True)
    for _ in range(runs):
        for n in sizes:
            path = os.path.join(work, f"{label}-{n}")
            r = run_worker("first_page", path, "")
            raw[n].setdefault("list_models(limit=50) s", []).append(r["s"])
            proc = subprocess.Popen([sys.executable, "-m", "casstore", "--store", path, "serve", "--port", "0"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                assert proc.stdout is not None
                line = proc.stdout.readline()
                assert line.startswith("serving http://"), line
                base = "http://" + line.split("http://", 1)[1].split("/", 1)[0]
                raw[n].setdefault("domain page, first GET s", []).append(_get(base + "/d/d"))
                raw[n].setdefault("domain page, again s", []).append(_get(base + "/d/d"))
                raw[n].setdefault("api models page s", []).append(_get(base + "/api/domains/d/models"))
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    return {n: {k: statistics.median(v) for k, v in r.items()} for n, r in raw.items()}


def events_chart(results: dict[int, dict[str, float]], title: str, path: str) -> None:
    """Bytes per event and commit time per domain size, as ratios to the smallest domain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(results)
    first = results[sizes[0]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, key, label in ((axes[0], "event bytes", "bytes one event adds"),
                           (axes[1], "commit s", "commit_models wall time (s)")):
        vals = [results[n][key] for n in sizes]
        ratios = [v / first[key] for v in vals]
        ax.bar([f"{n:,}" for n in sizes], vals,
               color=["#3a7" if r <= SCALE_LIMIT else "#c44" for r in ratios])
        for x, (v, r) in enumerate(zip(vals, ratios, strict=True)):
            ax.text(x, v, f"{v:,.0f}\n{r:.2f}x" if key == "event bytes" else f"{v:.3f}\n{r:.2f}x",
                    ha="center", va="bottom", fontsize=7)
        ax.axhline(first[key] * SCALE_LIMIT, color="#333", ls="--", lw=1)
        ax.set_ylim(0, max(*vals, first[key] * SCALE_LIMIT) * 1.35)
        ax.set_xlabel("models in the domain", fontsize=8)
        ax.set_title(f"{label} (dashed: 1.2x the smallest)", fontsize=8)
        ax.tick_params(labelsize=8)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


#: (label, wall-time key, CPU key) of every scale target: big store / small store within 1.2x
SCALE_TARGETS = [("commit", "commit s", "commit cpu"),
                 ("cas log -n 40", "cas log -n 40 s", "cas log -n 40 cpu"),
                 ("cas ls | head", "cas ls | head s", "cas ls | head cpu"),
                 ("list_models first page (limit=50)", "list_models 50 s", "list_models 50 op cpu"),
                 ("iter_models first page", "iter_models 50 s", "iter_models 50 op cpu"),
                 ("model_exists", "model_exists s", "model_exists op cpu"),
                 ("load by ID", "load s", "load op cpu")]
SCALE_LIMIT = 1.2


def chart(results: dict[str, dict[str, float]], title: str, path: str) -> None:
    """Every scale target, met or not: big/small ratios (wall and CPU) against 1.2x, and the
    bytes one event adds in each store (target: flat, i.e. the same in both)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    small, big = results["small"], results["big"]
    names, walls, cpus = [], [], []
    for label, wall, cpu in SCALE_TARGETS:
        if wall in small and cpu in small:
            names.append(label)
            walls.append(big[wall] / small[wall])
            cpus.append(big[cpu] / small[cpu] if small[cpu] else float("nan"))
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(10, 0.45 * len(names) + 3.2),
                                 gridspec_kw={"height_ratios": [len(names), 1.2]})
    ys = range(len(names))
    ax.barh([y - 0.2 for y in ys], walls, height=0.4, label="wall time",
            color=["#3a7" if w <= SCALE_LIMIT else "#c44" for w in walls])
    ax.barh([y + 0.2 for y in ys], cpus, height=0.4, color="#9bd",
            label="CPU time (of the operation; of the whole process for commit and the cas commands)")
    for y, (w, c) in enumerate(zip(walls, cpus, strict=True)):
        ax.text(w, y - 0.2, f" {w:.2f}", va="center", fontsize=7)
        ax.text(c, y + 0.2, f" {c:.2f}", va="center", fontsize=7)
    ax.axvline(SCALE_LIMIT, color="#333", ls="--", lw=1)
    ax.set_yticks(list(ys), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(*walls, *cpus, SCALE_LIMIT) * 2.2)  # room on the right for the legend
    ax.legend(fontsize=7, loc="center right")
    ax.set_xlabel("big store / small store (target: at most the dashed line, 1.2x; red: wall time above it)",
                  fontsize=8)
    ax.set_title(title, fontsize=8)
    ev = [small["event bytes"], big["event bytes"]]
    bx.barh(["small store", "big store"], ev, color=["#9bd", "#3a7" if ev[1] <= ev[0] * SCALE_LIMIT else "#c44"])
    for y, v in enumerate(ev):
        bx.text(v, y, f" {v:,.0f} B", va="center", fontsize=7)
    bx.invert_yaxis()
    bx.tick_params(axis="y", labelsize=8)
    bx.set_xlabel("bytes one event adds to the store (target: flat, the same in both; red: it grows)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
