"""Frameworks whose formats are data only: numpy arrays, LightGBM, ONNX."""

from __future__ import annotations

import io

import numpy as np
import pytest

import casstore
from casstore.errors import CorruptObjectError, FrameworkError
from casstore.frameworks import resolve
from casstore.frameworks.onnx import OnnxFramework


def test_numpy_arrays_round_trip_as_safetensors(store: casstore.Store) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "weights": rng.normal(size=(30, 7)).astype(np.float32),
        "strided": rng.normal(size=(10, 10))[::2, ::3],  # not contiguous
        "ids": np.arange(12, dtype=np.int64).reshape(3, 4),
        "mask": rng.random(9) > 0.5,
        "half": np.linspace(0, 1, 5, dtype=np.float16),
        "empty": np.zeros((0, 3), dtype=np.uint8),
    }
    meta = store.commit_models("np", arrays=arrays, model_id="a")
    assert meta["frameworks"]["arrays"] | {"files": None} == {
        "framework": "numpy", "class": "dict", "format": "safetensors", "files": None,
        "library": {"name": "numpy", "version": np.__version__}, "executes_code": False}
    out = store.load("np", "a", allow_pickle=False)
    assert list(out) == list(arrays)
    for k, a in arrays.items():
        assert out[k].dtype == a.dtype and out[k].shape == a.shape, k
        np.testing.assert_array_equal(out[k], a)


def test_numpy_arrays_that_safetensors_cannot_hold_are_refused(store: casstore.Store) -> None:
    with pytest.raises(FrameworkError, match=r"arrays\['names'\]: safetensors cannot store dtype <U3"):
        store.commit_models("np", arrays={"ok": np.ones(2), "names": np.array(["abc"])}, model_id="bad")
    with pytest.raises(TypeError, match="no framework recognises it"):
        store.commit_models("np", arrays={"a": [1, 2]}, model_id="bad")
    assert not store.model_exists("np", "bad")


def _lgb_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 5))
    return X, (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int)


def test_lightgbm_booster_round_trips_as_model_text(store: casstore.Store) -> None:
    import lightgbm

    X, y = _lgb_data()
    booster = lightgbm.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1},
                             lightgbm.Dataset(X, label=y), num_boost_round=15)
    meta = store.commit_models("lgb", model=booster, model_id="b")
    assert [f["path"] for f in meta["files"]] == ["model.txt"]
    assert (meta["frameworks"]["model"]["format"], meta["frameworks"]["model"]["executes_code"]) == (
        "lightgbm-text", False)
    loaded = store.load("lgb", "b", allow_pickle=False)
    assert type(loaded) is lightgbm.Booster
    np.testing.assert_array_equal(loaded.predict(X), booster.predict(X))


def test_lightgbm_sklearn_wrapper_goes_to_sklearn_and_its_booster_to_lightgbm() -> None:
    """As in modelstore: the wrapper is a scikit-learn estimator (joblib); its
    booster_ is LightGBM's own data format (the table in docs/frameworks.md)."""
    import lightgbm

    X, y = _lgb_data()
    clf = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(X, y)
    assert resolve("model", clf).name == "sklearn"
    assert resolve("model", clf.booster_).name == "lightgbm"


def _onnx_model(w: np.ndarray, b: np.ndarray) -> object:
    """y = relu(x @ w + b), built from ONNX operators (no exporter needed)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["z"]),
         helper.make_node("Relu", ["z"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, w.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, w.shape[1]])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _run(model: object, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    sess = onnxruntime.InferenceSession(model.SerializeToString(),  # type: ignore[attr-defined]
                                        providers=["CPUExecutionProvider"])
    return sess.run(["y"], {"x": x})[0]  # type: ignore[no-any-return]


def test_onnx_model_round_trips_and_runs_the_same(store: casstore.Store) -> None:
    import onnx

    rng = np.random.default_rng(5)
    w = rng.normal(size=(6, 3)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    model = _onnx_model(w, b)
    meta = store.commit_models("onnx", model=model, model_id="m")
    assert (meta["frameworks"]["model"]["framework"], meta["frameworks"]["model"]["executes_code"]) == (
        "onnx", False)
    loaded = store.load("onnx", "m", allow_pickle=False)
    assert isinstance(loaded, onnx.ModelProto)
    assert loaded == model
    x = rng.normal(size=(8, 6)).astype(np.float32)
    np.testing.assert_array_equal(_run(loaded, x), _run(model, x))


def test_onnx_model_with_external_data_is_refused(tmp_path: object) -> None:
    """A model pointing at an outside file must not make load read it."""
    from onnx.external_data_helper import set_external_data

    model = _onnx_model(np.ones((2, 2), np.float32), np.zeros(2, np.float32))
    w = model.graph.initializer[0]  # type: ignore[attr-defined]
    set_external_data(w, location="../../../etc/passwd")
    w.ClearField("raw_data")
    w.data_location = 1  # EXTERNAL
    data = model.SerializeToString()  # type: ignore[attr-defined]
    with pytest.raises(CorruptObjectError, match="tensor 'w' refers to external data"):
        OnnxFramework().load({"model.onnx": io.BytesIO(data)}, "onnx.onnx_ml_pb2.ModelProto", "onnx")


def test_data_frameworks_next_to_each_other_under_allow_pickle_false(store: casstore.Store) -> None:
    """One commit: an ONNX model, numpy arrays and a pytorch optimizer (three frameworks)."""
    import torch

    w = np.eye(3, dtype=np.float32)
    model = _onnx_model(w, np.zeros(3, np.float32))
    opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(3))], lr=0.1, momentum=0.9)
    store.commit_models("mix", model=model, arrays={"w": w}, optimizer=opt, model_id="m")
    out = store.load("mix", "m", allow_pickle=False)
    assert set(out) == {"onnx", "numpy", "pytorch"}
    x = np.ones((1, 3), np.float32)
    np.testing.assert_array_equal(_run(out["onnx"], x), x)
    np.testing.assert_array_equal(out["numpy"]["w"], w)
    assert out["pytorch"]["param_groups"][0]["momentum"] == 0.9


def test_sklearn_as_skops_round_trips_under_allow_pickle_false(store: casstore.Store, iris_model: object) -> None:
    from sklearn.datasets import load_iris

    from casstore.frameworks.sklearn import Skops

    X, _ = load_iris(return_X_y=True)
    meta = store.commit_models("sk", model=Skops(iris_model), arrays={"X": X}, model_id="m")
    assert [f["path"] for f in meta["files"]] == ["model.skops", "arrays.safetensors"]
    entry = meta["frameworks"]["model"]
    assert (entry["framework"], entry["format"], entry["executes_code"]) == ("sklearn", "skops", False)
    assert entry["class"] == "sklearn.linear_model._logistic.LogisticRegression"
    out = store.load("sk", "m", allow_pickle=False)
    assert type(out["sklearn"]) is type(iris_model)
    np.testing.assert_array_equal(out["sklearn"].predict_proba(X), iris_model.predict_proba(X))  # type: ignore[attr-defined]


def test_skops_types_outside_the_trusted_list_are_refused(store: casstore.Store, forest: tuple) -> None:
    """A forest's tree arrays are indexed without bounds checks: skops does not trust
    them by default, and neither does load."""
    from casstore.frameworks.sklearn import Skops

    store.commit_models("sk", model=Skops(forest[0]), model_id="forest")
    with pytest.raises(FrameworkError, match=r"types skops does not trust by default: sklearn\.tree\._tree\.Tree"):
        store.load("sk", "forest")
