"""Models that are already files (kwarg ``model`` given a path, a directory, or a list of them).

The files are stored as they are and downloaded, never loaded.  ``load`` returns the
path of the file in the load cache; for a directory (a SavedModel, a checkpoint
directory) the path of the directory there, with its structure kept; for a list, the
list of the paths of the files.  A file given by path is stored under its base name,
a directory under its own name (``model="export/saved_model"`` stores
``saved_model/variables/...``).
"""

from __future__ import annotations

import os
import stat
from typing import Any, BinaryIO

from ..errors import FrameworkError
from ..util.fsutil import walk_files
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
        given = _paths(obj) or []

        def fail(path: str, detail: str) -> FrameworkError:
            return FrameworkError(f"{kwarg}: {path!r} {detail}")

        for path in given:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise FileNotFoundError(f"{kwarg}={path!r}: no such file or directory") from None
            if stat.S_ISDIR(st.st_mode):
                base = os.path.basename(os.path.abspath(path))
                found = walk_files(path, base, fail)
                if not found:
                    raise FrameworkError(f"{kwarg}={path!r} is an empty directory: nothing to store")
            elif stat.S_ISREG(st.st_mode):
                found = [(os.path.basename(path), path)]
            else:
                raise FrameworkError(f"{kwarg}={path!r} is neither a regular file nor a directory")
            for name, local in found:
                if name in files:
                    raise FrameworkError(f"{kwarg}: two model files would be stored as {name!r}")
                files[name] = local
        single_dir = len(given) == 1 and os.path.isdir(given[0])
        cls = "directory" if single_dir else "file" if len(files) == 1 else "files"
        return Saved("file", files, {}, cls)

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        # loads = False: the store always hands over paths
        if cls == "file":
            (path,) = paths.values()
            return path
        if cls == "directory":
            # every stored name is "<dir>/<rest>": the directory is the path less "/<rest>"
            name, path = next(iter(paths.items()))
            _, _, rest = name.partition("/")
            assert isinstance(path, str) and path.endswith(rest)
            return path[: len(path) - len(rest) - 1]
        return list(paths.values())
