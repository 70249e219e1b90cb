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
            "print(sorted(m for m in ('sklearn', 'shap', 'joblib') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
