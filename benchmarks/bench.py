"""casstore against modelstore on the same workloads, in one run: `make bench`.

Workloads (generated deterministically into benchmarks/data/):
  W1  RandomForestClassifier(200 trees) on make_classification(20000, 20): commit, load
  W2  1 GiB float32 N(0,1) .npy given as a model file: commit, download, load
  W3  W2, then a version with 10% of its 1 MiB blocks changed: cost of v2, store size
References on the same files: `zstd -3 -T2`, `cp`, `joblib.load`.  modelstore is
installed from PyPI into benchmarks/.venv-modelstore.  Every measurement is a fresh
process; tools alternate within each repetition; medians are reported with ratios,
peak RSS (VmHWM) and bytes on disk.  Results go to benchmarks/results.json and
docs/benchmarks.png.

    python benchmarks/bench.py [--reps 3] [--quick] [--no-big]
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

from casstore.ops.stats import disk_bytes

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
WORK = DATA / "work"
MS_VENV = HERE / ".venv-modelstore"
MS_PY = MS_VENV / "bin" / "python"
MiB = 1 << 20
PY = {"casstore": sys.executable, "joblib": sys.executable, "modelstore": str(MS_PY)}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_modelstore() -> None:
    if MS_PY.exists():
        return
    log("installing modelstore 0.0.82 from PyPI into benchmarks/.venv-modelstore")
    subprocess.run([sys.executable, "-m", "venv", str(MS_VENV)], check=True)
    import sklearn

    subprocess.run([str(MS_PY), "-m", "pip", "install", "-q", "--disable-pip-version-check", "modelstore==0.0.82",
                    f"scikit-learn=={sklearn.__version__}", "numpy", "joblib"], check=True)


def ensure_data(w2_size: int) -> None:
    import joblib
    import numpy as np

    DATA.mkdir(exist_ok=True)
    if not (DATA / "w1.joblib").exists():
        log("generating W1 (random forest, 200 trees)")
        from sklearn.datasets import make_classification
        from sklearn.ensemble import RandomForestClassifier

        X, y = make_classification(20000, 20, random_state=0)
        joblib.dump(RandomForestClassifier(200, random_state=0, n_jobs=2).fit(X, y), DATA / "w1.joblib")
    w2 = DATA / "w2.npy"
    if not w2.exists() or w2.stat().st_size < w2_size:
        log(f"generating W2 ({w2_size >> 20} MiB float32 N(0,1)) and W3")
        rng = np.random.default_rng(0)
        np.save(w2, rng.standard_normal(w2_size // 4, dtype=np.float32))
        data = bytearray(w2.read_bytes())
        blocks = len(data) // MiB
        for b in rng.choice(blocks, blocks // 10, replace=False):
            data[b * MiB : (b + 1) * MiB] = rng.bytes(MiB)
        (DATA / "w3.npy").write_bytes(bytes(data))


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def worker(tool: str, op: str, workload: str, store: Path, arg: str = "", model_id: str = "") -> dict:  # noqa: PLR0913 - a worker's whole job description, passed on from the command line
    env = {**os.environ, "BENCH_DATA": str(DATA), "BENCH_MODEL_ID": model_id, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([PY[tool], str(HERE / "worker.py"), tool, op, workload, str(store), arg],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{tool} {op} {workload} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def timed(cmd: list[str]) -> float:
    subprocess.run(["sync"])
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def run(reps: int, w2_size: int, big: bool) -> dict:  # noqa: PLR0915 - the benchmark's steps in the order they run
    results: dict[str, dict[str, list[float]]] = {}

    def add(key: str, tool: str, value: float) -> None:
        results.setdefault(key, {}).setdefault(tool, []).append(value)

    tools = ["casstore", "modelstore"]
    for rep in range(reps):
        order = tools if rep % 2 == 0 else tools[::-1]
        log(f"repetition {rep + 1}/{reps} ({' then '.join(order)})")
        for tool in order:
            # W1
            store = fresh(WORK / f"{tool}-w1")
            r = worker(tool, "commit", "w1", store)
            add("W1 commit s", tool, r["seconds"])
            add("W1 commit peak MiB", tool, r["peak_rss_mib"])
            r = worker(tool, "load", "w1", store, model_id=r["model_id"])
            add("W1 load s", tool, r["seconds"])
            # W2
            store = fresh(WORK / f"{tool}-w2")
            subprocess.run(["sync"])
            r = worker(tool, "commit", "w2", store)
            add("W2 commit s", tool, r["seconds"])
            add("W2 commit peak MiB", tool, r["peak_rss_mib"])
            add("W2 store MiB", tool, disk_bytes(str(store)) / MiB)
            mid = r["model_id"]
            out = fresh(WORK / f"{tool}-out")
            r = worker(tool, "download", "w2", store, str(out), model_id=mid)
            add("W2 download s", tool, r["seconds"])
            add("W2 download peak MiB", tool, r["peak_rss_mib"])
            shutil.rmtree(out, ignore_errors=True)
            r = worker(tool, "load", "w2", store, model_id=mid)
            add("W2 load s", tool, r["seconds"])
            # W3: v2 on top of v1
            r = worker(tool, "commit", "w3", store, "w3.npy")
            add("W3 v2 commit s", tool, r["seconds"])
            add("W3 store MiB", tool, disk_bytes(str(store)) / MiB)
            shutil.rmtree(store, ignore_errors=True)
        r = worker("joblib", "load", "w1", WORK)
        add("W1 load s", "joblib.load", r["seconds"])
        add("W2 commit s", "zstd -3 -T2", timed(["zstd", "-3", "-T2", "-q", "-f", str(DATA / "w2.npy"),
                                                   "-o", str(WORK / "w2.zst")]))
        add("W2 download s", "cp", timed(["cp", str(DATA / "w2.npy"), str(WORK / "w2.copy")]))
        for f in ("w2.zst", "w2.copy"):
            (WORK / f).unlink(missing_ok=True)
    if big:
        big_file = DATA / "big4g.bin"
        if not big_file.exists():
            log("generating a 4 GiB file (half random, half zeros)")
            import numpy as np

            rng = np.random.default_rng(4)
            with open(big_file, "wb") as f:
                for _ in range(256):
                    f.write(rng.bytes(8 * MiB) + bytes(8 * MiB))
        store = fresh(WORK / "casstore-big")
        r = worker("casstore", "commit", "big", store, "big4g.bin")
        add("4 GiB commit peak MiB", "casstore", r["peak_rss_mib"])
        add("4 GiB commit s", "casstore", r["seconds"])
        out = fresh(WORK / "casstore-big-out")
        r = worker("casstore", "download", "big", store, str(out), model_id=r["model_id"])
        add("4 GiB download peak MiB", "casstore", r["peak_rss_mib"])
        add("4 GiB download s", "casstore", r["seconds"])
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)
    return results


def scaling(w2_size: int) -> dict[str, float]:
    """W1 commit into an empty store vs into one that holds 1,000 models."""
    import casstore

    crowded = fresh(WORK / "casstore-1000")
    s = casstore.open(crowded)
    tiny = WORK / "tiny.bin"
    log("filling a store with 1,000 models")
    for i in range(1000):
        tiny.write_bytes(os.urandom(4096))
        s.commit_models("crowd", model=str(tiny), model_id=f"m{i:04d}")
    s.close()
    out: dict[str, list[float]] = {"empty": [], "1000 models": []}
    for _ in range(3):
        for label, path in (("empty", fresh(WORK / "casstore-empty")), ("1000 models", crowded)):
            out[label].append(worker("casstore", "commit", "w1", path)["seconds"])
    shutil.rmtree(crowded, ignore_errors=True)
    return {k: statistics.median(v) for k, v in out.items()}


def transfer(w2_size: int) -> dict[str, float]:
    """Push and pull of W3's version 2 to a remote that has version 1: over git:// and to S3.

    The S3 server is moto's, in its own process on loopback: its times say little
    about a real object store, the bytes are what they would be anywhere.
    """
    sys.path.insert(0, str(ROOT))
    import casstore
    from casstore.store import init_store
    from tests.servers import git_daemon, s3_server

    res: dict[str, float] = {}

    def run_pair(label: str, url: str) -> None:
        a = casstore.open(fresh(WORK / "push-a"))
        b = casstore.open(fresh(WORK / "pull-b"))
        a.commit_models("w", model=str(DATA / "w2.npy"), model_id="v1")
        for version, data in (("v1", "w2.npy"), ("v2", "w3.npy")):
            if version == "v2":
                a.commit_models("w", model=str(DATA / data), model_id="v2")
            t = time.perf_counter()
            pushed = a.push(url)
            res[f"{label} push {version} s"], res[f"{label} push {version} MiB sent"] = (
                time.perf_counter() - t, pushed.bytes / MiB)
            t = time.perf_counter()
            pulled = b.pull(url)
            res[f"{label} pull {version} s"], res[f"{label} pull {version} MiB received"] = (
                time.perf_counter() - t, pulled.bytes / MiB)
        for p in ("push-a", "pull-b"):
            shutil.rmtree(WORK / p, ignore_errors=True)

    root = fresh(WORK / "srv")
    root.mkdir(parents=True)
    init_store(str(root / "models.git"), bare_remote=True)
    with git_daemon(root) as base:
        run_pair("git", f"{base}/models.git")
    shutil.rmtree(root, ignore_errors=True)
    try:
        import boto3
    except ImportError:
        log("boto3 missing: no S3 transfer")
        return res
    with s3_server() as endpoint:
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_ENDPOINT_URL_S3=endpoint)
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
        run_pair("s3", "s3://bench/models")
    return res


def targets(med: dict, scale: dict, xfer: dict, w2_size: int) -> list[tuple[str, float, float, str, bool]]:
    """Every target of the benchmark: (name, measured, limit, "<=" / ">=" / "<", met)."""
    size_mib = w2_size / MiB
    t = {}
    c, m = med.get("W1 commit s", {}), med.get("W1 load s", {})
    t["W1 commit >= 10x faster than modelstore"] = m and med["W1 commit s"]["modelstore"] / c["casstore"]
    t["W1 load <= joblib.load + 20%"] = m["casstore"] / m["joblib.load"]
    w2 = med["W2 commit s"]
    t["W2 commit <= 1.5x zstd -3 -T2"] = w2["casstore"] / w2["zstd -3 -T2"]
    dl, ld = med["W2 download s"], med["W2 load s"]
    t["W2 download >= 5x faster than modelstore"] = dl["modelstore"] / dl["casstore"]
    t["W2 load >= 5x faster than modelstore"] = ld["modelstore"] / ld["casstore"]
    t["W3 v2 commit <= 1/3 of v1 commit"] = med["W3 v2 commit s"]["casstore"] / w2["casstore"]
    t["W3 store growth <= 15% of file"] = (med["W3 store MiB"]["casstore"] - med["W2 store MiB"]["casstore"]) / size_mib
    t["W2 commit peak RSS < 300 MiB"] = med["W2 commit peak MiB"]["casstore"]
    t["W2 download peak RSS < 300 MiB"] = med["W2 download peak MiB"]["casstore"]
    if "4 GiB commit peak MiB" in med:
        t["4 GiB commit peak RSS < 300 MiB"] = med["4 GiB commit peak MiB"]["casstore"]
        t["4 GiB download peak RSS < 300 MiB"] = med["4 GiB download peak MiB"]["casstore"]
    t["commit with 1,000 models / empty store (<= 1.10)"] = scale["1000 models"] / scale["empty"]
    for label in ("git", "s3"):
        if f"{label} push v2 MiB sent" in xfer:
            t[f"{label}: push of W3 v2, MiB sent / file size (<= 0.15)"] = xfer[f"{label} push v2 MiB sent"] / size_mib
            t[f"{label}: pull of W3 v2, MiB received / file size (<= 0.15)"] = (
                xfer[f"{label} pull v2 MiB received"] / size_mib)
    limits = {"W1 commit >= 10x": (10, ">="), "W1 load": (1.2, "<="), "W2 commit": (1.5, "<="),
              "W2 download": (5, ">="), "W2 load": (5, ">="), "W3 v2": (1 / 3, "<="), "W3 store": (0.15, "<="),
              "W2 commit peak": (300, "<"), "W2 download peak": (300, "<"), "4 GiB commit": (300, "<"),
              "4 GiB download": (300, "<"), "commit with": (1.10, "<="), "git: push": (0.15, "<="),
              "git: pull": (0.15, "<="), "s3: push": (0.15, "<="), "s3: pull": (0.15, "<=")}
    out = []
    for name, value in t.items():
        limit, op = max(((k, v) for k, v in limits.items() if name.startswith(k)), key=lambda kv: len(kv[0]))[1]
        ok = value >= limit if op == ">=" else (value <= limit if op == "<=" else value < limit)
        out.append((name, float(value), float(limit), op, bool(ok)))
    return out


def report(results: dict, scale: dict, xfer: dict, w2_size: int) -> str:
    med = {k: {t: statistics.median(v) for t, v in d.items()} for k, d in results.items()}
    lines = ["| measurement | casstore | modelstore | reference | casstore vs modelstore |", "|---|---|---|---|---|"]
    for key, vals in med.items():
        c, m = vals.get("casstore"), vals.get("modelstore")
        refs = ", ".join(f"{t} {v:.2f}" for t, v in vals.items() if t not in ("casstore", "modelstore"))
        ratio = ""
        if c and m:
            ratio = f"{m / c:.1f}x {'faster' if key.endswith(' s') else 'smaller'}" if c < m else f"{c / m:.2f}x more"
        fmt = (lambda v: f"{v:.2f}") if key.endswith(" s") else (lambda v: f"{v:.0f}")
        lines.append(f"| {key} | {fmt(c) if c is not None else ''} | {fmt(m) if m is not None else ''} | "
                     f"{refs} | {ratio} |")
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for name, value, _limit, _op, ok in targets(med, scale, xfer, w2_size):
        lines.append(f"| {name} | {value:.2f} | {'yes' if ok else 'NO'} |")
    lines += ["", "Scaling (W1 commit, median of 3): " + ", ".join(f"{k} {v:.2f} s" for k, v in scale.items())]
    for label, where in (("git", "over git:// on loopback"), ("s3", "to S3 (moto server on loopback)")):
        items = [(k[len(label) + 1:], v) for k, v in xfer.items() if k.startswith(label + " ")]
        if items:
            lines += ["", f"Transfer {where}: " + ", ".join(f"{k} {v:.1f}" for k, v in items)]
    return "\n".join(lines)


def chart(results: dict, goals: list[tuple[str, float, float, str, bool]], title: str, path: Path) -> None:
    """Two panels: every measurement as casstore vs modelstore, and every target, met or not.

    Nothing is left out for looking bad: bars where casstore is worse are drawn in red,
    unmet targets too. The title carries the date, the machine and the workload size.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        log("matplotlib missing: no chart")
        return
    med = {k: {t: statistics.median(v) for t, v in d.items()} for k, d in results.items()}
    keys = [k for k in med if "casstore" in med[k] and "modelstore" in med[k]]
    # > 1: casstore is better (faster, smaller, less memory), whatever the unit
    ratios = [med[k]["modelstore"] / med[k]["casstore"] for k in keys]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 0.32 * (len(keys) + len(goals)) + 2.4),
                                   gridspec_kw={"height_ratios": [len(keys), len(goals)]})
    ax1.barh(keys, ratios, color=["#3a7" if r >= 1 else "#c44" for r in ratios])
    ax1.set_xscale("log")
    ax1.axvline(1, color="#555", lw=1, ls="--", label="1x: as good as modelstore")
    ax1.legend(loc="lower right", fontsize=8)
    ax1.set_xlabel("modelstore / casstore (time, peak memory, size): right of 1x casstore is better, "
                   "left (red) worse", fontsize=8)
    for i, r in enumerate(ratios):
        ax1.text(r, i, f" {r:.2f}x", va="center", fontsize=8)
    ax1.invert_yaxis()
    # each target as measured / limit, so that 1 is the limit for every kind of target
    names = [g[0] for g in goals]
    scores = [(g[1] / g[2] if g[3] != ">=" else g[2] / g[1]) if g[1] and g[2] else float("nan") for g in goals]
    ax2.barh(names, scores, color=["#3a7" if g[4] else "#c44" for g in goals])
    ax2.axvline(1, color="#555", lw=1, ls="--", label="1: the target's limit")
    ax2.legend(loc="lower right", fontsize=8)
    ax2.set_xscale("log")
    ax2.set_xlabel("measured / limit (for 'at least' targets: limit / measured): left of 1 is met (green), "
                   "right is not (red)", fontsize=8)
    for i, (g, sc) in enumerate(zip(goals, scores, strict=True)):
        ax2.text(sc, i, f" {g[1]:.2f} ({'met' if g[4] else 'NOT met'})", va="center", fontsize=8)
    ax2.invert_yaxis()
    plain = matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}")
    for ax in (ax1, ax2):
        ax.tick_params(axis="y", labelsize=8)
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="W2 of 128 MiB, one repetition, no 4 GiB file")
    ap.add_argument("--no-big", action="store_true", help="skip the 4 GiB memory check")
    args = ap.parse_args()
    w2_size = (128 if args.quick else 1024) * MiB
    reps = 1 if args.quick else args.reps
    WORK.mkdir(parents=True, exist_ok=True)
    ensure_modelstore()
    ensure_data(w2_size)
    results = run(reps, w2_size, big=not (args.quick or args.no_big))
    scale = scaling(w2_size)
    xfer = transfer(w2_size)
    table = report(results, scale, xfer, w2_size)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"# casstore benchmark ({time.strftime('%Y-%m-%d')}, {machine}, W2 = {w2_size >> 20} MiB, "
          f"{reps} repetitions, medians)\n")
    print(table)
    (HERE / "results.json").write_text(json.dumps({"results": results, "scaling": scale, "transfer": xfer,
                                                   "machine": machine, "w2_bytes": w2_size}, indent=1))
    med = {k: {t: statistics.median(v) for t, v in d.items()} for k, d in results.items()}
    title = (f"casstore vs modelstore 0.0.82, {time.strftime('%Y-%m-%d')}, {machine}, "
             f"W2 = {w2_size >> 20} MiB, medians of {reps}")
    chart(results, targets(med, scale, xfer, w2_size), title, ROOT / "docs" / "benchmarks.png")


if __name__ == "__main__":
    main()
