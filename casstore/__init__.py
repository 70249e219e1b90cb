"""casstore: a Git-style, content-addressed store for machine-learning models.

>>> import casstore
>>> store = casstore.open("path/to/store")          # doctest: +SKIP
>>> meta = store.commit_models("my-domain", model=clf, model_id="v1")  # doctest: +SKIP
>>> clf = store.load("my-domain", "v1")              # doctest: +SKIP
"""

import logging
from typing import TYPE_CHECKING, Any

from .errors import (  # noqa: E402
    CasError,
    CorruptObjectError,
    DomainNotFoundException,
    DownloadConflictError,
    FrameworkError,
    InvalidIdError,
    MissingObjectError,
    ModelDeletedException,
    ModelExistsException,
    ModelNotFoundException,
    ModelStateLostWarning,
    ModelTooLargeError,
    NotAStoreError,
    OtherFilesWarning,
    SigningError,
    StateNotFoundException,
    StoreLockedError,
    StoreWriteError,
    UnsafePathError,
    UnsignedModelError,
)
from .store import Store, init_store, open_store  # noqa: E402
from .version import __version__ as __version__

open = open_store  # noqa: A001  (casstore.open(), like the issue asks)

if TYPE_CHECKING:
    from .compat import ModelStore  # modelstore's API: docs/modelstore.md


def __getattr__(name: str) -> Any:
    """``casstore.ModelStore``, imported when first asked for: `cas` and ``casstore.open`` do not need it."""
    if name == "ModelStore":
        from .compat import ModelStore

        return ModelStore
    raise AttributeError(f"module 'casstore' has no attribute {name!r}")

# a library logs, the application decides where it goes: silent unless configured (`cas -v` does)
logging.getLogger("casstore").addHandler(logging.NullHandler())

__all__ = [
    "CasError",
    "CorruptObjectError",
    "DomainNotFoundException",
    "DownloadConflictError",
    "FrameworkError",
    "InvalidIdError",
    "MissingObjectError",
    "ModelDeletedException",
    "ModelExistsException",
    "ModelNotFoundException",
    "ModelStateLostWarning",
    "ModelTooLargeError",
    "ModelStore",
    "NotAStoreError",
    "OtherFilesWarning",
    "SigningError",
    "StateNotFoundException",
    "Store",
    "StoreLockedError",
    "StoreWriteError",
    "UnsafePathError",
    "UnsignedModelError",
    "init_store",
    "open",
    "open_store",
]
