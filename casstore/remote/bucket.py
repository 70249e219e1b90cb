"""Object storage as a remote: the protocol every bucket kind shares.

There is no git server to negotiate with, so the remote is laid out like a
bare repository that clients read and write with plain object requests::

    <prefix>/casstore-remote                  format marker ("casstore-remote 2")
    <prefix>/objects/pack/pack-<sha>.pack     git packs of whole objects, no deltas,
    <prefix>/objects/pack/pack-<sha>.idx      non-blob objects first; .idx uploaded last
    <prefix>/reftable/...                     format 2: the refs in ref tables (reftable.py)
    <prefix>/refs/cas/...                     format 1: one object per ref, "<hex oid>\\n"
    <prefix>/locks/gc                         while ``gc`` runs

Push uploads one pack of exactly the objects the remote's refs do not reach,
then moves refs with conditional writes: a model ref is created only if absent
(it never overwrites, even between racing clients), a history or the states
ref is replaced only if it still has the version it was read with (compare and
swap).  Format 2 does all of a push's changes in one compare-and-swap of the
root ref table (``_update_tables``); format 1 (remotes not yet upgraded with
``upgrade``) one conditional request per ref (``_update_refs``).  Then, when
the bucket holds more than ``MAX_SMALL_PACKS`` packs under ``SMALL_PACK`` bytes,
the push combines them (``combine_packs``: the new pack
is published before any old one is deleted, so an object is never missing).

Pull walks the object graph from the wanted refs, fetching by byte range from
the remote packs only the objects the local store lacks (objects next to each
other travel in one request), and hands them to the quarantine as one pack:
everything is verified there before any ref moves.  A pack found gone since it
was listed (combined meanwhile) makes the reader list again.

``BucketClient`` is that protocol; a bucket kind (s3.py, gcs.py, azure.py) is
a subclass that supplies the object requests: list, get (whole and by range),
put, upload a file, delete, put-if-absent / put-if-version / delete-if-version of a
ref.  A *version* is whatever the service compares in its conditional requests
(an ETag on S3 and Azure, a generation number on GCS), read with the ref.

The client has the shape of dulwich's ``fetch_pack``/``send_pack`` so that
``sync`` treats it like any git transport.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np
from dulwich.objects import ZERO_SHA, ObjectID, ShaFile
from dulwich.refs import Ref

from ..errors import CasError, CorruptObjectError, InvalidIdError, MissingObjectError, RemoteError
from ..objects.graph import children
from ..objects.packidx import PackIdx
from ..objects.packs import check_bounds, verify_entry
from ..objects.packwriter import MAX_OBJECT, TYPE_NAMES, EncodedEntry, PackWriter, parse_object_header
from ..util.names import check_domain, check_model_id
from ..util.parallel import ordered
from ..util.progress import Counter, ProgressFn
from .reftable import MAX_TABLE, ROOT_KEY, TABLES, DomainTable, RootTable, digest

MARKER = "casstore-remote"
#: the newest format this client reads and writes; a remote without a marker is created in it
FORMAT = 2
#: the format of one object per ref, still read and written on remotes not upgraded
FORMAT_PER_REF = 1
#: where ``gc`` keeps its lock
GC_LOCK = "locks/gc"
#: a gc lock older than this is stale (its holder died on another machine): restic's rule
STALE_LOCK = 30 * 60.0
#: seconds an upgrade waits after writing the new marker, for format-1 pushes already under way
UPGRADE_SETTLE = 10.0
#: attempts of a ref table update that keeps losing the root's compare-and-swap to other writers
CAS_ATTEMPTS = 12
#: bytes read past the objects asked for, parsed for the next round of the walk
READAHEAD = 256 << 10
#: objects this close together are fetched in one request
GAP = 64 << 10
#: size of one ranged request for chunk blobs
RUN_BYTES = 8 << 20
#: a pack smaller than this is "small": a candidate for combining
SMALL_PACK = 64 << 20
#: a push that finds more small packs than this combines them into one (see combine_packs)
MAX_SMALL_PACKS = 16
#: times a reader lists the packs again when one it listed is gone (combined meanwhile)
RELIST = 4

log = logging.getLogger("casstore")


class ObjectGoneError(RemoteError):
    """An object the client listed is no longer in the bucket (a pack combined and deleted since)."""

    def __init__(self, url: str, key: str) -> None:
        self.key = key
        super().__init__(url, f"{key}: deleted since it was listed")


@dataclass
class BucketGcReport:
    """What ``BucketClient.gc`` removed (or, with ``dry_run``, would remove)."""

    url: str
    dry_run: bool = False
    #: packs deleted whole: no object of theirs is reachable (or each has a copy kept elsewhere)
    packs_deleted: list[str] = field(default_factory=list)
    #: packs partly dead: their live objects copied into ``new_pack``, then deleted
    packs_rewritten: list[str] = field(default_factory=list)
    new_pack: str | None = None
    #: packs younger than the grace period: left alone whatever they hold
    packs_young: int = 0
    objects_removed: int = 0
    #: ref tables no root names any more, deleted
    tables_deleted: int = 0
    bytes_freed: int = 0

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class _GcRanMeanwhile(Exception):
    """The root's gc epoch moved during a push: objects it counted on may be gone."""


@dataclass
class UpgradeResult:
    """What ``BucketClient.upgrade`` did."""

    url: str
    #: the remote's format before: 0 (nothing there), 1 (one object per ref) or 2 (already upgraded)
    old_format: int = 0
    #: per-ref objects folded into the ref tables (and deleted)
    refs: int = 0
    #: per-ref objects left in place: their value differs from the table's (ref -> value)
    left: dict[str, str] = field(default_factory=dict)


@dataclass
class CombineResult:
    """What ``combine_packs`` did: the packs it replaced and the one that replaced them."""

    combined: list[str]
    pack: str
    objects: int
    bytes: int


_clients: dict[tuple[object, ...], Any] = {}
_clients_lock = threading.Lock()
#: clients kept at most; a process rarely talks to more than one or two configurations
MAX_CLIENTS = 8


def shared_client(kind: str, env: tuple[str, ...], make: Callable[[], Any]) -> Any:
    """The service client of this process for ``kind`` and the configuration in ``env``.

    Every push, pull or listing opens a new ``BucketClient``; a service client is
    reused across them, so that its setup (boto3's service model, credentials,
    pooled connections) is paid once per process.  The key holds the values of
    the environment variables the client is configured from, so another endpoint
    or other credentials get a client of their own, and the process id, so a
    forked child never shares its parent's connections.  ``make`` runs under a
    lock (a boto3 session is not thread-safe); the clients themselves are.
    """
    key = (kind, os.getpid(), *(os.environ.get(name) for name in env))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = make()
            if len(_clients) >= MAX_CLIENTS:
                _clients.clear()
            _clients[key] = client
        return client


@dataclass
class _RemotePack:
    name: str
    size: int
    idx: PackIdx
    offsets: np.ndarray  # entry offsets, sorted
    ends: np.ndarray  # entry end offsets, in the same order
    order: np.ndarray  # idx position of each sorted entry
    idx_starts: np.ndarray  # entry offsets by idx position
    idx_ends: np.ndarray

    def entry(self, pos: int) -> tuple[int, int]:
        """(start, end) in the pack of the entry at idx position ``pos``."""
        return int(self.idx_starts[pos]), int(self.idx_ends[pos])


_Loc = tuple[_RemotePack, int, int]  # where an object is: pack, start, end


@dataclass
class SendResult:
    """What ``send_pack`` reports, like dulwich's SendPackResult."""

    refs: dict[Ref, ObjectID]
    ref_status: dict[Ref, str | None] = field(default_factory=dict)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine is running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def _ref_kind(ref: Ref) -> tuple[str, str, str]:
    """("states", "", ""), ("history", domain, "") or ("model", domain, id) of a casstore ref name."""
    text = ref.decode()
    if text == "refs/cas/states":
        return "states", "", ""
    if text.startswith("refs/cas/domains/"):
        return "history", text[len("refs/cas/domains/"):], ""
    domain, _, mid = text[len("refs/cas/models/"):].partition("/")
    return "model", domain, mid


class BucketClient:
    """push and pull to ``<scheme>://bucket/prefix`` (see the module docstring).

    Subclasses set ``scheme``, ``kind`` and ``error_modules`` and implement the
    object requests below the "adapter" line; everything else is shared.
    """

    #: URL scheme, e.g. "s3"
    scheme = ""
    #: what the service is called in messages, e.g. "S3"
    kind = ""
    #: exceptions from these modules are network or service failures: RemoteError
    error_modules: tuple[str, ...] = ()

    def __init__(self, url: str, cache_dir: str | None = None, progress: ProgressFn | None = None) -> None:
        parsed = urlparse(url)
        if parsed.scheme != self.scheme or not parsed.netloc:
            raise RemoteError(url, f"not {'an' if self.kind[:1] in 'AEIOSU' else 'a'} {self.kind} URL: "
                                   f"{self.scheme}://bucket[/prefix]")
        self.url = url
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.cache_dir = cache_dir
        self.progress = progress
        self._packs: dict[str, _RemotePack] | None = None
        self._packs_lock = threading.Lock()
        #: the domains whose refs a push or pull reads (None: all); set by sync for partial pulls
        #: and for pushes (a push reads only the domains it may change)
        self.domains: set[str] | None = None
        #: set by a pull: a fetch leaves out the refs of the domains whose table is the one this
        #: store merged last (``unchanged_since_merged``), so a pull with nothing new neither decodes
        #: nor checks them (O(changed domains), not O(models)); a listing of the refs keeps it False
        self.skip_merged = False
        #: the remote's format, once read: 0 (nothing there yet), 1 or 2
        self.format: int | None = None
        #: the version ``_put_ref`` gave the object it wrote, when the service's answer says it
        self.last_put_version: str | None = None
        #: domain -> digest of each ref table the last fetch read (format 2)
        self.tables_read: dict[str, str] = {}
        #: pushes this client started again because a gc of the remote ran meanwhile
        self.gc_restarts = 0
        #: pulls (fetches) this client started again because a gc of the remote ran meanwhile
        self.fetch_restarts = 0
        #: the version of the root the current fetch read
        self._root_read: str | None = None

    # -- adapter: the object requests a bucket kind implements ---------------------

    def _list(self, sub: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every object whose key starts with ``self._key(sub)``."""
        raise NotImplementedError

    def _get(self, key: str, limit: int) -> tuple[bytes, str] | None:
        """(body, version) of a small object, or None when it does not exist.

        Raises:
            CorruptObjectError: the object is larger than ``limit`` bytes.
        """
        raise NotImplementedError

    def _read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of an object; may return fewer if cut.

        Raises:
            ObjectGoneError: the object does not exist (a pack deleted since it was listed).
        """
        raise NotImplementedError

    def _delete(self, key: str) -> None:
        """Delete an object unconditionally; an object already gone is not an error."""
        raise NotImplementedError

    def _put(self, key: str, data: bytes) -> None:
        """Write a small object unconditionally."""
        raise NotImplementedError

    def _upload(self, key: str, path: str, sent: Callable[[int], None]) -> None:
        """Upload a local file (a pack or its index), calling ``sent(n)`` as bytes go out."""
        raise NotImplementedError

    def _put_ref(self, key: str, data: bytes, version: str | None) -> bool:
        """Write a ref object if it is absent (``version`` None) or still has ``version``.

        Returns False, writing nothing, when the service refuses the precondition.
        Sets ``last_put_version`` to the new object's version when the answer holds it.
        """
        raise NotImplementedError

    def _delete_ref(self, key: str, version: str) -> bool:
        """Delete a ref object if it still has ``version``; False when refused."""
        raise NotImplementedError

    def _list_times(self, sub: str) -> Iterator[tuple[str, int, float]]:
        """(key, size, time of last write as a Unix time) of every object under ``self._key(sub)``."""
        raise NotImplementedError

    def _get_if_changed(self, key: str, version: str, limit: int) -> tuple[bytes, str] | None | bool:
        """Like ``_get``, but True, sending no body, when the object still has ``version``.

        The default asks unconditionally; a service that answers a conditional GET
        (If-None-Match, ifGenerationNotMatch) overrides it.
        """
        return self._get(key, limit)

    # -- plumbing --------------------------------------------------------------

    def _workdir(self) -> str:
        """Where pack indexes are cached and pushed packs are written."""
        if self.cache_dir is None:
            self.cache_dir = tempfile.mkdtemp(prefix=f"casstore-{self.scheme}-")
        os.makedirs(self.cache_dir, exist_ok=True)
        return self.cache_dir

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The service client's exceptions as RemoteError naming the URL."""
        try:
            yield
        except CasError:
            raise
        except Exception as e:
            # network failures only: a local OSError (a full disk, say) keeps its own name
            module = type(e).__module__ or ""
            if not (module.startswith((*self.error_modules, "urllib3", "requests"))
                    or isinstance(e, (ConnectionError, TimeoutError))):
                raise
            # the services' messages say what failed; their class names mean nothing to a user
            raise RemoteError(self.url, (str(e).splitlines() or [type(e).__name__])[0]) from e

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        data = self._read_range(key, start, end)
        if len(data) != end - start:  # the connection closed early (or the object shrank)
            raise RemoteError(self.url, f"{key}: read {len(data)} of {end - start} bytes")
        return data

    def _check_marker(self, create: bool) -> int:
        """The remote's format (0: nothing there yet), created in ``FORMAT`` when absent and ``create``.

        Raises:
            RemoteError: a newer format; or a format-1 marker next to a root table
                (an upgrade stopped half-way, or a format-1 client that wrote its
                marker over a new remote's): ``cas remote upgrade`` resolves both.
        """
        got = self._get(self._key(MARKER), 256)
        if got is None:
            if not create:
                self.format = 0
                return 0
            # conditional: of racing first pushes, one marker wins and the others read it
            self._put_ref(self._key(MARKER), f"{MARKER} {FORMAT}\n".encode(), None)
            got = self._get(self._key(MARKER), 256)
            if got is None:
                raise RemoteError(self.url, f"{MARKER} vanished as it was written")
        words = got[0].split()
        if len(words) != 2 or words[0] != MARKER.encode() or not words[1].isdigit():
            raise RemoteError(self.url, f"{MARKER} holds something other than a casstore format marker")
        fmt = int(words[1])
        if fmt > FORMAT:
            raise RemoteError(self.url, f"written by a newer casstore (format {fmt}); upgrade casstore")
        if fmt == FORMAT_PER_REF and self._get(self._key(ROOT_KEY), MAX_TABLE) is not None:
            raise RemoteError(self.url, "holds refs in both formats (an upgrade was interrupted, or a "
                                        "casstore older than 0.2 pushed to it meanwhile): run "
                                        f"`cas remote upgrade {self.url}`")
        self.format = fmt
        return fmt

    # -- ref tables (format 2, reftable.py) ---------------------------------------

    def _cache_file(self, name: str) -> str:
        d = os.path.join(self._workdir(), "reftables")
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, name)

    @staticmethod
    def _write_cache(path: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def read_root(self, fresh: bool = False) -> tuple[RootTable, str | None]:
        """The root table and its version (None: no root yet, an empty remote).

        The last root read is cached with its version, and asked for again
        conditionally: an unchanged root costs one request and no body.
        ``fresh`` skips the cache (after a lost compare-and-swap).
        """
        cached = self._cache_file("root")
        key = self._key(ROOT_KEY)
        got: tuple[bytes, str] | None | bool
        version = data = None
        if not fresh and os.path.exists(cached):
            with open(cached, "rb") as f:
                version, _, data = f.read().partition(b"\n")
        if version:
            got = self._get_if_changed(key, version.decode(), MAX_TABLE)
            if got is True:
                assert data is not None
                return RootTable.decode(data, f"remote {self.url} (cached root)"), version.decode()
        else:
            got = self._get(key, MAX_TABLE)
        if not isinstance(got, tuple):
            if os.path.exists(cached):
                os.unlink(cached)
            return RootTable(), None
        root = RootTable.decode(got[0], f"remote {self.url}: {ROOT_KEY}")
        if "\n" not in got[1]:
            self._write_cache(cached, got[1].encode() + b"\n" + got[0])
        return root, got[1]

    def unchanged_since_merged(self) -> set[str]:
        """Domains whose table, as the last fetch read it, is the one a pull merged before (``note_merged``).

        Such a domain holds nothing new for this store: a pull need not merge it again.
        """
        try:
            with open(self._cache_file("merged"), encoding="ascii") as f:
                merged = dict(line.split(" ", 1) for line in f.read().splitlines() if " " in line)
        except (FileNotFoundError, UnicodeDecodeError, ValueError):
            return set()
        return {d for d, name in self.tables_read.items() if merged.get(d) == name}

    def note_merged(self, domains: set[str]) -> None:
        """Record that this store merged the tables of ``domains`` the last fetch read."""
        path = self._cache_file("merged")
        try:
            with open(path, encoding="ascii") as f:
                merged = dict(line.split(" ", 1) for line in f.read().splitlines() if " " in line)
        except (FileNotFoundError, UnicodeDecodeError, ValueError):
            merged = {}
        new = {d: self.tables_read[d] for d in domains if d in self.tables_read}
        if all(merged.get(d) == name for d, name in new.items()):
            return  # a pull with nothing new: the record holds it already
        merged.update(new)
        self._write_cache(path, "".join(f"{d} {n}\n" for d, n in sorted(merged.items())).encode())

    def read_table(self, domain: str, name: str) -> DomainTable:
        """The domain table ``name`` (its digest): from the local cache, else one GET.

        Raises:
            CorruptObjectError: the bytes do not hash to the name, or do not parse.
        """
        cached = self._cache_file(name)
        where = f"remote {self.url}: {TABLES}{name}"
        if os.path.exists(cached):
            with open(cached, "rb") as f:
                data = f.read()
        else:
            got = self._get(self._key(TABLES + name), MAX_TABLE)
            if got is None:
                raise MissingObjectError(name, f"remote {self.url}: the root names a domain table "
                                               "that is not there")
            data = got[0]
            if digest(data) != name:
                raise CorruptObjectError(where, "does not hash to its name")
        table = DomainTable.decode(data, domain, where)
        if not os.path.exists(cached):
            self._write_cache(cached, data)
        return table

    def read_tables(self, root: RootTable, domains: set[str] | None) -> dict[str, DomainTable]:
        """The tables of ``domains`` (None: all) the root names, a few read at once."""
        names = sorted(d for d in root.domains if domains is None or d in domains)
        with ThreadPoolExecutor(8) as pool:
            tables = list(pool.map(lambda d: self.read_table(d, root.domains[d]), names))
        return dict(zip(names, tables, strict=True))

    @staticmethod
    def tables_as_refs(root: RootTable, tables: Mapping[str, DomainTable]) -> dict[Ref, ObjectID]:
        """The refs the tables hold, named as a git remote advertises them."""
        refs: dict[Ref, ObjectID] = {}
        if root.states is not None:
            refs[Ref(b"refs/cas/states")] = root.states
        for domain, table in tables.items():
            if table.history is not None:
                refs[Ref(f"refs/cas/domains/{domain}".encode())] = table.history
            for mid, sha in table.models.items():
                refs[Ref(f"refs/cas/models/{domain}/{mid}".encode())] = sha
        return refs

    def write_root(self, root: RootTable, tables: Mapping[str, DomainTable], version: str | None) -> bool:
        """Write the tables ``root`` names that are new, then swap the root if it still has ``version``.

        A table is immutable and named by its digest: writing it races with
        nothing.  Returns False when the root moved meanwhile (nothing changed then
        but new unreferenced tables, which ``gc`` removes).
        """
        def put(domain: str) -> None:
            data = tables[domain].encode()
            self._put(self._key(TABLES + root.domains[domain]), data)
            self._write_cache(self._cache_file(root.domains[domain]), data)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, sorted(tables)))
        data = root.encode()
        if not self._put_ref(self._key(ROOT_KEY), data, version):
            return False
        # its new version, for the next conditional read: from the write's answer, else read back
        got = (data, self.last_put_version) if self.last_put_version else self._get(self._key(ROOT_KEY), MAX_TABLE)
        if got is not None and got[0] == data and "\n" not in got[1]:
            self._write_cache(self._cache_file("root"), got[1].encode() + b"\n" + data)
        return True

    def read_refs(self) -> tuple[dict[Ref, ObjectID], dict[Ref, str]]:
        """The remote's casstore refs and their versions (names and values are checked by the caller).

        Only ``refs/cas/``: anything else under the prefix is not ours to read.
        """
        keys = [key for key, _ in self._list("refs/cas/")]
        base = len(self._key(""))

        def one(key: str) -> tuple[Ref, ObjectID, str] | None:
            got = self._get(key, 100)
            if got is None:
                return None  # deleted since the listing
            return Ref(key[base:].encode()), ObjectID(got[0].strip()), got[1]

        refs: dict[Ref, ObjectID] = {}
        versions: dict[Ref, str] = {}
        with ThreadPoolExecutor(8) as pool:
            for item in pool.map(one, keys):
                if item is not None:
                    refs[item[0]], versions[item[0]] = item[1], item[2]
        return refs, versions

    # -- packs -------------------------------------------------------------------

    def _load_packs(self) -> dict[str, _RemotePack]:
        """Every published remote pack, with its index (cached locally by name and size).

        The listing is kept for the client's life: a pack deleted since (combined
        into another by ``combine_packs``, which publishes the new pack before it
        deletes any old one) makes the read that finds it gone list again
        (``_reload_packs``): the new listing holds the pack that replaced it.
        """
        with self._packs_lock:
            for attempt in range(RELIST):
                if self._packs is not None:
                    break
                try:
                    self._packs = self._list_packs()
                except ObjectGoneError:  # an index deleted between the listing and its download
                    if attempt == RELIST - 1:
                        raise
            assert self._packs is not None
            return self._packs

    def _reload_packs(self, key: str) -> None:
        """List the packs again because the pack object ``key`` was deleted, unless another thread did since."""
        gone = key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        with self._packs_lock:
            if self._packs is not None and gone in self._packs:
                self._packs = None
        self._load_packs()

    def _listing(self) -> dict[str, int]:
        """Size of every object under objects/pack/, by file name."""
        return {key.rsplit("/", 1)[-1]: size for key, size in self._list("objects/pack/")}

    def _list_packs(self, listing: dict[str, int] | None = None) -> dict[str, _RemotePack]:
        if listing is None:
            listing = self._listing()
        packs: dict[str, _RemotePack] = {}
        cache = self._workdir()
        for fn, idx_size in sorted(listing.items()):
            name = fn[: -len(".idx")]
            if not fn.endswith(".idx") or name + ".pack" not in listing:
                continue
            if not name.startswith("pack-") or len(name) != 45 or any(c not in "0123456789abcdef" for c in name[5:]):
                raise CorruptObjectError(fn, f"remote {self.url} has a pack with a bad name")
            path = os.path.join(cache, fn)
            if not os.path.exists(path) or os.path.getsize(path) != idx_size:
                data = self._get_range(self._key("objects/pack/" + fn), 0, idx_size) if idx_size else b""
                if len(data) < 40 or hashlib.sha1(data[:-20]).digest() != data[-20:]:
                    raise CorruptObjectError(fn, f"remote {self.url}: pack index checksum mismatch")
                if data[-40:-20].hex() != name[5:]:
                    raise CorruptObjectError(fn, f"remote {self.url}: pack index belongs to another pack")
                fd, tmp = tempfile.mkstemp(dir=cache)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            size = listing[name + ".pack"]
            idx = PackIdx(path)
            idx_starts, idx_ends = idx.entry_bounds(size)
            order = idx_starts.argsort(kind="stable")
            offsets, ends = idx_starts[order], idx_ends[order]
            if not check_bounds(idx_starts, idx_ends, size):
                raise CorruptObjectError(fn, f"remote {self.url}: pack index offsets do not fit the pack")
            packs[name] = _RemotePack(name, size, idx, offsets, ends, order, idx_starts, idx_ends)
        self._prune_cache(cache, {name + ".idx" for name in packs})
        return packs

    @staticmethod
    def _prune_cache(cache: str, live: set[str]) -> None:
        """Delete cached indexes of packs the bucket no longer lists (combined or gc'd there).

        The cache only ever grows otherwise: one ``.idx`` per pack ever seen.  A
        cached index is derived data (fetched again by name and size if needed), so
        removing one another process is reading costs that process a re-fetch at most.
        """
        for fn in os.listdir(cache):
            if fn.startswith("pack-") and fn.endswith(".idx") and fn not in live:
                try:
                    os.unlink(os.path.join(cache, fn))
                except FileNotFoundError:
                    pass

    def _locate(self, raws: list[bytes]) -> dict[bytes, _Loc]:
        """Where each binary oid is on the remote: (pack, start, end).

        Raises:
            MissingObjectError: an object no remote pack holds.
        """
        out: dict[bytes, _Loc] = {}
        todo = list(raws)
        for p in self._load_packs().values():
            if not todo:
                break
            found = p.idx.find(todo)
            rest = []
            for raw, pos in zip(todo, found.tolist(), strict=True):
                if pos >= 0:
                    start, end = p.entry(pos)
                    if end - start > MAX_OBJECT + 64:
                        raise CorruptObjectError(raw.hex(), f"remote {self.url}: a pack entry of {end - start} bytes")
                    out[raw] = (p, start, end)
                else:
                    rest.append(raw)
            todo = rest
        if todo:
            raise MissingObjectError(todo[0].hex(), f"the remote {self.url} refers to it but has no pack holding it")
        return out

    @staticmethod
    def _runs(items: list[_Loc], gap: int, limit: int) -> Iterator[list[_Loc]]:
        """Entries grouped into ranges of one pack: sorted, at most ``gap`` apart, ``limit`` long."""
        run: list[_Loc] = []
        for item in sorted(items, key=lambda t: (t[0].name, t[1])):
            if run and (item[0] is not run[0][0] or item[1] - run[-1][2] > gap or item[2] - run[0][1] > limit):
                yield run
                run = []
            run.append(item)
        if run:
            yield run

    def _parse_entry(self, entry: bytes | memoryview, oid: bytes, name: str) -> tuple[int, bytes]:
        """(type, content) of a whole-object pack entry, checked against its oid (``verify_entry``)."""
        try:
            type_num, parts = verify_entry(entry, oid)
        except CorruptObjectError as e:
            raise CorruptObjectError(e.oid, f"remote {self.url} ({name}): {e.detail}") from None
        return type_num, b"".join(parts)

    # -- fetch ---------------------------------------------------------------------

    def fetch_pack(self, path: str, determine_wants: Callable[..., list[ObjectID]], graph_walker: Any,  # noqa: PLR0913 - dulwich's fetch_pack signature (issue 23 drops it)
                   pack_data: Callable[[bytes], object], progress: Any = None, depth: int | None = None) -> None:
        """Send a pack of what the wanted refs reach and the local store lacks to ``pack_data``.

        ``graph_walker.contains(hex oid)`` says what the local store has.

        A ``gc`` of the remote that ran since the refs were read may have deleted a
        table or the objects of models deleted meanwhile (a pack listed gone even
        after listing again, an object in no pack): when the root has moved since,
        the fetch starts again from the new root (at most ``RELIST`` times), as long
        as nothing was sent yet.  Once bytes went out, it fails with RemoteError
        ("pull again"); the caller's quarantine drops what came.

        Raises:
            RemoteError: the service failed; a gc kept deleting what the fetch read;
                MissingObjectError, CorruptObjectError: the remote is damaged (its
                root did not move).
        """
        sent = [False]

        def out(data: bytes) -> object:
            sent[0] = True
            return pack_data(data)

        with self._errors():
            for attempt in range(RELIST):
                try:
                    self._fetch_once(determine_wants, graph_walker, out)
                    return
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
                    with self._packs_lock:
                        self._packs = None

    def _root_moved(self, version: str | None) -> bool:
        """Whether the root's version is no longer ``version`` (another writer or a gc swapped it)."""
        return version is not None and self.read_root(fresh=True)[1] != version

    def _fetch_once(self, determine_wants: Callable[..., list[ObjectID]], graph_walker: Any,
                    pack_data: Callable[[bytes], object]) -> None:
        """One attempt of ``fetch_pack``; sets ``_root_read`` to the version of the root it read (if any)."""
        self._root_read = None
        fmt = self._check_marker(create=False)
        root, version = self.read_root() if fmt == FORMAT else (RootTable(), None)
        self._root_read = version
        if fmt != FORMAT or version is None:
            # format 1; or format 2 without a root yet: an upgrade in progress reads the old refs;
            # or nothing there (the listing fails on a bucket that does not exist)
            refs, _ = self.read_refs()
        else:
            read = {d for d in root.domains if self.domains is None or d in self.domains}
            self.tables_read = {d: root.domains[d] for d in read}
            if self.skip_merged:
                read -= self.unchanged_since_merged()
            refs = self.tables_as_refs(root, self.read_tables(root, read))
        wants = determine_wants(refs)
        if not wants:
            return
        contains: Callable[[ObjectID], bool] = graph_walker.contains  # a listing's walker has none: wants nothing
        inner, blobs = self._walk([bytes.fromhex(w.decode()) for w in wants], contains)
        self._send(inner, blobs, pack_data)

    def _walk(self, wants: list[bytes], contains: Callable[[ObjectID], bool]) -> tuple[dict[bytes, bytes], list[bytes]]:  # noqa: C901, PLR0912 - the bucket's object walk; one graph walk to come (issue 23)
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
                if attempt == RELIST - 1:
                    raise
                self._reload_packs(e.key)

    def _fetch_inner_once(self, raws: list[bytes], parsed: dict[bytes, tuple[int, bytes, bytes]]) -> None:
        wanted = set(raws)
        for run in self._runs(list(self._locate(raws).values()), GAP, RUN_BYTES):
            p = run[0][0]
            start = run[0][1]
            end = min(max(e for _, _, e in run) + READAHEAD, p.size - 20)
            data = self._get_range(self._key(f"objects/pack/{p.name}.pack"), start, end)
            lo = int(np.searchsorted(p.offsets, start))
            for i in range(lo, len(p.offsets)):
                s, e = int(p.offsets[i]), int(p.ends[i])
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

    def _send(self, inner: dict[bytes, bytes], blobs: list[bytes], pack_data: Callable[[bytes], object]) -> None:
        """Write one pack: the commits and trees, then the blobs, fetched in parallel ranges."""
        located = self._locate(blobs)
        sha = hashlib.sha1()

        def out(b: bytes | memoryview) -> None:
            sha.update(b)
            pack_data(bytes(b))

        out(b"PACK" + struct.pack(">II", 2, len(inner) + len(blobs)))
        for entry in inner.values():
            out(entry)
        where = {(p.name, start): raw for raw, (p, start, _) in located.items()}

        def fetch(run: list[_Loc], attempt: int = 0) -> list[memoryview]:
            """The entries of one run; of their new packs if the run's pack was combined meanwhile."""
            p = run[0][0]
            try:
                data = self._get_range(self._key(f"objects/pack/{p.name}.pack"), run[0][1], run[-1][2])
            except ObjectGoneError as e:
                if attempt == RELIST - 1:
                    raise
                self._reload_packs(e.key)
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

    # -- push ------------------------------------------------------------------------

    def send_pack(self, path: str, update_refs: Callable[[dict[Ref, ObjectID]], dict[Ref, ObjectID]],
                  generate_pack_data: Callable[..., tuple[int, Iterator[Any]]], progress: Any = None,
                  atomic: bool = False) -> SendResult:
        """Upload what the remote lacks, then move its refs with conditional writes.

        On a remote of ref tables, a ``cas gc`` of the bucket that ran between the
        read of the refs and their swap may have deleted objects the pack left
        out: the push then starts again (at most ``CAS_ATTEMPTS`` times).
        """
        with self._errors():
            for attempt in range(CAS_ATTEMPTS):
                try:
                    result = self._send_once(update_refs, generate_pack_data)
                    break
                except _GcRanMeanwhile:
                    # back off: a gc collects the pack the lost attempt left unreferenced, and
                    # a push that started again at once would race that gc's epoch swap too
                    log.info("remote %s: a gc ran during the push: pushing again", self.url)
                    self.gc_restarts += 1
                    time.sleep(min(2.0, 0.1 * 2 ** attempt) * (0.5 + random.random()))  # noqa: S311 - jitter
            else:
                raise RemoteError(self.url, f"a gc of the remote kept running during the push ({CAS_ATTEMPTS} "
                                            "attempts): push again")
            if not result.ref_status:
                return result
        try:
            self.combine_packs()
        except Exception as e:  # best effort: the push is complete, and the next one tries again
            log.warning("remote %s: combining small packs failed (the push itself succeeded): %s", self.url, e)
        return result

    def _send_once(self, update_refs: Callable[[dict[Ref, ObjectID]], dict[Ref, ObjectID]],
                   generate_pack_data: Callable[..., tuple[int, Iterator[Any]]]) -> SendResult:
        per_ref = self._check_marker(create=True) == FORMAT_PER_REF
        if per_ref:
            refs, versions = self.read_refs()
        else:
            root, root_version = self.read_root()
            if root_version is None and any(True for _ in self._list("refs/cas/")):
                raise RemoteError(self.url, "is being upgraded to ref tables (format 2): try again in a "
                                            f"moment, or finish it with `cas remote upgrade {self.url}`")
            tables = self.read_tables(root, self.domains)
            refs = self.tables_as_refs(root, tables)
        new = update_refs(dict(refs))
        changes = {r: s for r, s in new.items() if refs.get(r) != s}
        result = SendResult(dict(refs))
        if not changes:
            return result
        count, records = generate_pack_data(set(refs.values()), {s for s in changes.values() if s != ZERO_SHA},
                                            ofs_delta=False)
        if count:
            self._upload_pack(count, records)
        if per_ref:
            self._update_refs(changes, versions, result)
        else:
            self._update_tables(changes, refs, root, root_version, tables, result)
        return result

    def _upload_pack(self, count: int, records: Iterator[Any]) -> None:
        work = tempfile.mkdtemp(prefix="push-", dir=self._workdir())
        try:
            with PackWriter(work, work, count, durable=False) as writer:
                for u in records:
                    entry = b"".join(u.comp_chunks)
                    _, _, hlen = parse_object_header(entry)
                    writer.add(EncodedEntry.verbatim(u.sha(), entry[:hlen], entry[hlen:]))
                name = writer.finish()
            paths = [os.path.join(work, name + ext) for ext in (".pack", ".idx")]
            uploading = Counter(self.progress, "uploading", sum(os.path.getsize(p) for p in paths))
            lock = threading.Lock()

            def sent(n: int) -> None:  # may be called from the service client's transfer threads
                with lock:
                    uploading(n)

            for path in paths:  # the .idx last: a pack without one is invisible
                self._upload(self._key("objects/pack/" + os.path.basename(path)), path, sent)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _update_refs(self, changes: Mapping[Ref, ObjectID], versions: Mapping[Ref, str], result: SendResult) -> None:  # noqa: C901 - one branch per ref update outcome
        """Move refs with conditional writes; ``versions`` holds the version each ref was read with."""

        def write(ref: Ref, sha: ObjectID) -> str | None:
            key = self._key(ref.decode())
            if sha == ZERO_SHA:
                done = self._delete_ref(key, versions[ref]) if ref in versions else True
            else:
                done = self._put_ref(key, sha + b"\n", versions.get(ref))
            if not done:
                # a request retried after a lost answer is refused by its own first attempt:
                # if the ref now holds what we wanted, the update went through
                now = self._get(key, 100)
                if (now[0].strip() if now is not None else ZERO_SHA) == sha:
                    return None
                return "changed on the remote meanwhile" if ref in versions else "already exists on the remote"
            return None

        # Several requests, no transaction: order them so that an interruption or a
        # refused compare-and-swap never loses a model.  New model refs first (a model
        # the history does not list yet is harmless: model refs are the truth); then
        # the histories (compare-and-swap on the version read with the refs); deletions
        # and replacements of existing model refs last, and only for domains whose
        # history moved, so a refused history never leaves a remote model deleted.
        def domain_of(ref: Ref) -> bytes:
            return ref[len(b"refs/cas/models/"):].split(b"/", 1)[0]

        models = sorted(r for r in changes if r.startswith(b"refs/cas/models/"))
        creations = [r for r in models if r not in versions]
        removals = [r for r in models if r in versions]
        failed_domains = set()
        for ref in creations:
            result.ref_status[ref] = reason = write(ref, changes[ref])
            if reason is not None:
                failed_domains.add(domain_of(ref))
        for ref in sorted(set(changes) - set(models)):
            if ref.startswith(b"refs/cas/domains/") and ref[len(b"refs/cas/domains/"):] in failed_domains:
                result.ref_status[ref] = "not moved: a model ref of this domain was refused"
                continue
            result.ref_status[ref] = reason = write(ref, changes[ref])
            if reason is not None and ref.startswith(b"refs/cas/domains/"):
                failed_domains.add(ref[len(b"refs/cas/domains/"):])
        for ref in removals:
            if domain_of(ref) in failed_domains:
                result.ref_status[ref] = "not changed: this domain's history was not moved"
                continue
            result.ref_status[ref] = write(ref, changes[ref])
        for ref, reason in result.ref_status.items():
            if reason is None:
                sha = changes[ref]
                if sha == ZERO_SHA:
                    result.refs.pop(ref, None)
                else:
                    result.refs[ref] = sha


    def upgrade(self, settle: float = UPGRADE_SETTLE) -> UpgradeResult:
        """Convert a format-1 remote (one object per ref) to ref tables, in place, while others use it.

        1. The marker says format 2: from then on a format-1 client refuses the
           remote ("written by a newer casstore"), and format-2 clients read the
           old refs (pulls) or wait (pushes) until the root exists.
        2. Wait ``settle`` seconds: a format-1 push that read the marker before
           may still write its refs.
        3. Fold the per-ref objects into the tables (root compare-and-swap), then
           delete each with its version as read: one a late format-1 push changed
           meanwhile is refused, read again and folded in the next round.

        A per-ref object whose value differs from the table's (only a format-1
        client writing after the settle time can cause it) is left in place and
        reported; running the upgrade again folds any such late writes that do
        not conflict.  Idempotent: an upgraded remote is left as it is.

        Raises:
            RemoteError: the service failed, or the remote is of a newer format.
        """
        result = UpgradeResult(self.url)
        with self._errors():
            got = self._get(self._key(MARKER), 256)
            words = got[0].split() if got is not None else [MARKER.encode(), b"0"]
            if len(words) != 2 or words[0] != MARKER.encode() or not words[1].isdigit():
                raise RemoteError(self.url, f"{MARKER} holds something other than a casstore format marker")
            result.old_format = int(words[1])
            if result.old_format > FORMAT:
                raise RemoteError(self.url, f"written by a newer casstore (format {result.old_format})")
            if result.old_format < FORMAT:
                self._put(self._key(MARKER), f"{MARKER} {FORMAT}\n".encode())
                if result.old_format:
                    time.sleep(settle)
            left: set[Ref] = set()
            for _ in range(CAS_ATTEMPTS):
                refs, versions = self.read_refs()
                todo = {r: s for r, s in refs.items() if r not in left}
                if not todo:
                    break
                root, version = self.read_root(fresh=True)
                tables = self.read_tables(root, None)
                new_root = RootTable(root.states, dict(root.domains), root.gc)
                changed: dict[str, DomainTable] = {}
                fold: list[Ref] = []
                for ref, sha in sorted(todo.items()):
                    done = self._fold(ref, sha, new_root, tables, changed)
                    if done is None:
                        left.add(ref)
                        result.left[ref.decode("utf-8", "replace")] = sha.decode()
                    else:  # added, or there already: the old object is to delete either way
                        fold.append(ref)
                for domain, t in changed.items():
                    new_root.domains[domain] = digest(t.encode())
                if new_root != root and not self.write_root(new_root, changed, version):
                    continue
                result.refs += len(fold)
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(self._delete_ref, [self._key(r.decode()) for r in fold], [versions[r] for r in fold]))
            if result.old_format == 0 and self.read_root(fresh=True)[1] is None:
                self._put_ref(self._key(ROOT_KEY), RootTable().encode(), None)
        return result

    @staticmethod
    def _fold(ref: Ref, sha: ObjectID, root: RootTable, tables: dict[str, DomainTable],
              changed: dict[str, DomainTable]) -> bool | None:
        """Put a format-1 ref into the tables: True when added, False when there already, None on a conflict."""
        try:
            text = ref.decode("ascii")
            if len(sha) != 40 or not all(c in b"0123456789abcdef" for c in sha):
                return None
            if text == "refs/cas/states":
                if root.states not in (None, sha):
                    return None
                added = root.states is None
                root.states = sha
                return added
            if text.startswith("refs/cas/domains/"):
                domain, mid = check_domain(text[len("refs/cas/domains/"):]), None
            elif text.startswith("refs/cas/models/"):
                d, _, m = text[len("refs/cas/models/"):].partition("/")
                domain, mid = check_domain(d), check_model_id(m)
            else:
                return None
        except (UnicodeDecodeError, InvalidIdError):
            return None
        if domain not in changed:
            t = tables.get(domain) if domain in root.domains else None
            changed[domain] = DomainTable(domain, t.history if t else None, dict(t.models) if t else {})
        table = changed[domain]
        now = table.history if mid is None else table.models.get(mid)
        if now is not None:
            return False if now == sha else None
        if mid is None:
            table.history = sha
        else:
            table.models[mid] = sha
        return True

    def _update_tables(self, changes: Mapping[Ref, ObjectID], base: Mapping[Ref, ObjectID], root: RootTable,  # noqa: PLR0913 - what a ref table update needs
                       version: str | None, tables: dict[str, DomainTable], result: SendResult) -> None:
        """Apply ``changes`` (decided on the refs ``base``) to the ref tables, by the root's compare-and-swap.

        Each attempt decides every change against the tables as they are now,
        with ``_update_refs``'s rules: a model ID is created only where absent; a
        history, the states ref, a model replaced or deleted only where it still
        has the value the push read; a refused model creation or history leaves
        its domain's history and removals alone.  The new domain tables are
        written, then the root swapped; a lost swap (another writer, anywhere in
        the store) reads the root and the touched domains' tables again and
        decides again.  All the changes that pass go in one swap: atomic.
        """
        touched = sorted({_ref_kind(r)[1] for r in changes if _ref_kind(r)[0] != "states"})
        for attempt in range(CAS_ATTEMPTS):
            status, new_root, written = self._plan_tables(changes, base, root, tables)
            if new_root == root or self.write_root(new_root, written, version):
                result.ref_status.update(status)
                break
            time.sleep(min(2.0, 0.05 * 2 ** attempt) * random.random())  # noqa: S311 - jitter, not crypto
            epoch = root.gc
            root, version = self.read_root(fresh=True)
            if root.gc != epoch:
                raise _GcRanMeanwhile()
            tables.update(self.read_tables(root, set(touched)))
        else:
            for ref in changes:
                result.ref_status[ref] = f"other clients kept changing the remote's refs ({CAS_ATTEMPTS} attempts)"
        for ref, reason in result.ref_status.items():
            if reason is None:
                if changes[ref] == ZERO_SHA:
                    result.refs.pop(ref, None)
                else:
                    result.refs[ref] = changes[ref]

    @staticmethod
    def _plan_tables(changes: Mapping[Ref, ObjectID], base: Mapping[Ref, ObjectID], root: RootTable,  # noqa: C901 - one branch per change to a ref table
                     tables: Mapping[str, DomainTable]
                     ) -> tuple[dict[Ref, str | None], RootTable, dict[str, DomainTable]]:
        """One attempt of ``_update_tables``: each change's status, the new root, the tables to write."""
        kind = _ref_kind
        new_tables: dict[str, DomainTable] = {}
        states = [root.states]

        def table(domain: str) -> DomainTable:
            if domain not in new_tables:
                t = tables.get(domain) if domain in root.domains else None
                new_tables[domain] = DomainTable(domain, t.history if t else None, dict(t.models) if t else {})
            return new_tables[domain]

        def current(ref: Ref) -> ObjectID | None:
            what, domain, mid = kind(ref)
            if what == "states":
                return states[0]
            return table(domain).history if what == "history" else table(domain).models.get(mid)

        def put(ref: Ref, sha: ObjectID, refusal: str) -> str | None:
            now = current(ref)
            if now == (None if sha == ZERO_SHA else sha):
                return None  # there already (a retried request, or another client did the same)
            if now != base.get(ref):
                return refusal
            what, domain, mid = kind(ref)
            if what == "states":
                states[0] = sha
            elif what == "history":
                table(domain).history = None if sha == ZERO_SHA else sha
            elif sha == ZERO_SHA:
                del table(domain).models[mid]
            else:
                table(domain).models[mid] = sha
            return None

        status: dict[Ref, str | None] = {}
        failed: set[str] = set()
        models = sorted(r for r in changes if kind(r)[0] == "model")
        for ref in (r for r in models if r not in base):
            status[ref] = put(ref, changes[ref], "already exists on the remote")
            if status[ref] is not None:
                failed.add(kind(ref)[1])
        for ref in sorted(set(changes) - set(models)):
            what, domain, _ = kind(ref)
            if what == "history" and domain in failed:
                status[ref] = "not moved: a model ref of this domain was refused"
                continue
            status[ref] = put(ref, changes[ref], "changed on the remote meanwhile")
            if status[ref] is not None and what == "history":
                failed.add(domain)
        for ref in (r for r in models if r in base):
            if kind(ref)[1] in failed:
                status[ref] = "not changed: this domain's history was not moved"
                continue
            status[ref] = put(ref, changes[ref], "changed on the remote meanwhile")
        new_root = RootTable(states[0], dict(root.domains), root.gc)
        written: dict[str, DomainTable] = {}
        for domain, t in new_tables.items():
            if t.empty():
                new_root.domains.pop(domain, None)
            else:
                name = digest(t.encode())
                if root.domains.get(domain) != name:
                    new_root.domains[domain] = name
                    written[domain] = t
        return status, new_root, written


    # -- garbage collection -----------------------------------------------------------

    def gc(self, grace: float, dry_run: bool = False) -> BucketGcReport:
        """Remove what no ref of the remote reaches: dead packs deleted, partly dead ones rewritten.

        Safe with any number of pushers and pullers at once (docs/remotes.md):

        * one gc at a time: a lock object (``locks/gc``, created only if absent),
          stale after ``STALE_LOCK`` seconds, or at once when its holder is a dead
          process of this machine (restic's rules);
        * a pack or ref table younger than ``grace`` seconds is never deleted nor rewritten;
        * the live objects of partly dead packs are published in a new pack first;
        * then the root's gc epoch is bumped by compare-and-swap on the root the
          reachability was computed from: a push that moved the root meanwhile makes
          the gc compute again, and a push that read the root before the bump starts
          again (its pack may have left out objects this gc deletes);
        * only then are the old packs deleted (``.pack`` before ``.idx``); a reader
          that listed one lists again and finds its objects in the new pack.

        A gc killed at any step leaves duplicates or garbage at worst, never a
        missing object; the next one removes them.

        Raises:
            RemoteError: another gc holds the lock; the remote is not of ref tables
                (format 1: ``cas remote upgrade`` first); the service failed.
            MissingObjectError, CorruptObjectError: a ref reaches an object no
                pack holds, or a damaged one: nothing is deleted then.
        """
        with self._errors():
            fmt = self._check_marker(create=False)
            if fmt == 0:
                return BucketGcReport(self.url, dry_run)
            if fmt != FORMAT:
                raise RemoteError(self.url, f"gc needs ref tables (format 2): run `cas remote upgrade {self.url}`")
            if dry_run:
                report = self._gc_once(grace, True)
                assert report is not None
                return report
            version = self._take_gc_lock()
            try:
                for _ in range(CAS_ATTEMPTS):
                    report = self._gc_once(grace, False)
                    if report is not None:
                        return report
                raise RemoteError(self.url, f"the remote's refs kept changing during gc ({CAS_ATTEMPTS} attempts)")
            finally:
                if version is None or not self._delete_ref(self._key(GC_LOCK), version):
                    self._delete(self._key(GC_LOCK))

    def _take_gc_lock(self) -> str | None:
        key = self._key(GC_LOCK)
        # the time (and a nonce) make this attempt's body unique: finding it is finding our own lock
        me = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time(),
                         "nonce": os.urandom(8).hex()}).encode()
        for _ in range(4):
            self.last_put_version = None
            if self._put_ref(key, me, None):
                return self.last_put_version or (got[1] if (got := self._get(key, 4096)) else None)
            got = self._get(key, 4096)
            if got is None:
                continue
            if got[0] == me:  # our own create, retried by the service client after its answer was lost
                return got[1]
            try:
                holder = json.loads(got[0])
                host, pid, since = str(holder["host"]), int(holder["pid"]), float(holder["time"])
            except (ValueError, KeyError, TypeError):
                host, pid, since = "?", 0, 0.0
            if time.time() - since < STALE_LOCK and not (host == socket.gethostname() and not _alive(pid)):
                raise RemoteError(self.url, f"another gc holds the lock ({GC_LOCK}: {host} pid {pid}, "
                                            f"{time.time() - since:.0f} s ago); a dead holder's goes stale "
                                            f"after {STALE_LOCK / 60:.0f} min")
            log.warning("remote %s: removing a stale gc lock (%s pid %s)", self.url, host, pid)
            self._delete_ref(key, got[1])
        raise RemoteError(self.url, "could not take the gc lock")

    def _gc_once(self, grace: float, dry_run: bool) -> BucketGcReport | None:  # noqa: PLR0915 - a bucket gc's phases, in order
        """One gc; None when a push moved the root before the epoch swap (nothing deleted: compute again)."""
        report = BucketGcReport(self.url, dry_run)
        now = time.time()
        root, version = self.read_root(fresh=True)
        refs = self.tables_as_refs(root, self.read_tables(root, None))
        listing = {key.rsplit("/", 1)[-1]: (size, when) for key, size, when in self._list_times("objects/pack/")}
        with self._packs_lock:
            self._packs = self._list_packs({fn: size for fn, (size, _) in listing.items()})
            packs = dict(self._packs)
        inner, blobs = self._walk([bytes.fromhex(sha.decode()) for sha in set(refs.values())], lambda oid: False)
        live = set(inner) | set(blobs)

        def young(fn: str) -> bool:
            return now - listing.get(fn, (0, now))[1] < grace

        claimed: set[bytes] = set()
        old: list[_RemotePack] = []
        for name, p in packs.items():
            if young(name + ".pack") or young(name + ".idx"):
                report.packs_young += 1
                claimed.update(bytes(p.idx.sha(i)) for i in range(p.idx.count))
            else:
                old.append(p)
        dead_packs: list[_RemotePack] = []
        rewrite: list[_RemotePack] = []
        needed: set[bytes] = set()
        for p in sorted(old, key=lambda q: (-q.size, q.name)):
            oids = [bytes(p.idx.sha(i)) for i in range(p.idx.count)]
            want = [o for o in oids if o in live and o not in claimed]
            claimed.update(want)
            if len(want) == len(oids):
                continue
            report.objects_removed += len(oids) - len(want)
            (rewrite if want else dead_packs).append(p)
            needed.update(want)
        if live - claimed:  # pragma: no cover - _walk found every live object in some listed pack
            raise MissingObjectError(next(iter(live - claimed)).hex(), f"remote {self.url}: in no pack")
        report.packs_deleted = [p.name for p in dead_packs]
        report.packs_rewritten = [p.name for p in rewrite]
        gone = dead_packs + rewrite
        report.bytes_freed = sum(listing[p.name + ext][0] for p in gone for ext in (".pack", ".idx"))
        tables = {key.rsplit("/", 1)[-1]: (size, when) for key, size, when in self._list_times(TABLES)}
        dead_tables = [n for n, (_, when) in tables.items()
                       if n not in set(root.domains.values()) and now - when >= grace]
        # a .pack whose push died before its .idx, an .idx whose combine died between deletions
        lonely = [fn for fn, (_, when) in listing.items() if now - when >= grace and fn.endswith((".pack", ".idx"))
                  and fn.rsplit(".", 1)[0] not in packs]
        report.bytes_freed += sum(listing[fn][0] for fn in lonely)
        report.tables_deleted = len(dead_tables)
        report.bytes_freed += sum(tables[n][0] for n in dead_tables)
        if dry_run:
            report.bytes_freed -= sum(e - s for p in rewrite for s, e in
                                      (p.entry(i) for i in range(p.idx.count) if bytes(p.idx.sha(i)) in needed))
            return report
        if rewrite:
            work = tempfile.mkdtemp(prefix="gc-", dir=self._workdir())
            try:
                name, _ = self._write_combined(rewrite, work, needed.__contains__)
                paths = [os.path.join(work, name + ext) for ext in (".pack", ".idx")]
                report.bytes_freed -= sum(os.path.getsize(p) for p in paths)
                for path in paths:  # the .idx last: published when visible
                    self._upload(self._key("objects/pack/" + os.path.basename(path)), path, lambda n: None)
                report.new_pack = name
            finally:
                shutil.rmtree(work, ignore_errors=True)
            # the same live objects written before (by a gc killed after its upload): that pack stays
            gone = [p for p in gone if p.name != name]
            report.packs_deleted = [n for n in report.packs_deleted if n != name]
        if gone or dead_tables or lonely:
            # the epoch swap: pushes that read the root before it start again; a push since makes us compute again
            bumped = RootTable(root.states, dict(root.domains), root.gc + 1)
            if not self._put_ref(self._key(ROOT_KEY), bumped.encode(), version):
                return None
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(self._delete, [self._key(f"objects/pack/{p.name}{ext}")
                                         for p in gone for ext in (".pack", ".idx")]))
            list(pool.map(self._delete, [self._key(TABLES + n) for n in dead_tables]))
            list(pool.map(self._delete, [self._key("objects/pack/" + fn) for fn in lonely]))
        with self._packs_lock:
            self._packs = None
        return report

    # -- combining packs -------------------------------------------------------------

    def combine_packs(self, force: bool = False) -> CombineResult | None:
        """Combine the bucket's small packs into one, when there are more than ``MAX_SMALL_PACKS``.

        Every push uploads one pack; without this a bucket pushed to N times holds
        N packs, and every reader lists and indexes all of them.  A pack under
        ``SMALL_PACK`` bytes is small; a push that leaves more than
        ``MAX_SMALL_PACKS`` of them combines them, except those at least twice
        as big as all smaller ones together (``_geometric``), so there are never
        more than that many small packs after a push, plus one pack per
        ``SMALL_PACK`` bytes or more of objects.  ``force`` combines every small
        pack when there are at least two.

        The small packs are streamed (one ranged request of at most ``RUN_BYTES``
        at a time, a few in flight; blobs spooled to a local file), every object
        checked against its id, and written as one pack without duplicates:
        commits and trees first, then blobs, as every bucket pack is.  It is
        uploaded, its ``.idx`` last, and only then are the small packs deleted
        (each ``.pack`` before its ``.idx``: an index whose pack is gone is
        ignored by readers and deleted by the next combine).

        Guarantees, with any number of pushers, readers and combiners at once:
        only packs in the listing taken at the start are deleted (a pack pushed
        meanwhile is not), and each only after the published new pack holds every
        object it held; two combiners at once leave duplicates at worst, never a
        missing object; a reader that listed a pack deleted since lists again and
        finds the objects in the new one; a combine stopped between upload and
        delete leaves duplicates, which the next combine removes.

        Returns None when there was nothing to combine.

        Raises:
            RemoteError, CorruptObjectError: the bucket could not be read or written,
                or a small pack holds an object that does not hash to its id;
                nothing has been deleted then.
        """
        with self._errors():
            listing = self._listing()
            # an index without its pack: a combine stopped between the two deletions
            # (a pusher uploads the pack first, so never one of its packs in flight)
            orphans = [fn for fn in listing if fn.endswith(".idx") and fn[:-4] + ".pack" not in listing]
            for fn in orphans:
                self._delete(self._key("objects/pack/" + fn))
            small_names = sorted(fn[:-5] for fn, size in listing.items()
                                 if fn.endswith(".pack") and fn[:-5] + ".idx" in listing and size < SMALL_PACK)
            if len(small_names) <= (1 if force else MAX_SMALL_PACKS):
                return None
            if not force:
                small_names = self._geometric(small_names, listing)
            packs = self._list_packs(listing)
            small = [packs[n] for n in small_names if n in packs]
            work = tempfile.mkdtemp(prefix="combine-", dir=self._workdir())
            try:
                name, objects = self._write_combined(small, work)
                paths = [os.path.join(work, name + ext) for ext in (".pack", ".idx")]
                size = os.path.getsize(paths[0])
                for path in paths:  # the .idx last: the pack is published when it is visible
                    self._upload(self._key("objects/pack/" + os.path.basename(path)), path, lambda n: None)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            # from here every object of every small pack is in the published pack `name`
            old = [p.name for p in small if p.name != name]

            def delete(pack: str) -> None:
                self._delete(self._key(f"objects/pack/{pack}.pack"))
                self._delete(self._key(f"objects/pack/{pack}.idx"))

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(delete, old))
            with self._packs_lock:
                self._packs = None
            return CombineResult(old, name, objects, size)

    @staticmethod
    def _geometric(names: list[str], listing: dict[str, int]) -> list[str]:
        """The small packs to combine: all but those at least twice the size of all smaller ones.

        Keeping the big packs of a geometric progression (as ``git repack
        --geometric=2`` does) bounds how often a byte is rewritten by the log of
        the number of pushes, where combining every small pack each time rewrote
        the bytes of the first pushes once per 16 pushes until their pack reached
        ``SMALL_PACK``.  At least two packs are combined.
        """
        by_size = sorted(names, key=lambda n: (-listing[n + ".pack"], n))
        sizes = [listing[n + ".pack"] for n in by_size]
        rest = sum(sizes)
        keep = 0
        for size in sizes:
            rest -= size
            if size < 2 * rest:
                break
            keep += 1
        return sorted(by_size[min(keep, len(by_size) - 2):])

    def _write_combined(self, small: list[_RemotePack], work: str,
                        keep: Callable[[bytes], bool] | None = None) -> tuple[str, int]:
        """Write one pack in ``work`` of every object of ``small`` (that ``keep``s), once; returns (name, objects).

        Memory holds the object ids and a few ranges in flight, never a whole
        pack: blob entries wait in a spool file until the commits and trees,
        which go first, are written.
        """
        seen: set[bytes] = set()
        where: dict[tuple[str, int], bytes] = {}  # (pack, offset) -> oid, of the copy kept
        locs: list[_Loc] = []
        for p in small:
            for pos in range(p.idx.count):
                oid = bytes(p.idx.sha(pos))
                if oid in seen or (keep is not None and not keep(oid)):  # a copy kept already; or dead
                    continue
                seen.add(oid)
                start, end = p.entry(pos)
                if end - start > MAX_OBJECT + 64:
                    raise CorruptObjectError(oid.hex(), f"remote {self.url}: a pack entry of {end - start} bytes")
                where[(p.name, start)] = oid
                locs.append((p, start, end))
        combining = Counter(self.progress, "combining packs", sum(e - s for _, s, e in locs))
        with PackWriter(work, work, len(locs), durable=False) as writer:
            blobs: list[tuple[bytes, int, int]] = []  # oid, header length, entry length, in spool order
            with tempfile.TemporaryFile(dir=work) as spool:

                def fetch(run: list[_Loc]) -> tuple[list[_Loc], bytes]:
                    p = run[0][0]
                    return run, self._get_range(self._key(f"objects/pack/{p.name}.pack"), run[0][1], run[-1][2])

                with ThreadPoolExecutor(4) as pool:
                    runs = self._runs(locs, GAP, RUN_BYTES)
                    for run, data in ordered(pool, 4, (lambda r=r: fetch(r) for r in runs)):  # type: ignore[misc]
                        base = run[0][1]
                        for p, start, end in run:
                            entry = memoryview(data)[start - base : end - base]
                            oid = where[(p.name, start)]
                            type_num, _ = self._parse_entry(entry, oid, f"{p.name}@{start}")
                            _, _, hlen = parse_object_header(entry)
                            if type_num == 3:
                                spool.write(entry)
                                blobs.append((oid, hlen, len(entry)))
                            else:
                                writer.add(EncodedEntry.verbatim(oid, bytes(entry[:hlen]), bytes(entry[hlen:])))
                            combining(len(entry))
                spool.seek(0)
                for oid, hlen, n in blobs:
                    entry_bytes = spool.read(n)
                    writer.add(EncodedEntry.verbatim(oid, entry_bytes[:hlen], entry_bytes[hlen:]))
            return writer.finish(), len(locs)
