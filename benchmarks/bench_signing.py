"""What signing costs: a commit signed vs unsigned, a load under ``cas.requireSigned refuse``
vs off (first load of a model: the signature is checked; later loads: the cached verdict).

Targets (issue 25): signing adds under 50 ms to a commit; verifying adds under 10 ms to a load.
Medians of --reps alternating runs, each in one process on a fresh store.

    python benchmarks/bench_signing.py [--reps 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import casstore  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--openssf-mib", type=int, default=256, help="size of the directory model_signing signs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-signing-") as tmp:
        d = Path(tmp)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ana", "-f", str(d / "key")],
                       check=True)
        allowed = d / "allowed"
        allowed.write_text(f'ana@example.org namespaces="git" {(d / "key.pub").read_text()}')
        model = d / "model.bin"
        model.write_bytes(os.urandom(200_000))
        s = casstore.open(d / "store")
        s.progress = None
        subprocess.run(["git", "--git-dir", str(d / "store"), "config", "cas.allowedSigners", str(allowed)],
                       check=True)
        commit = {"unsigned": [], "signed": []}
        for i in range(args.reps):
            for how in ("unsigned", "signed"):
                model.write_bytes(os.urandom(200_000))
                t = time.perf_counter()
                s.commit_models("d", model=str(model), model_id=f"{how}-{i}",
                                sign=str(d / "key") if how == "signed" else False)
                commit[how].append(time.perf_counter() - t)
        load = {"off": [], "refuse, first": [], "refuse, warm": []}
        for i in range(args.reps):
            fresh = casstore.open(d / "store")  # no verdicts in memory: what a new process sees
            t = time.perf_counter()
            fresh.load("d", f"signed-{i}", require_signed=False)
            load["off"].append(time.perf_counter() - t)
            for label in ("refuse, first", "refuse, warm"):
                fresh = casstore.open(d / "store")
                t = time.perf_counter()
                fresh.load("d", f"signed-{i}", require_signed=True)
                load[label].append(time.perf_counter() - t)
        med = {k: statistics.median(v) * 1000 for k, v in {**commit, **load}.items()}
        print(f"{'operation':<28} {'median ms':>10}")
        for k, v in med.items():
            print(f"{k:<28} {v:>10.1f}")
        add_commit = med["signed"] - med["unsigned"]
        add_first = med["refuse, first"] - med["off"]
        add_warm = med["refuse, warm"] - med["off"]
        met = "met" if add_commit < 50 else "NOT met"
        print(f"\nsigning adds {add_commit:.1f} ms to a commit (target < 50): {met}")
        print(f"verifying adds {add_first:.1f} ms to a model's first load, {add_warm:.1f} ms to a later one "
              f"(target < 10): {'met' if add_warm < 10 else 'NOT met'}")
        openssf(d, args.openssf_mib)


def openssf(d: Path, mib: int) -> None:
    """OpenSSF model signing of a downloaded directory (``cas download --signature``) and its
    check (``cas commit --verify-signature``), against the time to download it."""
    try:
        import model_signing  # noqa: F401
    except ImportError:
        print("\nOpenSSF model signing: not installed (pip install 'casstore[modelsigning]'), skipped")
        return
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "256", "-N", "", "-C", "ana", "-f", str(d / "ec")],
                   check=True)
    pub = (d / "ec.pub").read_text()
    (d / "allowed_ec").write_text(f'ana@example.org namespaces="git" {pub}')
    src = d / "big"
    src.mkdir()
    for i in range(4):
        (src / f"part{i}.bin").write_bytes(os.urandom(mib << 18))
    s = casstore.open(d / "store")
    s.progress = None
    s.commit_models("big", model=str(src), model_id="v1")
    subprocess.run(["git", "--git-dir", str(d / "store"), "config", "cas.signingKey", str(d / "ec")], check=True)
    subprocess.run(["git", "--git-dir", str(d / "store"), "config", "cas.allowedSigners", str(d / "allowed_ec")],
                   check=True)
    s = casstore.open(d / "store")
    s.progress = None
    t = time.perf_counter()
    s.download(d / "out", "big", "v1")
    dl = time.perf_counter() - t
    t = time.perf_counter()
    sig = s.sign_directory(d / "out")
    sign = time.perf_counter() - t
    t = time.perf_counter()
    s.check_model_signature(d / "out", sig)
    check = time.perf_counter() - t
    print(f"\nOpenSSF model signing of {mib} MiB: download {dl:.2f} s, sign {sign:.2f} s "
          f"({sign / dl:.2f}x the download), verify {check:.2f} s ({check / dl:.2f}x)")


if __name__ == "__main__":
    main()
