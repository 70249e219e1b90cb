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

(casstore's W2 fresh pull + download is one `cas pull REMOTE w --download DIR --model v1`
process since issue 26; W3's is `cas pull` and two `cas download`.)

Every step also records the CPU seconds (user + system) of its whole process tree.
Over git://, http and ssh the server is started afresh for each push and pull, in a
process tree of its own measured the same way (class Remote): the server's CPU seconds
and the peak RSS of its largest process are rows of their own, and every git process it
runs (upload-pack, pack-objects, receive-pack, index-pack, http-backend...) is logged
with its CPU and peak RSS (printed after the tables).  git:// is served one `git daemon
--inetd` per connection, http by a streaming CGI server (bench_servers.py), ssh by sshd.

DVC is installed from PyPI into benchmarks/.venv-dvc.  References: `cp`, `cp` + `sync`,
`zstd -3 -T2` of W2.  Results: benchmarks/results_transfer.json and a markdown table on
stdout.

    python benchmarks/bench_transfer.py [--size MiB] [--reps N] [--no-network]
        [--net-reps N] [--transports git://,http,ssh] [--w2-only] [--work DIR]
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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

sys.path.insert(0, str(ROOT))
from tests.servers import free_port, wait_port  # noqa: E402


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


# PYTHONDONTWRITEBYTECODE (set in some shells and CI) would make every `cas` process compile
# casstore from source (0.3-0.5 s of CPU each) while DVC's installed modules load compiled
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
       "PYTHONPATH": str(ROOT), "DVC_NO_ANALYTICS": "1", "CAS_AUTHOR": "bench <bench@example.com>"}


def run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """(seconds, peak RSS MiB of the largest process in the tree, CPU seconds of the tree) of one command."""
    subprocess.run(["sync"])
    t = time.perf_counter()
    r = subprocess.run([TIME, "-f", "RSSKIB %M %U %S", *cmd], cwd=cwd, env=env or ENV, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    line = next(line for line in r.stderr.splitlines()[::-1] if line.startswith("RSSKIB"))
    kib, user, system = line.split()[1:]
    return dt, int(kib) / 1024, float(user) + float(system)


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


class Remote:
    """Where casstore pushes to and pulls from; a git server is started afresh for every step.

    A path remote is a directory.  For git://, http and ssh the server runs under GNU
    ``time`` (its whole tree: the daemon, the CGI server or sshd, and every process they
    wait for), and every git process it starts runs through a wrapper in a private
    exec-path (and PATH, for sshd's sessions) that logs that process's own CPU seconds
    and peak RSS (GNU time, ``git-procs.log``).  :meth:`step` yields the URL and, after the
    step, leaves its measurements in :attr:`last`: the server tree's CPU seconds and the
    peak RSS of its largest process, and per git command (CPU s, peak MiB; a parent's
    figures include the children it waited for: upload-pack includes pack-objects).
    """

    def __init__(self, kind: str, root: Path | None = None) -> None:
        self.kind = kind
        self.root = root
        self.last: dict[str, object] = {}
        if kind != "path":
            self.log = WORK / "git-procs.log"
            self.exec_dir, self.path_dir = _git_wrappers(WORK / "git-wrap", self.log)

    def url_of(self, base: str) -> str:
        return f"{base}{self.root}/models.git" if self.kind == "ssh" else f"{base}/models.git"

    @contextmanager
    def step(self, target: Path) -> Iterator[str]:
        if self.kind == "path":
            yield str(target)
            return
        assert self.root is not None
        env = {**os.environ, "GIT_EXEC_PATH": str(self.exec_dir), "PATH": f"{self.path_dir}:{os.environ['PATH']}"}
        outer = WORK / "server-time.log"
        self.log.unlink(missing_ok=True)
        port = free_port()
        extra: dict[str, str] = {}
        if self.kind == "git://":
            # one process per connection, as inetd / systemd socket activation serve git://:
            # a standing `git daemon` reaps its children when the next connection comes, so
            # the last one's CPU would never reach its rusage
            cmd = [sys.executable, str(HERE / "bench_servers.py"), "git-inetd", str(self.root), str(port)]
            base = f"git://127.0.0.1:{port}"
        elif self.kind == "http":
            cmd = [sys.executable, str(HERE / "bench_servers.py"), "http", str(self.root), str(port)]
            base = f"http://127.0.0.1:{port}"
        else:
            conf, base, extra = _sshd_config(WORK / "sshd", port, self.exec_dir, self.path_dir)
            cmd = [shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f", str(conf)]
        proc = subprocess.Popen([TIME, "-o", str(outer), "-f", "SERVER %M %U %S", *cmd], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        saved = dict(ENV)
        try:
            wait_port(port, proc)
            ENV.update(extra)
            yield self.url_of(base)
        finally:
            ENV.clear()
            ENV.update(saved)
            assert proc.stdin is not None
            proc.stdin.close()  # bench_servers.py stops at EOF
            server_pid = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            if self.kind == "ssh":
                for pid in server_pid:
                    os.kill(int(pid), signal.SIGTERM)
            proc.wait(timeout=60)
        line = next(ln for ln in outer.read_text().splitlines()[::-1] if ln.startswith("SERVER "))
        kib, user, system = line.split()[1:]
        procs: dict[str, list[float]] = {}
        for ln in (self.log.read_text().splitlines() if self.log.exists() else []):
            if ln.startswith("GITPROC "):
                _, name, pkib, puser, psys = ln.split()
                got = procs.setdefault(name, [0.0, 0.0])
                got[0] += float(puser) + float(psys)
                got[1] = max(got[1], int(pkib) / 1024)
        peak = max([int(kib) / 1024, *(v[1] for v in procs.values())])
        self.last = {"cpu": float(user) + float(system), "peak": peak, "procs": procs}


def _git_wrappers(d: Path, log_path: Path) -> tuple[Path, Path]:
    """An exec-path and a PATH directory whose git commands log their CPU and peak RSS to ``log_path``.

    git runs its subcommands (``upload-pack``, ``pack-objects``, ``index-pack``...) as
    ``git <name>`` from its exec-path; sshd's sessions run ``git-upload-pack`` from PATH.
    """
    real = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
    exec_dir, path_dir = d / "exec", d / "bin"
    if exec_dir.exists():
        return exec_dir, path_dir
    exec_dir.mkdir(parents=True)
    path_dir.mkdir(parents=True)
    for name in os.listdir(real):
        if name != "git":
            os.symlink(os.path.join(real, name), exec_dir / name)

    def wrapper(path: Path, target: str, label: str) -> None:
        path.write_text(f'''#!/bin/sh
# the subcommand: the first argument that is not an option (git -c x=y --git-dir=... index-pack)
name={label}
if [ -z "$name" ]; then
  skip=0
  for a in "$@"; do
    if [ $skip = 1 ]; then skip=0; continue; fi
    case "$a" in -c|-C) skip=1;; -*) ;; *) name="$a"; break;; esac
  done
fi
exec {TIME} -a -o {log_path} -f "GITPROC $name %M %U %S" {target} "$@"
''')
        path.chmod(0o755)

    wrapper(exec_dir / "git", os.path.join(real, "git"), "")
    for cmd in ("upload-pack", "receive-pack"):
        wrapper(path_dir / f"git-{cmd}", os.path.join(real, f"git-{cmd}"), cmd)
    return exec_dir, path_dir


def _sshd_config(d: Path, port: int, exec_dir: Path, path_dir: Path) -> tuple[Path, str, dict[str, str]]:
    """sshd as tests/servers.py runs it, with the sessions' git commands going through the wrappers."""
    if not d.exists():
        d.mkdir(parents=True)
        for key in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
        shutil.copy(d / "client_key.pub", d / "authorized_keys")
        os.chmod(d / "authorized_keys", 0o600)
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)
    conf = d / "sshd_config"
    conf.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nPrintMotd no\n"
        f"SetEnv PATH={path_dir}:/usr/local/bin:/usr/bin:/bin GIT_EXEC_PATH={exec_dir}\n")
    command = (f"ssh -F /dev/null -i {d / 'client_key'} -o IdentitiesOnly=yes -o BatchMode=yes "
               "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
    return conf, f"ssh://{getpass.getuser()}@127.0.0.1:{port}", {"GIT_SSH_COMMAND": command}


Run = tuple[float, float, float]  # what run() returns: wall s, peak MiB, CPU s


def record(out: dict[str, dict[str, list[float]]], tool: str, step: str, *runs: Run) -> None:
    """One step of one tool, made of ``runs`` (processes one after another): their wall and
    CPU seconds add up, the peak RSS is the largest."""
    for key, value in ((f"{step} s", sum(r[0] for r in runs)), (f"{step} peak MiB", max(r[1] for r in runs)),
                       (f"{step} CPU s", sum(r[2] for r in runs))):
        out.setdefault(key, {}).setdefault(tool, []).append(value)


def casstore_path(w2: Path, w3: Path, out: dict[str, dict[str, list[float]]], remote: Remote | None = None,  # noqa: PLR0913 - both stores, the results table, the remote and the sizes of one run
                  label: str = "path", w3_rows: bool = True) -> None:
    """The five steps for casstore; ``remote`` replaces the path remote (network transports).

    For each step: wall seconds, the client tree's peak RSS and CPU seconds, and over a
    git server the server tree's CPU seconds and peak RSS (:class:`Remote`).
    """
    remote = remote or Remote("path")
    tool = f"casstore {label}" if label != "path" else "casstore"

    def add(key: str, value: float) -> None:
        out.setdefault(key, {}).setdefault(tool, []).append(value)

    def server(step: str) -> None:
        if remote.kind == "path":
            return
        add(f"{step} server CPU s", remote.last["cpu"])  # type: ignore[arg-type]
        add(f"{step} server peak MiB", remote.last["peak"])  # type: ignore[arg-type]
        PROCS.setdefault(f"{step}, {tool}", []).append(remote.last["procs"])

    src = fresh(WORK / "cas-src")
    path_remote = fresh(WORK / "cas-remote")
    run(cas("init", str(src)))
    if remote.kind == "path":
        r = run(cas("--store", str(src), "commit", "--id", "v1", "w", str(w2)))
        record(out, tool, "W2 commit", r)
    else:
        run(cas("--store", str(src), "commit", "--id", "v1", "w", str(w2)))
    with remote.step(path_remote) as target:
        r = run(cas("--store", str(src), "push", target))
    record(out, tool, "W2 push", r)
    server("W2 push")
    def fresh_pull(name: str, *extra: str) -> tuple[Path, Run]:
        """A new store named ``name`` and the pull of everything into it."""
        dst = fresh(WORK / name)
        run(cas("init", str(dst)))
        with remote.step(path_remote) as target:
            return dst, run(cas("--store", str(dst), "pull", target, *extra))

    # one process: the pull writes the files it verifies (`cas pull --download`, issue 26)
    dst, p = fresh_pull("cas-dst", "w", "--download", str(fresh(WORK / "cas-out")), "--model", "v1")
    server("W2 pull")
    record(out, tool, "W2 fresh pull+download", p)
    if w3_rows:
        c = run(cas("--store", str(src), "commit", "--id", "v2", "w", str(w3)))
        with remote.step(path_remote) as target:
            p = run(cas("--store", str(src), "push", target))
        server("W3 push")
        record(out, tool, "W3 commit+push", c, p)
        dst2, p = fresh_pull("cas-dst2")
        server("W3 pull")
        d1 = run(cas("--store", str(dst2), "download", "w", "v1", str(fresh(WORK / "cas-out1"))))
        d2 = run(cas("--store", str(dst2), "download", "w", "v2", str(fresh(WORK / "cas-out2"))))
        record(out, tool, "W3 fresh pull+download both", p, d1, d2)
    if remote.kind == "path" and w3_rows:
        add("store after W3 MiB (local)", du(src))
        add("store after W3 MiB (remote)", du(path_remote))
    for name in ("cas-src", "cas-remote", "cas-dst", "cas-dst2", "cas-out", "cas-out1", "cas-out2"):
        shutil.rmtree(WORK / name, ignore_errors=True)


#: "step, tool" -> per repetition: git command -> (CPU s, peak MiB) on the server
PROCS: dict[str, list[dict[str, list[float]]]] = {}


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
    record(out, "DVC", "W2 commit", r)
    v1 = (src / "model.npy.dvc").read_text()
    r = run([str(DVC), "push", "-q"], cwd=src)
    record(out, "DVC", "W2 push", r)
    dst = project(WORK / "dvc-dst", remote)
    (dst / "model.npy.dvc").write_text(v1)
    r = run([str(DVC), "pull", "-q"], cwd=dst)  # pull = fetch + checkout: the file is in place
    record(out, "DVC", "W2 fresh pull+download", r)
    (src / "model.npy").unlink()
    shutil.copyfile(w3, src / "model.npy")
    a = run([str(DVC), "add", "-q", "model.npy"], cwd=src)
    p = run([str(DVC), "push", "-q"], cwd=src)
    record(out, "DVC", "W3 commit+push", a, p)
    v2 = (src / "model.npy.dvc").read_text()
    dst2 = project(WORK / "dvc-dst2", remote)
    (dst2 / "v1.npy.dvc").write_text(v1.replace("path: model.npy", "path: v1.npy"))
    (dst2 / "v2.npy.dvc").write_text(v2.replace("path: model.npy", "path: v2.npy"))
    r = run([str(DVC), "pull", "-q"], cwd=dst2)
    record(out, "DVC", "W3 fresh pull+download both", r)
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


def network(w2: Path, w3: Path, out: dict[str, dict[str, list[float]]], transports: list[str], rep: int,  # noqa: PLR0913 - both stores, the results table, the transports and the sizes of one run
            w3_rows: bool) -> None:
    """casstore over each git transport, a fresh bare store (`cas init --bare`) each; the order
    rotates with ``rep`` so that no transport always runs first (the machine's load drifts)."""
    from casstore.store import init_store

    root = WORK / "srv"
    order = transports[rep % len(transports):] + transports[:rep % len(transports)]
    for kind in order:
        fresh(root).mkdir(parents=True)
        init_store(str(root / "models.git"), bare_remote=True)
        log(f"  casstore over {kind}")
        casstore_path(w2, w3, out, Remote(kind, root), kind, w3_rows)
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
    ap.add_argument("--net-reps", type=int, default=None, help="repetitions over the network (default: --reps)")
    ap.add_argument("--transports", default="git://,http,ssh", help="comma-separated: git://, http, ssh")
    ap.add_argument("--w2-only", action="store_true", help="only W2's push and pull over the network (no W3 rows)")
    ap.add_argument("--work", type=Path, help="where the data and the stores go (default benchmarks/data)")
    ap.add_argument("--chart-only", type=Path, help="redraw the chart from a results_transfer.json")
    args = ap.parse_args()
    if args.chart_only:
        saved = json.loads(args.chart_only.read_text())
        chart(saved["results"], _title(saved), ROOT / "docs" / "benchmarks-transfer.png")
        return
    global DATA, WORK
    if args.work:
        DATA, WORK = args.work, args.work / "xfer"
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
        transports = args.transports.split(",")
        for rep in range(args.reps if args.net_reps is None else args.net_reps):
            log(f"network repetition {rep + 1}")
            network(w2, w3, results, transports, rep, not args.w2_only)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"# transfer benchmark ({when}, {machine}, W2 = {args.size} MiB, {args.reps} repetitions, medians; "
          f"load average at the end {os.getloadavg()[0]:.1f})\n")
    print(table(results))
    print("\n| target | measured | limit | met |\n|---|---|---|---|")
    for name, value, limit, met in targets(results):
        print(f"| {name} | {value:.2f} | {limit:g} | {'yes' if met else 'NO'} |")
    print("\nserver-side git processes, per repetition: command CPU s / peak MiB "
          "(a parent's figures include the children it waited for)")
    for step, reps in PROCS.items():
        cells = ["; ".join(f"{n} {c:.2f}/{m:.0f}" for n, (c, m) in sorted(r.items(), key=lambda kv: -kv[1][0])
                           if c >= 0.05 or m >= 20) for r in reps]
        print(f"- {step}: " + " | ".join(cells))
    saved = {"results": results, "machine": machine, "when": when, "w2_mib": args.size, "reps": args.reps,
             "loadavg": os.getloadavg(), "server_processes": PROCS}
    (HERE / "results_transfer.json").write_text(json.dumps(saved, indent=1))
    try:
        chart(results, _title(saved), ROOT / "docs" / "benchmarks-transfer.png")
    except ImportError:
        log("matplotlib missing: no chart")


if __name__ == "__main__":
    main()
