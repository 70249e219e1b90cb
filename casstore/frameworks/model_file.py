"""Models that are already files (kwarg ``model`` given a path or a list of paths).

The files are stored as they are and downloaded, never loaded: ``load`` returns
the path of the downloaded file (a list of paths when several were given).
"""

from __future__ import annotations

import os
import stat
from typing import Any, BinaryIO

from ..errors import FrameworkError
from .base import Framework, Saved


def _paths(obj: Any) -> list[str] | None:
    if isinstance(obj, (str, os.PathLike)):
        return [os.fspath(obj)]
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(p, (str, os.PathLike)) for p in obj):
        return [os.fspath(p) for p in obj]
    return None


class ModelFileFramework(Framework):
    name = "model_file"
    kwargs = ("model",)
    data_formats = ("file",)
    loads = False

    def matches(self, obj: Any) -> bool:
        return _paths(obj) is not None

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        files: dict[str, str] = {}
        for path in _paths(obj) or []:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise FileNotFoundError(f"{kwarg}={path!r}: no such file") from None
            if not stat.S_ISREG(st.st_mode):
                raise IsADirectoryError(
                    f"{kwarg}={path!r} is not a regular file (pass directories as extra_files)"
                )
            name = os.path.basename(path)
            if name in files:
                raise FrameworkError(f"{kwarg}: two model files are named {name!r}")
            files[name] = path
        return Saved("file", files, {}, "file" if len(files) == 1 else "files")

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        # loads = False: the store always hands over paths
        if cls == "file":
            (path,) = paths.values()
            return path
        return list(paths.values())
