"""casstore beside the trusted dedup stores restic and borg, and DVC, on the same workloads (issue 26).

Part of `make bench`.  Each step is one fresh process (or several, added up) timed whole
with GNU ``time``: wall seconds and CPU seconds (user + system) of its process tree.
Tools are interleaved per repetition; the table shows medians and casstore / best peer,
then issue 26's targets 1-5 as ratios, each met or not.

Workloads (bench_transfer.py's recipe): W2, float32 N(0,1) ``.npy`` of ``--size`` MiB;
W3, W2 with 10 % of its 1 MiB blocks changed (the "10 % scattered change"); a bf16
safetensors file of W2's size x 500/1024 (the issue's 500 MiB beside a 1 GiB W2: 8 MiB
weight matrices and norm vectors, N(0, 0.02) rounded to bf16); and ``--small`` small files
of 10-200 KiB (like small scikit-learn models), each committed by its own process into one store.

Rows (the issue's), where a tool has them:

  W2 commit                  cas commit / restic backup / borg create / dvc add
  W2 restore (download)      cas download / restic restore / borg extract / dvc checkout (file removed)
  W2 push to a path remote   to a directory: cas push / restic copy / dvc push (borg: none)
  W2 fresh pull + restore    a new store from that directory: cas pull --download /
                             restic restore from it / dvc pull (borg: none)
  bf16 safetensors: restore  as W2 restore, after committing the file
  10 % scattered change      W3's commit, and the bytes it added to the store
  W2 push / fresh pull + restore over git://, http, ssh
                             casstore only (target 4: against DVC's path remote); a fresh bare
                             store served by a real `git daemon --inetd`, http-backend or sshd on
                             loopback, started afresh per step (bench_transfer.Remote); CPU s
                             is the client's plus the server's
  small models               one process per commit (``--small`` files, issue: 1,000):
                             all commits' wall and CPU, and the median latency of one commit; for
                             casstore also the same commits from one process with the store open
                             (the library, a long-lived job), timed inside it per commit (restic,
                             borg and DVC have no such mode)

Reference: `zstd -3 -T2` of W2 (target 2).

Setup: restic (Debian's package, `make sysdeps`; a v2 repository, compression auto, no
password prompt), borg (`borgbackup` from PyPI into benchmarks/.venv-borg; ``-e none``,
``zstd,3``), DVC (benchmarks/.venv-dvc, bench_transfer.py).  A tool that is missing is
left out of the table, named on stderr.

A chart of every row (each tool's time as a multiple of the best tool's, log scale) goes
to docs/benchmarks-peers.png (matplotlib, the ``bench`` extra), else an SVG written
without dependencies.  ``--quick`` (16 MiB, 20 small files, one repetition, every
transport) checks that the benchmark runs.

    python benchmarks/bench_peers.py [--size MiB] [--reps N] [--small N] [--small-reps N] [--small-only]
        [--tools casstore,restic,borg,dvc] [--transports git://,http,ssh] [--bf16 MiB] [--quick]
        [--chart PATH] [--chart-from results_peers.json]

The small files take longest: 1,000 commits per tool, ~45 min for the four on a quiet
2-core machine, so they run in the first repetition only (``--small-reps``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_transfer import DVC, ENV, MiB, Remote, Run, cas, du, ensure_dvc, fresh, log, run  # noqa: E402

BORG_VENV = HERE / ".venv-borg"
BORG = BORG_VENV / "bin" / "borg"
BORG_VERSION = "1.4.5"
RESTIC = shutil.which("restic") or "/usr/bin/restic"
Results = dict[str, dict[str, list[float]]]
PEERS = ["restic", "borg", "DVC"]
TOOL_ENV = {**ENV, "RESTIC_PASSWORD": "bench", "RESTIC_FROM_PASSWORD": "bench", "BORG_PASSPHRASE": "",
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes", "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}


def ensure_borg() -> bool:
    if BORG.exists():
        return True
    log(f"installing borgbackup {BORG_VERSION} from PyPI into benchmarks/.venv-borg (builds from source: needs "
        "pkg-config, libacl1-dev, libssl-dev, liblz4-dev, libzstd-dev, libxxhash-dev)")
    subprocess.run([sys.executable, "-m", "venv", str(BORG_VENV)], check=True)
    r = subprocess.run([str(BORG_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                        f"borgbackup=={BORG_VERSION}"])
    return r.returncode == 0 and BORG.exists()


def step(out: Results, tool: str, name: str, *runs: Run) -> None:
    for key, value in ((f"{name} s", sum(r[0] for r in runs)), (f"{name} CPU s", sum(r[2] for r in runs))):
        out.setdefault(key, {}).setdefault(tool, []).append(value)


def add(out: Results, key: str, tool: str, value: float) -> None:
    out.setdefault(key, {}).setdefault(tool, []).append(value)


def t(cmd: list[str], cwd: Path | None = None) -> Run:
    return run(cmd, cwd=cwd, env=TOOL_ENV)


def small_files(work: Path, n: int) -> list[Path]:
    """``n`` files of 10-200 KiB: float64 arrays, like pickled small scikit-learn models."""
    import numpy as np

    d = work / f"small-{n}"
    if not d.exists():
        rng = np.random.default_rng(2)
        tmp = fresh(work / f"small-{n}.tmp")
        tmp.mkdir(parents=True)
        for i in range(n):
            (tmp / f"m{i:04d}.bin").write_bytes(rng.standard_normal(int(rng.integers(10, 200)) * 128).tobytes())
        tmp.rename(d)
    return sorted(d.iterdir())


def per_file(out: Results, tool: str, files: list[Path], one: Callable[[int, Path], list[str]],
             cwd: Path | None = None) -> None:
    """Commit each file with its own process: the processes' wall and CPU, added up, and the median."""
    runs = [t(one(i, f), cwd=cwd) for i, f in enumerate(files)]
    add(out, f"{SMALL_ALL} s", tool, sum(r[0] for r in runs))
    add(out, f"{SMALL_ALL} CPU s", tool, sum(r[2] for r in runs))
    add(out, SMALL_MS, tool, 1000 * statistics.median(r[0] for r in runs))


#: commits every file from one process with the store open; prints each commit's wall seconds
OPEN_STORE = """import json, sys, time, casstore
s = casstore.open(sys.argv[1])
times = []
for i, f in enumerate(sys.argv[2:]):
    t = time.perf_counter()
    s.commit_models("d", model=f, model_id=f"m{i}")
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


#: the issue's rows; each timed one is two results, "ROW s" (wall) and "ROW CPU s"
COMMIT, RESTORE = "W2 commit", "W2 restore (download)"
PUSH, PULL = "W2 push to a path remote", "W2 fresh pull + restore"
V2_COMMIT, V2_BYTES = "10 % scattered change: v2 commit", "10 % scattered change: bytes added MiB"
ZSTD = "zstd -3 -T2 of W2 (reference)"
SMALL_ALL, SMALL_MS = "small models: all commits, one process each", "small models: ms per commit, one process each"
OPEN_ALL, OPEN_MS = "small models, one open store: all commits s", "small models, one open store: ms per commit"


def bf16_row(mib: int) -> str:
    return f"bf16 safetensors {mib} MiB: restore"


def over(kind: str, row: str) -> str:
    """casstore's row over a git transport (target 4), held against DVC's path remote's ``row``."""
    return f"{'W2 push' if row == PUSH else row} over {kind}"


@dataclass
class Inputs:
    """The files of one run, and the git transports casstore also pushes and pulls W2 over."""

    w2: Path
    w3: Path
    bf16: Path
    bf16_mib: int
    transports: list[str]


def bf16_safetensors(work: Path, mib: int) -> Path:
    """A ``mib`` MiB bf16 safetensors file laid out as a transformer's: 8 MiB weight matrices
    (``[1024, 4096]``) with a small norm vector after each, N(0, 0.02) rounded to bf16 (the top
    16 bits of the float32, round to nearest even), written in the safetensors format: a
    little-endian u64 header length, the JSON header padded with spaces to 8 bytes, the data."""
    import numpy as np

    path = work / f"bf16-{mib}.safetensors"
    if path.exists():
        return path
    rng = np.random.default_rng(3)
    budget, shapes = mib * MiB, []
    while budget >= 2 * 4096 * 2:
        rows = min(1024, (budget - 4096 * 2) // (4096 * 2))
        shapes += [(f"model.layers.{len(shapes) // 2}.mlp.weight", [rows, 4096]),
                   (f"model.layers.{len(shapes) // 2}.norm.weight", [4096])]
        budget -= (rows + 1) * 4096 * 2
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes:
        size = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        f.write(len(head).to_bytes(8, "little") + head)
        for _, shape in shapes:
            x = (rng.standard_normal(int(np.prod(shape)), dtype=np.float32) * 0.02).view(np.uint32)
            f.write(((x + 0x7FFF + ((x >> 16) & 1)) >> 16).astype("<u2").tobytes())
    tmp.rename(path)
    return path


def bench_casstore(inp: Inputs, work: Path, out: Results) -> None:
    src, remote, dst = fresh(work / "cas-src"), fresh(work / "cas-remote"), fresh(work / "cas-dst")
    t(cas("init", str(src)))
    step(out, "casstore", COMMIT, t(cas("--store", str(src), "commit", "--id", "v1", "w", str(inp.w2))))
    out1 = str(fresh(work / "cas-out"))
    step(out, "casstore", RESTORE, t(cas("--store", str(src), "download", "w", "v1", out1)))
    step(out, "casstore", PUSH, t(cas("--store", str(src), "push", str(remote))))
    t(cas("init", str(dst)))
    # one process: the pull writes the files it verifies (`cas pull --download`, issue 26)
    step(out, "casstore", PULL,
         t(cas("--store", str(dst), "pull", str(remote), "w", "--download", str(fresh(work / "cas-out2")),
               "--model", "v1")))
    for kind in inp.transports:
        casstore_transport(kind, src, work, out)
    before = du(src)
    step(out, "casstore", V2_COMMIT, t(cas("--store", str(src), "commit", "--id", "v2", "w", str(inp.w3))))
    add(out, V2_BYTES, "casstore", du(src) - before)
    t(cas("--store", str(src), "commit", "--id", "b1", "b", str(inp.bf16)))
    step(out, "casstore", bf16_row(inp.bf16_mib),
         t(cas("--store", str(src), "download", "b", "b1", str(fresh(work / "cas-out3")))))
    for d in (src, remote, dst, work / "cas-out", work / "cas-out2", work / "cas-out3"):
        shutil.rmtree(d, ignore_errors=True)


def casstore_transport(kind: str, src: Path, work: Path, out: Results) -> None:
    """Push W2 from ``src`` to a fresh bare store served over ``kind`` (a real git daemon,
    http-backend or sshd on loopback, started afresh per step as bench_transfer.py does), then
    pull it into a fresh store with ``--download``.  CPU s is the client's plus the server's
    (both run on this machine)."""
    from casstore.store import init_store

    root = fresh(work / "srv")
    root.mkdir(parents=True)
    init_store(str(root / "models.git"), bare_remote=True)
    server = Remote(kind, root)
    with server.step(root) as url:
        r = run(cas("--store", str(src), "push", url))  # run's ENV carries ssh's GIT_SSH_COMMAND
    step(out, "casstore", over(kind, PUSH), (r[0], r[1], r[2] + float(server.last["cpu"])))  # type: ignore[arg-type]
    dst = fresh(work / "cas-dst-net")
    t(cas("init", str(dst)))
    with server.step(root) as url:
        p = run(cas("--store", str(dst), "pull", url, "w", "--download", str(fresh(work / "cas-out-net")),
                    "--model", "v1"))
    step(out, "casstore", over(kind, PULL), (p[0], p[1], p[2] + float(server.last["cpu"])))  # type: ignore[arg-type]
    for d in (root, dst, work / "cas-out-net"):
        shutil.rmtree(d, ignore_errors=True)


def small_casstore(files: list[Path], work: Path, out: Results) -> None:
    s = fresh(work / "cas-small")
    t(cas("init", str(s)))
    per_file(out, "casstore", files, lambda i, f: cas("--store", str(s), "commit", "--id", f"m{i}", "d", str(f)))
    # the same commits from one process with the store open (the library, or a long-lived job)
    one = fresh(work / "cas-small1")
    p = subprocess.run([sys.executable, "-c", OPEN_STORE, str(one), *map(str, files)], env=TOOL_ENV,
                       capture_output=True, text=True, check=True)
    times = json.loads(p.stdout)
    add(out, OPEN_ALL, "casstore", sum(times))
    add(out, OPEN_MS, "casstore", 1000 * statistics.median(times))
    for d in (s, one):
        shutil.rmtree(d, ignore_errors=True)


def bench_restic(inp: Inputs, work: Path, out: Results) -> None:
    repo, remote, data = fresh(work / "restic-repo"), fresh(work / "restic-remote"), fresh(work / "restic-data")
    data.mkdir(parents=True)
    shutil.copyfile(inp.w2, data / "model.npy")
    init = [RESTIC, "-q", "--repository-version", "2"]
    t([*init, "-r", str(repo), "init"])
    step(out, "restic", COMMIT, t([RESTIC, "-q", "-r", str(repo), "backup", "model.npy"], cwd=data))
    step(out, "restic", RESTORE, t([RESTIC, "-q", "-r", str(repo), "restore", "latest", "--target",
                                    str(fresh(work / "restic-out"))]))
    # the remote shares the chunker parameters (as `cas` stores share theirs), so a copy moves blobs as they are
    t([*init, "-r", str(remote), "init", "--from-repo", str(repo), "--copy-chunker-params"])
    step(out, "restic", PUSH, t([RESTIC, "-q", "-r", str(remote), "copy", "--from-repo", str(repo)]))
    step(out, "restic", PULL, t([RESTIC, "-q", "-r", str(remote), "restore", "latest",
                                 "--target", str(fresh(work / "restic-out2"))]))
    (data / "model.npy").unlink()
    shutil.copyfile(inp.w3, data / "model.npy")
    before = du(repo)
    step(out, "restic", V2_COMMIT, t([RESTIC, "-q", "-r", str(repo), "backup", "model.npy"], cwd=data))
    add(out, V2_BYTES, "restic", du(repo) - before)
    (data / "model.npy").unlink()
    shutil.copyfile(inp.bf16, data / "model.safetensors")
    t([RESTIC, "-q", "-r", str(repo), "backup", "model.safetensors"], cwd=data)
    step(out, "restic", bf16_row(inp.bf16_mib), t([RESTIC, "-q", "-r", str(repo), "restore", "latest", "--target",
                                                   str(fresh(work / "restic-out3"))]))
    for d in (repo, remote, data, work / "restic-out", work / "restic-out2", work / "restic-out3"):
        shutil.rmtree(d, ignore_errors=True)


def small_restic(files: list[Path], work: Path, out: Results) -> None:
    s = fresh(work / "restic-small")
    t([RESTIC, "-q", "--repository-version", "2", "-r", str(s), "init"])
    per_file(out, "restic", files, lambda i, f: [RESTIC, "-q", "-r", str(s), "backup", f.name], cwd=files[0].parent)
    shutil.rmtree(s, ignore_errors=True)


def bench_borg(inp: Inputs, work: Path, out: Results) -> None:
    repo, data = fresh(work / "borg-repo"), fresh(work / "borg-data")
    data.mkdir(parents=True)
    shutil.copyfile(inp.w2, data / "model.npy")
    b = [str(BORG)]
    t([*b, "init", "-e", "none", str(repo)])
    step(out, "borg", COMMIT, t([*b, "create", "--compression", "zstd,3", f"{repo}::v1", "model.npy"], cwd=data))
    o = fresh(work / "borg-out")
    o.mkdir(parents=True)
    step(out, "borg", RESTORE, t([*b, "extract", f"{repo}::v1"], cwd=o))
    (data / "model.npy").unlink()
    shutil.copyfile(inp.w3, data / "model.npy")
    before = du(repo)
    step(out, "borg", V2_COMMIT, t([*b, "create", "--compression", "zstd,3", f"{repo}::v2", "model.npy"], cwd=data))
    add(out, V2_BYTES, "borg", du(repo) - before)
    (data / "model.npy").unlink()
    shutil.copyfile(inp.bf16, data / "model.safetensors")
    t([*b, "create", "--compression", "zstd,3", f"{repo}::b1", "model.safetensors"], cwd=data)
    o3 = fresh(work / "borg-out3")
    o3.mkdir(parents=True)
    step(out, "borg", bf16_row(inp.bf16_mib), t([*b, "extract", f"{repo}::b1"], cwd=o3))
    for d in (repo, data, o, o3):
        shutil.rmtree(d, ignore_errors=True)


def small_borg(files: list[Path], work: Path, out: Results) -> None:
    s = fresh(work / "borg-small")
    t([str(BORG), "init", "-e", "none", str(s)])
    per_file(out, "borg", files, lambda i, f: [str(BORG), "create", "--compression", "zstd,3", f"{s}::m{i}", f.name],
             cwd=files[0].parent)
    shutil.rmtree(s, ignore_errors=True)


def dvc_project(path: Path, remote: Path) -> Path:
    fresh(path).mkdir(parents=True)
    subprocess.run([str(DVC), "init", "--no-scm", "-q"], cwd=path, check=True, env=ENV)
    subprocess.run([str(DVC), "remote", "add", "-d", "r", str(remote)], cwd=path, check=True, env=ENV,
                   stdout=subprocess.DEVNULL)
    return path


def bench_dvc(inp: Inputs, work: Path, out: Results) -> None:
    project = dvc_project
    remote = fresh(work / "dvc-remote")
    remote.mkdir(parents=True)
    src = project(work / "dvc-src", remote)
    shutil.copyfile(inp.w2, src / "model.npy")
    step(out, "DVC", COMMIT, t([str(DVC), "add", "-q", "model.npy"], cwd=src))
    (src / "model.npy").unlink()
    step(out, "DVC", RESTORE, t([str(DVC), "checkout", "-q"], cwd=src))
    v1 = (src / "model.npy.dvc").read_text()
    step(out, "DVC", PUSH, t([str(DVC), "push", "-q"], cwd=src))
    dst = project(work / "dvc-dst", remote)
    (dst / "model.npy.dvc").write_text(v1)
    step(out, "DVC", PULL, t([str(DVC), "pull", "-q"], cwd=dst))
    (src / "model.npy").unlink()
    shutil.copyfile(inp.w3, src / "model.npy")
    before = du(src / ".dvc" / "cache")
    step(out, "DVC", V2_COMMIT, t([str(DVC), "add", "-q", "model.npy"], cwd=src))
    add(out, V2_BYTES, "DVC", du(src / ".dvc" / "cache") - before)
    shutil.copyfile(inp.bf16, src / "model.safetensors")
    t([str(DVC), "add", "-q", "model.safetensors"], cwd=src)
    (src / "model.safetensors").unlink()
    step(out, "DVC", bf16_row(inp.bf16_mib), t([str(DVC), "checkout", "-q"], cwd=src))
    for d in (remote, src, dst):
        shutil.rmtree(d, ignore_errors=True)


def small_dvc(files: list[Path], work: Path, out: Results) -> None:
    s = dvc_project(work / "dvc-small", fresh(work / "dvc-small-remote"))
    for f in files:
        shutil.copyfile(f, s / f.name)
    per_file(out, "DVC", files, lambda i, f: [str(DVC), "add", "-q", f.name], cwd=s)
    shutil.rmtree(s, ignore_errors=True)


BENCHES = {"casstore": bench_casstore, "restic": bench_restic, "borg": bench_borg, "DVC": bench_dvc}
SMALL = {"casstore": small_casstore, "restic": small_restic, "borg": small_borg, "DVC": small_dvc}


def _rows(results: Results) -> list[str]:
    """The rows of the table, in the issue's order: "STEP" for a step timed as "STEP s" and
    "STEP CPU s", else the result's own key."""
    names = []
    for key in results:
        if key.endswith(" CPU s") and f"{key[:-6]} s" in results:
            continue
        names.append(key[:-2] if key.endswith(" s") and f"{key[:-2]} CPU s" in results else key)
    return sorted(names, key=_rank)


def _rank(name: str) -> int:
    """A row's place: the issue's order, then the git transports, then the small models."""
    order = [COMMIT, RESTORE, PUSH, PULL, "bf16", V2_COMMIT, V2_BYTES, " over ", "small models:", "small models,"]
    return next((i for i, o in enumerate(order) if o in name and (o == " over ") == (" over " in name)), len(order))


def _median(results: Results, key: str) -> dict[str, float]:
    return {t: statistics.median(v) for t, v in results.get(key, {}).items()}


def _path_row(name: str) -> str:
    """DVC's path-remote row that a row over a git transport is held against (target 4)."""
    base = name.split(" over ")[0]
    return PUSH if base == "W2 push" else base


def table(results: Results) -> str:
    """Timed steps as "wall s / CPU s" (one cell per tool), bytes in MiB, latencies in ms; the
    last column is casstore's over the best peer's (over git transports: over DVC's path remote)."""
    tools = [t for t in ["casstore", *PEERS] if any(t in d for d in results.values())]
    head = ["step (wall s / CPU s)", *tools, "casstore / best peer"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in _rows(results):
        timed = f"{name} CPU s" in results
        wall, cpu = (_median(results, f"{name} s"), _median(results, f"{name} CPU s")) if timed else (
            _median(results, name), {})
        if not any(t in wall for t in tools):
            continue
        if timed:
            cells = [f"{wall[t]:.2f} / {cpu[t]:.2f}" if t in wall else "-" for t in tools]
        else:
            cells = [(f"{wall[t]:.0f}" if name.endswith("MiB") or "ms per" in name else f"{wall[t]:.2f}")
                     if t in wall else "-" for t in tools]
        ratio = ""
        c = wall.get("casstore")
        if " over " in name:
            w, u = _median(results, f"{_path_row(name)} s"), _median(results, f"{_path_row(name)} CPU s")
            if c is not None and "DVC" in w:
                ratio = f"{c / w['DVC']:.2f} wall, {cpu['casstore'] / u['DVC']:.2f} CPU (of DVC's path)"
        elif name == OPEN_MS:
            peers = [v for t, v in _median(results, SMALL_MS).items() if t != "casstore"]
            if c is not None and peers:
                ratio = f"{c / min(peers):.2f} (of the best peer's, one process each)"
        elif c is not None and any(p in wall for p in PEERS):
            best = min(wall[p] for p in PEERS if p in wall)
            ratio = f"{c / best:.2f}" if best > 0 else ""
            if timed:
                ratio = f"{ratio} wall, {cpu['casstore'] / min(cpu[p] for p in PEERS if p in cpu):.2f} CPU"
        lines.append("| " + " | ".join([name, *cells, ratio]) + " |")
    return "\n".join(lines)


Target = tuple[int, str, float, float]  # target number (issue 26), what, casstore's ratio, the limit


def targets(results: Results, bf16: str) -> list[Target]:
    """Issue 26's targets 1-5, each as the ratios this run measured (met when ratio <= limit)."""
    out: list[Target] = []

    def vs(target: tuple[int, str, float], key: str, peers: list[str], ref: str | None = None) -> None:
        m = _median(results, key)
        theirs = _median(results, ref) if ref else m
        have = [theirs[p] for p in peers if p in theirs]
        if "casstore" in m and have and min(have) > 0:
            out.append((target[0], target[1], m["casstore"] / min(have), target[2]))

    vs((1, "W2 fresh pull + restore, wall / best peer's", 1.0), f"{PULL} s", PEERS)
    vs((1, "W2 fresh pull + restore, CPU / best peer's", 1.0), f"{PULL} CPU s", PEERS)
    vs((2, "W2 commit, CPU / borg's", 1.0), f"{COMMIT} CPU s", ["borg"])
    vs((2, "W2 commit, wall / best peer's", 0.67), f"{COMMIT} s", PEERS)
    vs((2, "W2 commit, wall / `zstd -3 -T2`'s", 1.5), f"{COMMIT} s", ["reference"], f"{ZSTD} s")
    for row in (RESTORE, bf16):
        vs((3, f"{row}, CPU / DVC's", 1.0), f"{row} CPU s", ["DVC"])
        vs((3, f"{row}, wall / best peer's", 0.67), f"{row} s", PEERS)
    for key in results:
        if " over " in key and key.endswith(" s") and not key.endswith(" CPU s"):
            vs((4, f"{key[:-2]}, wall / DVC's path remote's", 1.5), key, ["DVC"], f"{_path_row(key[:-2])} s")
    vs((5, "small models, one process each: ms per commit / best peer's", 1.0), SMALL_MS, PEERS)
    vs((5, "small models, one process each: all commits, wall / best peer's", 1.0), f"{SMALL_ALL} s", PEERS)
    vs((5, "small models, one process each: all commits, CPU / best peer's", 1.0), f"{SMALL_ALL} CPU s", PEERS)
    vs((5, "small models, casstore's store open: ms per commit / best peer's (one process each)", 1.0), OPEN_MS,
       PEERS, SMALL_MS)
    return out


def targets_table(rows: list[Target]) -> str:
    lines = ["| target | casstore's ratio | limit | met |", "|---|---|---|---|"]
    lines += [f"| {n}. {what} | {r:.2f} | {limit:g} | {'yes' if r <= limit else 'NO'} |" for n, what, r, limit in rows]
    return "\n".join(lines)


def chart(results: Results, path: Path, title: str) -> None:
    """Each row: every tool's median as a multiple of the best tool's (1 = best; log scale);
    casstore over git transports against DVC's path remote."""
    tools = [t for t in ["casstore", *PEERS] if any(t in d for d in results.values())]
    rows = []
    for key in sorted(results, key=_rank):
        med = {t: v for t, v in _median(results, key).items() if t in tools}
        if " over " in key and key.endswith(" s"):
            base = _path_row(key) + (" CPU s" if key.endswith(" CPU s") else " s")
            dvc = _median(results, base).get("DVC")
            med = {**med, "DVC": dvc} if dvc else {}
            key = f"{key} (DVC: path)"
        if key == OPEN_MS:  # the library's commit against each peer's (they have no open-store mode)
            med = {**med, **{t: v for t, v in _median(results, SMALL_MS).items() if t != "casstore"}}
            key = "ms per commit, casstore's store open"
        best = min((v for v in med.values() if v > 0), default=0.0)
        if best > 0 and len(med) > 1:
            rows.append((key, {t: med[t] / best for t in tools if t in med}))
    colours = {"casstore": "#d62728", "restic": "#1f77b4", "borg": "#2ca02c", "DVC": "#9467bd"}
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        _chart_svg(rows, tools, colours, path.with_suffix(".svg"), title)
        return
    fig, ax = plt.subplots(figsize=(10, 0.13 * len(rows) * len(tools) + 1.6))
    h = 0.8 / len(tools)
    for j, tool in enumerate(tools):
        ys = [i + j * h for i, (_, r) in enumerate(rows) if tool in r]
        xs = [r[tool] for _, r in rows if tool in r]
        ax.barh(ys, xs, height=h, color=colours[tool], label=tool)
    ax.set_yticks([i + 0.4 - h / 2 for i in range(len(rows))], [k for k, _ in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.1, -0.3)  # top to bottom, no margins
    ax.set_xscale("log")
    ax.set_xlim(left=0.8)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_xlabel("multiple of the best tool's time or bytes (1 = best; shorter is better)")
    ax.set_title(title.replace(" (", "\n(", 1).replace("; ", ";\n"), fontsize=8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _chart_svg(rows: list[tuple[str, dict[str, float]]], tools: list[str], colours: dict[str, str],
               path: Path, title: str) -> None:
    """The chart without matplotlib: horizontal bars, log scale from 1x to the largest multiple."""
    import math

    top = max([r for _, d in rows for r in d.values()] + [2.0])
    left, width, bar = 260, 420, 9
    height = 40 + len(rows) * (bar * len(tools) + 8) + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 60}" height="{height}" '
           'font-family="sans-serif" font-size="10">', f'<text x="4" y="14">{title}</text>']
    y = 30
    for key, d in rows:
        out.append(f'<text x="{left - 6}" y="{y + bar * len(tools) / 2 + 3}" text-anchor="end">{key}</text>')
        for tool in tools:
            if tool in d:
                w = 2 + width * math.log(d[tool]) / math.log(top)
                out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar - 1}" fill="{colours[tool]}"/>'
                           f'<text x="{left + w + 3:.1f}" y="{y + bar - 2}" font-size="8">{tool} {d[tool]:.2f}x</text>')
            y += bar
        y += 8
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def chart_saved(results_json: Path, path: Path) -> None:
    """The table, targets and chart of a run saved in ``results_json`` (results_peers.json)."""
    s = json.loads(results_json.read_text())
    _report(s["results"], s["title"], s["bf16_mib"])
    chart(s["results"], path, s["title"])


def references(w2: Path, work: Path, out: Results) -> None:
    """`zstd -3 -T2` of W2 (target 2's "commit <= 1.5x zstd -3 -T2")."""
    dst = work / "w2.zst"
    step(out, "reference", ZSTD, t(["zstd", "-3", "-T2", "-q", "-f", str(w2), "-o", str(dst)]))
    dst.unlink()


def _tools(names: str) -> list[str]:
    """The tools asked for that are here (borg and DVC are installed into their venvs if missing)."""
    wanted = {t.strip().lower() for t in names.split(",")}
    tools = [t for t in BENCHES if t.lower() in wanted]
    if "restic" in tools and not os.path.exists(RESTIC):
        log("restic missing (Debian package `restic`, `make sysdeps`): left out")
        tools.remove("restic")
    if "borg" in tools and not ensure_borg():
        log("borg could not be installed: left out")
        tools.remove("borg")
    if "DVC" in tools:
        ensure_dvc()
    return tools


def _report(results: Results, title: str, bf16_mib: int) -> None:
    print(f"# {title}\n")
    print(table(results))
    zstd = _median(results, f"{ZSTD} s").get("reference")
    if zstd is not None:
        print(f"\nReference: {ZSTD[:-12]} {zstd:.2f} s / {_median(results, f'{ZSTD} CPU s')['reference']:.2f} CPU s")
    print("\n" + targets_table(targets(results, bf16_row(bf16_mib))))


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256, help="W2 size in MiB (the issue's full run: 1024)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--small", type=int, default=1000, help="small files, one process each (issue: 1000; 0: none)")
    ap.add_argument("--small-reps", type=int, default=1,
                    help="repetitions that commit the small files too (each is ~1,000 processes per tool)")
    ap.add_argument("--tools", default="casstore,restic,borg,dvc")
    ap.add_argument("--transports", default="git://,http,ssh",
                    help="git transports casstore pushes and pulls W2 over (target 4; '' for none)")
    ap.add_argument("--bf16", type=int, help="size of the bf16 safetensors file in MiB (default: W2's x 500/1024, "
                    "the issue's 500 MiB beside a 1 GiB W2)")
    ap.add_argument("--work", type=Path, default=HERE / "data", help="where the data and the stores go")
    ap.add_argument("--small-only", action="store_true", help="only the small-models rows")
    ap.add_argument("--chart-from", type=Path, help="print the table and draw the chart of a saved results_peers.json")
    ap.add_argument("--quick", action="store_true",
                    help="16 MiB, 20 small files (unless --small), one repetition: does it run (its json into --work)")
    ap.add_argument("--chart", type=Path, default=HERE.parent / "docs" / "benchmarks-peers.png",
                    help="where the chart goes (with --quick: nowhere unless given)")
    return ap.parse_args()


def main() -> None:
    args = _args()
    chart_path = args.chart if not args.quick or "--chart" in sys.argv else None
    if args.quick:  # a --small given with it stands
        args.size, args.reps = 16, 1
        args.small = args.small if any(a.startswith("--small=") or a == "--small" for a in sys.argv) else 20
    if args.chart_from:
        chart_saved(args.chart_from, args.chart)
        return
    tools = _tools(args.tools)
    work = args.work / "peers"
    work.mkdir(parents=True, exist_ok=True)
    import bench_transfer

    bench_transfer.DATA = args.work
    bench_transfer.WORK = work  # the git servers' logs, wrappers and sshd keys (class Remote)
    bf16_mib = args.bf16 or max(1, round(args.size * 500 / 1024))
    transports = [k.strip() for k in args.transports.split(",") if k.strip()]
    if args.small_only:
        inp = Inputs(Path(), Path(), Path(), 0, [])
    else:
        w2, w3 = bench_transfer.ensure_data(args.size * MiB)
        inp = Inputs(w2, w3, bf16_safetensors(args.work, bf16_mib), bf16_mib, transports)
    files = small_files(args.work, args.small) if args.small else []
    results: Results = {}
    loads: list[float] = []
    title = ""
    for rep in range(args.reps):
        order = tools[rep % len(tools):] + tools[: rep % len(tools)]
        log(f"peers repetition {rep + 1}/{args.reps}: {', '.join(order)}")
        k = rep % max(1, len(transports))  # no transport always first: the load drifts
        rep_inp = replace(inp, transports=transports[k:] + transports[:k])
        for tool in order:
            if not args.small_only:
                log(f"  {tool}")
                BENCHES[tool](rep_inp, work, results)
            if files and rep < args.small_reps:
                log(f"  {tool}: {len(files)} small models")
                SMALL[tool](files, work, results)
        if not args.small_only:
            references(inp.w2, work, results)
        loads.append(os.getloadavg()[0])
        # after every repetition, so that a run cut short still leaves what it measured
        title = _save(results, args, rep + 1, loads, bf16_mib, len(files), work if args.quick else HERE)
    _report(results, title, bf16_mib)
    if chart_path is not None:
        chart(results, chart_path, title)
        log(f"chart: {chart_path}")


def _save(results: Results, args: argparse.Namespace, done: int, loads: list[float], bf16_mib: int,  # noqa: PLR0913 - one run's results and what describes it
          small: int, where: Path) -> str:
    """Write results_peers.json into ``where`` after ``done`` repetitions; return the run's title."""
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    w2_size = "no W2" if args.small_only else f"W2 = {args.size} MiB"
    reps = f"{done} repetition{'s' if done > 1 else ''}" + (f" of {args.reps}" if done < args.reps else "")
    title = (f"casstore beside restic, borg and DVC ({when}, {machine}, {w2_size}, {small} small files, {reps}, "
             f"medians; load average (1 min) after each repetition {', '.join(f'{x:.1f}' for x in loads)})")
    (where / "results_peers.json").write_text(json.dumps(
        {"results": results, "title": title, "machine": machine, "when": when, "w2_mib": args.size,
         "bf16_mib": bf16_mib, "small": small, "reps": done, "loadavg": loads}, indent=1))
    return title


if __name__ == "__main__":
    main()
