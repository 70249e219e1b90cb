"""ONNX models (kwarg ``model``, an ``onnx.ModelProto``), as ``model.onnx``.

An ONNX file is a protobuf graph of standard operators: loading it runs no code.
It is parsed from its bytes, never from a path, so a hostile model's
external-data references cannot make the loader read files outside the store;
a model that needs external data is refused.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from ..errors import CorruptObjectError
from .base import Framework, Saved, class_name, instance_of, library_version, read_bytes, require

FORMAT = "onnx"


class OnnxFramework(Framework):
    name = "onnx"
    kwargs = ("model",)
    extra = "onnx"
    data_formats = (FORMAT,)
    file_name = "model.onnx"

    def matches(self, obj: Any) -> bool:
        return instance_of(obj, "onnx", "ModelProto")

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        path = os.path.join(directory, self.file_name)
        with open(path, "wb") as f:
            f.write(obj.SerializeToString())
        return Saved(FORMAT, {self.file_name: path}, library_version("onnx"), class_name(obj))

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        if format != FORMAT:
            raise CorruptObjectError(format, "not an onnx format this casstore loads")
        onnx = require("onnx", self.extra)
        from onnx.external_data_helper import uses_external_data

        data = read_bytes(paths[self.file_name])
        model = onnx.load_model_from_string(data)
        for t in onnx.external_data_helper._get_all_tensors(model):
            if uses_external_data(t):
                raise CorruptObjectError(self.file_name, f"tensor {t.name!r} refers to external data")
        return model
