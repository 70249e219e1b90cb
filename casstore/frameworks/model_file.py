"""A model that is already a file (kwarg ``model`` given a path).

The file is stored as it is and downloaded, never loaded: ``load`` returns the
path of the downloaded file.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from .base import Framework, Saved


class ModelFileFramework(Framework):
    name = "model_file"
    kwargs = ("model",)
    loads = False

    def matches(self, obj: Any) -> bool:
        return isinstance(obj, (str, os.PathLike))

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        path = os.fspath(obj)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{kwarg}={path!r}: no such file") from None
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(
                f"{kwarg}={path!r} is not a regular file (pass directories as extra_files)"
            )
        return Saved("file", {os.path.basename(path): path}, {}, "file")

    def load(self, paths: dict[str, str], cls: str, format: str) -> Any:
        (path,) = paths.values()
        return path
