"""Compatibility with other model registries: modelstore's API and its stores.

``casstore.ModelStore`` (modelstore.py) is modelstore's ``ModelStore`` over a
casstore Store, built on cloud.py (its constructors and the bucket it syncs with)
and upload.py (what an upload checks and writes); importer.py copies an existing
modelstore store into casstore (``cas import-modelstore``), reading it through
sources.py (a directory or S3) and archive.py (unpacking an archive safely);
meta.py holds modelstore's names and metadata dict, which both use.  See
docs/modelstore.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .modelstore import ModelStore

__all__ = ["ModelStore"]


def __getattr__(name: str) -> Any:
    """``ModelStore``, imported when first asked for (``cas`` reads meta.py's names without it)."""
    if name == "ModelStore":
        from .modelstore import ModelStore

        return ModelStore
    raise AttributeError(f"module 'casstore.compat' has no attribute {name!r}")
