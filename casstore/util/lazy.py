"""Heavy libraries imported on first use, so that ``cas`` starts fast.

numpy costs about a third of a ``cas`` process's start-up, and a small commit, a
``cas log`` or a ``cas ls`` never calls it: only big batches do (the chunk index
searched for many keys at once, byte lanes of float data, gc's marks).  A module
that uses numpy writes ``from ..util.lazy import numpy as np`` instead of
``import numpy as np`` and uses ``np`` as before; the first attribute looked up
imports numpy.  Type checkers see the real module.

``tests/test_startup.py`` checks that a small ``cas commit`` does not import numpy.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

__all__ = ["LazyModule", "numpy"]


class LazyModule(ModuleType):
    """A stand-in for module ``name`` that imports it when an attribute is first asked for.

    With ``cache`` (for a library used in hot loops, such as numpy) each attribute is
    copied here once read, so later reads cost what a module's do; without it every
    read is looked up in the module, so that a name the module rebinds later (a test's
    monkeypatch) is seen.  Thread-safe: ``importlib.import_module`` holds the import
    lock, and two threads copying the same attribute copy the same object.
    """

    def __init__(self, name: str, cache: bool = True) -> None:
        super().__init__(f"lazy {name}")
        self.__dict__["_lazy_name"] = name
        self.__dict__["_lazy_cache"] = cache

    def __getattr__(self, attr: str) -> Any:
        value = getattr(importlib.import_module(self.__dict__["_lazy_name"]), attr)
        if self.__dict__["_lazy_cache"]:
            self.__dict__[attr] = value
        return value


if TYPE_CHECKING:
    import numpy as numpy
else:
    numpy = LazyModule("numpy")
