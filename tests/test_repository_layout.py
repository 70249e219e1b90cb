"""The store's layout is owned by the Repository (objects/repository.py): the layers above ask it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from casstore.objects.repository import Repository, init_repository

PKG = Path(__file__).resolve().parents[1] / "casstore"

#: a path into a store built by hand from its root: ``os.path.join(<...>.path, "cas"`` and the like
HAND_BUILT = re.compile(r'os\.path\.join\([\w.]*path, "(cas|config|refs|objects|packed-refs)"')
#: modules that may still build such paths, with the reason
ALLOWED = {
    "objects/repository.py": "the owner",
    "objects/odb.py": "the object database's own directories (objects/, cas/chunkidx/)",
    "objects/refs.py": "the refs' own directories",
    "serve/downloads.py": "a front end given a store path: its settings (issue 23 item 1 gives the facade them)",
    "remote/hook.py": "the server hook installs into a bare git repository that need not be a store",
}


def test_paths_are_where_docs_format_says(tmp_path: Path) -> None:
    init_repository(str(tmp_path / "s"))
    repo = Repository(str(tmp_path / "s"))
    try:
        root = repo.path
        assert repo.config_path == os.path.join(root, "config")
        assert repo.packed_refs_path == os.path.join(root, "packed-refs")
        assert repo.model_refs_dir("fraud") == os.path.join(root, "refs", "cas", "models", "fraud")
        assert repo.lock_path("states") == os.path.join(root, "cas", "locks", "states.lock")
        assert repo.cache_dir("sigs") == os.path.join(root, "cas", "cache", "sigs")
        assert repo.maintenance_lock == os.path.join(root, "cas", "maintenance.lock")
        assert repo.odb.pack_dir == os.path.join(root, "objects", "pack")
        assert os.path.isdir(repo.tmp) and os.path.isfile(repo.config_path)
    finally:
        repo.close()


def test_no_module_builds_store_paths_by_hand() -> None:
    found = []
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG).as_posix()
        if rel in ALLOWED or rel.startswith("util/"):  # util/ is below the Repository: it gets paths
            continue
        for n, line in enumerate(p.read_text().splitlines(), 1):
            if HAND_BUILT.search(line):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, "ask the Repository for these paths:\n" + "\n".join(found)


def test_scan_models_lists_loose_and_packed_refs_once(tmp_path: Path) -> None:
    """The one scan of a domain's model refs (counting, has_domain, reconcile share it)."""
    init_repository(str(tmp_path / "s"))
    repo = Repository(str(tmp_path / "s"))
    try:
        sha = b"1" * 40
        os.makedirs(repo.model_refs_dir("d"))
        Path(repo.model_refs_dir("d"), "loose").write_bytes(sha + b"\n")
        Path(repo.model_refs_dir("d"), "loose.lock").write_bytes(b"")  # a writer's lock: not a ref
        Path(repo.packed_refs_path).write_bytes(b"# pack-refs with: peeled\n" + sha + b" refs/cas/models/d/packed\n"
                                                + sha + b" refs/cas/models/other/x\n")
        packed, loose = repo.refs.scan_models("d")
        assert packed == {b"packed": sha} and [e.name for e in loose] == ["loose"]
        assert repo.refs.has_domain("d") and repo.refs.has_domain("other") and not repo.refs.has_domain("none")
        assert repo.refs.scan_models("none") == ({}, [])
    finally:
        repo.close()
