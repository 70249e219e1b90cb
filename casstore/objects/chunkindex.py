"""The chunk index: raw chunk key -> where its blob lives.

One sidecar file per pack that casstore wrote, ``cas/chunkidx/<pack>.cidx``, lists
every chunk blob in that pack, sorted by key.  The sidecar lives and dies with its
pack (gc deletes both together), so the index can never point at a deleted
object, and it is verified by its own SHA-1 trailer before use.  Chunks that
arrived another way (a pull, a pack git wrote) simply are not indexed: they are
still readable by oid, they just do not deduplicate until ``gc`` re-indexes them.

Format (all integers big-endian)::

    b"CIDX" | u32 version=1 | u32 count | 20-byte pack checksum
    count x u64   first 8 bytes of each key (a contiguous column for searchsorted)
    count x 32B   keys, sorted
    count x (20B oid | u64 offset | u32 entry length | u32 raw size)
    20-byte SHA-1 of everything above

A sidecar that fails its checksum is skipped with a warning (it is derived data:
its chunks stay readable by oid, they only stop deduplicating) and listed in
``ChunkIndex.damaged`` for fsck.  A chunk that a read found corrupt is listed in
``<pack>.bad`` (32-byte keys, appended): lookups no longer return that copy, so
the next commit of those bytes stores a fresh copy, which every reader prefers.

Lookups of many keys are vectorised with numpy's ``searchsorted`` over the prefix
column of every sidecar, so a commit's cost does not grow with the number of models
stored; a few keys (a small commit) are binary-searched in Python, without numpy.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import mmap
import os
import struct
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import CorruptObjectError
from ..util.fsutil import TMP_PREFIX, atomic_file
from ..util.lazy import numpy as np  # imported on first use (util/lazy.py)

MAGIC = b"CIDX"
#: cas/chunkidx/verified: the sidecars verified in full, and which version of each file
STAMPS = "verified"
VERSION = 1
_HEADER = struct.Struct(">4sII20s")
_ENTRY = struct.Struct(">20sQII")
#: a lookup of fewer keys than this is a binary search in Python: numpy's start-up (about
#: 0.1 CPU-s) would cost more than it saves, and a small commit never imports it
NUMPY_BATCH = 64


@functools.cache
def entry_dtype() -> np.dtype[np.void]:
    """The entry table's row as a numpy dtype (numpy is imported on first use: util/lazy.py)."""
    dtype = np.dtype([("oid", "V20"), ("offset", ">u8"), ("length", ">u4"), ("raw", ">u4")])
    assert dtype.itemsize == _ENTRY.size
    return dtype


@dataclass(frozen=True)
class ChunkLocation:
    """Where a chunk blob is: pack basename, entry offset and length, its oid."""

    pack: str
    offset: int
    length: int
    oid: bytes
    raw_size: int


@dataclass(frozen=True)
class IndexEntry:
    key: bytes
    oid: bytes
    offset: int
    length: int
    raw_size: int


def write_cidx(path: str, pack_checksum: bytes, entries: Iterable[IndexEntry]) -> None:
    """Write a sidecar atomically (temp file, fsync, rename)."""
    ordered = sorted(entries, key=lambda e: e.key)
    h = hashlib.sha1()
    with atomic_file(path, 0o444) as f:

        def put(b: bytes) -> None:
            h.update(b)
            f.write(b)

        put(_HEADER.pack(MAGIC, VERSION, len(ordered), pack_checksum))
        put(b"".join(e.key[:8] for e in ordered))
        put(b"".join(e.key for e in ordered))
        put(b"".join(_ENTRY.pack(e.oid, e.offset, e.length, e.raw_size) for e in ordered))
        f.write(h.digest())


def stat_key(st: os.stat_result) -> str:
    """What identifies one version of a file: a rewrite, rename or in-place write changes it."""
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


class VerifiedFiles:
    """A record of files verified in full, and of which version of each (``stat_key``).

    Used for the store's ``.cidx`` (``cas/chunkidx/verified``) and ``.idx``
    (``cas/idx-verified``) files: a process trusts a file without reading it only
    while it is the very version some process verified.  The record is derived
    data: written with a rename, not fsynced; a lost, torn or unreadable record
    only means verifying again.  Lines: ``<name> <stat key> <int>``.
    """

    HEADER = "casstore-verified 1"

    def __init__(self, path: str) -> None:
        self.path = path
        self._data: dict[str, tuple[str, int]] | None = None
        self.changed = False

    def _load(self) -> dict[str, tuple[str, int]]:
        if self._data is None:
            self._data = {}
            try:
                with open(self.path) as f:
                    lines = f.read().splitlines()
            except OSError:
                lines = []
            if lines and lines[0] == self.HEADER:
                for line in lines[1:]:
                    parts = line.split(" ")
                    if len(parts) == 3 and parts[2].isdigit():
                        self._data[parts[0]] = (parts[1], int(parts[2]))
        return self._data

    def get(self, name: str) -> tuple[str, int] | None:
        return self._load().get(name)

    def put(self, name: str, key: str, value: int = 0) -> None:
        if self._load().get(name) != (key, value):
            self._load()[name] = (key, value)
            self.changed = True

    def drop(self, name: str) -> None:
        if self._load().pop(name, None) is not None:
            self.changed = True

    def save(self, live: set[str]) -> None:
        """Write the record (keeping only ``live`` names) if it changed; best effort."""
        if not self.changed or self._data is None:
            return
        self.changed = False
        body = self.HEADER + "\n" + "".join(f"{n} {k} {v}\n" for n, (k, v) in sorted(self._data.items())
                                            if n in live)
        tmp = os.path.join(os.path.dirname(self.path), f"{TMP_PREFIX}verified-{os.getpid()}-{threading.get_ident()}")
        try:
            with open(tmp, "w") as f:
                f.write(body)
            os.replace(tmp, self.path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        self._data = None  # re-read next time: other processes may have added theirs


class Sidecar:
    """One ``.cidx`` file, memory-mapped.

    With ``trusted=None`` the whole file is verified (SHA-1 trailer, layout) now.
    ``trusted`` is the stamp of a verification done before (see ChunkIndex): it
    is honoured only if the file is still the very version that was verified (same
    inode, size, mtime and ctime, see ``stat_key``); otherwise the file is verified
    in full.  After construction ``verified_now`` says which happened, and
    ``stat_key`` / ``end`` (where its last entry ends in the pack) are what a
    stamp records.  Only the header is read otherwise: lookups touch the pages a
    binary search needs.

    Raises:
        CorruptObjectError: a damaged file (it must then never be used).
        FileNotFoundError: it is gone.
    """

    def __init__(self, path: str, pack: str, trusted: tuple[str, int] | None = None) -> None:
        self.path = path
        self.pack = pack
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            size = st.st_size
            data: mmap.mmap | bytes = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        self.stat_key = stat_key(st)
        self._mm = data
        if size < _HEADER.size + 20:
            raise CorruptObjectError(path, "chunk index checksum mismatch")
        magic, version, count, self.pack_checksum = _HEADER.unpack_from(data)
        if magic != MAGIC or version != VERSION:
            raise CorruptObjectError(path, f"not a chunk index (magic {magic!r} v{version})")
        expect = _HEADER.size + count * (8 + 32 + _ENTRY.size) + 20
        if size != expect:
            raise CorruptObjectError(path, f"chunk index has {size} bytes, expected {expect}")
        self.verified_now = trusted is None or trusted[0] != self.stat_key
        if self.verified_now and hashlib.sha1(memoryview(data)[:-20]).digest() != data[-20:]:
            raise CorruptObjectError(path, "chunk index checksum mismatch")
        self._prefixes_off = _HEADER.size
        self._keys_off = self._prefixes_off + 8 * count
        self._entries_off = self._keys_off + 32 * count
        self.count = count
        #: where the last entry ends in the pack (+ its 20-byte trailer): a shorter pack is truncated
        if not self.verified_now and trusted is not None:
            self.end = trusted[1]
        elif count >= NUMPY_BATCH:
            self.end = int((self.entries["offset"] + self.entries["length"]).max()) + 20
        else:
            self.end = max((off + length for _, off, length, _ in
                            _ENTRY.iter_unpack(data[self._entries_off:-20])), default=-20) + 20
        #: keys whose copy in this pack failed verification (see ``<pack>.bad``)
        self.bad: frozenset[bytes] = frozenset()
        self._bad_size = 0

    def load_bad(self, path: str) -> None:
        try:
            size = os.path.getsize(path)
            if size == self._bad_size:
                return
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            self.bad, self._bad_size = frozenset(), 0
            return
        self._bad_size = size
        self.bad = frozenset(data[i : i + 32] for i in range(0, len(data) - 31, 32))

    @functools.cached_property
    def prefixes(self) -> np.ndarray:
        """The first 8 bytes of every key, as big-endian integers (for numpy's searchsorted)."""
        return np.frombuffer(self._mm, dtype=">u8", count=self.count, offset=self._prefixes_off)

    @functools.cached_property
    def entries(self) -> np.ndarray:
        """The entry table, as numpy rows of ``entry_dtype()``."""
        return np.frombuffer(self._mm, dtype=entry_dtype(), count=self.count, offset=self._entries_off)

    def find(self, key: bytes) -> int | None:
        """The position of ``key``, by a binary search over the sorted keys (no numpy)."""
        mm, off = self._mm, self._keys_off
        i = bisect.bisect_left(range(self.count), key, key=lambda j: mm[off + 32 * j : off + 32 * j + 32])
        return i if i < self.count and self.key(i) == key else None

    def key(self, i: int) -> bytes:
        at = self._keys_off + 32 * i
        return bytes(self._mm[at : at + 32])

    def location(self, i: int) -> ChunkLocation:
        oid, offset, length, raw = _ENTRY.unpack_from(self._mm, self._entries_off + _ENTRY.size * i)
        return ChunkLocation(self.pack, offset, length, oid, raw)


class ChunkIndex:
    """All sidecars of a store; refreshed on demand when packs come and go."""

    def __init__(self, index_dir: str, pack_dir: str) -> None:
        self.index_dir = index_dir
        self.pack_dir = pack_dir
        self._sidecars: dict[str, Sidecar] = {}
        #: pack -> what is wrong with its sidecar, for sidecars skipped as damaged
        self.damaged: dict[str, str] = {}

    def refresh(self) -> None:  # noqa: C901 - one branch per state a sidecar can be found in
        """Load the sidecars of packs that appeared, forget those of packs that went.

        A damaged sidecar is skipped with a warning, never raised: the store must
        stay usable (and fsck, gc able to run) whatever happened to derived data.

        Each sidecar is verified in full (SHA-1) once, by the first process that
        loads it; that is recorded in ``cas/chunkidx/verified`` with the file's
        inode, size, mtime and ctime, and later processes map a sidecar that is
        still that very file without reading it (see Sidecar).  Opening a store
        therefore costs a stat and a mapping per sidecar, not a read of the index.
        """
        try:
            names = os.listdir(self.index_dir)
        except FileNotFoundError:
            names = []
        live = set()
        stamps = VerifiedFiles(os.path.join(self.index_dir, STAMPS))
        for name in names:
            if not name.endswith(".cidx"):
                continue
            pack = name[: -len(".cidx")]
            # A sidecar counts only while its pack is complete (the .idx is
            # renamed into place last).
            if not os.path.exists(os.path.join(self.pack_dir, pack + ".idx")):
                continue
            live.add(pack)
            if pack not in self._sidecars and pack not in self.damaged:
                path = os.path.join(self.index_dir, name)
                try:
                    sc = Sidecar(path, pack, stamps.get(pack))
                    if sc.verified_now:
                        stamps.put(pack, sc.stat_key, sc.end)
                    # a pack cut short (truncated copy, full disk) must not be deduplicated against
                    if sc.count and os.path.getsize(os.path.join(self.pack_dir, pack + ".pack")) < sc.end:
                        raise CorruptObjectError(os.path.join(self.pack_dir, pack + ".pack"),
                                                 "pack is shorter than its chunk index says (truncated)")
                    self._sidecars[pack] = sc
                except CorruptObjectError as e:
                    stamps.drop(pack)
                    self.damaged[pack] = e.detail
                    what = e.detail if e.oid == path else f"{e.oid}: {e.detail}"
                    warnings.warn(f"casstore: ignoring the chunk index {path} ({what}); "
                                  "its chunks stay readable but do not deduplicate", stacklevel=2)
                    continue
                except FileNotFoundError:  # the sidecar or its .pack vanished: nothing to dedupe against
                    continue
            loaded = self._sidecars.get(pack)
            if loaded is not None:
                loaded.load_bad(os.path.join(self.index_dir, pack + ".bad"))
        for pack in set(self._sidecars) - live:
            del self._sidecars[pack]
        for pack in set(self.damaged) - live:
            del self.damaged[pack]
        stamps.save(live)

    def distrust(self, loc: ChunkLocation, key: bytes) -> None:
        """Record that the copy of chunk ``key`` at ``loc`` failed verification.

        Lookups stop returning it, here and in every process that refreshes, so
        the next commit of these bytes writes a fresh copy (which readers then
        prefer).  Best effort: a store we cannot write to just keeps the entry.
        """
        sc = self._sidecars.get(loc.pack)
        if sc is None or key in sc.bad:
            return
        sc.bad = sc.bad | {key}
        try:
            fd = os.open(os.path.join(self.index_dir, loc.pack + ".bad"),
                         os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, key)  # one small O_APPEND write: atomic among writers
            finally:
                os.close(fd)
        except OSError:
            pass

    @property
    def sidecars(self) -> list[Sidecar]:
        return list(self._sidecars.values())

    def _lookup_one(self, key: bytes) -> ChunkLocation | None:
        """The location of one key, binary-searched in Python (no numpy)."""
        for sc in self._sidecars.values():
            i = sc.find(key)
            if i is not None and key not in sc.bad:
                return sc.location(i)
        return None

    def lookup(self, keys: Sequence[bytes]) -> list[ChunkLocation | None]:
        """Locations of the given keys (None where unknown), in one vectorised pass."""
        result: list[ChunkLocation | None] = [None] * len(keys)
        if not keys or not self._sidecars:
            return result
        if len(keys) < NUMPY_BATCH:
            return [self._lookup_one(key) for key in keys]
        q = np.frombuffer(b"".join(k[:8] for k in keys), dtype=">u8")
        for sc in self._sidecars.values():
            if sc.count == 0:
                continue
            pos = np.searchsorted(sc.prefixes, q, side="left")
            clipped = np.minimum(pos, sc.count - 1)
            hits = np.nonzero(sc.prefixes[clipped] == q)[0]
            for qi in hits.tolist():
                if result[qi] is not None:
                    continue
                i = int(pos[qi])
                while i < sc.count and sc.prefixes[i] == q[qi]:
                    if sc.key(i) == keys[qi]:
                        if keys[qi] not in sc.bad:
                            result[qi] = sc.location(i)
                        break
                    i += 1
        return result
