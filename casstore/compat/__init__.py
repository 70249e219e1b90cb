"""Compatibility with other model registries: modelstore's API and its stores.

``casstore.ModelStore`` (modelstore.py) is modelstore's ``ModelStore`` over a
casstore Store; importer.py copies an existing modelstore store into casstore
(``cas import-modelstore``); meta.py holds modelstore's names and metadata dict,
which both use.  See docs/modelstore.md.
"""

from __future__ import annotations

from .modelstore import ModelStore

__all__ = ["ModelStore"]
