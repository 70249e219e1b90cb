"""A hostile store to pull from: models forged behind casstore's back, and snapshots of a
store's files to show that a refused pull changed nothing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import msgpack
from dulwich.objects import Blob, Commit, Tree

import casstore
from casstore.store import init_store


def snapshot(path: str) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(path):
        for fn in files:
            full = os.path.join(dirpath, fn)
            rel = os.path.relpath(full, path)
            if rel.endswith(".lock"):
                continue  # flock files: created empty on first use
            with open(full, "rb") as f:
                out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


def hostile_store(tmp_path: Path) -> tuple[casstore.Store, Path]:
    path = tmp_path / "hostile"
    init_store(str(path))
    s = casstore.Store(str(path))
    f = tmp_path / "legit.bin"
    f.write_bytes(os.urandom(300_000))
    s.commit_models("d", model=str(f), model_id="legit")
    return s, path


def forge_model(s: casstore.Store, ref_id: str, change, source: str = "legit") -> None:  # type: ignore[no-untyped-def]
    """Rewrite model d/<source>'s manifest with ``change`` and point refs/cas/models/d/<ref_id> at it
    (the ref only, no history event: as a hostile or an older casstore could have written it)."""
    sha = s.refs.get(b"refs/cas/models/d/" + source.encode())
    c = s.odb.read(sha, Commit)
    root = s.odb.read(c.tree, Tree)
    _, manifest_id = root[b"manifest"]
    doc = msgpack.unpackb(s.odb.read(manifest_id, Blob).as_raw_string(), raw=False, strict_map_key=False)
    change(doc)
    new_root = Tree()
    new_root.add(b"manifest", 0o100644, s.odb.write_loose(Blob.from_string(msgpack.packb(doc, use_bin_type=True))))
    new_root.add(b"files", 0o040000, root[b"files"][1])
    nc = Commit()
    nc.tree = s.odb.write_loose(new_root)
    nc.author = nc.committer = c.author
    nc.author_time = nc.commit_time = c.commit_time
    nc.author_timezone = nc.commit_timezone = 0
    nc.message = b"forged\n"
    s.refs.container.set_if_equals(b"refs/cas/models/d/" + ref_id.encode(), None, s.odb.write_loose(nc))

