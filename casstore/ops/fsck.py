"""Consistency check of a whole store.

Checks that every ref file and ``packed-refs`` parse; that every model ref points
at a model commit whose tree, manifest and chunk trees agree and whose chunks all
exist; that every domain history parses and agrees with the model refs, and that
every older commit of it (and of ``refs/cas/states``) is present and intact; that
every pack index (``.idx``, checksum and fan-out) and chunk index (``.cidx``)
verifies and agrees with its pack.  With ``read_data`` every chunk is also read,
decompressed and checked against its BLAKE3 key, and every file against its
checksum.  Problems are collected, not raised, so one report lists them all.

fsck takes no store lock, so writers and gc go on while it runs; it reports only
what is wrong in a consistent view.  A domain's model refs and history are
compared as one snapshot: a disagreement in the first read (a writer between its
ref change and its history event) is read again under the domain's lock, which
every writer holds across both steps, and reported only if it is still there
(a writer killed in between).  A model, history or pack whose check fails is
checked again after the pack list is re-read, and not reported when what was
checked has gone meanwhile (a model deleted, a pack rolled up into another).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dulwich.objects import ObjectID

from ..errors import CasError, CorruptObjectError, InvalidIdError, StoreBusyError
from ..model.history import model_refs, read_index
from ..model.indexkeys import VALID_LINES
from ..model.readback import iter_file
from ..model.reading import file_oids, read_named_manifest
from ..model.states import STATES_REF, list_states
from ..model.writer import domain_writer
from ..objects.graph import children
from ..objects.maintenance import pack_layout
from ..objects.refs import DOMAINS, MODELS, domain_ref, model_ref
from ..util.locking import domain_lock_path, store_lock
from ..util.names import check_name
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


#: how often a check that failed is run again (after the pack list is re-read) before it is reported
ATTEMPTS = 3
#: how long fsck waits for a domain's writer to finish, to read its refs and history as one
DOMAIN_WAIT = 30.0


def fsck(repo: Repository, read_data: bool = False, progress: Callable[[int], None] | None = None) -> FsckReport:
    report = FsckReport()
    odb = repo.odb
    odb.index.refresh()
    _check_packs(repo, report)
    names, damaged = _scan_refs(repo)  # every ref file, loose and packed, must parse
    if damaged:
        report.problems.extend(damaged)
        return report  # which models exist cannot be known
    domains, misnamed = _domains(names)
    report.problems.extend(misnamed)

    def check_states() -> None:
        list_states(odb, repo.refs)
        _check_chain(repo, repo.refs.get(STATES_REF))

    try:
        if STATES_REF in names:  # (a missing ref is looked up in packed-refs: dulwich's parse of the whole file)
            _again(repo, check_states)
    except CasError as e:
        report.problems.append(Problem("history", STATES_REF.decode(), str(e)))
    with ThreadPoolExecutor(default_workers(), thread_name_prefix="cas-fsck") as pool:
        for domain in domains:
            refs, problems = _domain_view(repo, domain)
            report.problems.extend(problems)
            for mid, target in sorted(refs.items()):
                _check_model(repo, report, pool, domain, mid, target, read_data, progress)
    if read_data:
        # Chunk reads verify content (BLAKE3), not the zlib framing around it; the
        # pack checksums cover every byte, framing included, as git verify-pack does.
        for fn in sorted(os.listdir(odb.pack_dir)):
            idx = os.path.join(odb.pack_dir, fn[:-5] + ".idx")
            if fn.endswith(".pack") and os.path.exists(idx):
                try:
                    ok = _pack_checksum_ok(os.path.join(odb.pack_dir, fn))
                except FileNotFoundError:
                    continue  # rolled up into another pack meanwhile (or missing: _check_packs named it)
                if not ok and os.path.exists(idx):
                    report.problems.append(Problem("object", fn, "pack checksum mismatch: the pack file is damaged"))
    return report


def _again(repo: Repository, check: Callable[[], None]) -> None:
    """Run ``check``; when it raises CasError, re-read the pack list and run it again (ATTEMPTS in all)."""
    for attempt in range(ATTEMPTS):
        try:
            check()
            return
        except CasError:
            if attempt == ATTEMPTS - 1:
                raise
            _rescan(repo)


def _rescan(repo: Repository) -> None:
    """See packs published and forget packs removed since the last look (a roll-up in another process)."""
    repo.odb.index.refresh()
    repo.odb.rescan_packs()


def _domain_view(repo: Repository, domain: str) -> tuple[dict[str, ObjectID], list[Problem]]:
    """A domain's model refs, and what is wrong between them and its history, from one consistent read.

    The first read takes no lock.  Only if it finds a disagreement is the domain
    read again under its lock (every writer holds it from a ref change to the
    event that records it), so what is reported is what a finished writer left.
    A store whose lock cannot be taken (read-only, or a writer holding it for
    DOMAIN_WAIT) is read once more without it.
    """
    refs, problems = _domain_snapshot(repo, domain)
    if not problems:
        return refs, problems
    _rescan(repo)
    try:
        with store_lock(domain_lock_path(repo.path, domain), exclusive=True, timeout=DOMAIN_WAIT):
            return _domain_snapshot(repo, domain)
    except (StoreBusyError, OSError):
        return _domain_snapshot(repo, domain)


#: a line of ``packed-refs`` as git writes it (a header or comment, a peeled value, a ref), with its end
_PACKED_LINE = re.compile(rb"(?:#[^\n]*|\^[0-9a-f]{40}|[0-9a-f]{40} refs/[^\n]+)(?:\n|\Z)")
_REF = re.compile(rb"^([0-9a-f]{40}) (refs/[^\n]+)$", re.M)
_HEX40 = re.compile(rb"[0-9a-f]{40}")


def _scan_refs(repo: Repository) -> tuple[dict[bytes, ObjectID], list[Problem]]:
    """Every ref of the store (name -> object id), loose winning over packed, and the damaged ones.

    ``packed-refs`` is read by regular expressions over the whole file (a million
    lines in a big domain), a line at a time only to name a line that does not
    parse; each loose ref file is read.  Damaged: a ``packed-refs`` line that is no
    ref, comment or peeled value, and a loose ref that is empty or holds no object
    id (a symbolic ref is one only outside ``refs/cas/``).  A file removed while it
    is read is a ref deleted meanwhile.
    """
    found: dict[bytes, ObjectID] = {}
    data, problems = _scan_packed(repo.packed_refs_path)
    found.update((name, ObjectID(sha)) for sha, name in _REF.findall(data))
    for dirpath, _dirnames, filenames in os.walk(repo.refs_dir):
        for fn in filenames:
            if fn.endswith(".lock"):
                continue  # a ref update in progress, or left by a killed writer: not a ref
            path = os.path.join(dirpath, fn)
            name = os.fsencode(os.path.relpath(path, repo.path)).replace(os.sep.encode(), b"/")
            try:
                with open(path, "rb") as f:
                    value = f.read(4096).strip()
            except FileNotFoundError:
                continue  # deleted meanwhile
            if value.startswith(b"ref: ") and not name.startswith(b"refs/cas/"):
                found.pop(name, None)  # a symbolic ref: its target is a ref of its own
            elif _HEX40.fullmatch(value):
                found[name] = ObjectID(value)
            else:
                what = "is empty" if not value else f"{value[:60]!r} is not an object id"
                problems.append(Problem("ref", path, f"damaged ref file: {what}"))
    return found, problems


def _scan_packed(path: str) -> tuple[bytes, list[Problem]]:
    """``packed-refs``'s text (empty when there is none) and what is damaged in it."""
    problems: list[Problem] = []
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return b"", problems
    if not data:  # git and dulwich write at least a header: a zero-byte file lost its refs
        problems.append(Problem("ref", path, "damaged packed-refs file: empty"))
    elif _PACKED_LINE.sub(b"", data):
        for n, line in enumerate(data.split(b"\n"), 1):
            if line and not _PACKED_LINE.fullmatch(line):
                problems.append(Problem("ref", path,
                                        f"damaged packed-refs file: line {n} does not parse: {line[:80]!r}"))
        if not data.endswith(b"\n") or b"\n\n" in data:
            problems.append(Problem("ref", path, "damaged packed-refs file: an empty line"))
    return data, problems


def _domains(refs: dict[bytes, ObjectID]) -> tuple[list[str], list[Problem]]:
    """The domains that have a history or a model ref, and the casstore refs whose names are not valid.

    The IDs of a domain's model refs are checked by one expression over all of them
    (one at a time only to name the bad ones).
    """
    ids: dict[bytes, list[bytes]] = {}
    heads: set[bytes] = set()
    for name in refs:
        if name.startswith(MODELS):
            domain, _, mid = name[len(MODELS):].partition(b"/")
            ids.setdefault(domain, []).append(mid)
        elif name.startswith(DOMAINS):
            heads.add(name[len(DOMAINS):])
    domains: list[str] = []
    problems: list[Problem] = []
    for domain in sorted(heads | set(ids)):
        error = _name_error(domain, "domain")
        if error:
            where = DOMAINS + domain if domain in heads else MODELS + domain + b"/"
            problems.append(Problem("ref", where.decode("utf-8", "replace"), error))
            continue
        domains.append(domain.decode())
        mids = ids.get(domain, [])
        if not VALID_LINES.fullmatch(b"".join(m + b"\n" for m in mids)):
            for mid in mids:
                error = _name_error(mid, "model ID")
                if error:
                    problems.append(Problem("ref", (MODELS + domain + b"/" + mid).decode("utf-8", "replace"), error))
    return domains, problems


def _name_error(name: bytes, kind: str) -> str | None:
    """Why ``name`` is not a valid ``kind`` name (``check_name``), or None."""
    try:
        check_name(name.decode("ascii"), kind)
    except UnicodeDecodeError:
        return f"not a valid {kind}: not ASCII"
    except InvalidIdError as e:
        return str(e)
    return None


def _domain_snapshot(repo: Repository, domain: str) -> tuple[dict[str, ObjectID], list[Problem]]:
    """The domain's model refs (one scan, ``history.model_refs``) and what disagrees with its history."""
    try:
        refs = model_refs(repo.refs, domain)
    except CasError as e:  # packed-refs damaged since _scan_refs read it
        return {}, [Problem("ref", domain, str(e))]
    try:
        head = repo.refs.get(domain_ref(domain))  # one search of packed-refs, not dulwich's parse
        idx = read_index(repo.odb, head, full=True)
        _check_chain(repo, head)
    except CasError as e:
        return refs, [Problem("history", domain, str(e))]
    problems = []
    listed = dict(idx.models.items())  # one walk of the index, not a lookup per ID
    for mid, target in sorted(refs.items()):
        if mid not in listed:
            problems.append(Problem("history", domain, f"model {mid} is not in the domain history"))
        elif listed[mid] != target:
            problems.append(Problem("history", domain, f"history has another commit for model {mid}"))
    for mid in sorted(set(listed) - set(refs)):
        problems.append(Problem("history", domain, f"history lists {mid}, which has no model ref"))
    return refs, problems


def _check_model(repo: Repository, report: FsckReport, pool: ThreadPoolExecutor, domain: str, mid: str,  # noqa: PLR0913 - one model's check and where it reports
                 target: ObjectID, read_data: bool, progress: Callable[[int], None] | None) -> None:
    """Check model ``domain/mid`` (whose ref named ``target``), into ``report``.

    A check that finds problems is run again after the pack list is re-read; a
    model whose ref no longer names ``target`` (deleted meanwhile) is not reported.
    """
    odb = repo.odb
    name = f"{domain}/{mid}"
    for attempt in range(ATTEMPTS):
        problems: list[Problem] = []
        files = chunks = verified = 0
        try:
            # the commit the snapshot saw (the ref is read again only if something is wrong)
            manifest, files_tree = read_named_manifest(repo, domain, mid, target)
            for i, f in enumerate(manifest.files):
                files += 1
                oids = file_oids(repo, files_tree, manifest, i)
                chunks += len(oids)
                if read_data:
                    for raw in iter_file(odb, f, oids, pool, 2 * default_workers() + 2):
                        verified += len(raw)
                        if progress:
                            progress(len(raw))
                else:
                    for oid in oids:
                        if not odb.contains(ObjectID(oid.hex().encode())):
                            problems.append(Problem("object", oid.hex(), f"chunk of {name}:{f.path} is missing"))
        except CasError as e:
            problems.append(Problem("model", name, str(e)))
        if problems and repo.refs.get(model_ref(domain, mid)) != target:
            return  # deleted while it was read (and perhaps collected): nothing to report
        if not problems or attempt == ATTEMPTS - 1:
            break
        _rescan(repo)
    report.models += 1
    report.files += files
    report.chunks += chunks
    report.bytes_verified += verified
    report.problems.extend(problems)


def _check_packs(repo: Repository, report: FsckReport) -> None:
    """Every ``.idx`` verifies and describes its ``.pack``; every ``.cidx`` agrees with both."""
    odb = repo.odb
    for fn in sorted(os.listdir(odb.pack_dir)):
        if not fn.endswith(".idx"):
            continue
        pack = fn[:-4]
        idx = os.path.join(odb.pack_dir, fn)
        for attempt in range(ATTEMPTS):
            try:
                if not os.path.exists(os.path.join(odb.pack_dir, pack + ".pack")):
                    raise CorruptObjectError(os.path.join(odb.pack_dir, pack + ".pack"), "pack file is missing")
                pack_layout(odb.pack_dir, odb.cidx_dir, pack)  # .idx, .pack trailer and .cidx cross-checked
                break
            except (CorruptObjectError, OSError) as e:
                if not os.path.exists(idx):
                    break  # removed meanwhile (rolled up into another pack, or gc): nothing to check
                if attempt == ATTEMPTS - 1:
                    report.problems.append(Problem("object", e.oid, e.detail) if isinstance(e, CorruptObjectError)
                                           else Problem("object", idx, f"cannot be read: {e}"))
                else:
                    time.sleep(0.05)  # a removal in progress (delete_pack: .idx first, then .pack)
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
        inner, blobs = children(repo.odb.read(oid))
        stack.extend(inner + blobs)


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
