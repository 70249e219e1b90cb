"""scikit-learn estimators and pipelines, saved with joblib (kwarg ``model``)."""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from .base import Framework, Saved, class_name, instance_of, library_version


class SklearnFramework(Framework):
    name = "sklearn"
    kwargs = ("model",)
    extra = "sklearn"
    safe_alternative = "download() the files instead of loading them (estimators are stored as joblib pickles)"
    file_name = "model.joblib"

    def matches(self, obj: Any) -> bool:
        return instance_of(obj, "sklearn.base", "BaseEstimator")

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        import joblib

        path = os.path.join(directory, self.file_name)
        joblib.dump(obj, path)  # uncompressed: casstore compresses chunks itself
        return Saved("joblib", {self.file_name: path}, library_version("sklearn"), class_name(obj))

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        import joblib

        return joblib.load(paths[self.file_name])
