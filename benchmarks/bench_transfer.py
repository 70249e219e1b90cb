"""Moving a model between machines: casstore against DVC, in one run (part of `make bench`).

Workloads (benchmarks/data/, made by bench.py): W2 (float32 N(0,1) .npy) and W3 (W2 with
10 % of its 1 MiB blocks changed).  Both tools use a remote that is a directory on the
same disk (the "shared drive" setup); casstore also over git:// (git daemon), ssh (sshd
on loopback) and http (git http-backend), started as the tests start them.

Steps, each a fresh process (`cas ...` / `dvc ...`) timed whole, with the peak RSS of
the largest process of its tree (the ru_maxrss of waited-for children, which includes
git's upload-pack/receive-pack/pack-objects and DVC's workers):

  W2 commit / dvc add        W2 push              W2 fresh pull + download
  W3 commit + push           W3 fresh pull + download of both versions     store sizes

DVC is installed from PyPI into benchmarks/.venv-dvc.  References: `cp`, `cp` + `sync`,
`zstd -3 -T2` of W2.  Results: benchmarks/results_transfer.json and a markdown table on
stdout.

    python benchmarks/bench_transfer.py [--size MiB] [--reps N] [--no-network]
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
WORK = DATA / "xfer"
DVC_VENV = HERE / ".venv-dvc"
DVC = DVC_VENV / "bin" / "dvc"
DVC_VERSION = "3.67.1"
MiB = 1 << 20
TIME = "/usr/bin/time"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_dvc() -> None:
    if DVC.exists():
        return
    log(f"installing dvc {DVC_VERSION} from PyPI into benchmarks/.venv-dvc")
    subprocess.run([sys.executable, "-m", "venv", str(DVC_VENV)], check=True)
    subprocess.run([str(DVC_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    f"dvc=={DVC_VERSION}"], check=True)


def ensure_data(size: int) -> tuple[Path, Path]:
    """W2 and W3 of ``size`` bytes (bench.py's recipe), under names that say their size."""
    import numpy as np

    DATA.mkdir(exist_ok=True)
    w2, w3 = DATA / f"xfer-w2-{size >> 20}.npy", DATA / f"xfer-w3-{size >> 20}.npy"
    if not w2.exists() or not w3.exists():
        log(f"generating W2/W3 of {size >> 20} MiB")
        rng = np.random.default_rng(0)
        np.save(w2, rng.standard_normal(size // 4, dtype=np.float32))
        data = bytearray(w2.read_bytes())
        blocks = len(data) // MiB
        for b in rng.choice(blocks, blocks // 10, replace=False):
            data[b * MiB : (b + 1) * MiB] = rng.bytes(MiB)
        w3.write_bytes(bytes(data))
    return w2, w3


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


ENV = {**os.environ, "PYTHONPATH": str(ROOT), "DVC_NO_ANALYTICS": "1", "CAS_AUTHOR": "bench <bench@example.com>"}


def run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds, peak RSS MiB of the largest process in the tree) of one command."""
    subprocess.run(["sync"])
    t = time.perf_counter()
    r = subprocess.run([TIME, "-f", "RSSKIB %M", *cmd], cwd=cwd, env=env or ENV, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    kib = int(next(line for line in r.stderr.splitlines()[::-1] if line.startswith("RSSKIB")).split()[1])
    return dt, kib / 1024


def du(*paths: Path) -> float:
    total = 0
    for p in paths:
        for dirpath, _, files in os.walk(p):
            for fn in files:
                try:
                    total += os.lstat(os.path.join(dirpath, fn)).st_blocks * 512
                except FileNotFoundError:
                    pass
    return total / MiB


def cas(*args: str) -> list[str]:
    return [sys.executable, "-m", "casstore", *args]


def casstore_path(w2: Path, w3: Path, out: dict[str, dict[str, list[float]]], url: str | None = None,
                  label: str = "path") -> None:
    """The five steps for casstore; ``url`` replaces the path remote (network transports)."""
    def add(key: str, value: float) -> None:
        out.setdefault(key, {}).setdefault(f"casstore {label}" if label != "path" else "casstore", []).append(value)

    src = fresh(WORK / "cas-src")
    remote = fresh(WORK / "cas-remote")
    target = url or str(remote)
    run(cas("init", str(src)))
    if url is None:
        add("W2 commit s", (r := run(cas("--store", str(src), "commit", "--id", "v1", "w", str(w2))))[0])
        add("W2 commit peak MiB", r[1])
    else:
        run(cas("--store", str(src), "commit", "--id", "v1", "w", str(w2)))
    r = run(cas("--store", str(src), "push", target))
    add("W2 push s", r[0])
    add("W2 push peak MiB", r[1])
    dst = fresh(WORK / "cas-dst")
    run(cas("init", str(dst)))
    p = run(cas("--store", str(dst), "pull", target))
    d = run(cas("--store", str(dst), "download", "w", "v1", str(fresh(WORK / "cas-out"))))
    add("W2 fresh pull+download s", p[0] + d[0])
    add("W2 fresh pull+download peak MiB", max(p[1], d[1]))
    c = run(cas("--store", str(src), "commit", "--id", "v2", "w", str(w3)))
    p = run(cas("--store", str(src), "push", target))
    add("W3 commit+push s", c[0] + p[0])
    add("W3 commit+push peak MiB", max(c[1], p[1]))
    dst2 = fresh(WORK / "cas-dst2")
    run(cas("init", str(dst2)))
    p = run(cas("--store", str(dst2), "pull", target))
    d1 = run(cas("--store", str(dst2), "download", "w", "v1", str(fresh(WORK / "cas-out1"))))
    d2 = run(cas("--store", str(dst2), "download", "w", "v2", str(fresh(WORK / "cas-out2"))))
    add("W3 fresh pull+download both s", p[0] + d1[0] + d2[0])
    add("W3 fresh pull+download both peak MiB", max(p[1], d1[1], d2[1]))
    if url is None:
        add("store after W3 MiB (local)", du(src))
        add("store after W3 MiB (remote)", du(remote))
    for d in ("cas-src", "cas-remote", "cas-dst", "cas-dst2", "cas-out", "cas-out1", "cas-out2"):
        shutil.rmtree(WORK / d, ignore_errors=True)


def dvc_path(w2: Path, w3: Path, out: dict[str, dict[str, list[float]]]) -> None:
    def add(key: str, value: float) -> None:
        out.setdefault(key, {}).setdefault("DVC", []).append(value)

    def project(path: Path, remote: Path) -> Path:
        fresh(path).mkdir(parents=True)
        subprocess.run([str(DVC), "init", "--no-scm", "-q"], cwd=path, check=True, env=ENV)
        subprocess.run([str(DVC), "remote", "add", "-d", "r", str(remote)], cwd=path, check=True, env=ENV)
        return path

    remote = fresh(WORK / "dvc-remote")
    remote.mkdir(parents=True)
    src = project(WORK / "dvc-src", remote)
    shutil.copyfile(w2, src / "model.npy")
    r = run([str(DVC), "add", "-q", "model.npy"], cwd=src)
    add("W2 commit s", r[0])
    add("W2 commit peak MiB", r[1])
    v1 = (src / "model.npy.dvc").read_text()
    r = run([str(DVC), "push", "-q"], cwd=src)
    add("W2 push s", r[0])
    add("W2 push peak MiB", r[1])
    dst = project(WORK / "dvc-dst", remote)
    (dst / "model.npy.dvc").write_text(v1)
    r = run([str(DVC), "pull", "-q"], cwd=dst)  # pull = fetch + checkout: the file is in place
    add("W2 fresh pull+download s", r[0])
    add("W2 fresh pull+download peak MiB", r[1])
    (src / "model.npy").unlink()
    shutil.copyfile(w3, src / "model.npy")
    a = run([str(DVC), "add", "-q", "model.npy"], cwd=src)
    p = run([str(DVC), "push", "-q"], cwd=src)
    add("W3 commit+push s", a[0] + p[0])
    add("W3 commit+push peak MiB", max(a[1], p[1]))
    v2 = (src / "model.npy.dvc").read_text()
    dst2 = project(WORK / "dvc-dst2", remote)
    (dst2 / "v1.npy.dvc").write_text(v1.replace("path: model.npy", "path: v1.npy"))
    (dst2 / "v2.npy.dvc").write_text(v2.replace("path: model.npy", "path: v2.npy"))
    r = run([str(DVC), "pull", "-q"], cwd=dst2)
    add("W3 fresh pull+download both s", r[0])
    add("W3 fresh pull+download both peak MiB", r[1])
    add("store after W3 MiB (local)", du(src / ".dvc" / "cache"))
    add("store after W3 MiB (remote)", du(remote))
    for d in ("dvc-src", "dvc-remote", "dvc-dst", "dvc-dst2"):
        shutil.rmtree(WORK / d, ignore_errors=True)


def references(w2: Path, out: dict[str, dict[str, list[float]]]) -> None:
    def add(key: str, tool: str, value: float) -> None:
        out.setdefault(key, {}).setdefault(tool, []).append(value)

    dst = WORK / "w2.copy"
    add("W2 push s", "cp", run(["cp", str(w2), str(dst)])[0])
    dst.unlink()
    add("W2 push s", "cp+sync", run(["sh", "-c", f"cp '{w2}' '{dst}' && sync '{dst}'"])[0])
    dst.unlink()
    add("W2 commit s", "zstd -3 -T2", run(["zstd", "-3", "-T2", "-q", "-f", str(w2), "-o", str(dst)])[0])
    dst.unlink()


def network(w2: Path, w3: Path, out: dict[str, dict[str, list[float]]]) -> None:
    sys.path.insert(0, str(ROOT))
    from casstore.store import init_store
    from tests.servers import git_daemon, http_backend, sshd

    root = fresh(WORK / "srv")
    root.mkdir(parents=True)

    def bare() -> Path:
        path = fresh(root / "models.git")
        init_store(str(path), bare_remote=True)
        return path

    bare()
    with git_daemon(root) as base:
        casstore_path(w2, w3, out, f"{base}/models.git", "git://")
    bare()
    with http_backend(root) as base:
        casstore_path(w2, w3, out, f"{base}/models.git", "http")
    path = bare()
    with sshd(WORK) as (base, env):
        saved = dict(ENV)
        ENV.update(env)
        try:
            casstore_path(w2, w3, out, f"{base}{path}", "ssh")
        finally:
            ENV.clear()
            ENV.update(saved)
    shutil.rmtree(root, ignore_errors=True)


def table(results: dict[str, dict[str, list[float]]]) -> str:
    tools = ["casstore", "DVC"]
    extra = sorted({t for d in results.values() for t in d} - set(tools))
    net = [t for t in extra if t.startswith("casstore ")]
    refs = [t for t in extra if t not in net]
    head = ["step", *tools, "casstore / DVC", *net, *refs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, vals in results.items():
        med = {t: statistics.median(v) for t, v in vals.items()}
        fmt = (lambda v: f"{v:.2f}") if key.endswith(" s") else (lambda v: f"{v:.0f}")
        c, d = med.get("casstore"), med.get("DVC")
        ratio = f"{c / d:.2f}" if c is not None and d else ""
        cells = [key, *(fmt(med[t]) if t in med else "" for t in tools), ratio,
                 *(fmt(med[t]) if t in med else "" for t in net + refs)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


TARGETS = {  # step -> (limit on casstore time / DVC time, where it comes from)
    "W2 push s": (1.0, "item 1: path push no slower than DVC push"),
    "W2 fresh pull+download s": (1.0, "item 1: path pull no slower than DVC pull"),
    "W3 commit+push s": (1.0, "item 2"),
    "W3 fresh pull+download both s": (1.0, "item 1"),
}
NETWORK_LIMIT = 1.5  # git://, ssh, http(s) within 1.5x of DVC's path transfer
RSS_LIMIT = 300


def targets(results: dict[str, dict[str, list[float]]]) -> list[tuple[str, float, float, bool]]:
    """(target, measured, limit, met) for every transfer target this run measured."""
    out = []
    med = {k: {t: statistics.median(v) for t, v in d.items()} for k, d in results.items()}
    for step, (limit, _) in TARGETS.items():
        m = med.get(step, {})
        if "casstore" in m and "DVC" in m:
            r = m["casstore"] / m["DVC"]
            out.append((f"{step[:-2]}: casstore / DVC (path)", r, limit, r <= limit))
        for tool, v in m.items():
            if tool.startswith("casstore ") and "DVC" in m and step in ("W2 push s", "W2 fresh pull+download s"):
                r = v / m["DVC"]
                out.append((f"{step[:-2]}: {tool} / DVC (path)", r, NETWORK_LIMIT, r <= NETWORK_LIMIT))
    c, p = med.get("W2 commit s", {}), med.get("W2 push s", {})
    if "zstd -3 -T2" in c and "casstore" in c:
        r = c["casstore"] / c["zstd -3 -T2"]
        out.append(("W2 commit: casstore / zstd -3 -T2", r, 1.5, r <= 1.5))
    if all(t in d for d in (c, p) for t in ("casstore", "DVC")):
        r = (c["casstore"] + p["casstore"]) / (c["DVC"] + p["DVC"])
        out.append(("W2 commit+push: casstore / DVC add+push (path)", r, 1.0, r <= 1.0))
    for step, m in med.items():
        if step.endswith("peak MiB"):
            for tool, v in m.items():
                if tool.startswith("casstore"):
                    out.append((f"{step}: {tool}", v, RSS_LIMIT, v < RSS_LIMIT))
    return out


def chart(results: dict[str, dict[str, list[float]]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = targets(results)
    ratios = [r for r in rows if "peak" not in r[0]]
    rss = [r for r in rows if "peak" in r[0]]
    fig, axes = plt.subplots(2, 1, figsize=(10, 0.32 * len(rows) + 2.5),
                             gridspec_kw={"height_ratios": [max(len(ratios), 1), max(len(rss), 1)]})
    for ax, part, xlabel in ((axes[0], ratios, "casstore time / DVC time (target: at most the dashed line)"),
                             (axes[1], rss, "peak RSS of the largest process, MiB (target: < 300)")):
        names = [r[0] for r in part]
        values = [r[1] for r in part]
        colors = ["#3a7" if r[3] else "#c44" for r in part]
        ax.barh(names, values, color=colors)
        for i, r in enumerate(part):
            ax.plot([r[2], r[2]], [i - 0.4, i + 0.4], color="#333", ls="--", lw=1)
            ax.text(r[1], i, f" {r[1]:.2f}" if "peak" not in r[0] else f" {r[1]:.0f}", va="center", fontsize=7)
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel(xlabel, fontsize=8)
    axes[0].set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _title(saved: dict) -> str:  # type: ignore[type-arg]
    return (f"casstore vs DVC {DVC_VERSION}: transfers, {saved['when']}, {saved['machine']},\n"
            f"W2 = {saved['w2_mib']} MiB, medians of {saved['reps']}, load average {saved['loadavg'][0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256, help="W2 size in MiB (the issue's full run: 1024)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-network", action="store_true", help="only the path remote (no git://, ssh, http)")
    ap.add_argument("--chart-only", type=Path, help="redraw the chart from a results_transfer.json")
    args = ap.parse_args()
    if args.chart_only:
        saved = json.loads(args.chart_only.read_text())
        chart(saved["results"], _title(saved), ROOT / "docs" / "benchmarks-transfer.png")
        return
    ensure_dvc()
    WORK.mkdir(parents=True, exist_ok=True)
    w2, w3 = ensure_data(args.size * MiB)
    results: dict[str, dict[str, list[float]]] = {}
    for rep in range(args.reps):
        order = [casstore_path, dvc_path] if rep % 2 == 0 else [dvc_path, casstore_path]
        log(f"transfer repetition {rep + 1}/{args.reps}")
        for fn in order:
            fn(w2, w3, results)
        references(w2, results)
    if not args.no_network:
        log("casstore over git://, http and ssh")
        network(w2, w3, results)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"# transfer benchmark ({when}, {machine}, W2 = {args.size} MiB, {args.reps} repetitions, medians; "
          f"load average at the end {os.getloadavg()[0]:.1f})\n")
    print(table(results))
    print("\n| target | measured | limit | met |\n|---|---|---|---|")
    for name, value, limit, met in targets(results):
        print(f"| {name} | {value:.2f} | {limit:g} | {'yes' if met else 'NO'} |")
    saved = {"results": results, "machine": machine, "when": when, "w2_mib": args.size, "reps": args.reps,
             "loadavg": os.getloadavg()}
    (HERE / "results_transfer.json").write_text(json.dumps(saved, indent=1))
    try:
        chart(results, _title(saved), ROOT / "docs" / "benchmarks-transfer.png")
    except ImportError:
        log("matplotlib missing: no chart")


if __name__ == "__main__":
    main()
