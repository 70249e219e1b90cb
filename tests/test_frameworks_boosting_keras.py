"""CatBoost (.cbm) and Keras 3 (.keras, loaded with safe_mode=True)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Keras picks its backend at first import (torch is the one installed for the tests)
# and writes keras.json under KERAS_HOME: keep that out of the developer's home
os.environ.setdefault("KERAS_BACKEND", "torch")
if "KERAS_HOME" not in os.environ:
    os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="casstore-test-keras-")
    atexit.register(shutil.rmtree, os.environ["KERAS_HOME"], True)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import casstore  # noqa: E402
from casstore.errors import CorruptObjectError  # noqa: E402
from casstore.frameworks import resolve  # noqa: E402
from casstore.frameworks.catboost import CatBoostFramework  # noqa: E402


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 4))
    return X, (X[:, 0] - X[:, 2] > 0).astype(int)


def test_catboost_round_trips_as_cbm_and_writes_nothing_in_the_cwd(
        store: casstore.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import catboost

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    X, y = _data()
    clf = catboost.CatBoostClassifier(iterations=20, depth=3, verbose=0, allow_writing_files=False,
                                      thread_count=1, random_seed=0).fit(X, y)
    reg = catboost.CatBoostRegressor(iterations=10, verbose=0, allow_writing_files=False,
                                     thread_count=1).fit(X, X[:, 1])
    assert resolve("model", clf).name == "catboost"
    meta = store.commit_models("cb", model=clf, arrays={"X": X}, model_id="clf")
    assert (meta["frameworks"]["model"]["format"], meta["frameworks"]["model"]["executes_code"]) == ("cbm", False)
    out = store.load("cb", "clf", allow_pickle=False)
    assert type(out["catboost"]) is catboost.CatBoostClassifier
    np.testing.assert_array_equal(out["catboost"].predict_proba(X), clf.predict_proba(X))
    store.commit_models("cb", model=reg, model_id="reg")
    again = store.load("cb", "reg", allow_pickle=False)
    assert type(again) is catboost.CatBoostRegressor
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))
    assert os.listdir(cwd) == []  # no catboost_info/ left behind


def test_catboost_load_refuses_a_class_catboost_does_not_define() -> None:
    with pytest.raises(CorruptObjectError, match="not a CatBoost model class"):
        CatBoostFramework().load({"model.cbm": "/nonexistent"}, "builtins.eval", "cbm")


def _keras_model() -> object:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    X, y = _data()
    model.fit(X, y, epochs=2, batch_size=32, verbose=0)
    return model


def test_keras_model_round_trips_as_dot_keras(store: casstore.Store) -> None:
    import keras

    X, _ = _data()
    model = _keras_model()
    meta = store.commit_models("k", model=model, model_id="m")
    assert [f["path"] for f in meta["files"]] == ["model.keras"]
    assert (meta["frameworks"]["model"]["format"], meta["frameworks"]["model"]["executes_code"]) == (
        "keras", False)
    loaded = store.load("k", "m", allow_pickle=False)
    assert isinstance(loaded, keras.Model)
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))  # type: ignore[attr-defined]


def test_keras_lambda_layers_are_refused_by_safe_mode(store: casstore.Store) -> None:
    """A Lambda layer is Python code in the file: safe_mode refuses to rebuild it."""
    import keras

    from casstore.errors import FrameworkError

    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2)])
    store.commit_models("k", model=model, model_id="lambda")
    with pytest.raises(FrameworkError, match="safe_mode"):
        store.load("k", "lambda")


def test_keras_without_a_backend_says_to_set_keras_backend(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("from casstore.frameworks.keras import KerasFramework\n"
            "try:\n    KerasFramework().load({'model.keras': '/nonexistent'}, 'keras.Sequential', 'keras')\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"} | {"KERAS_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.startswith("FrameworkError keras is not installed"), out
    assert "KERAS_BACKEND names another backend (torch, jax)" in out


def test_keras_with_a_known_safe_mode_bypass_counts_as_code(store: casstore.Store,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """issue 20 item 1 (the audit of every loader): a crafted .keras file runs code through
    Keras < 3.12 even under safe_mode, so with such a Keras installed a keras entry is
    refused under allow_pickle=False, naming the version to upgrade to."""
    from casstore.errors import PickleRefusedError
    from casstore.frameworks import keras as keras_framework

    store.commit_models("k", model=_keras_model(), model_id="m")
    monkeypatch.setattr(keras_framework, "_installed_version", lambda: "3.10.0")
    assert store.get_model_info("k", "m")["frameworks"]["model"]["executes_code"] is True
    with pytest.raises(PickleRefusedError, match=r"upgrade Keras \(installed: 3.10.0\) to 3.12"):
        store.load("k", "m", allow_pickle=False)
    monkeypatch.setattr(keras_framework, "_installed_version", lambda: "3.12.0")
    assert store.get_model_info("k", "m")["frameworks"]["model"]["executes_code"] is False
    store.load("k", "m", allow_pickle=False)
