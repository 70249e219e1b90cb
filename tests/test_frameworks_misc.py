"""prophet (JSON), gensim (word2vec binary / gensim's save), annoy (.ann) and the
store-wide skops setting for scikit-learn."""

from __future__ import annotations

import io
import logging
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import casstore
from casstore.errors import CorruptObjectError, FrameworkError, PickleRefusedError
from casstore.frameworks import resolve
from casstore.frameworks.annoy import AnnoyFramework
from casstore.frameworks.gensim import GensimFramework

# -- prophet ------------------------------------------------------------------


@pytest.fixture(scope="module")
def prophet_model() -> Any:
    """One fit per module: cmdstanpy's optimiser is the slow part."""
    import pandas as pd
    from prophet import Prophet

    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    days = pd.date_range("2024-01-01", periods=42, freq="D")
    y = np.sin(np.arange(42) / 3) + np.arange(42) * 0.1
    m = Prophet(yearly_seasonality=False, daily_seasonality=False, weekly_seasonality=True, uncertainty_samples=0)
    return m.fit(pd.DataFrame({"ds": days, "y": y}))


def test_prophet_round_trips_as_json_next_to_arrays(store: casstore.Store, prophet_model: Any) -> None:
    from prophet import Prophet

    w = np.arange(6.0)
    assert resolve("model", prophet_model).name == "prophet"
    meta = store.commit_models("fc", model=prophet_model, arrays={"w": w}, model_id="m")
    entry = meta["frameworks"]["model"]
    assert (entry["framework"], entry["format"], entry["executes_code"]) == ("prophet", "prophet-json", False)
    assert entry["library"]["name"] == "prophet" and entry["library"]["version"]
    assert [f["path"] for f in meta["files"]] == ["model.prophet.json", "arrays.safetensors"]
    out = store.load("fc", "m", allow_pickle=False)
    assert type(out["prophet"]) is Prophet
    future = prophet_model.make_future_dataframe(periods=7)
    np.testing.assert_array_equal(out["prophet"].predict(future)["yhat"].to_numpy(),
                                  prophet_model.predict(future)["yhat"].to_numpy())
    np.testing.assert_array_equal(out["numpy"]["w"], w)


def test_an_unfitted_prophet_is_refused_when_committing(store: casstore.Store) -> None:
    from prophet import Prophet

    with pytest.raises(ValueError, match="fit"):
        store.commit_models("fc", model=Prophet(), model_id="unfitted")
    assert not store.model_exists("fc", "unfitted")


# -- gensim -------------------------------------------------------------------

_SENTENCES = [["cat", "sat", "on", "the", "mat"], ["dog", "sat", "on", "the", "log"],
              ["cat", "and", "dog", "are", "friends"], ["the", "mat", "is", "red"]] * 5


@pytest.fixture(scope="module")
def word2vec() -> Any:
    from gensim.models import Word2Vec

    return Word2Vec(_SENTENCES, vector_size=8, min_count=1, seed=1, workers=1, epochs=3)


def test_gensim_word2vec_is_stored_with_gensims_save_and_counts_as_code(store: casstore.Store,
                                                                       word2vec: Any) -> None:
    from gensim.models import Word2Vec

    meta = store.commit_models("g", model=word2vec, arrays={"w": np.ones(2)}, model_id="w2v")
    entry = meta["frameworks"]["model"]
    assert (entry["format"], entry["executes_code"]) == ("gensim-pickle", True)
    assert "model.gensim" in entry["files"]
    with pytest.raises(PickleRefusedError, match=r"entry model=gensim is stored as gensim-pickle") as ei:
        store.load("g", "w2v", allow_pickle=False)
    assert "model=w2v.wv" in ei.value.alternative
    out = store.load("g", "w2v")
    assert type(out["gensim"]) is Word2Vec
    assert out["gensim"].wv.index_to_key == word2vec.wv.index_to_key
    np.testing.assert_array_equal(out["gensim"].wv.vectors, word2vec.wv.vectors)
    assert out["gensim"].wv.most_similar("cat", topn=3) == word2vec.wv.most_similar("cat", topn=3)


def test_gensim_large_arrays_stored_beside_the_pickle_load_back(store: casstore.Store) -> None:
    """gensim's save writes arrays of 10 Mi elements or more as separate .npy files: they
    are entry files too (float16 vectors: not word2vec-binary, and only 20 MiB)."""
    from gensim.models import KeyedVectors

    n, size = 10240, 1024  # 10 Mi elements: gensim's sep_limit
    big = KeyedVectors(size, dtype=np.float16)
    big.add_vectors([f"w{i}" for i in range(n)], (np.arange(n * size) % 251).astype(np.float16).reshape(n, size))
    meta = store.commit_models("g", model=big, model_id="big")
    assert meta["frameworks"]["model"]["files"] == ["model.gensim", "model.gensim.vectors.npy"]
    out = store.load("g", "big")
    assert out.index_to_key == big.index_to_key
    np.testing.assert_array_equal(out.vectors, big.vectors)


def test_gensim_keyed_vectors_are_stored_as_word2vec_binary_data(store: casstore.Store, word2vec: Any,
                                                                tmp_path: Path) -> None:
    from gensim.models import KeyedVectors

    kv = word2vec.wv
    meta = store.commit_models("g", model=kv, arrays={"w": np.ones(2)}, model_id="kv")
    entry = meta["frameworks"]["model"]
    assert (entry["format"], entry["executes_code"], entry["files"]) == ("word2vec-binary", False, ["model.w2v.bin"])
    out = store.load("g", "kv", allow_pickle=False)
    np.testing.assert_array_equal(out["numpy"]["w"], np.ones(2))
    loaded = out["gensim"]
    assert type(loaded) is KeyedVectors
    assert loaded.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(loaded.vectors, kv.vectors)
    assert loaded.most_similar("dog", topn=3) == kv.most_similar("dog", topn=3)
    # the file is the C tool's format: gensim's own reader gives the same vectors
    path = store.download(str(tmp_path / "dl"), "g", "kv")
    theirs = KeyedVectors.load_word2vec_format(str(Path(path) / "model.w2v.bin"), binary=True)
    assert theirs.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(theirs.vectors, kv.vectors)


def test_keyed_vectors_the_format_cannot_hold_fall_back_to_gensims_save(store: casstore.Store) -> None:
    from gensim.models import KeyedVectors

    spaced = KeyedVectors(3)
    spaced.add_vectors(["new york", "paris"], np.eye(2, 3, dtype=np.float32))
    wide = KeyedVectors(3, dtype=np.float64)
    wide.add_vectors(["a", "b"], np.eye(2, 3))
    for kv, mid in ((spaced, "spaced"), (wide, "f64")):
        meta = store.commit_models("g", model=kv, model_id=mid)
        assert meta["frameworks"]["model"]["format"] == "gensim-pickle", mid
        out = store.load("g", mid)
        assert out.index_to_key == kv.index_to_key
        np.testing.assert_array_equal(out.vectors, kv.vectors)


@pytest.mark.parametrize(("data", "detail"), [
    (b"99999999 300\nx " + b"\0" * 1200, "more than the file holds"),
    (b"2 1\na \0\0\0\0b ", "entry 1 is truncated"),
    (b"1 1\na \0\0\0\0junk", "bytes after the last vector"),
    (b"2 1\na \0\0\0\0a \0\0\0\0", "a key appears twice"),
    (b"<html>", "no word2vec header"),
])
def test_a_hostile_word2vec_file_is_refused_before_allocating(data: bytes, detail: str) -> None:
    import gensim  # noqa: F401

    with pytest.raises(CorruptObjectError, match=detail):
        GensimFramework().load({"model.w2v.bin": io.BytesIO(data)}, "gensim.models.keyedvectors.KeyedVectors",
                               "word2vec-binary")


def test_gensim_load_refuses_file_names_its_save_never_writes() -> None:
    paths: dict[str, Any] = {"model.gensim": io.BytesIO(b""), "../evil.npy": io.BytesIO(b"")}
    with pytest.raises(CorruptObjectError, match="not a file name gensim's save writes"):
        GensimFramework().load(paths, "gensim.models.word2vec.Word2Vec", "gensim-pickle")


# -- annoy --------------------------------------------------------------------


def _annoy_index(metric: str = "angular", f: int = 6, trees: int = 4) -> Any:
    from annoy import AnnoyIndex

    rng = np.random.default_rng(3)
    index = AnnoyIndex(f, metric)
    index.set_seed(1)
    for i in range(80):
        index.add_item(i, rng.normal(size=f).tolist())
    index.build(trees, n_jobs=1)
    return index


def test_annoy_round_trips_with_its_metric_and_dimension(store: casstore.Store) -> None:
    from annoy import AnnoyIndex

    index = _annoy_index("euclidean")
    expected = [index.get_nns_by_item(i, 5) for i in range(10)]
    meta = store.commit_models("nn", model=index, metric="euclidean", num_trees=4, arrays={"w": np.ones(3)},
                               model_id="m")
    entry = meta["frameworks"]["model"]
    assert (entry["framework"], entry["format"], entry["executes_code"]) == ("annoy", "annoy", False)
    assert entry["files"] == ["model.ann", "model.ann.json"]
    assert set(meta["frameworks"]) == {"model", "arrays"}  # metric= and num_trees= are not entries
    assert [index.get_nns_by_item(i, 5) for i in range(10)] == expected  # the caller's index still works
    out = store.load("nn", "m", allow_pickle=False)
    loaded = out["annoy"]
    assert type(loaded) is AnnoyIndex and loaded.f == 6 and loaded.get_n_trees() == 4
    assert [loaded.get_nns_by_item(i, 5) for i in range(10)] == expected
    params = store.read_file("nn", "m", "model.ann.json")
    assert b'"metric": "euclidean"' in params and b'"f": 6' in params


def test_annoy_needs_its_metric_and_its_parameters_need_an_index(store: casstore.Store,
                                                                iris_model: object) -> None:
    index = _annoy_index()
    with pytest.raises(TypeError, match=r"needs the metric \(angular, euclidean"):
        store.commit_models("nn", model=index)
    with pytest.raises(TypeError, match="metric='cosine' is not one of"):
        store.commit_models("nn", model=index, metric="cosine")
    with pytest.raises(TypeError, match="num_trees=9 but the index was built with 4 trees"):
        store.commit_models("nn", model=index, metric="angular", num_trees=9)
    with pytest.raises(TypeError, match=r"metric=, num_trees= describe an annoy index, but model= is sklearn"):
        store.commit_models("nn", model=iris_model, metric="angular", num_trees=4)


def test_annoy_load_refuses_a_file_that_does_not_match_its_parameters() -> None:
    import annoy  # noqa: F401

    bad_params = {"model.ann": io.BytesIO(b""), "model.ann.json": io.BytesIO(b'{"f": -1, "metric": "angular", '
                                                                            b'"n_items": 0}')}
    with pytest.raises(CorruptObjectError, match="f=-1"):
        AnnoyFramework().load(bad_params, "annoy.Annoy", "annoy")
    odd = {"model.ann": io.BytesIO(b"\1" * 7),
           "model.ann.json": io.BytesIO(b'{"f": 6, "metric": "angular", "num_trees": 1, "n_items": 1}')}
    with pytest.raises(CorruptObjectError, match="annoy cannot load it"):
        AnnoyFramework().load(odd, "annoy.Annoy", "annoy")


# -- the store-wide skops setting ---------------------------------------------


def test_the_sklearn_format_setting_stores_estimators_with_skops(tmp_path: Path, iris_model: Any) -> None:
    import xgboost
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    with casstore.open(tmp_path / "s") as s:
        assert s.sklearn_format == "joblib"
    subprocess.run(["git", "config", "-f", str(tmp_path / "s" / "config"), "cas.sklearnFormat", "skops"], check=True)
    with casstore.open(tmp_path / "s") as s:
        assert s.sklearn_format == "skops"
        xgb = xgboost.XGBClassifier(n_estimators=2, max_depth=2).fit(X, y)
        meta = s.commit_models("sk", model=iris_model, model_id="lr")
        assert (meta["frameworks"]["model"]["format"], meta["frameworks"]["model"]["executes_code"]) == (
            "skops", False)
        np.testing.assert_array_equal(s.load("sk", "lr", allow_pickle=False).predict_proba(X),
                                      iris_model.predict_proba(X))
        # an estimator another framework stores as data is not taken from it
        assert s.commit_models("sk", model=xgb, model_id="xgb")["frameworks"]["model"]["framework"] == "xgboost"
        s.sklearn_format = "joblib"  # for this open store only
        assert s.commit_models("sk", model=iris_model, model_id="lr2")["frameworks"]["model"]["format"] == "joblib"


def test_under_the_skops_setting_a_forest_warns_at_commit_what_load_will_refuse(
        store: casstore.Store, forest: tuple[Any, np.ndarray]) -> None:
    store.sklearn_format = "skops"
    with pytest.warns(UserWarning, match=r"load\(\) will refuse it"):
        store.commit_models("sk", model=forest[0], model_id="forest")
    with pytest.raises(FrameworkError, match=r"sklearn\.tree\._tree\.Tree"):
        store.load("sk", "forest")
    store.sklearn_format = "joblib"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # joblib has no trusted list: nothing to warn about
        store.commit_models("sk", model=forest[0], model_id="forest-joblib")


def test_an_unknown_sklearn_format_setting_is_refused_naming_it(store: casstore.Store, iris_model: Any) -> None:
    store.sklearn_format = "pickle"
    with pytest.raises(FrameworkError, match=r"sklearnFormat = 'pickle': the store setting must be joblib or skops"):
        store.commit_models("sk", model=iris_model, model_id="m")
    assert not store.model_exists("sk", "m")
    # a commit without a scikit-learn estimator does not need the setting
    store.commit_models("sk", arrays={"a": np.ones(2)}, model_id="arrays")


def test_importing_casstore_imports_none_of_these_libraries() -> None:
    import sys

    libs = ("prophet", "gensim", "annoy", "pyspark", "skops")
    code = f"import sys, casstore, casstore.cli; print(sorted(m for m in {libs!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
