"""What ``Store.gc`` and ``Store.fsck`` do around ops/gc.py and ops/fsck.py: the grace period
from its two spellings, telling ``progress`` who holds the lock gc waits for, repairing
histories first, and logging the result; and the log line of a writer waiting for gc."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..objects.repository import Repository
from ..ops.defaults import DEFAULT_GRACE
from ..util.durations import parse_duration
from ..util.locking import WaitFn
from ..util.progress import Counter, ProgressFn

if TYPE_CHECKING:  # ops.gc and ops.fsck are imported by the calls that run them: cas start-up
    from ..ops.fsck import FsckReport
    from ..ops.gc import GcReport

log = logging.getLogger("casstore")


def log_lock_wait(holders: str, waited: float) -> None:
    """What a writer waiting for the store lock (gc holds it) tells the ``casstore`` logger."""
    log.info("waiting for the store lock (%.0fs so far), held by %s", waited, holders)


def grace_seconds(grace_period: float | str | None, grace: float | str | None) -> float:
    """The grace period ``Store.gc`` was given, in seconds (default: two weeks).

    Raises:
        TypeError: both given.  InvalidDurationError: not a duration.
    """
    if grace is not None and grace_period is not None:
        raise TypeError("gc() takes grace= or grace_period= (the same setting), not both")
    chosen = grace if grace is not None else grace_period
    return DEFAULT_GRACE if chosen is None else parse_duration(chosen) if isinstance(chosen, str) else chosen


def run_gc(repo: Repository, grace: float, wait: float | None, on_wait: WaitFn | None,
           progress: ProgressFn | None) -> GcReport:
    """``Store.gc``: without ``on_wait``, a wait for the lock is shown as ``progress``."""
    from ..ops.gc import gc

    if on_wait is None and progress is not None:
        shown = progress
        limit = int(wait) if wait is not None and wait < 2**62 else 0

        def on_wait(holders: str, waited: float) -> None:
            shown(f"waiting for {holders}", int(waited), limit)

    report = gc(repo, grace, progress=Counter(progress, "marking", 0), wait=wait, on_wait=on_wait)
    log.info("gc: removed %d objects (%d packs removed, %d rewritten), freed %d bytes", report.objects_removed,
             report.packs_removed, report.packs_rewritten, report.bytes_freed)
    return report


def run_fsck(repo: Repository, read_data: bool, repair: bool, progress: ProgressFn | None) -> FsckReport:
    """``Store.fsck``: with ``repair``, the histories are repaired first (each repair logged)."""
    from ..ops.fsck import fsck, repair_histories

    repaired = repair_histories(repo) if repair else []
    for r in repaired:
        log.warning("fsck --repair: %s", r)
    report = fsck(repo, read_data=read_data, progress=Counter(progress, "verifying", 0) if read_data else None)
    report.repaired = repaired
    log.info("fsck: %d models, %d files, %d chunks checked: %s", report.models, report.files, report.chunks,
             "ok" if report.ok else f"{len(report.problems)} problems")
    return report
