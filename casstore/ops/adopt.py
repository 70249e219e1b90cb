"""Adopting what ``git push`` left in a served store: its packs and loose objects, merged into one of ours.

A store that git serves (``cas init --bare``) receives every push through git's
``receive-pack``, which keeps each push as the pack that arrived (one per push,
``receive.unpackLimit=1``) or, on a plain git server, as loose objects.  Those
packs have no chunk-index sidecar, may hold deltas (a stock ``git push``), and
:mod:`~casstore.objects.maintenance` leaves them alone: left so, a served store
pushed to N times holds N packs and every lookup that misses scans all of them.

gc (ops/gc.py) therefore copies the live objects of these packs, and the
reachable loose objects, into one new pack of ours (whole objects, a ``.cidx``
sidecar), which maintenance then rolls up with the others.  Whole-object entries
are copied verbatim once their content hashes to their id; deltas are resolved
(through dulwich, verified against their id) and written whole.  The new pack
is published (``.idx`` last) before any source is deleted, so every object is
always in at least one pack or loose file; a reader holding an old pack falls
back to a lookup by oid, and git re-scans its packs when one disappears.  If an
object has no intact copy, nothing is published or deleted.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dulwich.objects import ObjectID

from ..objects.maintenance import delete_pack, maintain, pack_layout
from ..objects.packidx import pack_order
from ..objects.packwriter import (
    BLOB,
    TYPE_NAMES,
    EncodedEntry,
    PackWriter,
    encode_entry,
    inflate_parts,
    parse_object_header,
)
from ..util.lazy import numpy as np  # imported on first use (util/lazy.py)

if TYPE_CHECKING:
    from ..objects.repository import Repository


@dataclass
class Adoption:
    """What to adopt: packs (with the positions to keep, in ``.idx`` order; None: all) and loose objects."""

    packs: list[tuple[str, np.ndarray | None]] = field(default_factory=list)
    loose: list[bytes] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.packs or self.loose)


def _whole_entry(entry: bytes, oid: bytes) -> EncodedEntry | None:
    """``entry`` as a verbatim copy if it is a whole object whose content hashes to ``oid``."""
    try:
        type_num, size, hlen = parse_object_header(entry)
        if type_num not in TYPE_NAMES:
            return None  # a delta: resolved by the caller
        zdata = memoryview(entry)[hlen:]
        parts = inflate_parts(zdata, size)
    except (zlib.error, IndexError, ValueError):
        return None
    if sum(len(p) for p in parts) != size:
        return None
    h = hashlib.sha1(b"%s %d\x00" % (TYPE_NAMES[type_num], size))
    adler = 1
    for part in parts:
        h.update(part)
        adler = zlib.adler32(part, adler)
    if h.digest() != oid:
        return None
    # inflate_parts skips the Adler-32 of a stream of stored blocks: check it here
    if all(isinstance(p, memoryview) for p in parts) and bytes(zdata[-4:]) != adler.to_bytes(4, "big"):
        return None
    return EncodedEntry.verbatim(oid, entry[:hlen], entry[hlen:])


def _resolved_entry(repo: Repository, oid: bytes) -> EncodedEntry:
    """The object ``oid`` read by id (deltas resolved, verified) and encoded whole.

    Raises:
        CorruptObjectError, MissingObjectError: it cannot be read intact.
    """
    type_num, raw = repo.odb.read_raw(ObjectID(oid.hex().encode()))
    # chunk blobs are zstd: stored blocks, as casstore writes them; metadata compresses
    return encode_entry(raw, type_num=type_num, level=0 if type_num == BLOB else 1)


#: one object to copy: (its pack, or None for a loose object; offset; length; oid)
_Item = tuple[str | None, int, int, bytes]


def _plan(repo: Repository, what: Adoption) -> list[_Item]:
    """Every object of ``what`` once: each pack's in pack order, then the loose ones."""
    odb = repo.odb
    seen: set[bytes] = set()
    plan: list[_Item] = []
    for name, keep in what.packs:
        starts, ends, oids, _ = pack_layout(odb.pack_dir, odb.cidx_dir, name)
        for i in pack_order(starts):
            if (keep is None or keep[i]) and oids[i] not in seen:
                seen.add(oids[i])
                plan.append((name, starts[i], ends[i] - starts[i], oids[i]))
    for oid in what.loose:
        if oid not in seen:
            seen.add(oid)
            plan.append((None, 0, 0, oid))
    return plan


def _copy(repo: Repository, plan: list[_Item]) -> str | None:
    """Write the objects of ``plan`` into one new pack of ours and publish it; returns its name."""
    if not plan:
        return None
    odb = repo.odb
    fds: dict[str, int] = {}
    try:
        with PackWriter(odb.pack_dir, odb.cidx_dir, len(plan)) as writer:
            for pack, offset, length, oid in plan:
                entry = None
                if pack is not None:
                    fd = fds.get(pack)
                    if fd is None:
                        fd = fds[pack] = os.open(os.path.join(odb.pack_dir, pack + ".pack"), os.O_RDONLY)
                    entry = _whole_entry(os.pread(fd, length, offset), oid)
                writer.add(entry if entry is not None else _resolved_entry(repo, oid))
            return writer.finish()
    finally:
        for fd in fds.values():
            os.close(fd)


def _pack_bytes(repo: Repository, name: str) -> int:
    return sum(os.path.getsize(os.path.join(repo.odb.pack_dir, name + ext)) for ext in (".pack", ".idx"))


def adopt(repo: Repository, what: Adoption) -> tuple[str | None, int]:
    """Copy ``what`` into one new pack of ours, then delete the sources; returns the pack and bytes freed.

    The caller holds the store lock exclusively (gc) and chose only packs no
    writer is still publishing (no ``.keep``).

    Raises:
        CorruptObjectError: an object has no intact copy (nothing published or deleted).
    """
    odb = repo.odb
    plan = _plan(repo, what)
    before = sum(_pack_bytes(repo, p) for p, _ in what.packs)
    loose_paths = [os.path.join(odb.objects_dir, o.hex()[:2], o.hex()[2:]) for o in what.loose]
    before += sum(os.path.getsize(p) for p in loose_paths if os.path.exists(p))
    new = _copy(repo, plan)
    for name, _ in what.packs:
        # a foreign pack of whole objects copied in its own order is byte-identical to the copy,
        # hence has the same name: publish_pack kept it as it was, and it has a sidecar now
        if name != new:
            delete_pack(repo, name)
    for path in loose_paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    after = _pack_bytes(repo, new) if new else 0
    odb.index.refresh()
    odb.rescan_packs()
    return new, before - after


#: a served store merges the packs pushes left once there are more than this many (``cas.autoPacks``)
AUTO_PACKS = 16


def pushed_packs(repo: Repository) -> list[str]:
    """Packs git wrote here (no sidecar) that no push is still publishing (no ``.keep``) and whose index is sound."""
    odb = repo.odb
    damaged = set(odb.damaged_packs())
    names = os.listdir(odb.pack_dir)
    return sorted(n[:-4] for n in names
                  if n.endswith(".idx") and n[:-4] + ".pack" in names and n[:-4] not in damaged
                  and not os.path.exists(os.path.join(odb.pack_dir, n[:-4] + ".keep"))
                  and not os.path.exists(os.path.join(odb.cidx_dir, n[:-4] + ".cidx")))


def merge_pushed(repo: Repository, limit: int = AUTO_PACKS) -> int:
    """Merge the packs pushes left once there are more than ``limit``, like ``git gc --auto``; returns how many.

    Every object of those packs is copied (nothing is judged garbage: that is gc's
    job), so this is safe beside pushes, pulls and other writers; it holds the
    store lock shared (gc waits) and runs in one process at a time (the others
    skip it).  Then maintenance rolls the packs up geometrically.  What the
    ``post-receive`` hook of a served store runs after a push (remote/hook.py).
    """
    with repo.lock():
        fd = os.open(repo.maintenance_lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0
            found = pushed_packs(repo)
            if len(found) <= limit:
                return 0
            adopt(repo, Adoption(packs=[(p, None) for p in found]))
        finally:
            os.close(fd)  # maintain takes the same lock again
        maintain(repo)
    return len(found)


def merge_pushed_at(path: str, limit: int = AUTO_PACKS) -> int:
    """:func:`merge_pushed` of the store at ``path`` (the hook's entry point)."""
    from ..objects.repository import Repository

    repo = Repository(path)
    try:
        return merge_pushed(repo, limit)
    finally:
        repo.close()
