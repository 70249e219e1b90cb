"""Plain numpy arrays (kwarg ``arrays``: a dict of name -> array), as safetensors.

safetensors holds a JSON header and the raw little-endian bytes of each array:
loading runs no code.  Arrays of dtypes safetensors has no name for (object,
strings, complex, structured) are refused when committing, naming the array.
"""

from __future__ import annotations

import json
import os
from typing import Any, BinaryIO

from ..errors import CorruptObjectError, FrameworkError
from .base import Framework, Saved, instance_of, library_version, read_bytes, require

FORMAT = "safetensors"
ORDER_KEY = "casstore.order"


def _in_order(arrays: dict[str, Any], data: bytes) -> dict[str, Any]:
    """``arrays`` in the order the header's metadata records, if it records a valid one."""
    try:
        n = int.from_bytes(data[:8], "little")
        order = json.loads(json.loads(data[8 : 8 + n])["__metadata__"][ORDER_KEY])
    except (ValueError, KeyError, TypeError):
        return arrays
    if not isinstance(order, list) or sorted(order) != sorted(arrays):
        return arrays
    return {k: arrays[k] for k in order}


class NumpyArraysFramework(Framework):
    name = "numpy"
    kwargs = ("arrays",)
    extra = "numpy"
    data_formats = (FORMAT,)
    file_name = "arrays.safetensors"

    def matches(self, obj: Any) -> bool:
        return (isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) for k in obj)
                and all(instance_of(v, "numpy", "ndarray") for v in obj.values()))

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        import numpy as np

        save_file = require("safetensors.numpy", self.extra).save_file

        arrays = {}
        for name, a in obj.items():
            if a.dtype.kind not in "biuf":
                raise FrameworkError(f"{kwarg}[{name!r}]: safetensors cannot store dtype {a.dtype}")
            arrays[name] = np.ascontiguousarray(a)
        path = os.path.join(directory, self.file_name)
        try:
            # safetensors sorts its tensors: the order the caller gave goes in the header
            save_file(arrays, path, metadata={ORDER_KEY: json.dumps(list(arrays))})
        except Exception as e:  # an unsupported dtype (float128 ...) the check above let through
            raise FrameworkError(f"{kwarg}: safetensors could not store the arrays: {e}") from e
        return Saved(FORMAT, {self.file_name: path}, library_version("numpy"), "dict")

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        if format != FORMAT:
            raise CorruptObjectError(format, "not a numpy format this casstore loads")
        require("numpy", self.extra)
        load_arrays = require("safetensors.numpy", self.extra).load
        data = read_bytes(paths[self.file_name])
        return _in_order(load_arrays(data), data)
