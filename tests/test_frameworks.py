"""The framework plug-in layer: resolution, ambiguity, lazy imports."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, BinaryIO

import pytest

from casstore import frameworks
from casstore.errors import FrameworkError
from casstore.frameworks.base import Framework, Saved


class _Claims(Framework):
    kwargs = ("model",)

    def __init__(self, name: str, overrides: tuple[str, ...] = ()) -> None:
        self.name = name  # type: ignore[misc]
        self.overrides = overrides  # type: ignore[misc]

    def matches(self, obj: Any) -> bool:
        return isinstance(obj, dict)

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        raise NotImplementedError

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        raise NotImplementedError


def test_two_claimants_without_precedence_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frameworks, "FRAMEWORKS", [*frameworks.FRAMEWORKS, _Claims("a"), _Claims("b")])
    with pytest.raises(FrameworkError, match="a, b all claim"):
        frameworks.resolve("model", {})


def test_more_specific_framework_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    specific = _Claims("xgb", overrides=("a",))
    monkeypatch.setattr(frameworks, "FRAMEWORKS", [_Claims("a"), specific])
    assert frameworks.resolve("model", {}) is specific


def test_sklearn_estimator_resolves_to_sklearn(iris_model: object) -> None:
    assert frameworks.resolve("model", iris_model).name == "sklearn"
    assert frameworks.resolve("model", "/some/path.onnx").name == "model_file"


def test_importing_casstore_imports_no_ml_library() -> None:
    code = ("import sys, casstore, casstore.cli; "
            "print(sorted(m for m in ('sklearn', 'shap', 'joblib', 'xgboost') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_xgboost_models_round_trip_as_data_not_pickles(store: Any) -> None:
    """XGBClassifier is also an sklearn estimator: xgboost overrides sklearn and stores
    UBJSON; the wrapper and a bare Booster load back with identical predictions."""
    import numpy as np
    import xgboost
    from sklearn.datasets import make_classification

    X, y = make_classification(400, 6, random_state=1)
    clf = xgboost.XGBClassifier(n_estimators=12, max_depth=3).fit(X, y)
    assert frameworks.resolve("model", clf).name == "xgboost"
    meta = store.commit_models("xgb", model=clf, model_id="clf")
    assert [f["path"] for f in meta["files"]] == ["model.ubj"]
    loaded = store.load("xgb", "clf")
    assert type(loaded) is xgboost.XGBClassifier
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert list(loaded.classes_) == [0, 1]

    booster = clf.get_booster()
    store.commit_models("xgb", model=booster, model_id="booster")
    again = store.load("xgb", "booster")
    assert type(again) is xgboost.Booster
    d = xgboost.DMatrix(X)
    np.testing.assert_array_equal(again.predict(d), booster.predict(d))
    info = store.get_model_info("xgb", "booster")["frameworks"]["model"]
    assert (info["framework"], info["format"], info["class"]) == ("xgboost", "ubjson", "xgboost.core.Booster")


def test_xgboost_load_refuses_a_class_that_is_not_xgboost(store: Any) -> None:
    from casstore.errors import CorruptObjectError
    from casstore.frameworks.xgboost import XGBoostFramework

    with pytest.raises(CorruptObjectError, match="not an XGBoost model class"):
        XGBoostFramework().load({"model.ubj": "/nonexistent"}, "os.system", "ubjson")
