"""One timed operation in a fresh process: ``worker.py TOOL OP WORKLOAD STORE [ARG]``.

Runs under casstore's interpreter or under the modelstore virtualenv's, so each
tool is measured with only its own imports.  Prints one JSON line: seconds of the
operation itself (model objects are loaded before the clock starts), peak RSS of
the process (VmHWM), and what the operation returned that the driver checks.
"""

from __future__ import annotations

import json
import os
import sys
import time


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:  # noqa: C901, PLR0912, PLR0915 - one dispatch over every operation a benchmark worker runs
    tool, op, workload, store_path = sys.argv[1:5]
    arg = sys.argv[5] if len(sys.argv) > 5 else ""
    data = os.environ["BENCH_DATA"]
    model: object = None
    if workload == "w1":
        # every tool pays the same imports outside the clock
        import joblib  # noqa: F401
        import sklearn.ensemble  # noqa: F401
    if op == "commit":
        if workload == "w1":
            import joblib

            model = joblib.load(os.path.join(data, "w1.joblib"))
        else:
            model = os.path.join(data, arg or f"{workload}.npy")
    if tool == "casstore":
        import casstore

        store = casstore.open(store_path)
    elif tool == "modelstore":
        from modelstore import ModelStore

        store = ModelStore.from_file_system(root_directory=store_path, create_directory=True)
    out: dict[str, object] = {}
    if op == "download":
        os.makedirs(arg, exist_ok=True)  # modelstore needs it to exist
    t = time.perf_counter()
    if tool == "joblib":  # the reference for loading W1
        import joblib

        joblib.load(os.path.join(data, "w1.joblib"))
    elif op == "commit":
        meta = store.upload(workload, model=model)
        out["model_id"] = meta["model_id"] if tool == "casstore" else meta["model"]["model_id"]
    elif op == "download":
        store.download(arg, workload, os.environ["BENCH_MODEL_ID"])
    elif op == "load" and workload == "w1":
        out["loaded"] = type(store.load(workload, os.environ["BENCH_MODEL_ID"])).__name__
    elif op == "load":
        # A model file into memory: modelstore cannot load() model files, so it
        # downloads; casstore's load() gives the verified file's path.  Then np.load.
        import tempfile

        import numpy as np

        tmp = tempfile.mkdtemp(dir=os.path.dirname(store_path))
        if tool == "casstore":
            path = store.load(workload, os.environ["BENCH_MODEL_ID"])
        else:
            store.download(tmp, workload, os.environ["BENCH_MODEL_ID"])
            path = os.path.join(tmp, "w2.npy")
        out["loaded"] = str(np.load(path).shape)
    out["seconds"] = time.perf_counter() - t
    if op == "load" and workload != "w1":
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        if tool == "casstore":
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    out["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
