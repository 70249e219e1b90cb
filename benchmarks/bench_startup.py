"""CPU and wall time of one ``cas`` process per command (issue 26 target 5), optionally beside a baseline tree.

    python benchmarks/bench_startup.py [--base /tmp/base] [-n 10] [--no-pyc]

``--base DIR``: a checkout of another version (``git -C . archive main | tar -x -C DIR``),
run interleaved with this one, so both see the same load.  Bytecode is cached under
``/tmp`` (as an installed wheel has it) unless ``--no-pyc``.  docs/benchmarks.md, "One
``cas`` process: start-up", has the latest table.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = str(Path(__file__).resolve().parents[1])


def _env(tree: str, pyc: bool) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": tree}
    if pyc:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cache = "cas-bench-pyc-" + tree.strip("/").replace("/", "_")
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), cache)
    return env


def _run(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """(CPU, wall) seconds of one child process."""
    r0, w0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    # cwd: `python -m` puts the current directory first on sys.path, which would beat PYTHONPATH
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, cwd=cwd)
    wall, r1 = time.perf_counter() - w0, resource.getrusage(resource.RUSAGE_CHILDREN)
    return r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", help="a baseline tree to run beside this one")
    ap.add_argument("-n", type=int, default=10, help="runs per command (medians)")
    ap.add_argument("--no-pyc", action="store_true", help="compile every module in every process")
    opts = ap.parse_args()
    trees = {"this": HERE} | ({"base": opts.base} if opts.base else {})
    work = tempfile.mkdtemp(prefix="cas-bench-startup-")
    try:
        model = os.path.join(work, "model.bin")
        Path(model).write_bytes(os.urandom(20_000))
        for name, tree in trees.items():
            subprocess.run([sys.executable, "-m", "casstore", "init", f"{work}/{name}"],
                           env=_env(tree, not opts.no_pyc), check=True, stdout=subprocess.DEVNULL, cwd=work)
        commands = {"commit": ["commit", "d", model], "log": ["log", "d"], "ls": ["ls", "d"]}
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for i in range(opts.n):
            for cmd in [*commands, "--version", "python -c pass"]:
                for name, tree in trees.items():
                    if cmd == "python -c pass":
                        argv = [sys.executable, "-c", "pass"]
                    elif cmd == "--version":
                        argv = [sys.executable, "-m", "casstore", "--version"]
                    else:
                        argv = [sys.executable, "-m", "casstore", "--store", f"{work}/{name}", *commands[cmd]]
                        if cmd == "commit":
                            argv += ["--id", f"m{i}"]
                    results.setdefault((cmd, name), []).append(_run(argv, _env(tree, not opts.no_pyc), work))
        pyc = "no bytecode cache" if opts.no_pyc else "bytecode cached"
        print(f"medians of {opts.n}, load {os.getloadavg()[0]:.1f}, {pyc}")
        print("| command | " + " | ".join(f"{n} CPU-s | {n} wall" for n in trees) + " |")
        print("|---|" + "---|---|" * len(trees))
        for cmd in [*commands, "--version", "python -c pass"]:
            cells = []
            for name in trees:
                runs = results[(cmd, name)]
                cells += [f"{statistics.median(r[0] for r in runs):.3f}",
                          f"{statistics.median(r[1] for r in runs):.2f}"]
            print(f"| {cmd} | " + " | ".join(cells) + " |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
