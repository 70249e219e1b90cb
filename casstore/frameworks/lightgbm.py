"""LightGBM boosters (kwarg ``model``, a ``lightgbm.Booster``), as LightGBM's model text.

The text format holds the trees and parameters only: loading it runs no code.
As in modelstore, the scikit-learn wrappers (``LGBMClassifier`` ...) are not
claimed here: they are scikit-learn estimators and go to the sklearn framework
(joblib).  Commit ``clf.booster_`` to store one as data.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from ..errors import CorruptObjectError
from .base import Framework, Saved, class_name, instance_of, library_version, require

FORMAT = "lightgbm-text"


class LightGBMFramework(Framework):
    name = "lightgbm"
    kwargs = ("model",)
    extra = "lightgbm"
    data_formats = (FORMAT,)
    file_name = "model.txt"

    def matches(self, obj: Any) -> bool:
        return instance_of(obj, "lightgbm", "Booster")

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        path = os.path.join(directory, self.file_name)
        obj.save_model(path)
        return Saved(FORMAT, {self.file_name: path}, library_version("lightgbm"), class_name(obj))

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        if format != FORMAT:
            raise CorruptObjectError(format, "not a lightgbm format this casstore loads")
        lightgbm = require("lightgbm", self.extra)
        src = paths[self.file_name]
        if isinstance(src, str):
            return lightgbm.Booster(model_file=src)
        return lightgbm.Booster(model_str=src.read().decode("utf-8"))
