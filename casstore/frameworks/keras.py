"""Keras 3 models (kwarg ``model``), as ``model.keras``, loaded with ``safe_mode=True``.

A ``.keras`` file is a zip of the model's config (JSON) and weights (HDF5).  With
``safe_mode=True`` Keras refuses to deserialise Python lambdas, the one part of the
format that is code; custom layers must be registered by the caller
(``keras.saving.register_keras_serializable``), as for any Keras load.  Keras
reads its backend from ``KERAS_BACKEND`` when first imported: set it (``torch``,
``jax``, ``tensorflow``) before casstore loads a model.

``safe_mode`` is only as good as the Keras that enforces it: crafted ``.keras`` files
bypass it in Keras before 3.12 (CVE-2025-1550, CVE-2025-8747, CVE-2025-9906: code run on
load; CVE-2025-12058: local files read).  With such a Keras installed, a ``keras`` entry
counts as code (:meth:`KerasFramework.executes_code`): ``load(..., allow_pickle=False)``
refuses it, naming the version to upgrade to.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Any, BinaryIO

from ..errors import CorruptObjectError, FrameworkError
from .base import Framework, Saved, class_name, instance_of, library_version, require

FORMAT = "keras"
#: the first Keras without a published safe_mode bypass
SAFE_MODE_FROM = (3, 12)


def _installed_version() -> str | None:
    import importlib.metadata  # not at import time: casstore's import stays light

    try:
        return importlib.metadata.version("keras")
    except importlib.metadata.PackageNotFoundError:
        return None


def safe_mode_holds() -> bool:
    """False if the installed Keras is older than :data:`SAFE_MODE_FROM` (True without Keras:
    nothing can load, and ``load`` says which extra installs it)."""
    version = _installed_version()
    if version is None:
        return True
    m = re.match(r"(\d+)\.(\d+)", version)
    return m is not None and (int(m[1]), int(m[2])) >= SAFE_MODE_FROM


class KerasFramework(Framework):
    name = "keras"
    kwargs = ("model",)
    # under KERAS_BACKEND=torch a Keras model is also a torch.nn.Module
    overrides = ("pytorch",)
    extra = "keras"
    data_formats = (FORMAT,)
    file_name = "model.keras"

    @property
    def safe_alternative(self) -> str:  # type: ignore[override]
        if safe_mode_holds():
            return Framework.safe_alternative
        return (f"upgrade Keras (installed: {_installed_version()}) to "
                f"{'.'.join(map(str, SAFE_MODE_FROM))} or later, whose safe_mode has no known bypass, "
                "or download() the file instead of loading it")

    def executes_code(self, format: str) -> bool:
        return super().executes_code(format) or not safe_mode_holds()

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
