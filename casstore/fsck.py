"""Consistency check of a whole store.

Checks that every model ref points at a model commit whose tree, manifest and
chunk trees agree and whose chunks all exist; that every domain history parses
and agrees with the model refs.  With ``read_data`` every chunk is also read,
decompressed and checked against its BLAKE3 key, and every file against its
checksum.  Problems are collected, not raised, so one report lists them all.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dulwich.objects import ObjectID

from .errors import CasError, CorruptObjectError
from .history import read_index
from .parallel import default_workers
from .readback import iter_file
from .refs import domain_ref, model_ref

if TYPE_CHECKING:
    from .store import Store


@dataclass
class Problem:
    kind: str  # "model", "history", "object"
    name: str  # domain/id, domain, or object id
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.detail}"


@dataclass
class FsckReport:
    problems: list[Problem] = field(default_factory=list)
    models: int = 0
    files: int = 0
    chunks: int = 0
    bytes_verified: int = 0
    repaired: list[str] = field(default_factory=list)  # what ``repair=True`` recorded

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "models": self.models, "files": self.files, "chunks": self.chunks,
                "bytes_verified": self.bytes_verified, "repaired": list(self.repaired),
                "problems": [{"kind": p.kind, "name": p.name, "detail": p.detail} for p in self.problems]}


def fsck(store: Store, read_data: bool = False, progress: Callable[[int], None] | None = None) -> FsckReport:
    report = FsckReport()
    odb = store.odb
    odb.index.refresh()
    with ThreadPoolExecutor(default_workers(), thread_name_prefix="cas-fsck") as pool:
        for domain in sorted(store.refs.domains()):
            ids = sorted(store.refs.model_ids(domain))
            for mid in ids:
                name = f"{domain}/{mid}"
                report.models += 1
                try:
                    sha, manifest, files_tree = store._resolve(domain, mid)
                    for i, f in enumerate(manifest.files):
                        report.files += 1
                        oids = store._file_oids(files_tree, manifest, i)
                        report.chunks += len(oids)
                        if read_data:
                            for raw in iter_file(odb, f, oids, pool, 2 * default_workers() + 2):
                                report.bytes_verified += len(raw)
                                if progress:
                                    progress(len(raw))
                        else:
                            for oid in oids:
                                if not odb.contains(ObjectID(oid.hex().encode())):
                                    report.problems.append(Problem("object", oid.hex(),
                                                                   f"chunk of {name}:{f.path} is missing"))
                except CasError as e:
                    report.problems.append(Problem("model", name, str(e)))
            try:
                idx = read_index(odb, store.refs.get(domain_ref(domain)))
            except CasError as e:
                report.problems.append(Problem("history", domain, str(e)))
                continue
            for mid in ids:
                target = store.refs.get(model_ref(domain, mid))
                if mid not in idx.models:
                    report.problems.append(Problem("history", domain, f"model {mid} is not in the domain history"))
                elif idx.models[mid] != target:
                    report.problems.append(Problem("history", domain,
                                                   f"history has another commit for model {mid}"))
            for mid in sorted(set(idx.models) - set(ids)):
                report.problems.append(Problem("history", domain, f"history lists {mid}, which has no model ref"))
    if read_data:
        # Chunk reads verify content (BLAKE3), not the zlib framing around it; the
        # pack checksums cover every byte, framing included, as git verify-pack does.
        for fn in sorted(os.listdir(odb.pack_dir)):
            if fn.endswith(".pack") and os.path.exists(os.path.join(odb.pack_dir, fn[:-5] + ".idx")):
                if not _pack_checksum_ok(os.path.join(odb.pack_dir, fn)):
                    report.problems.append(Problem("object", fn, "pack checksum mismatch: the pack file is damaged"))
    return report


def _pack_checksum_ok(path: str) -> bool:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        left = size - 20
        while left > 0:
            block = f.read(min(left, 8 << 20))
            if not block:
                return False
            h.update(block)
            left -= len(block)
        return h.digest() == f.read(20)


# -- repair (cas fsck --repair) ---------------------------------------------------


def repair_histories(store: Store) -> list[str]:
    """Record the history events that writers killed mid-way left out, in every domain.

    The same reconcile the next writer of a domain runs (history.reconcile),
    under the same locks.  A domain whose history cannot be read is left alone
    (the check reports it).  Returns what was recorded, in words.
    """
    from .locking import store_lock

    done: list[str] = []
    with store_lock(store._lockfile):
        for domain in sorted(store.refs.domains()):
            try:
                with store._domain_writer(domain, full=True) as recorded:
                    done.extend(recorded)
            except CorruptObjectError:
                continue
    return done
