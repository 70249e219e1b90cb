"""Prophet forecasters (kwarg ``model``), as Prophet's own JSON (``model_to_json``).

The JSON holds the fitted parameters, the training history and the settings;
``model_from_json`` rebuilds the model with ``json.loads`` and pandas' JSON
reader: loading it runs no code from the store.  The Stan fit object itself is
not kept (Prophet's serialiser drops it), which ``predict`` does not need.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from ..errors import CorruptObjectError
from .base import Framework, Saved, class_name, instance_of, library_version, read_bytes, require

FORMAT = "prophet-json"


class ProphetFramework(Framework):
    name = "prophet"
    kwargs = ("model",)
    extra = "prophet"
    data_formats = (FORMAT,)
    file_name = "model.prophet.json"

    def matches(self, obj: Any) -> bool:
        return instance_of(obj, "prophet", "Prophet")

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        serialize = require("prophet.serialize", self.extra)
        path = os.path.join(directory, self.file_name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(serialize.model_to_json(obj))  # raises for a model that was never fitted
        return Saved(FORMAT, {self.file_name: path}, library_version("prophet"), class_name(obj))

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        if format != FORMAT:
            raise CorruptObjectError(format, "not a prophet format this casstore loads")
        serialize = require("prophet.serialize", self.extra)
        return serialize.model_from_json(read_bytes(paths[self.file_name]).decode("utf-8"))
