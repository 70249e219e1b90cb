"""shap explainers, saved with joblib (kwarg ``explainer``)."""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from .base import Framework, Saved, class_name, instance_of, library_version


class ShapFramework(Framework):
    name = "shap"
    kwargs = ("explainer",)
    extra = "shap"
    safe_alternative = "download() the files; shap explainers have no data-only format"
    file_name = "explainer.joblib"

    def matches(self, obj: Any) -> bool:
        return instance_of(obj, "shap", "Explainer") or type(obj).__module__.startswith("shap.")

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        import joblib

        path = os.path.join(directory, self.file_name)
        joblib.dump(obj, path)
        return Saved("joblib", {self.file_name: path}, library_version("shap"), class_name(obj))

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        import joblib

        return joblib.load(paths[self.file_name])
