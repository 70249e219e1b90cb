"""CatBoost models (kwarg ``model``), in CatBoost's own binary format (``model.cbm``).

The ``.cbm`` file holds the trees and parameters: loading it runs no code.  The
class to rebuild comes from the manifest, which may be hostile, so only the model
classes catboost itself defines are accepted.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from ..errors import CorruptObjectError
from .base import Framework, Saved, class_name, instance_of, library_version, require

FORMAT = "cbm"
CLASSES = ("CatBoost", "CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker")


class CatBoostFramework(Framework):
    name = "catboost"
    kwargs = ("model",)
    # a CatBoost wrapper may pass for a scikit-learn estimator: store it as data
    overrides = ("sklearn",)
    extra = "catboost"
    data_formats = (FORMAT,)
    file_name = "model.cbm"

    def matches(self, obj: Any) -> bool:
        return instance_of(obj, "catboost", "CatBoost")

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        path = os.path.join(directory, self.file_name)
        obj.save_model(path, format="cbm")
        return Saved(FORMAT, {self.file_name: path}, library_version("catboost"), class_name(obj))

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        if format != FORMAT:
            raise CorruptObjectError(format, "not a catboost format this casstore loads")
        catboost = require("catboost", self.extra)
        module, _, name = cls.rpartition(".")
        if not module.startswith("catboost") or name not in CLASSES:
            raise CorruptObjectError(cls, "not a CatBoost model class")
        model = getattr(catboost, name)()
        src = paths[self.file_name]
        if isinstance(src, str):
            model.load_model(src, format="cbm")
        else:
            model.load_model(blob=src.read())
        return model
