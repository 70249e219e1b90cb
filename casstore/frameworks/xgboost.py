"""XGBoost models (kwarg ``model``), in XGBoost's own UBJSON format: never pickled.

Both the native ``xgboost.Booster`` and the scikit-learn wrappers (``XGBClassifier``,
``XGBRegressor``, ...) are saved with ``save_model``, which keeps the trees, the
parameters and the wrapper's attributes (classes, objective).  An XGBoost
wrapper is also a scikit-learn estimator: this framework overrides sklearn's
claim, so such a model is stored as data instead of a pickle, and loading it
from a store you did not fill runs no code.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from ..errors import CorruptObjectError
from .base import Framework, Saved, class_name, instance_of, library_version


class XGBoostFramework(Framework):
    name = "xgboost"
    kwargs = ("model",)
    extra = "xgboost"
    data_formats = ("ubjson",)
    overrides = ("sklearn",)
    file_name = "model.ubj"

    def matches(self, obj: Any) -> bool:
        return instance_of(obj, "xgboost", "Booster") or instance_of(obj, "xgboost.sklearn", "XGBModel")

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        path = os.path.join(directory, self.file_name)
        obj.save_model(path)  # the format follows the extension: UBJSON
        return Saved("ubjson", {self.file_name: path}, library_version("xgboost"), class_name(obj))

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        import xgboost

        src = paths[self.file_name]
        data = src if isinstance(src, str) else bytearray(src.read())
        if cls == "xgboost.core.Booster":
            model: Any = xgboost.Booster()
        else:
            # only the wrapper classes xgboost itself defines: the manifest names the class
            module, _, name = cls.rpartition(".")
            wrapper = getattr(xgboost, name, None) if module.startswith("xgboost") else None
            if not (isinstance(wrapper, type) and issubclass(wrapper, xgboost.XGBModel)):
                raise CorruptObjectError(cls, "not an XGBoost model class")
            model = wrapper()
        model.load_model(data)
        return model
