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

from .chunkindex import Sidecar
from .errors import CasError
from .fsutil import fsync_dir
from .packidx import PackIdx
from .packwriter import EncodedEntry, PackWriter, encode_entry, parse_object_header

if TYPE_CHECKING:
    from .store import Store

LOOSE_LIMIT = 512
FACTOR = 2


@dataclass
class MaintenanceReport:
    loose_packed: int = 0
    packs_merged: int = 0


def _our_packs(store: Store) -> list[tuple[str, int]]:
    odb = store.odb
    out = []
    for fn in os.listdir(odb.pack_dir):
        if not fn.endswith(".idx"):
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


def copy_packs(store: Store, packs: list[str],
               keep: Callable[[int, int], bool] | None = None) -> tuple[str | None, int]:
    """Copy the objects of ``packs`` (casstore packs) into one new pack, then delete them.

    ``keep(i, position)`` selects objects by pack number and position in its
    ``.idx`` (gc keeps the reachable ones); by default everything is kept.
    Returns the new pack (None if nothing was kept) and the bytes freed.
    """
    odb = store.odb
    seen: set[bytes] = set()
    plan: list[tuple[str, int, int, bytes, bytes | None, int]] = []  # pack, offset, length, oid, key, raw
    for pi, pack in enumerate(packs):
        base = os.path.join(odb.pack_dir, pack)
        idx = PackIdx(base + ".idx")
        try:
            starts, ends = idx.entry_bounds(os.path.getsize(base + ".pack"))
            sc = Sidecar(os.path.join(odb.cidx_dir, pack + ".cidx"), pack)
            keys = {sc.location(i).oid: (sc.key(i), sc.location(i).raw_size) for i in range(sc.count)}
            for i in starts.argsort(kind="stable").tolist():
                oid = idx.sha(i)
                if oid in seen or (keep is not None and not keep(pi, i)):
                    continue
                seen.add(oid)
                key, raw = keys.get(oid, (None, 0))
                plan.append((pack, int(starts[i]), int(ends[i] - starts[i]), oid, key, raw))
        finally:
            idx.close()
    new = None
    if plan:
        writer = PackWriter(odb.pack_dir, odb.cidx_dir, len(plan))
        fds: dict[str, int] = {}
        try:
            for pack, offset, length, oid, key, raw in plan:
                fd = fds.get(pack)
                if fd is None:
                    fd = fds[pack] = os.open(os.path.join(odb.pack_dir, pack + ".pack"), os.O_RDONLY)
                entry = os.pread(fd, length, offset)
                _, _, hlen = parse_object_header(entry)
                header, zdata = entry[:hlen], entry[hlen:]
                writer.add(EncodedEntry.verbatim(oid, header, zdata),
                           key, raw)
            new = writer.finish()
        except BaseException:
            writer.abort()
            raise
        finally:
            for fd in fds.values():
                os.close(fd)
    before = sum(os.path.getsize(os.path.join(odb.pack_dir, p + ext)) for p in packs for ext in (".pack", ".idx"))
    for pack in packs:
        delete_pack(store, pack)
    after = sum(os.path.getsize(os.path.join(odb.pack_dir, new + ext)) for ext in (".pack", ".idx")) if new else 0
    odb.index.refresh()
    return new, before - after


def delete_pack(store: Store, pack: str) -> int:
    """Remove a pack and its index files; the .idx first, which makes it invisible."""
    odb = store.odb
    odb.forget_pack(pack)
    base = os.path.join(odb.pack_dir, pack)
    freed = 0
    for path in (base + ".idx", base + ".pack", base + ".rev", base + ".bitmap",
                 os.path.join(odb.cidx_dir, pack + ".cidx")):
        try:
            freed += os.path.getsize(path)
            os.unlink(path)
        except FileNotFoundError:
            pass
    fsync_dir(odb.pack_dir)
    return freed


def pack_loose(store: Store) -> int:
    """Move every loose object into one new pack; returns how many."""
    odb = store.odb
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
    writer = PackWriter(odb.pack_dir, odb.cidx_dir, len(found))
    try:
        for d, fn in found:
            type_num, raw = odb.read_raw(ObjectID((d + fn).encode()))
            writer.add(encode_entry(raw, type_num=type_num, level=1))
        writer.finish()
    except CasError:
        writer.abort()  # a corrupt or vanished loose object: leave them all for fsck
        return 0
    except BaseException:
        writer.abort()
        raise
    for d, fn in found:
        try:
            os.unlink(os.path.join(odb.objects_dir, d, fn))
        except FileNotFoundError:
            pass
    return len(found)


def maintain(store: Store, force: bool = False) -> MaintenanceReport:
    """Pack loose objects and roll up small packs when needed (cheap when not).

    Callers hold the shared store lock.  Only one process maintains at a time;
    the others skip it.
    """
    report = MaintenanceReport()
    fd = os.open(os.path.join(store.path, "cas", "maintenance.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return report
        if force or _estimate_loose(store.odb.objects_dir) > LOOSE_LIMIT:
            report.loose_packed = pack_loose(store)
        packs = sorted(_our_packs(store), key=lambda p: p[1])
        k = len(packs) if force and len(packs) > 1 else geometric_rollup([s for _, s in packs])
        if k:
            copy_packs(store, [name for name, _ in packs[:k]])
            report.packs_merged = k
    finally:
        os.close(fd)
    return report
