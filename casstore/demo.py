"""`make demo`: train a model, commit it with an explainer and extra files, load it back.

Uses the default store ($CAS_STORE, else ~/.casstore).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np


def main() -> None:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    import casstore

    store = casstore.open()
    print(f"store: {store.path}")
    X, y = make_classification(5000, 20, random_state=0)
    clf = RandomForestClassifier(100, random_state=0).fit(X, y)
    models: dict[str, Any] = {"model": clf}
    try:
        import shap

        models["explainer"] = shap.TreeExplainer(clf)
    except ImportError:
        print("(shap not installed: committing the model alone)")

    with tempfile.TemporaryDirectory() as tmp:
        preds = os.path.join(tmp, "predictions.csv")
        np.savetxt(preds, clf.predict_proba(X[:100]), delimiter=",")
        t = time.perf_counter()
        meta = store.commit_models("demo-forest", extra_files=[preds],
                                   extra_metadata={"accuracy": float(clf.score(X, y)), "n_trees": 100},
                                   **models)
        took = time.perf_counter() - t
    s = meta["stats"]
    print(f"committed demo-forest/{meta['model_id']} in {took:.2f}s: "
          f"{s['bytes_given'] / 1e6:.1f} MB given, {s['bytes_stored'] / 1e6:.1f} MB stored, "
          f"{s['chunks_new']}/{s['chunks_total']} chunks new")

    loaded = store.load("demo-forest", meta["model_id"])
    clf2 = loaded["sklearn"] if isinstance(loaded, dict) else loaded
    assert (clf2.predict(X) == clf.predict(X)).all()
    print("loaded it back: predictions identical")
    again = store.commit_models("demo-forest", **models)
    print(f"committed the same model again as {again['model_id']}: "
          f"{again['stats']['chunks_new']} new chunks, {again['stats']['bytes_stored']} bytes stored")
    print("\nhistory of demo-forest (newest first):")
    for e in store.log("demo-forest")[:5]:
        print(f"  {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(e.time))}  {e.event:<7} {e.model_id}")
    report = store.fsck()
    print(f"\nfsck: {'clean' if report.ok else report.problems}")


if __name__ == "__main__":
    main()
