"""What models share and what they cost: ``diff`` and ``du``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import CasError
from ..model.reading import read_model

if TYPE_CHECKING:
    from ..model.manifest import FileEntry
    from ..objects.repository import Repository


def diff(repo: Repository, domain: str, id_a: str, id_b: str) -> dict[str, Any]:
    """Files added, removed, changed and unchanged from model ``id_a`` to ``id_b``.

    For each changed file: how many of its chunks (and bytes) ``id_b`` shares with
    any file of ``id_a``, and how many are new (raw bytes, before compression).
    A file of ``id_b`` under a name ``id_a`` lacks, sharing chunks with a file
    only ``id_a`` has, is paired with it (the one it shares the most bytes with)
    and listed as changed with ``path_a`` naming the old file.  Also the extra_metadata keys that
    were added, removed or changed.
    """
    ma = read_model(repo, domain, id_a).manifest
    mb = read_model(repo, domain, id_b).manifest
    fa = {f.path: f for f in ma.files}
    fb = {f.path: f for f in mb.files}
    keys_a = {k for f in ma.files for k in f.keys}

    def change(a: FileEntry, b: FileEntry) -> dict[str, Any]:
        shared = [(k, s) for k, s in zip(b.keys, b.sizes, strict=True) if k in keys_a]
        return {
            "path": b.path, "size_a": a.size, "size_b": b.size, "chunks": len(b.keys),
            "chunks_shared": len(shared), "chunks_new": len(b.keys) - len(shared),
            "bytes_shared": sum(s for _, s in shared), "bytes_new": b.size - sum(s for _, s in shared),
        }

    def same(a: FileEntry, b: FileEntry) -> bool:
        # the chunk lists, not the manifests' digests: a manifest's claims are not evidence
        return a.keys == b.keys and a.sizes == b.sizes

    changed = [change(fa[p], fb[p]) for p in sorted(set(fa) & set(fb)) if not same(fa[p], fb[p])]
    added, removed = sorted(set(fb) - set(fa)), sorted(set(fa) - set(fb))
    for path_a, path_b in _pair_by_content([fa[p] for p in removed], [fb[p] for p in added]):
        # a file saved under another name (big.bin -> big2.bin): a change, not an add and a remove
        changed.append({**change(fa[path_a], fb[path_b]), "path_a": path_a})
        added.remove(path_b)
        removed.remove(path_a)
    meta_a = ma.extra_metadata if isinstance(ma.extra_metadata, dict) else {}
    meta_b = mb.extra_metadata if isinstance(mb.extra_metadata, dict) else {}
    return {
        "domain": domain, "a": id_a, "b": id_b,
        "added": added,
        "removed": removed,
        "unchanged": sorted(p for p in set(fa) & set(fb) if same(fa[p], fb[p])),
        "changed": changed,
        "metadata": {
            "added": {k: meta_b[k] for k in meta_b if k not in meta_a},
            "removed": {k: meta_a[k] for k in meta_a if k not in meta_b},
            "changed": {k: [meta_a[k], meta_b[k]] for k in meta_a if k in meta_b and meta_a[k] != meta_b[k]},
        },
    }


def _pair_by_content(gone: list[FileEntry], new: list[FileEntry]) -> list[tuple[str, str]]:
    """Pairs (old path, new path) of files that share chunks, most shared bytes first.

    Each file is in at most one pair; files that share no chunk stay unpaired.
    Cost: one set of chunk keys per removed file, one pass over each added file.
    """
    candidates = []
    for a in gone:
        keys = set(a.keys)
        for b in new:
            shared = sum(s for k, s in zip(b.keys, b.sizes, strict=True) if k in keys)
            if shared:
                candidates.append((-shared, a.path, b.path))
    pairs: list[tuple[str, str]] = []
    used_a: set[str] = set()
    used_b: set[str] = set()
    for _, pa, pb in sorted(candidates):
        if pa not in used_a and pb not in used_b:
            pairs.append((pa, pb))
            used_a.add(pa)
            used_b.add(pb)
    return pairs


def disk_bytes(root: str) -> int:
    """Bytes of every file under ``root`` (files that vanish meanwhile count 0)."""
    total = 0
    for dirpath, _, files in os.walk(root):
        for fn in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, fn))
            except FileNotFoundError:
                pass
    return total


def du(repo: Repository) -> dict[str, Any]:
    """Logical bytes (what users committed) and stored bytes, per domain and in total.

    A domain's ``stored_bytes`` counts each chunk its models use once, at its
    compressed size; chunks shared between domains count in each, so the
    domains can add up to more than ``total.stored_bytes``, which is what the
    store's objects take on disk.
    """
    odb = repo.odb
    odb.index.refresh()
    domains: dict[str, Any] = {}
    for domain in sorted(repo.refs.domains()):
        logical = 0
        models = 0
        chunk_sizes: dict[bytes, int] = {}
        for mid in sorted(repo.refs.model_ids(domain)):
            try:
                m = read_model(repo, domain, mid).manifest
            except CasError:
                continue  # fsck reports it
            models += 1
            for f in m.files:
                logical += f.size
                for k, s in zip(f.keys, f.sizes, strict=True):
                    chunk_sizes.setdefault(k, s)
        keys = list(chunk_sizes)
        stored = 0
        for k, loc in zip(keys, odb.index.lookup(keys), strict=True):
            # chunks outside the index (pulled packs) count at their raw size
            stored += loc.length if loc is not None else chunk_sizes[k]
        domains[domain] = {"models": models, "logical_bytes": logical, "stored_bytes": stored,
                           "chunks": len(keys)}
    return {
        "domains": domains,
        "total": {
            "models": sum(d["models"] for d in domains.values()),
            "logical_bytes": sum(d["logical_bytes"] for d in domains.values()),
            "stored_bytes": disk_bytes(odb.objects_dir),
        },
    }
