"""`make demo`: train a model, commit it with an explainer and extra files, load it back.

Uses the default store ($CAS_STORE, else ~/.casstore) and one domain of its own,
``casstore-demo``, whose two models (``v1``, ``v2``) each run replaces: running the
demo again never piles up models.  Needs scikit-learn and, for the explainer, shap
(``pip install 'casstore[demo]'``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

from .util.install import install_hint

DOMAIN = "casstore-demo"


def main() -> None:  # noqa: PLR0915 - the demo's steps in the order a user reads them
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    import casstore
    from casstore.util.progress import human

    store = casstore.open()
    print(f"store: {store.path}")
    old = store.list_models(DOMAIN) if DOMAIN in store.list_domains() else []
    for model_id in old:  # the previous run's models: this run replaces them
        store.delete_model(DOMAIN, model_id)
    if old:
        print(f"replaced the previous demo's models ({', '.join(old)}) in domain {DOMAIN}")

    X, y = make_classification(5000, 20, random_state=0)
    clf = RandomForestClassifier(100, random_state=0).fit(X, y)
    models: dict[str, Any] = {"model": clf}
    try:
        import shap

        models["explainer"] = shap.TreeExplainer(clf)
    except ImportError:
        print(f"(shap not installed: committing the model alone; {install_hint('demo')} adds it)")

    with tempfile.TemporaryDirectory() as tmp:
        preds = os.path.join(tmp, "predictions.csv")
        np.savetxt(preds, clf.predict_proba(X[:100]), delimiter=",")
        notes = os.path.join(tmp, "notes")
        os.mkdir(notes)
        with open(os.path.join(notes, "README.txt"), "w") as f:
            f.write("RandomForestClassifier(100) on make_classification(5000, 20), random_state=0\n")
        t = time.perf_counter()
        meta = store.commit_models(DOMAIN, model_id="v1", extra_files=[preds, notes],
                                   extra_metadata={"accuracy": float(clf.score(X, y)), "n_trees": 100},
                                   **models)
        took = time.perf_counter() - t
    s = meta["stats"]
    print(f"\ncommitted {DOMAIN}/v1 in {took:.2f}s: {human(s['bytes_given'])} given, "
          f"{human(s['bytes_stored'])} stored, {s['chunks_new']}/{s['chunks_total']} chunks new")
    for kwarg, fw in meta["frameworks"].items():
        print(f"  {kwarg}={fw['framework']} ({fw['class']}, {fw['format']}): {', '.join(fw['files'])}")
    print("  files:")
    for f in meta["files"]:
        print(f"    {f['path']:<28} {human(f['size']):>10}  {f['kind']}")
    print(f"  metadata: {meta['extra_metadata']}")

    loaded = store.load(DOMAIN, "v1")
    clf2 = loaded["sklearn"] if isinstance(loaded, dict) else loaded
    assert (clf2.predict(X) == clf.predict(X)).all()
    print("\nloaded it back: " + ", ".join(f"{k}: {type(v).__name__}" for k, v in
                                          (loaded.items() if isinstance(loaded, dict) else [("sklearn", loaded)]))
          + "; predictions identical")
    again = store.commit_models(DOMAIN, model_id="v2", **models)
    print(f"committed the same models again as {DOMAIN}/v2: {again['stats']['chunks_new']} new chunks, "
          f"{human(again['stats']['bytes_stored'])} stored")
    print(f"\nhistory of {DOMAIN} (newest first):")
    for e in store.log(DOMAIN)[:4]:
        print(f"  {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(e.time))}  {e.event:<7} {e.model_id}")
    report = store.fsck()
    print(f"\nfsck: {'clean' if report.ok else report.problems}")
    store.close()

    # `cas` sits next to this interpreter: on PATH only when its venv is activated
    bindir = os.path.dirname(os.path.abspath(sys.executable))
    if bindir in os.environ.get("PATH", "").split(os.pathsep):
        where = "`cas` is on your PATH"
    else:
        exe = os.path.join(bindir, "cas")
        exe = exe if os.path.relpath(exe).startswith("..") else os.path.relpath(exe)
        where = f"`cas` is {exe}: run `source {os.path.join(os.path.dirname(exe), 'activate')}` first"
    steps = [(f"cas log {DOMAIN}", "the history, like git log"),
             (f"cas show {DOMAIN} v1", "frameworks, files, metadata"),
             (f"cas diff {DOMAIN} v1 v2", "what the two versions share"),
             (f"cas download {DOMAIN} v1 ./out", "every file, extra files too"),
             ("cas serve", f"browse the store in a web browser ({install_hint('serve')})")]
    width = max(len(cmd) for cmd, _ in steps) + 2
    print(f"\nnext steps ({where}):")
    for cmd, what in steps:
        print(f"  {cmd:<{width}}{what}")
    print("README.md and docs/cli.md show the rest; docs/config.md lists every setting.")


if __name__ == "__main__":
    main()
