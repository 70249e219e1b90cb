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

Lookups are vectorised with numpy's ``searchsorted`` over the prefix column of
every sidecar, so a commit's cost does not grow with the number of models stored.
"""

from __future__ import annotations

import hashlib
import os
import struct
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import CorruptObjectError
from ..util.fsutil import atomic_file

MAGIC = b"CIDX"
VERSION = 1
_HEADER = struct.Struct(">4sII20s")
_ENTRY = struct.Struct(">20sQII")
_ENTRY_DTYPE = np.dtype([("oid", "V20"), ("offset", ">u8"), ("length", ">u4"), ("raw", ">u4")])
assert _ENTRY_DTYPE.itemsize == _ENTRY.size


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


class Sidecar:
    """One loaded, verified ``.cidx`` file."""

    def __init__(self, path: str, pack: str) -> None:
        self.path = path
        self.pack = pack
        with open(path, "rb") as f:
            data = f.read()
        if len(data) < _HEADER.size + 20 or hashlib.sha1(data[:-20]).digest() != data[-20:]:
            raise CorruptObjectError(path, "chunk index checksum mismatch")
        magic, version, count, self.pack_checksum = _HEADER.unpack_from(data)
        if magic != MAGIC or version != VERSION:
            raise CorruptObjectError(path, f"not a chunk index (magic {magic!r} v{version})")
        expect = _HEADER.size + count * (8 + 32 + _ENTRY.size) + 20
        if len(data) != expect:
            raise CorruptObjectError(path, f"chunk index has {len(data)} bytes, expected {expect}")
        pos = _HEADER.size
        self.prefixes = np.frombuffer(data, dtype=">u8", count=count, offset=pos)
        pos += 8 * count
        self._keys = data[pos : pos + 32 * count]
        pos += 32 * count
        self.entries = np.frombuffer(data, dtype=_ENTRY_DTYPE, count=count, offset=pos)
        self.count = count
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

    def key(self, i: int) -> bytes:
        return self._keys[32 * i : 32 * i + 32]

    def location(self, i: int) -> ChunkLocation:
        e = self.entries[i]
        return ChunkLocation(self.pack, int(e["offset"]), int(e["length"]), e["oid"].tobytes(), int(e["raw"]))


class ChunkIndex:
    """All sidecars of a store; refreshed on demand when packs come and go."""

    def __init__(self, index_dir: str, pack_dir: str) -> None:
        self.index_dir = index_dir
        self.pack_dir = pack_dir
        self._sidecars: dict[str, Sidecar] = {}
        #: pack -> what is wrong with its sidecar, for sidecars skipped as damaged
        self.damaged: dict[str, str] = {}

    def refresh(self) -> None:
        """Load the sidecars of packs that appeared, forget those of packs that went.

        A damaged sidecar is skipped with a warning, never raised: the store must
        stay usable (and fsck, gc able to run) whatever happened to derived data.
        """
        try:
            names = os.listdir(self.index_dir)
        except FileNotFoundError:
            names = []
        live = set()
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
                    sc = Sidecar(path, pack)
                    if sc.count:
                        # a pack cut short (truncated copy, full disk) must not be deduplicated against
                        end = int((sc.entries["offset"] + sc.entries["length"]).max()) + 20
                        if os.path.getsize(os.path.join(self.pack_dir, pack + ".pack")) < end:
                            raise CorruptObjectError(os.path.join(self.pack_dir, pack + ".pack"),
                                                     "pack is shorter than its chunk index says (truncated)")
                    self._sidecars[pack] = sc
                except CorruptObjectError as e:
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

    def lookup(self, keys: Sequence[bytes]) -> list[ChunkLocation | None]:
        """Locations of the given keys (None where unknown), in one vectorised pass."""
        result: list[ChunkLocation | None] = [None] * len(keys)
        if not keys or not self._sidecars:
            return result
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
