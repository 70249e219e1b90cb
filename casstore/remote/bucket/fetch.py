"""Pull from a bucket: walk the object graph from the wanted refs, fetch what the store lacks by byte range."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
from dulwich.objects import ObjectID, ShaFile
from dulwich.refs import Ref

from ...errors import CorruptObjectError, MissingObjectError, RemoteError
from ...objects.graph import children
from ...objects.packwriter import MAX_OBJECT, TYPE_NAMES, parse_object_header
from ...util.parallel import ordered
from ...util.progress import ProgressFn
from ..reftable import RootTable
from ..transports.base import Received, Wants, receive_pack, transport_errors
from .base import FORMAT, GAP, READAHEAD, RELIST, RUN_BYTES, ObjectGoneError, log
from .packs import Loc, RemotePacks
from .tables import RefTables

if TYPE_CHECKING:
    from ...objects.repository import Repository
    from ..incoming import Quarantine


class Fetch(RefTables, RemotePacks):
    """The ``Transport``'s ``read_refs`` and ``fetch``: the refs, and the objects the wanted refs reach as one pack."""

    def read_refs(self) -> dict[Ref, ObjectID]:
        """The remote's refs (every domain), from its ref tables (format 1: its ref objects) alone."""
        with transport_errors(self.url):  # a fetch that wants nothing: read again if a gc moved the root
            return self._fetch(lambda refs: [], lambda oid: True, lambda data: 0, None, skip_merged=False)

    def fetch(self, repo: Repository, wants: Wants, quarantine: Quarantine, domains: set[str] | None,
              progress: ProgressFn | None) -> Received:
        """Bring into ``quarantine`` what the objects ``wants`` names reach and ``repo`` lacks.

        The refs of ``domains`` only (None: all), and not those of the domains whose
        table is the one this store merged last (``note_merged``): a pull with nothing
        new neither decodes nor checks them (O(changed domains), not O(models)).
        """
        def fetch(write: Callable[[bytes], int]) -> None:
            self._fetch(wants, repo.odb.contains, write, domains, skip_merged=True)

        return receive_pack(quarantine, fetch, self.url, progress)

    def _fetch(self, wants: Wants, contains: Callable[[ObjectID], bool], write: Callable[[bytes], object],
               domains: set[str] | None, *, skip_merged: bool) -> dict[Ref, ObjectID]:
        """Write a pack of what ``wants(refs)`` reaches and ``contains`` says is not here; returns the refs.

        A ``gc`` of the remote that ran since the refs were read may have deleted a
        table or the objects of models deleted meanwhile (a pack listed gone even
        after listing again, an object in no pack): when the root has moved since,
        the fetch starts again from the new root (at most ``RELIST`` times), as long
        as nothing was written yet.  Once bytes went out, it fails with RemoteError
        ("pull again"); the caller's quarantine drops what came.

        Raises:
            RemoteError: the service failed; a gc kept deleting what the fetch read;
                MissingObjectError, CorruptObjectError: the remote is damaged (its
                root did not move).
        """
        sent = [False]

        def out(data: bytes) -> object:
            sent[0] = True
            return write(data)

        with self._errors():
            for attempt in range(RELIST):
                try:
                    return self._fetch_once(wants, contains, out, domains, skip_merged)
                except (ObjectGoneError, MissingObjectError) as e:
                    if self.format != FORMAT or not self._root_moved(self._root_read):
                        raise
                    if sent[0]:
                        raise RemoteError(self.url, "a gc of the remote deleted objects this pull was receiving "
                                                    f"(models deleted since it read the refs: {e}): pull again") from e
                    if attempt == RELIST - 1:
                        raise RemoteError(self.url, f"a gc of the remote kept deleting what the pull read "
                                                    f"({RELIST} attempts): pull again") from e
                    log.info("remote %s: a gc ran during the pull (%s): reading the refs again", self.url, e)
                    self.fetch_restarts += 1
                    self._forget_packs()
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _fetch_once(self, wants: Wants, contains: Callable[[ObjectID], bool],
                    write: Callable[[bytes], object], domains: set[str] | None,
                    skip_merged: bool) -> dict[Ref, ObjectID]:
        """One attempt of ``_fetch``; sets ``_root_read`` to the version of the root it read (if any)."""
        self._root_read = None
        fmt = self._check_marker(create=False)
        root, version = self.read_root() if fmt == FORMAT else (RootTable(), None)
        self._root_read = version
        if fmt != FORMAT or version is None:
            # format 1; or format 2 without a root yet: an upgrade in progress reads the old refs;
            # or nothing there (the listing fails on a bucket that does not exist)
            refs, _ = self.read_ref_objects()
        else:
            read = {d for d in root.domains if domains is None or d in domains}
            self.tables_read = {d: root.domains[d] for d in read}
            if skip_merged:
                read -= self.unchanged_since_merged()
            refs = self.tables_as_refs(root, self.read_tables(root, read))
        wanted = wants(refs)
        if wanted:
            inner, blobs = self._walk([bytes.fromhex(w.decode()) for w in wanted], contains)
            self._send(inner, blobs, write)
        return refs

    def _walk(self, wants: list[bytes], contains: Callable[[ObjectID], bool]) -> tuple[dict[bytes, bytes], list[bytes]]:
        """Entries of the commits and trees to fetch, and the blobs they need that we lack."""
        inner: dict[bytes, bytes] = {}  # oid -> verbatim pack entry
        blobs: dict[bytes, None] = {}
        parsed: dict[bytes, tuple[int, bytes, bytes]] = {}  # read ahead, verified: oid -> (type, content, entry)
        seen: set[bytes] = set()
        level = wants
        while level:
            todo = []
            for raw in level:
                if raw not in seen and not contains(ObjectID(raw.hex().encode())):
                    seen.add(raw)
                    todo.append(raw)
            missing = [r for r in todo if r not in parsed]
            if missing:
                self._fetch_inner(missing, parsed)
            level = []
            for raw in todo:
                type_num, content, entry = parsed.pop(raw)
                inner[raw] = entry
                try:
                    obj = ShaFile.from_raw_string(type_num, content, ObjectID(raw.hex().encode()))
                except Exception as err:
                    raise CorruptObjectError(raw.hex(), f"unparseable {TYPE_NAMES[type_num].decode()}: {err}") from None
                subs, found = children(obj)
                level.extend(bytes.fromhex(x.decode()) for x in subs)
                for sha in found:
                    child = bytes.fromhex(sha.decode())
                    if child not in seen and not contains(sha):
                        seen.add(child)
                        blobs[child] = None
        return inner, list(blobs)

    def _fetch_inner(self, raws: list[bytes], parsed: dict[bytes, tuple[int, bytes, bytes]]) -> None:
        """Fetch commits and trees, reading ahead: every whole non-blob entry read is kept, verified.

        A pack deleted since it was listed (combined into another) is looked up
        again in a fresh listing; what was already parsed is kept.
        """
        for attempt in range(RELIST):
            try:
                self._fetch_inner_once(raws, parsed)
                return
            except ObjectGoneError as e:
                self._relist(e, attempt)

    def _fetch_inner_once(self, raws: list[bytes], parsed: dict[bytes, tuple[int, bytes, bytes]]) -> None:
        wanted = set(raws)
        for run in self._runs(list(self._locate(raws).values()), GAP, RUN_BYTES):
            p = run[0][0]
            start = run[0][1]
            end = min(max(e for _, _, e in run) + READAHEAD, p.size - 20)
            data = self._get_range(self._key(f"objects/pack/{p.name}.pack"), start, end)
            lo = int(np.searchsorted(p.sorted_starts, start))
            for i in range(lo, len(p.sorted_starts)):
                s, e = int(p.sorted_starts[i]), int(p.sorted_ends[i])
                if e > end:
                    break
                oid = p.idx.sha(int(p.order[i]))
                if oid in parsed:
                    continue
                entry = data[s - start : e - start]
                if oid not in wanted and (entry[0] >> 4) & 7 not in (1, 2, 4):
                    continue  # a blob or something odd that nobody asked for
                try:
                    type_num, content = self._parse_entry(entry, oid, f"{p.name}@{s}")
                except CorruptObjectError:
                    if oid in wanted:
                        raise
                    continue  # read ahead only: it may never be needed
                parsed[oid] = (type_num, content, entry)
        for raw in raws:
            if raw not in parsed:  # pragma: no cover - _locate found it, the range covered it
                raise MissingObjectError(raw.hex(), f"not read from the remote {self.url}")

    def _send(self, inner: dict[bytes, bytes], blobs: list[bytes], write: Callable[[bytes], object]) -> None:
        """Write one pack: the commits and trees, then the blobs, fetched in parallel ranges."""
        located = self._locate(blobs)
        sha = hashlib.sha1()

        def out(b: bytes | memoryview) -> None:
            sha.update(b)
            write(bytes(b))

        out(b"PACK" + struct.pack(">II", 2, len(inner) + len(blobs)))
        for entry in inner.values():
            out(entry)
        where = {(p.name, start): raw for raw, (p, start, _) in located.items()}

        def fetch(run: list[Loc], attempt: int = 0) -> list[memoryview]:
            """The entries of one run; of their new packs if the run's pack was combined meanwhile."""
            p = run[0][0]
            try:
                data = self._get_range(self._key(f"objects/pack/{p.name}.pack"), run[0][1], run[-1][2])
            except ObjectGoneError as e:
                self._relist(e, attempt)
                moved = self._locate([where[(q.name, start)] for q, start, _ in run])
                where.update({(q.name, start): raw for raw, (q, start, _) in moved.items()})
                return [view for sub in self._runs(list(moved.values()), 0, RUN_BYTES)
                        for view in fetch(sub, attempt + 1)]
            base = run[0][1]
            return [memoryview(data)[start - base : end - base] for _, start, end in run]

        with ThreadPoolExecutor(4) as pool:
            runs = self._runs(list(located.values()), 0, RUN_BYTES)
            for views in ordered(pool, 8, (lambda r=r: fetch(r) for r in runs)):  # type: ignore[misc]
                for view in views:
                    type_num, size, _ = parse_object_header(view)
                    if type_num != 3 or size > MAX_OBJECT:
                        raise CorruptObjectError(f"remote {self.url}", "expected a blob entry on the remote")
                    out(view)
        out(sha.digest())
