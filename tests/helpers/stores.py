"""Two local stores and random models, for the bucket and transfer tests."""

from __future__ import annotations

import os
from pathlib import Path

import casstore


def _commit_random(s: casstore.Store, path: Path, size: int, model_id: str, domain: str = "d") -> Path:
    """Commit a new file of ``size`` random bytes at ``path`` as a model; returns the path."""
    path.write_bytes(os.urandom(size))
    s.commit_models(domain, model=str(path), model_id=model_id)
    return path


def _stores(tmp_path: Path) -> tuple[casstore.Store, casstore.Store]:
    return casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")


def _snapshot(s: casstore.Store) -> tuple[dict[bytes, bytes], list[str]]:
    return s.refs.container.as_dict(b"refs/cas"), sorted(os.listdir(os.path.join(s.path, "objects", "pack")))

