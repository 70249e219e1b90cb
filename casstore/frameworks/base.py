"""The framework plug-in interface.

A framework owns one or more keyword arguments of ``commit_models`` (``model``,
``explainer``, ...), recognises the objects it can save, writes them to files and
loads them back.  Framework modules must not import their library at import time:
an object of a library can only exist once that library was imported, so
:func:`instance_of` checks ``sys.modules`` first, and a framework whose library
is not installed costs nothing.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar

from ..errors import FrameworkError
from ..util.install import install_hint


@dataclass
class Saved:
    """What a framework wrote: files (name in the store -> local path) and how."""

    format: str
    files: dict[str, str]
    library: dict[str, str] = field(default_factory=dict)
    cls: str = ""


def class_name(obj: object) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def instance_of(obj: object, module: str, name: str) -> bool:
    """``isinstance(obj, module.name)`` without importing ``module``."""
    root = module.split(".")[0]
    if root not in sys.modules:
        return False
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False
    return isinstance(obj, cls)


def require(module: str, extra: str) -> Any:
    """Import ``module`` for loading, or say which pip extra installs it.

    Raises:
        FrameworkError: the library is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise FrameworkError(
            f"{module} is not installed ({e}): {install_hint(extra)} (or the extra 'all')"
        ) from None


def read_bytes(src: str | BinaryIO) -> bytes:
    """The whole content of a stored file as ``load`` receives it: a path or a verified stream."""
    if isinstance(src, str):
        with open(src, "rb") as f:
            return f.read()
    return src.read()


def spool(src: str | BinaryIO, path: str) -> None:
    """Copy a stored file as ``load`` receives it (a path or a verified stream) to ``path``,
    for libraries that read only from paths."""
    if isinstance(src, str):
        shutil.copyfile(src, path)
    else:
        with open(path, "wb") as f:
            shutil.copyfileobj(src, f)


def library_version(module: str) -> dict[str, str]:
    mod = sys.modules.get(module)
    version = getattr(mod, "__version__", None)
    return {"name": module, "version": str(version)} if version else {"name": module}


class Framework(ABC):
    """One machine-learning framework.

    Attributes:
        name: the key of this framework's object in ``load``'s dict.
        kwargs: the ``commit_models`` keyword arguments this framework accepts.
        overrides: names of frameworks this one is more specific than (an
            xgboost model is also an sklearn estimator: xgboost overrides sklearn).
        loads: False for frameworks whose files are only downloaded; ``load``
            then returns the path of the file instead of an object.
        data_formats: the formats this framework writes and loads as data only;
            loading any other format (a pickle) can execute code from the store.
        safe_alternative: what to do instead when a code-executing entry is
            refused (``load(..., allow_pickle=False)``).
        extra: the pip extra that installs the library (``casstore[extra]``).
        params: keyword arguments that are settings of another keyword's object.
    """

    name: ClassVar[str]
    kwargs: ClassVar[tuple[str, ...]]
    overrides: ClassVar[tuple[str, ...]] = ()
    loads: ClassVar[bool] = True
    data_formats: ClassVar[tuple[str, ...]] = ()
    safe_alternative: ClassVar[str] = "download() the files instead of loading them"
    extra: ClassVar[str] = "all"
    #: keyword arguments that describe another keyword's object instead of being one
    #: (annoy's ``metric=``, ``num_trees=``): :meth:`bundle` folds them into it
    params: ClassVar[tuple[str, ...]] = ()

    def executes_code(self, format: str) -> bool:
        """True if loading an entry of ``format`` can run code from the store.

        Decided by the framework, not by the manifest's flag: a hostile manifest
        could mark a pickle as data, so any format not known to be data counts.
        """
        return format not in self.data_formats

    def bundle(self, models: dict[str, Any]) -> dict[str, Any]:
        """``commit_models``' keywords with this framework's ``params`` folded into their object.

        Called before any framework is chosen, for frameworks with ``params``.

        Raises:
            TypeError: a parameter without its object, or an object without a parameter it needs.
        """
        return models

    @abstractmethod
    def matches(self, obj: Any) -> bool:
        """True if ``obj`` is something this framework can save."""

    @abstractmethod
    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        """Write ``obj`` into ``directory`` (which is empty and ours alone)."""

    @abstractmethod
    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        """Load the object from its files (name in the store -> local path or open file).

        Frameworks with ``loads = True`` get verified in-memory file objects for
        files up to a few hundred MiB, paths for larger ones; ``loads = False``
        frameworks always get paths.  ``format`` comes from the manifest, which may
        be hostile: a loader must refuse a format it does not know rather than
        fall back to a code-executing one.
        """

    def load_into(self, paths: dict[str, str | BinaryIO], cls: str, format: str, target: Any) -> Any:
        """Load the stored state into ``target`` (``load(..., model=net)``) and return it.

        Raises:
            FrameworkError: this framework cannot load into an existing object.
        """
        raise FrameworkError(f"framework {self.name} cannot load into an existing object")
