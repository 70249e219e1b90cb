"""casstore beside the trusted dedup stores restic and borg, and DVC, on the same workloads (issue 26).

Part of `make bench`.  Each step is one fresh process (or several, added up) timed whole
with GNU ``time``: wall seconds and CPU seconds (user + system) of its process tree.
Tools are interleaved per repetition; the table shows medians and casstore / best peer.

Workloads (bench_transfer.py's recipe): W2, float32 N(0,1) ``.npy`` of ``--size`` MiB;
W3, W2 with 10 % of its 1 MiB blocks changed; and ``--small`` small files of 10-200 KiB
(like small scikit-learn models), each committed by its own process into one store.

Steps, where a tool has them:

  W2 commit            cas commit / restic backup / borg create / dvc add
  W2 restore           cas download / restic restore / borg extract / dvc checkout (file removed)
  W2 push              to a directory: cas push / restic copy / dvc push (borg: none)
  W2 fresh pull+restore  a new store from that directory: cas pull --download /
                       restic restore from it / dvc pull (borg: none)
  W3 commit            the 10 %-changed version, and the bytes it added to the store
  small files          one process per commit (``--small`` files of 10-200 KiB, issue: 1,000):
                       total wall and CPU, and the median latency of one commit; for casstore
                       also the same commits from one process with the store open (the library,
                       a long-lived job), timed inside it per commit (restic, borg and DVC
                       have no such mode: their row shows "-")

Setup: restic (Debian's package, `make sysdeps`; a v2 repository, compression auto, no
password prompt), borg (`borgbackup` from PyPI into benchmarks/.venv-borg; ``-e none``,
``zstd,3``), DVC (benchmarks/.venv-dvc, bench_transfer.py).  A tool that is missing is
left out of the table, named on stderr.

A chart of every row (each tool's time as a multiple of the best tool's, log scale) goes
to docs/benchmarks-peers.png (matplotlib, the ``bench`` extra), else an SVG written
without dependencies.  ``--quick`` (16 MiB, 20 small files, one repetition) checks that
the benchmark runs.

    python benchmarks/bench_peers.py [--size MiB] [--reps N] [--small N] [--small-reps N] [--small-only]
        [--tools casstore,restic,borg,dvc] [--quick] [--chart PATH]

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
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_transfer import DVC, ENV, MiB, Run, cas, du, ensure_data, ensure_dvc, fresh, log, run  # noqa: E402

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
    add(out, "small files: total s", tool, sum(r[0] for r in runs))
    add(out, "small files: CPU s", tool, sum(r[2] for r in runs))
    add(out, "small files: ms per commit", tool, 1000 * statistics.median(r[0] for r in runs))


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


def bench_casstore(w2: Path, w3: Path, work: Path, out: Results) -> None:
    src, remote, dst = fresh(work / "cas-src"), fresh(work / "cas-remote"), fresh(work / "cas-dst")
    t(cas("init", str(src)))
    step(out, "casstore", "W2 commit", t(cas("--store", str(src), "commit", "--id", "v1", "w", str(w2))))
    out1 = str(fresh(work / "cas-out"))
    step(out, "casstore", "W2 restore", t(cas("--store", str(src), "download", "w", "v1", out1)))
    step(out, "casstore", "W2 push", t(cas("--store", str(src), "push", str(remote))))
    t(cas("init", str(dst)))
    # one process: the pull writes the files it verifies (`cas pull --download`, issue 26)
    step(out, "casstore", "W2 fresh pull+restore",
         t(cas("--store", str(dst), "pull", str(remote), "w", "--download", str(fresh(work / "cas-out2")),
               "--model", "v1")))
    before = du(src)
    step(out, "casstore", "W3 commit", t(cas("--store", str(src), "commit", "--id", "v2", "w", str(w3))))
    add(out, "W3 bytes added MiB", "casstore", du(src) - before)
    for d in (src, remote, dst, work / "cas-out", work / "cas-out2"):
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
    add(out, "small files, one open store: total s", "casstore", sum(times))
    add(out, "small files, one open store: ms per commit", "casstore", 1000 * statistics.median(times))
    for d in (s, one):
        shutil.rmtree(d, ignore_errors=True)


def bench_restic(w2: Path, w3: Path, work: Path, out: Results) -> None:
    repo, remote, data = fresh(work / "restic-repo"), fresh(work / "restic-remote"), fresh(work / "restic-data")
    data.mkdir(parents=True)
    shutil.copyfile(w2, data / "model.npy")
    init = [RESTIC, "-q", "--repository-version", "2"]
    t([*init, "-r", str(repo), "init"])
    step(out, "restic", "W2 commit", t([RESTIC, "-q", "-r", str(repo), "backup", "model.npy"], cwd=data))
    step(out, "restic", "W2 restore", t([RESTIC, "-q", "-r", str(repo), "restore", "latest", "--target",
                                         str(fresh(work / "restic-out"))]))
    # the remote shares the chunker parameters (as `cas` stores share theirs), so a copy moves blobs as they are
    t([*init, "-r", str(remote), "init", "--from-repo", str(repo), "--copy-chunker-params"])
    step(out, "restic", "W2 push", t([RESTIC, "-q", "-r", str(remote), "copy", "--from-repo", str(repo)]))
    step(out, "restic", "W2 fresh pull+restore", t([RESTIC, "-q", "-r", str(remote), "restore", "latest",
                                                    "--target", str(fresh(work / "restic-out2"))]))
    (data / "model.npy").unlink()
    shutil.copyfile(w3, data / "model.npy")
    before = du(repo)
    step(out, "restic", "W3 commit", t([RESTIC, "-q", "-r", str(repo), "backup", "model.npy"], cwd=data))
    add(out, "W3 bytes added MiB", "restic", du(repo) - before)
    for d in (repo, remote, data, work / "restic-out", work / "restic-out2"):
        shutil.rmtree(d, ignore_errors=True)


def small_restic(files: list[Path], work: Path, out: Results) -> None:
    s = fresh(work / "restic-small")
    t([RESTIC, "-q", "--repository-version", "2", "-r", str(s), "init"])
    per_file(out, "restic", files, lambda i, f: [RESTIC, "-q", "-r", str(s), "backup", f.name], cwd=files[0].parent)
    shutil.rmtree(s, ignore_errors=True)


def bench_borg(w2: Path, w3: Path, work: Path, out: Results) -> None:
    repo, data = fresh(work / "borg-repo"), fresh(work / "borg-data")
    data.mkdir(parents=True)
    shutil.copyfile(w2, data / "model.npy")
    b = [str(BORG)]
    t([*b, "init", "-e", "none", str(repo)])
    step(out, "borg", "W2 commit", t([*b, "create", "--compression", "zstd,3", f"{repo}::v1", "model.npy"], cwd=data))
    o = fresh(work / "borg-out")
    o.mkdir(parents=True)
    step(out, "borg", "W2 restore", t([*b, "extract", f"{repo}::v1"], cwd=o))
    (data / "model.npy").unlink()
    shutil.copyfile(w3, data / "model.npy")
    before = du(repo)
    step(out, "borg", "W3 commit", t([*b, "create", "--compression", "zstd,3", f"{repo}::v2", "model.npy"], cwd=data))
    add(out, "W3 bytes added MiB", "borg", du(repo) - before)
    for d in (repo, data, o):
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


def bench_dvc(w2: Path, w3: Path, work: Path, out: Results) -> None:
    project = dvc_project
    remote = fresh(work / "dvc-remote")
    remote.mkdir(parents=True)
    src = project(work / "dvc-src", remote)
    shutil.copyfile(w2, src / "model.npy")
    step(out, "DVC", "W2 commit", t([str(DVC), "add", "-q", "model.npy"], cwd=src))
    (src / "model.npy").unlink()
    step(out, "DVC", "W2 restore", t([str(DVC), "checkout", "-q"], cwd=src))
    v1 = (src / "model.npy.dvc").read_text()
    step(out, "DVC", "W2 push", t([str(DVC), "push", "-q"], cwd=src))
    dst = project(work / "dvc-dst", remote)
    (dst / "model.npy.dvc").write_text(v1)
    step(out, "DVC", "W2 fresh pull+restore", t([str(DVC), "pull", "-q"], cwd=dst))
    (src / "model.npy").unlink()
    shutil.copyfile(w3, src / "model.npy")
    before = du(src / ".dvc" / "cache")
    step(out, "DVC", "W3 commit", t([str(DVC), "add", "-q", "model.npy"], cwd=src))
    add(out, "W3 bytes added MiB", "DVC", du(src / ".dvc" / "cache") - before)
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


def table(results: Results) -> str:
    tools = [t for t in ["casstore", *PEERS] if any(t in d for d in results.values())]
    head = ["step", *tools, "casstore / best peer"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, vals in results.items():
        med = {t: statistics.median(v) for t, v in vals.items()}
        fmt = (lambda v: f"{v:.0f}") if key.endswith(("MiB", "per commit")) else (lambda v: f"{v:.2f}")
        peers = [med[p] for p in PEERS if p in med]
        ratio = f"{med['casstore'] / min(peers):.2f}" if "casstore" in med and peers and min(peers) > 0 else ""
        lines.append("| " + " | ".join([key, *(fmt(med[t]) if t in med else "-" for t in tools), ratio]) + " |")
    return "\n".join(lines)


def chart(results: Results, path: Path, title: str) -> None:
    """Each row: every tool's median as a multiple of the best tool's (1 = best; log scale)."""
    tools = [t for t in ["casstore", *PEERS] if any(t in d for d in results.values())]
    rows = []
    for key, vals in results.items():
        med = {t: statistics.median(v) for t, v in vals.items()}
        best = min((v for v in med.values() if v > 0), default=0.0)
        if best > 0 and len(med) > 1:
            rows.append((key, {t: med[t] / best for t in tools if t in med}))
    own = results.get("small files, one open store: ms per commit", {}).get("casstore")
    per_process = results.get("small files: ms per commit", {})
    peers = {t: statistics.median(v) for t, v in per_process.items() if t != "casstore"}
    if own and peers:  # the library's commit against each peer's (they have no open-store mode)
        both = {"casstore": statistics.median(own), **peers}
        best = min(both.values())
        rows.append(("ms per commit, casstore's store open", {t: v / best for t, v in both.items()}))
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
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(left=0.8)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_xlabel("multiple of the best tool's time or bytes (1 = best; shorter is better)")
    ax.set_title(title.replace(" (", "\n(").replace("; ", ";\n"), fontsize=8)
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
    """The chart of a run saved in ``results_json`` (results_peers.json)."""
    s = json.loads(results_json.read_text())
    load = s["loadavg"][0]
    chart(s["results"], path, f"casstore beside restic, borg and DVC ({s['when']}, {s['machine']}, W2 = {s['w2_mib']} "
          f"MiB, {s['small']} small files, {s['reps']} repetitions, medians; load average at the end {load:.1f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256, help="W2 size in MiB (the issue's full run: 1024)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--small", type=int, default=1000, help="small files, one process each (issue: 1000; 0: none)")
    ap.add_argument("--small-reps", type=int, default=1,
                    help="repetitions that commit the small files too (each is ~1,000 processes per tool)")
    ap.add_argument("--tools", default="casstore,restic,borg,dvc")
    ap.add_argument("--work", type=Path, default=HERE / "data", help="where the data and the stores go")
    ap.add_argument("--small-only", action="store_true", help="only the small-files rows")
    ap.add_argument("--chart-from", type=Path, help="only draw the chart of a saved results_peers.json")
    ap.add_argument("--quick", action="store_true", help="16 MiB, 20 small files, one repetition: does it run")
    ap.add_argument("--chart", type=Path, default=HERE.parent / "docs" / "benchmarks-peers.png",
                    help="where the chart goes (with --quick: nowhere unless given)")
    args = ap.parse_args()
    chart_path = args.chart if not args.quick or "--chart" in sys.argv else None
    if args.quick:
        args.size, args.small, args.reps = 16, 20, 1
    if args.chart_from:
        chart_saved(args.chart_from, args.chart)
        return
    wanted = {t.strip().lower() for t in args.tools.split(",")}
    tools = [t for t in BENCHES if t.lower() in wanted]
    if "restic" in tools and not os.path.exists(RESTIC):
        log("restic missing (Debian package `restic`, `make sysdeps`): left out")
        tools.remove("restic")
    if "borg" in tools and not ensure_borg():
        log("borg could not be installed: left out")
        tools.remove("borg")
    if "DVC" in tools:
        ensure_dvc()
    work = args.work / "peers"
    work.mkdir(parents=True, exist_ok=True)
    import bench_transfer

    bench_transfer.DATA = args.work
    w2, w3 = ensure_data(args.size * MiB) if not args.small_only else (Path(), Path())
    files = small_files(args.work, args.small) if args.small else []
    results: Results = {}
    for rep in range(args.reps):
        order = tools[rep % len(tools):] + tools[: rep % len(tools)]
        log(f"peers repetition {rep + 1}/{args.reps}: {', '.join(order)}")
        for tool in order:
            if not args.small_only:
                BENCHES[tool](w2, w3, work, results)
            if files and rep < args.small_reps:
                SMALL[tool](files, work, results)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    w2_size = "no W2" if args.small_only else f"W2 = {args.size} MiB"
    title = (f"casstore beside restic, borg and DVC ({when}, {machine}, {w2_size}, {len(files)} small "
             f"files, {args.reps} repetitions, medians; load average at the end {os.getloadavg()[0]:.1f})")
    print(f"# {title}\n")
    print(table(results))
    if chart_path is not None:
        chart(results, chart_path, title)
        log(f"chart: {chart_path}")
    (HERE / "results_peers.json").write_text(json.dumps(
        {"results": results, "machine": machine, "when": when, "w2_mib": args.size, "small": len(files),
         "reps": args.reps, "loadavg": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
