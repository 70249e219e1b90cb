"""Garbage collection of a bucket, and the lock that keeps it to one at a time."""

from __future__ import annotations

import json
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ...errors import MissingObjectError, RemoteError
from ...objects.packs import PackLayout
from ..reftable import ROOT_KEY, TABLES, RootTable
from .base import CAS_ATTEMPTS, FORMAT, log
from .combine import Combine
from .fetch import Fetch

#: where ``gc`` keeps its lock
GC_LOCK = "locks/gc"
#: a gc lock older than this is stale (its holder died on another machine): restic's rule
STALE_LOCK = 30 * 60.0


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


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine is running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


class Gc(Fetch, Combine):
    """``gc``: what no ref reaches goes, safely with pushers and pullers at once."""

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
        old: list[PackLayout] = []
        for name, p in packs.items():
            if young(name + ".pack") or young(name + ".idx"):
                report.packs_young += 1
                claimed.update(bytes(p.idx.sha(i)) for i in range(p.idx.count))
            else:
                old.append(p)
        dead_packs: list[PackLayout] = []
        rewrite: list[PackLayout] = []
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
            with self._scratch("gc") as work:
                name, _ = self._write_combined(rewrite, work, needed.__contains__)
                report.bytes_freed -= sum(self._publish(work, name))
                report.new_pack = name
            # the same live objects written before (by a gc killed after its upload): that pack stays
            gone = [p for p in gone if p.name != name]
            report.packs_deleted = [n for n in report.packs_deleted if n != name]
        if gone or dead_tables or lonely:
            # the epoch swap: pushes that read the root before it start again; a push since makes us compute again
            bumped = RootTable(root.states, dict(root.domains), root.gc + 1)
            if not self._put_ref(self._key(ROOT_KEY), bumped.encode(), version):
                return None
        self._delete_packs([p.name for p in gone])
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(self._delete, [self._key(TABLES + n) for n in dead_tables]))
            list(pool.map(self._delete, [self._key("objects/pack/" + fn) for fn in lonely]))
        return report
