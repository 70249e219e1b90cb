"""Keeping lookups fast: geometric repacking and packing loose objects.

Every commit publishes one pack (its new chunks) and a few loose objects (trees,
manifest, commit).  Left alone, 1,000 commits make 1,000 packs and 5,000 loose
files, and every object lookup that misses scans all of them.  After each commit,
casstore therefore:

* packs loose objects once there are more than ``LOOSE_LIMIT`` (estimated from one
  fan-out directory, as git does), and
* rolls the smallest packs into one whenever the packs do not form a geometric
  progression with factor 2 (each pack at least twice the size of all smaller
  ones together), like ``git repack --geometric=2``.  The number of packs then
  stays logarithmic in the store size, and each byte is copied O(log n) times.

Only packs casstore wrote (they have a ``.cidx`` sidecar, and hold whole objects,
never deltas) are merged, by copying their entries verbatim: nothing is
decompressed or recompressed.  The merged pack is published completely before the
old ones are deleted, so every object is always in at least one pack; readers
holding an old location fall back to a lookup by oid.  This runs under the shared
store lock (like a commit), so gc never runs at the same time.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dulwich.objects import ObjectID

from ..errors import CasError, CorruptObjectError
from ..util.fsutil import fsync_dir
from .chunkindex import Sidecar
from .packidx import pack_order
from .packs import PackFile, check_bounds, verify_entry
from .packwriter import EncodedEntry, PackWriter, encode_entry, parse_object_header

if TYPE_CHECKING:
    from .repository import Repository

LOOSE_LIMIT = 512
FACTOR = 2


@dataclass
class MaintenanceReport:
    loose_packed: int = 0
    packs_merged: int = 0


def _our_packs(repo: Repository) -> list[tuple[str, int]]:
    """Packs casstore wrote, with sizes; those with a damaged index or sidecar are left alone."""
    odb = repo.odb
    odb.index.refresh()
    damaged = set(odb.damaged_packs()) | set(odb.index.damaged)
    out = []
    for fn in os.listdir(odb.pack_dir):
        if not fn.endswith(".idx") or fn[:-4] in damaged:
            continue
        name = fn[:-4]
        if os.path.exists(os.path.join(odb.cidx_dir, name + ".cidx")):
            try:
                out.append((name, os.path.getsize(os.path.join(odb.pack_dir, name + ".pack"))))
            except FileNotFoundError:
                pass
    return out


def geometric_rollup(sizes: list[int], factor: int = FACTOR) -> int:
    """How many of the smallest packs (sizes ascending) to merge; 0 or >= 2."""
    k = 0
    total = 0
    for j, s in enumerate(sizes):
        if j and s < factor * total:
            k = j + 1
        total += s
    return k if k >= 2 else 0


def _estimate_loose(objects_dir: str) -> int:
    try:
        return len(os.listdir(os.path.join(objects_dir, "17"))) * 256
    except FileNotFoundError:
        return 0


def _verified_entry(entry: bytes, oid: bytes) -> EncodedEntry | None:
    """The pack entry as a verbatim copy if it is an intact object ``oid``, else None (see
    :func:`~.packs.verify_entry`)."""
    try:
        verify_entry(entry, oid, limit=None)
    except CorruptObjectError:
        return None
    hlen = parse_object_header(entry)[2]
    return EncodedEntry.verbatim(oid, entry[:hlen], entry[hlen:])


def pack_layout(pack_dir: str, cidx_dir: str, pack: str) -> tuple[list[int], list[int], list[bytes],
                                                                  dict[bytes, tuple[bytes, int]]]:
    """Entry bounds, oids (in ``.idx`` order) and chunk keys by oid of one pack, cross-checked.

    A pack without a ``.cidx`` has no chunk keys.

    Raises:
        CorruptObjectError: the ``.idx`` or ``.cidx`` is damaged, the pack is not
            the one its index describes (truncated, replaced), or they disagree.
    """
    p = PackFile.open(pack_dir, pack)
    try:
        starts, ends = p.idx.bounds(p.size)  # lists: a commit's roll-up of small packs needs no numpy
        if not check_bounds(starts, ends, p.size):
            raise CorruptObjectError(os.path.join(pack_dir, pack + ".idx"), "pack index offsets point outside the pack")
        oids = [p.idx.sha(i) for i in range(p.idx.count)]
    finally:
        p.close()
    keys: dict[bytes, tuple[bytes, int]] = {}
    if not os.path.exists(os.path.join(cidx_dir, pack + ".cidx")):
        return starts, ends, oids, keys
    sc = Sidecar(os.path.join(cidx_dir, pack + ".cidx"), pack)
    position = {oid: i for i, oid in enumerate(oids)}
    for j in range(sc.count):
        loc = sc.location(j)
        i = position.get(loc.oid)
        if i is None or starts[i] != loc.offset:
            raise CorruptObjectError(os.path.join(cidx_dir, pack + ".cidx"),
                                     f"chunk index and pack index disagree about {loc.oid.hex()}")
        keys[loc.oid] = (sc.key(j), loc.raw_size)
    return starts, ends, oids, keys


def copy_packs(repo: Repository, packs: list[str],  # noqa: C901, PLR0912 - checks each copied pack entry; one pack reader to come (issue 23)
               keep: Callable[[int, int], bool] | None = None) -> tuple[str | None, int]:
    """Copy the objects of ``packs`` (casstore packs) into one new pack, then delete them.

    ``keep(i, position)`` selects objects by pack number and position in its
    ``.idx`` (gc keeps the reachable ones); by default everything is kept.
    Returns the new pack (None if nothing was kept) and the bytes freed.

    Every entry is verified before it is copied (its content hashes to its oid,
    the ``.idx`` checksum holds, the ``.cidx`` agrees with it); an object held
    by several of the packs is copied from the first copy that verifies.  If an
    object has no intact copy, nothing is published or deleted.

    Raises:
        CorruptObjectError: naming the damaged file or object.
    """
    odb = repo.odb
    # oid -> candidates (pack, offset, length), key, raw size; in pack order
    plan: dict[bytes, tuple[list[tuple[str, int, int]], bytes | None, int]] = {}
    for pi, pack in enumerate(packs):
        starts, ends, oids, keys = pack_layout(odb.pack_dir, odb.cidx_dir, pack)
        for i in pack_order(starts):
            if keep is not None and not keep(pi, i):
                continue
            oid = oids[i]
            at = (pack, starts[i], ends[i] - starts[i])
            if oid in plan:
                plan[oid][0].append(at)
            else:
                key, raw = keys.get(oid, (None, 0))
                plan[oid] = ([at], key, raw)
    new = None
    if plan:
        fds: dict[str, int] = {}
        try:
            with PackWriter(odb.pack_dir, odb.cidx_dir, len(plan)) as writer:
                for oid, (where, key, raw) in plan.items():
                    for pack, offset, length in where:
                        fd = fds.get(pack)
                        if fd is None:
                            fd = fds[pack] = os.open(os.path.join(odb.pack_dir, pack + ".pack"), os.O_RDONLY)
                        entry = _verified_entry(os.pread(fd, length, offset), oid)
                        if entry is not None:
                            writer.add(entry, key, raw)
                            break
                    else:
                        raise CorruptObjectError(oid.hex(), "damaged in pack " + ", ".join(w[0] for w in where)
                                                 + "; left as it is (run cas fsck)")
                new = writer.finish()
        finally:
            for fd in fds.values():
                os.close(fd)
    before = sum(os.path.getsize(os.path.join(odb.pack_dir, p + ext)) for p in packs for ext in (".pack", ".idx"))
    for pack in packs:
        # the copy of one pack (or of packs whose objects all duplicate one of them) can be
        # byte-identical to it, hence have the same name: deleting it would delete the copy
        if pack != new:
            delete_pack(repo, pack)
    if new:  # every entry of the new pack verified: nothing in it is distrusted
        try:
            os.unlink(os.path.join(odb.cidx_dir, new + ".bad"))
        except FileNotFoundError:
            pass
    after = sum(os.path.getsize(os.path.join(odb.pack_dir, new + ext)) for ext in (".pack", ".idx")) if new else 0
    odb.index.refresh()
    return new, before - after


def delete_pack(repo: Repository, pack: str) -> int:
    """Remove a pack and its index files; the .idx first, which makes it invisible."""
    odb = repo.odb
    odb.forget_pack(pack)
    base = os.path.join(odb.pack_dir, pack)
    freed = 0
    for path in (base + ".idx", base + ".pack", base + ".rev", base + ".bitmap",
                 os.path.join(odb.cidx_dir, pack + ".cidx"), os.path.join(odb.cidx_dir, pack + ".bad")):
        try:
            freed += os.path.getsize(path)
            os.unlink(path)
        except FileNotFoundError:
            pass
    fsync_dir(odb.pack_dir)
    return freed


def pack_loose(repo: Repository) -> int:
    """Move every loose object into one new pack; returns how many."""
    odb = repo.odb
    found: list[tuple[str, str]] = []
    for d in os.listdir(odb.objects_dir):
        if len(d) != 2:
            continue
        try:
            names = os.listdir(os.path.join(odb.objects_dir, d))
        except FileNotFoundError:
            continue
        for fn in names:
            if len(fn) == 38 and all(c in "0123456789abcdef" for c in fn):
                found.append((d, fn))
    if not found:
        return 0
    try:
        with PackWriter(odb.pack_dir, odb.cidx_dir, len(found)) as writer:
            for d, fn in found:
                type_num, raw = odb.read_raw(ObjectID((d + fn).encode()))
                writer.add(encode_entry(raw, type_num=type_num, level=1))
            writer.finish()
    except CasError:
        return 0  # a corrupt or vanished loose object (the pack is removed): leave them all for fsck
    for d, fn in found:
        try:
            os.unlink(os.path.join(odb.objects_dir, d, fn))
        except FileNotFoundError:
            pass
    return len(found)


def maintain(repo: Repository, force: bool = False) -> MaintenanceReport:
    """Pack loose objects and roll up small packs when needed (cheap when not).

    Callers hold the shared store lock.  Only one process maintains at a time;
    the others skip it.
    """
    report = MaintenanceReport()
    fd = os.open(repo.maintenance_lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return report
        if force or _estimate_loose(repo.odb.objects_dir) > LOOSE_LIMIT:
            report.loose_packed = pack_loose(repo)
        packs = sorted(_our_packs(repo), key=lambda p: p[1])
        k = len(packs) if force and len(packs) > 1 else geometric_rollup([s for _, s in packs])
        if k:
            copy_packs(repo, [name for name, _ in packs[:k]])
            report.packs_merged = k
    finally:
        os.close(fd)
    return report
