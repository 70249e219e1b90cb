"""Consistency check of a whole store.

Checks that every ref file and ``packed-refs`` parse; that every model ref points
at a model commit whose tree, manifest and chunk trees agree and whose chunks all
exist; that every domain history parses and agrees with the model refs, and that
every older commit of it (and of ``refs/cas/states``) is present and intact; that
every pack index (``.idx``, checksum and fan-out) and chunk index (``.cidx``)
verifies and agrees with its pack.  With ``read_data`` every chunk is also read,
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

from dulwich.objects import Commit, ObjectID, Tree

from ..errors import CasError, CorruptObjectError
from ..model.history import read_index
from ..model.readback import iter_file
from ..model.reading import file_oids, read_model
from ..model.states import STATES_REF, list_states
from ..model.writer import domain_writer
from ..objects.maintenance import pack_layout
from ..objects.refs import domain_ref, model_ref
from ..util.parallel import default_workers

if TYPE_CHECKING:
    from ..objects.repository import Repository


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


def fsck(repo: Repository, read_data: bool = False, progress: Callable[[int], None] | None = None) -> FsckReport:
    report = FsckReport()
    odb = repo.odb
    odb.index.refresh()
    _check_packs(repo, report)
    try:
        domains = sorted(repo.refs.domains())
        repo.refs.container.as_dict()  # every ref file, loose and packed, must parse
    except CasError as e:
        report.problems.append(Problem("ref", getattr(e, "oid", "refs"), str(e)))
        return report  # which models exist cannot be known
    try:
        list_states(odb, repo.refs)
        _check_chain(repo, repo.refs.get(STATES_REF))
    except CasError as e:
        report.problems.append(Problem("history", STATES_REF.decode(), str(e)))
    with ThreadPoolExecutor(default_workers(), thread_name_prefix="cas-fsck") as pool:
        for domain in domains:
            ids = sorted(repo.refs.model_ids(domain))
            for mid in ids:
                name = f"{domain}/{mid}"
                report.models += 1
                try:
                    m = read_model(repo, domain, mid)
                    manifest, files_tree = m.manifest, m.files_tree
                    for i, f in enumerate(manifest.files):
                        report.files += 1
                        oids = file_oids(repo, files_tree, manifest, i)
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
                head = repo.refs.get(domain_ref(domain))
                idx = read_index(odb, head, full=True)
                _check_chain(repo, head)
            except CasError as e:
                report.problems.append(Problem("history", domain, str(e)))
                continue
            for mid in ids:
                target = repo.refs.get(model_ref(domain, mid))
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


def _check_packs(repo: Repository, report: FsckReport) -> None:
    """Every ``.idx`` verifies and describes its ``.pack``; every ``.cidx`` agrees with both."""
    odb = repo.odb
    names = set(os.listdir(odb.pack_dir))
    for fn in sorted(names):
        if not fn.endswith(".idx"):
            continue
        pack = fn[:-4]
        try:
            if pack + ".pack" not in names:
                raise CorruptObjectError(os.path.join(odb.pack_dir, pack + ".pack"), "pack file is missing")
            pack_layout(odb.pack_dir, odb.cidx_dir, pack)  # .idx, .pack trailer and .cidx cross-checked
        except CorruptObjectError as e:
            report.problems.append(Problem("object", e.oid, e.detail))
    for pack, detail in sorted(odb.index.damaged.items()):
        path = os.path.join(odb.cidx_dir, pack + ".cidx")
        if not any(p.name == path for p in report.problems):  # not already named by pack_layout
            report.problems.append(Problem("object", path, detail + " (derived data: chunks still readable)"))


def _check_chain(repo: Repository, head: ObjectID | None) -> None:
    """Read every commit and tree of a history (``refs/cas/domains/*``, ``refs/cas/states``).

    Each object is verified against its SHA-1; gitlinks (the models) are not followed.

    Raises:
        CorruptObjectError: the first missing or damaged object.
    """
    seen: set[bytes] = set()
    stack = [head] if head is not None else []
    while stack:
        oid = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        obj = repo.odb.read(oid)
        if isinstance(obj, Commit):
            stack.extend([obj.tree, *obj.parents])
        elif isinstance(obj, Tree):
            stack.extend(e.sha for e in obj.iteritems() if e.mode != 0o160000)


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


def repair_histories(repo: Repository) -> list[str]:
    """Record the history events that writers killed mid-way left out, in every domain.

    The same reconcile the next writer of a domain runs (history.reconcile),
    under the same locks.  A domain whose history cannot be read is left alone
    (the check reports it).  Returns what was recorded, in words.
    """

    done: list[str] = []
    with repo.lock():
        for domain in sorted(repo.refs.domains()):
            try:
                with domain_writer(repo, domain, full=True) as recorded:
                    done.extend(recorded)
            except CorruptObjectError:
                continue
    return done
