"""gc of a store that git serves: packs and bytes before and after, for N pushes.

A `cas init --bare` store behind `git daemon` (as tests/test_served_gc.py starts it)
receives N pushes of one new model each (random bytes: nothing deduplicates), then
`cas gc` runs on the server; then half the models are deleted, the deletion pushed,
and `cas gc --grace 0` runs.  Printed: packs, bytes under objects/, loose objects, the
wall time of each gc and of a fresh pull of every model, as a markdown table.

    python benchmarks/bench_served_gc.py [--pushes 50] [--size KiB] [--auto-packs N] [--work DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import casstore  # noqa: E402
from casstore.store import init_store  # noqa: E402
from tests.servers import git_daemon  # noqa: E402


def state(repo: Path) -> tuple[int, int, int]:
    """(packs, bytes under objects/, loose objects)."""
    objects = repo / "objects"
    packs = len(list((objects / "pack").glob("*.pack")))
    size = sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())
    loose = sum(1 for d in objects.iterdir() if len(d.name) == 2 for _ in d.iterdir())
    return packs, size, loose


def cas_gc(repo: Path, *args: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "casstore", "--store", str(repo), "gc", *args], check=True,
                   capture_output=True)
    return time.perf_counter() - t


def fresh_pull(work: Path, url: str, name: str) -> tuple[float, int]:
    t = time.perf_counter()
    b = casstore.open(work / name)
    n = len(b.pull(url).models_added)
    b.close()
    return time.perf_counter() - t, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pushes", type=int, default=50)
    ap.add_argument("--size", type=int, default=256, help="KiB per model")
    ap.add_argument("--work", default=None)
    ap.add_argument("--auto-packs", type=int, default=None,
                    help="the store's cas.autoPacks (0: no merge after pushes; default: the hook's 16)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_served_gc_"))
    srv = work / "srv"
    srv.mkdir(parents=True)
    repo = srv / "m.git"
    init_store(str(repo), bare_remote=True)
    if args.auto_packs is not None:
        subprocess.run(["git", "--git-dir", str(repo), "config", "cas.autoPacks", str(args.auto_packs)], check=True)
    a = casstore.open(work / "a")
    rows: list[tuple[str, tuple[int, int, int], str]] = []
    rng = np.random.default_rng(0)
    with git_daemon(srv) as base:
        url = f"{base}/m.git"
        for i in range(args.pushes):
            f = work / "m.bin"
            f.write_bytes(rng.bytes(args.size << 10))
            a.commit_models("d", model=str(f), model_id=f"v{i}")
            assert a.push(url).ok
        pull, n = fresh_pull(work, url, "p1")
        rows.append((f"after {args.pushes} pushes", state(repo), f"fresh pull of {n} models {pull:.2f} s"))
        t = cas_gc(repo)
        pull, n = fresh_pull(work, url, "p2")
        rows.append(("`cas gc` (default grace)", state(repo), f"gc {t:.2f} s; fresh pull {pull:.2f} s"))
        for i in range(0, args.pushes, 2):
            a.delete_model("d", f"v{i}")
        assert a.push(url).ok
        rows.append((f"{args.pushes // 2} models deleted, pushed", state(repo), ""))
        t = cas_gc(repo)
        rows.append(("`cas gc` (default grace: deleted models kept restorable)", state(repo), f"gc {t:.2f} s"))
        t = cas_gc(repo, "--grace", "0")
        pull, n = fresh_pull(work, url, "p3")
        rows.append(("`cas gc --grace 0`", state(repo), f"gc {t:.2f} s; fresh pull of {n} models {pull:.2f} s"))
        fresh = srv / "fresh.git"
        init_store(str(fresh), bare_remote=True)
        c = casstore.open(work / "p3")
        assert c.push(f"{base}/fresh.git").ok
        rows.append(("reference: a fresh push of the survivors", state(fresh), ""))
    auto = "default (16)" if args.auto_packs is None else args.auto_packs
    print(f"{args.pushes} pushes of one {args.size} KiB model each over git://, cas.autoPacks {auto}\n")
    print("| step | packs | bytes under objects/ | loose objects | times |")
    print("|---|---|---|---|---|")
    for what, (packs, size, loose), note in rows:
        print(f"| {what} | {packs} | {size:,} | {loose} | {note} |")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
