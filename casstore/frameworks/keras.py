"""Keras 3 models (kwarg ``model``), as ``model.keras``, loaded with ``safe_mode=True``.

A ``.keras`` file is a zip of the model's config (JSON) and weights (HDF5).  With
``safe_mode=True`` Keras refuses to deserialise Python lambdas, the one part of the
format that is code; custom layers must be registered by the caller
(``keras.saving.register_keras_serializable``), as for any Keras load.  Keras
reads its backend from ``KERAS_BACKEND`` when first imported: set it (``torch``,
``jax``, ``tensorflow``) before casstore loads a model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, BinaryIO

from ..errors import CorruptObjectError, FrameworkError
from .base import Framework, Saved, class_name, instance_of, library_version, require

FORMAT = "keras"


class KerasFramework(Framework):
    name = "keras"
    kwargs = ("model",)
    # under KERAS_BACKEND=torch a Keras model is also a torch.nn.Module
    overrides = ("pytorch",)
    extra = "keras"
    data_formats = (FORMAT,)
    file_name = "model.keras"

    def matches(self, obj: Any) -> bool:
        return instance_of(obj, "keras", "Model")

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        path = os.path.join(directory, self.file_name)
        obj.save(path)
        return Saved(FORMAT, {self.file_name: path}, library_version("keras"), class_name(obj))

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        if format != FORMAT:
            raise CorruptObjectError(format, "not a keras format this casstore loads")
        try:
            keras = require("keras", self.extra)
        except FrameworkError as e:
            if os.environ.get("KERAS_BACKEND"):
                raise
            # Keras itself is there but its default backend (tensorflow) is not
            raise FrameworkError(f"{e}; Keras imports tensorflow unless KERAS_BACKEND names another "
                                 "backend (torch, jax): set it before loading") from None
        src = paths[self.file_name]
        if isinstance(src, str):
            return keras.saving.load_model(src, safe_mode=True)
        # Keras opens .keras files by path only: spool the verified bytes to a private file
        with tempfile.TemporaryDirectory(prefix="casstore-keras-") as d:
            path = os.path.join(d, self.file_name)
            with open(path, "wb") as f:
                shutil.copyfileobj(src, f)
            return keras.saving.load_model(path, safe_mode=True)
