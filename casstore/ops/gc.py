"""Garbage collection: remove objects that no ref reaches any more.

Mark: walk every ref (model commits, domain histories, the state list) through
commits and trees; gitlinks are not followed, so a deleted model's data is
garbage even though old history commits name it -- once its deletion is older
than the grace period: the model commits that ``delete`` events younger than
that name are marked too (as far as they are still here), so that a deleted
model can be restored for the grace period after its deletion, however old its
files are (model/restore.py).  Reachable packed objects are
marked in one byte-array per pack (found with numpy lookups in the ``.idx``);
reachable loose objects (metadata only) in a set.  Memory is a few bytes per
object, never the objects themselves (dulwich's porcelain.gc holds the store in
memory).

Sweep, for objects older than the grace period only (so that a writer that does
not take our lock, such as a ``git push`` into this store, never loses objects):
packs with nothing reachable are deleted; packs casstore wrote that are partly
reachable are rewritten with their live entries copied verbatim (no
recompression); loose objects and stale temporary files are removed.
Packs git's ``receive-pack`` wrote (a served store gains one per push; they have
no chunk-index sidecar and may hold deltas) are merged: their live objects, and
the reachable loose objects, are copied into one new pack of ours (ops/adopt.py),
which maintenance then rolls up geometrically with the others.  A pushed pack
that still has git's ``.keep`` when gc lists the packs (before reading any ref)
is left alone: its push may move refs after gc read them.

gc holds ``cas/gc.lock`` exclusively, so it runs between writers, never during
one (every writer holds it shared, see locking.py); it waits a bounded time for
it, telling who holds it.  If any ref cannot be read (an empty or garbage file,
a symbolic or packed ref that does not parse, a casstore ref that names no
commit), or any reachable commit or tree is missing or corrupt, gc stops before
deleting anything: what that ref or object would have kept alive cannot be known.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dulwich.objects import Commit, ObjectID

from ..errors import CasError, CorruptObjectError, CorruptRefError
from ..objects.graph import children
from ..objects.maintenance import copy_packs, delete_pack, maintain
from ..objects.odb import ObjectDB
from ..objects.packidx import PackIdx
from ..objects.trailers import parse_trailers
from ..util.durations import check_duration, parse_duration
from ..util.fsutil import TMP_PREFIX
from ..util.lazy import numpy as np  # imported on first use (util/lazy.py)
from ..util.locking import WaitFn, yielding_lock
from .adopt import Adoption, adopt
from .defaults import DEFAULT_GRACE, DEFAULT_WAIT

if TYPE_CHECKING:
    from ..objects.repository import Repository

log = logging.getLogger("casstore")

__all__ = ["DEFAULT_GRACE", "DEFAULT_WAIT", "GcReport", "check_duration", "gc", "parse_duration"]

@dataclass
class GcReport:
    objects_removed: int = 0
    bytes_freed: int = 0
    packs_removed: int = 0
    packs_rewritten: int = 0
    loose_removed: int = 0
    tmp_removed: int = 0
    reachable: int = 0
    #: unreachable objects kept because they are younger than the grace period (and their bytes
    #: on disk): what ``gc`` with a shorter grace period would free now
    objects_kept_young: int = 0
    bytes_kept_young: int = 0
    #: deleted models kept because their deletion is younger than the grace period (so that
    #: ``restore_model`` can bring them back), and the objects and bytes only they still reach
    models_kept_restorable: int = 0
    objects_kept_deleted: int = 0
    bytes_kept_deleted: int = 0
    #: packs pushed by git whose live objects went into one pack of ours, and loose objects packed
    packs_adopted: int = 0
    loose_packed: int = 0
    #: the grace period this run used, in seconds (``math.inf`` for never)
    grace_period: float = DEFAULT_GRACE

    def as_dict(self) -> dict[str, float | None]:
        d: dict[str, float | None] = dict(self.__dict__)
        if math.isinf(self.grace_period):
            d["grace_period"] = None  # JSON has no infinity: null means never
        return d


class _Marks:
    def __init__(self, pack_dir: str, packs: list[str]) -> None:
        self.packs = packs
        self.idx: list[PackIdx] = []
        try:
            for p in packs:
                self.idx.append(PackIdx(os.path.join(pack_dir, p + ".idx")))  # verified: checksum, fan-out
        except BaseException:
            self.close()
            raise
        self.bits = [np.zeros(i.count, dtype=bool) for i in self.idx]
        self.loose: set[bytes] = set()

    def mark(self, oids: list[bytes]) -> list[bool]:
        """Mark oids reachable; returns which were not marked before."""
        fresh = np.zeros(len(oids), dtype=bool)
        found = np.zeros(len(oids), dtype=bool)
        for idx, bits in zip(self.idx, self.bits, strict=True):
            pos = idx.find(oids)
            hit = pos >= 0
            if hit.any():
                p = pos[hit]
                fresh[hit] |= ~bits[p]
                bits[p] = True
                found |= hit
        result = fresh.tolist()
        for i in np.nonzero(~found)[0].tolist():
            if oids[i] not in self.loose:
                self.loose.add(oids[i])
                result[i] = True
        return result

    def close(self) -> None:
        for i in self.idx:
            i.close()


_HEX40 = re.compile(rb"[0-9a-f]{40}")


def _read_refs(repo: Repository) -> dict[bytes, ObjectID]:  # noqa: C901, PLR0912 - one branch per way a ref can be stored (loose, packed, symbolic, damaged)
    """Every ref of the store with its object id, read strictly.

    dulwich reads an empty ref file as absent and a garbage one as its text;
    either would make gc take the ref's objects for garbage.  Loose refs win
    over packed ones; symbolic refs outside ``refs/cas/`` are skipped (their
    target is a ref of its own).  Refs under ``refs/cas/`` must name a commit.

    Raises:
        CorruptRefError: naming the first ref that cannot be read.
    """
    found: dict[bytes, ObjectID] = {}
    packed = repo.packed_refs_path
    try:
        with open(packed, "rb") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    for n, line in enumerate(lines, 1):
        if not line or line.startswith((b"#", b"^")):
            continue
        sha, _, name = line.partition(b" ")
        if not _HEX40.fullmatch(sha) or not name.startswith(b"refs/"):
            raise CorruptRefError("packed-refs", f"line {n} does not parse: {line[:80]!r}")
        found[name] = ObjectID(sha)
    refs_dir = repo.refs_dir
    for dirpath, _dirnames, filenames in os.walk(refs_dir):
        for fn in filenames:
            if fn.endswith(".lock"):
                continue  # a ref update in progress, or left by a killed writer: not a ref
            path = os.path.join(dirpath, fn)
            name = os.fsencode(os.path.relpath(path, repo.path)).replace(os.sep.encode(), b"/")
            with open(path, "rb") as f:
                data = f.read(4096).strip()
            if data.startswith(b"ref: ") and not name.startswith(b"refs/cas/"):
                found.pop(name, None)
                continue
            if not _HEX40.fullmatch(data):
                what = "is empty" if not data else f"does not hold an object id ({data[:60]!r})"
                raise CorruptRefError(name.decode("utf-8", "replace"), what)
            found[name] = ObjectID(data)
    for name, sha in found.items():
        if name.startswith(b"refs/cas/"):
            try:
                obj = repo.odb.read(sha)
            except CasError as e:
                raise CorruptRefError(name.decode("utf-8", "replace"), f"names {sha.decode()}: {e}") from None
            if not isinstance(obj, Commit):
                raise CorruptRefError(name.decode("utf-8", "replace"),
                                      f"names a {obj.type_name.decode()} ({sha.decode()}), not a commit")
    return found


def _walk(repo: Repository, marks: _Marks, progress: Callable[[int], None] | None,  # noqa: C901, PLR0912 - the mark walk over every object kind; one graph walk to come (issue 23)
          deleted_since: float = math.inf, report: GcReport | None = None) -> int:
    """Mark everything the refs reach, then what recently deleted models still reach; returns how many objects.

    A ``delete`` event newer than ``deleted_since`` (history commit time) keeps the
    model commit it names: a deleted model stays restorable for the grace period
    after its deletion, however old its files are (model/restore.py).
    """
    odb = repo.odb
    recently_deleted: list[ObjectID] = []
    try:
        roots = set(_read_refs(repo).values())
    except CorruptRefError as e:
        raise CorruptRefError(e.ref, f"{e.detail}; gc stopped before deleting anything (run cas fsck)") from None
    stack: list[ObjectID] = []
    for sha, fresh in zip(roots, marks.mark([bytes.fromhex(s.decode()) for s in roots]), strict=True):
        if fresh:
            stack.append(sha)
    count = len(stack)
    while stack:
        oid = stack.pop()
        try:
            obj = odb.read(oid)
        except CorruptObjectError as e:
            raise CorruptObjectError(e.oid, f"{e.detail}; gc stopped before deleting anything (run cas fsck)") from None
        inner, blobs = children(obj)
        if isinstance(obj, Commit):
            trailers = parse_trailers(obj.message) if obj.commit_time > deleted_since else {}
            if trailers.get("Cas-Event") == "delete":
                named = trailers.get("Cas-Commit", "").encode()
                if _HEX40.fullmatch(named):
                    recently_deleted.append(ObjectID(named))
        if blobs:
            count += sum(marks.mark([bytes.fromhex(b.decode()) for b in blobs]))
            if progress:
                progress(len(blobs))
        if inner:
            for child, fresh in zip(inner, marks.mark([bytes.fromhex(c.decode()) for c in inner]),
                                    strict=True):
                if fresh:
                    count += 1
                    stack.append(child)
    live = [b.copy() for b in marks.bits], set(marks.loose)
    kept = _mark_deleted(odb, marks, recently_deleted, progress)
    if report is not None and kept:
        report.models_kept_restorable = len({c for c in recently_deleted if odb.contains(c)})
        _count_deleted(report, odb, marks, *live)
    return count + kept


def _count_deleted(report: GcReport, odb: ObjectDB, marks: _Marks, bits_live: list[np.ndarray],
                   loose_live: set[bytes]) -> None:
    """Count what only recently deleted models reach (marked after the live walk)."""
    for pack, idx, bits, before in zip(marks.packs, marks.idx, marks.bits, bits_live, strict=True):
        only = bits & ~before
        n = int(only.sum())
        if n:
            report.objects_kept_deleted += n
            starts, ends = idx.entry_bounds(os.path.getsize(os.path.join(odb.pack_dir, pack + ".pack")))
            report.bytes_kept_deleted += int((ends - starts)[only].sum())
    for oid in marks.loose - loose_live:
        report.objects_kept_deleted += 1
        try:
            report.bytes_kept_deleted += os.path.getsize(os.path.join(odb.objects_dir, oid.hex()[:2], oid.hex()[2:]))
        except FileNotFoundError:
            pass


def _mark_deleted(odb: ObjectDB, marks: _Marks, roots: list[ObjectID],
                  progress: Callable[[int], None] | None) -> int:
    """Mark what the deleted model commits ``roots`` still reach, leniently.

    Only what is here: a part already freed, or never fetched (a deletion pulled
    from elsewhere), is skipped, not an error, and is not marked (a marked object
    in no pack index would look like a lost index).
    """
    here = [c for c in roots if odb.contains(c)]
    stack = [c for c, fresh in zip(here, marks.mark([bytes.fromhex(c.decode()) for c in here]), strict=True) if fresh]
    count = len(stack)
    while stack:
        try:
            obj = odb.read(stack.pop())
        except CorruptObjectError:
            continue
        if isinstance(obj, Commit):
            inner, blobs = [obj.tree], []  # a deleted model's commit: its tree, not its parents
        else:
            inner, blobs = ([c for c in found if odb.contains(c)] for found in children(obj))
        if blobs:
            count += sum(marks.mark([bytes.fromhex(b.decode()) for b in blobs]))
            if progress:
                progress(len(blobs))
        for child, fresh in zip(inner, marks.mark([bytes.fromhex(c.decode()) for c in inner]), strict=True):
            if fresh:
                count += 1
                stack.append(child)
    return count


def _count_young(report: GcReport, idx: PackIdx, bits: np.ndarray, pack: str, live: int) -> None:
    """Count a pack's unreachable entries that the grace period keeps (gc's report says so)."""
    report.objects_kept_young += idx.count - live
    size = os.path.getsize(pack)
    if live == 0:
        report.bytes_kept_young += size
    else:
        starts, ends = idx.entry_bounds(size)
        report.bytes_kept_young += int((ends - starts)[~bits].sum())


def _remove(path: str) -> int:
    try:
        size = os.path.getsize(path)
        os.unlink(path)
        return size
    except FileNotFoundError:
        return 0


def gc(repo: Repository, grace_period: float = DEFAULT_GRACE, progress: Callable[[int], None] | None = None,  # noqa: C901, PLR0912, PLR0915 - gc's phases under one lock, in order
       wait: float | None = DEFAULT_WAIT, on_wait: WaitFn | None = None) -> GcReport:
    """See Repository.gc."""
    grace_period = check_duration(grace_period, "grace period")
    if wait is not None:
        wait = check_duration(wait, "wait")
    report = GcReport(grace_period=grace_period)
    odb = repo.odb

    def waiting(holders: str, waited: float) -> None:
        log.info("gc: waiting for %s (writers in progress), held by %s", repo.lockfile, holders)
        if on_wait is not None:
            on_wait(holders, waited)

    with yielding_lock(repo.lockfile, exclusive=True, timeout=None if wait == math.inf else wait,
                    on_wait=waiting):
        cutoff = time.time() - grace_period
        names = os.listdir(odb.pack_dir)
        packs = sorted(n[:-4] for n in names if n.endswith(".idx") and n[:-4] + ".pack" in names)
        # Before any ref is read: git's receive-pack publishes a pushed pack with a .keep and
        # removes it only after the push's refs moved.  A pack listed without one is therefore
        # either reached by the refs read below or garbage; one that had it is left alone
        # even if the .keep is gone by the time it is looked at (its refs may have moved after
        # gc read them).  Checked after the listing: a .idx listed implies its .keep came first.
        kept = {p for p in packs if os.path.exists(os.path.join(odb.pack_dir, p + ".keep"))}
        adoption = Adoption()
        try:
            marks = _Marks(odb.pack_dir, packs)
        except CorruptObjectError as e:  # a damaged .idx: what it holds cannot be known
            raise CorruptObjectError(e.oid, f"{e.detail}; gc stopped before deleting anything (run cas fsck)") from None
        try:
            report.reachable = _walk(repo, marks, progress, deleted_since=cutoff, report=report)
            for pack, idx, bits in zip(packs, marks.idx, marks.bits, strict=True):
                live = int(bits.sum())
                base = os.path.join(odb.pack_dir, pack)
                ours = os.path.exists(os.path.join(odb.cidx_dir, pack + ".cidx"))
                if pack in kept or os.path.exists(base + ".keep"):
                    continue
                if live == idx.count:
                    if not ours:  # pushed by git: merged into one pack of ours (ops/adopt.py)
                        adoption.packs.append((pack, None))
                    continue
                if os.path.getmtime(base + ".pack") > cutoff:
                    _count_young(report, idx, bits, base + ".pack", live)
                    continue
                if live == 0:
                    report.bytes_freed += delete_pack(repo, pack)
                    report.packs_removed += 1
                    report.objects_removed += idx.count
                elif ours:
                    # ours, so whole objects only: copy the live entries verbatim
                    def live_only(_pack: int, pos: int, bits: np.ndarray = bits) -> bool:
                        return bool(bits[pos])

                    try:
                        _, freed = copy_packs(repo, [pack], keep=live_only)
                    except CorruptObjectError as e:
                        # copy_packs verified before publishing or deleting anything: keep the
                        # damaged pack as it is, for fsck to report and a good copy to replace
                        warnings.warn(f"casstore: gc left pack {pack} as it is: {e}", stacklevel=2)
                        continue
                    report.bytes_freed += freed
                    report.packs_rewritten += 1
                    report.objects_removed += idx.count - live
                else:  # pushed by git (maybe with deltas): its live objects are adopted
                    adoption.packs.append((pack, bits))
                    report.objects_removed += idx.count - live
                    starts, ends = idx.entry_bounds(os.path.getsize(base + ".pack"))
                    report.bytes_freed += int((ends - starts)[~bits].sum())
        finally:
            marks.close()
        # loose objects; in a store git serves (it has a pre-receive hook), the reachable ones a
        # plain git server's receive-pack left loose are packed too (a store's own commits leave
        # theirs to maintenance, which packs them past LOOSE_LIMIT)
        served = os.path.exists(os.path.join(repo.path, "hooks", "pre-receive"))
        for d in os.listdir(odb.objects_dir):
            if len(d) != 2:
                continue
            sub = os.path.join(odb.objects_dir, d)
            for fn in os.listdir(sub):
                path = os.path.join(sub, fn)
                if fn.startswith(TMP_PREFIX):
                    if os.path.getmtime(path) <= cutoff:
                        report.bytes_freed += _remove(path)
                        report.tmp_removed += 1
                    continue
                try:
                    oid = bytes.fromhex(d + fn)
                except ValueError:
                    continue
                if oid in marks.loose:
                    if served:
                        adoption.loose.append(oid)
                    continue
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                if st.st_mtime <= cutoff:
                    report.bytes_freed += _remove(path)
                    report.loose_removed += 1
                    report.objects_removed += 1
                else:
                    report.objects_kept_young += 1
                    report.bytes_kept_young += st.st_size
            try:
                os.rmdir(sub)
            except OSError:
                pass
        # A reachable object that is in no pack index and not loose may be in a pack whose
        # .idx was lost: then index-less packs (and their sidecars) are kept, not taken
        # for a crashed writer's leftovers.
        unindexed = sum(not os.path.exists(os.path.join(odb.objects_dir, o.hex()[:2], o.hex()[2:]))
                        for o in marks.loose)
        if unindexed:
            warnings.warn(f"casstore: {unindexed} reachable objects are in no pack index: gc kept every "
                          "pack without an index (run cas fsck)", stacklevel=2)
        # temporary files of crashed writers, pack data without an index, orphan sidecars
        for fn in os.listdir(odb.pack_dir):
            path = os.path.join(odb.pack_dir, fn)
            orphan = fn.endswith(".pack") and not os.path.exists(path[:-5] + ".idx") and not unindexed
            if (fn.startswith(TMP_PREFIX) or orphan) and os.path.getmtime(path) <= cutoff:
                report.bytes_freed += _remove(path)
                report.tmp_removed += 1
        for fn in os.listdir(odb.cidx_dir):
            path = os.path.join(odb.cidx_dir, fn)
            pack_idx = os.path.join(odb.pack_dir, fn[:-5] + ".idx") if fn.endswith(".cidx") else ""
            if fn.startswith(TMP_PREFIX) or (pack_idx and not os.path.exists(pack_idx) and not unindexed):
                if os.path.getmtime(path) <= cutoff or not fn.startswith(TMP_PREFIX):
                    report.bytes_freed += _remove(path)
        tmp = repo.tmp
        for fn in os.listdir(tmp):
            path = os.path.join(tmp, fn)
            if os.path.getmtime(path) <= cutoff:
                import shutil

                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else _remove(path)
                report.tmp_removed += 1
        if adoption:
            # what pushes left (git's packs, loose objects): live objects into one pack of ours
            adopt(repo, adoption)  # what it saves besides the dead entries counted above is not garbage
            report.packs_adopted = len(adoption.packs)
            report.loose_packed = len(adoption.loose)
        odb.index.refresh()
        maintain(repo)  # pack what is left loose, roll up small packs
    return report
