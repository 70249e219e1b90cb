"""The locks that order casstore's writers.

``cas/gc.lock`` keeps gc away from writers in progress.  A commit may reuse a
chunk that no ref reaches at that moment (the chunk index found it), and every
writer writes objects (model commits, history commits, state lists) before the
ref that makes them reachable; gc must not delete them in between.  Every writer
(commit, delete, state changes, pull, push, ``fsck --repair``) holds it shared
for its whole operation, gc holds it exclusively.

``cas/locks/domain-<domain>.lock`` orders the writers of one domain: whoever
changes a model ref of the domain holds it exclusively from the ref change to
the history append that records it, so no other casstore writer can slip a ref
change or an event in between (a delete racing the commit of the same ID can
then never leave a history listing a deleted model).

``cas/gc.queue.lock`` makes the store lock fair to gc (:func:`yielding_lock`).
flock(2) grants a shared lock whenever no one holds it exclusively, so writers
whose operations overlap (two processes committing in loops) would keep it held
forever and gc would never get its turn.  gc therefore first takes the queue
lock exclusively, then waits for the store lock; a writer passes through the
queue lock (shared, released as soon as it holds the store lock), so once gc
waits, new writers wait behind it and gc runs as soon as the writers already in
progress finish.  A writer that already holds the store lock in this process
(nested operations) does not queue again: it would wait for a gc that waits for it.

All are flock(2) locks: they die with their process, so a killed writer never
blocks anyone; what a killed writer leaves half done is repaired by the next
writer of the domain (see history.reconcile).
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import StoreBusyError

#: How long a writer waits for another writer of the same domain (the critical
#: section is a ref update and a history append: milliseconds, seconds for a pull).
DOMAIN_LOCK_TIMEOUT = 120.0
#: How often a waiter is told again who it is waiting for, when nothing changed.
REPORT_EVERY = 30.0

WaitFn = Callable[[str, float], None]


def lock_holders(path: str) -> list[str]:
    """Who holds a flock on ``path``: ``"pid N (command line)"`` each, from /proc/locks.

    Best effort and Linux only: an empty list when it cannot be told.  Processes
    that are still waiting for the lock are not listed.
    """
    try:
        st = os.stat(path)
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out: list[str] = []
    for line in lines:
        parts = line.split()
        if len(parts) < 6 or parts[1] == "->" or parts[1] != "FLOCK":
            continue
        try:
            major, minor, inode = parts[5].split(":")
            pid = int(parts[4])
            if (int(inode), os.major(st.st_dev), os.minor(st.st_dev)) != (st.st_ino, int(major, 16), int(minor, 16)):
                continue
        except ValueError:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as c:
                cmd = " ".join(c.read().replace(b"\0", b" ").decode("utf-8", "replace").split())
        except OSError:
            cmd = ""
        if len(cmd) > 120:
            cmd = cmd[:117] + "..."
        text = f"pid {pid}" + (f" ({cmd})" if cmd else "") + (" (this process)" if pid == os.getpid() else "")
        if text not in out:
            out.append(text)
    return out


def describe_holders(path: str) -> str:
    holders = lock_holders(path)
    return ", ".join(holders) if holders else "another process (its pid could not be found)"


@contextmanager
def store_lock(path: str, exclusive: bool = False, timeout: float | None = None,
               on_wait: WaitFn | None = None) -> Iterator[None]:
    """Hold the flock at ``path`` (shared, or exclusive) for the ``with`` block.

    Without ``timeout`` this waits as long as it takes.  With one, it gives up
    after ``timeout`` seconds with StoreBusyError naming the holders.  While it
    waits, ``on_wait(holders, seconds waited)`` is called when the wait starts,
    when the holders change and every REPORT_EVERY seconds.

    Raises:
        StoreBusyError: the lock stayed held for longer than ``timeout``.
    """
    fd = _acquire(path, exclusive, timeout, on_wait, time.monotonic())
    try:
        yield
    finally:
        os.close(fd)


def _acquire(path: str, exclusive: bool, timeout: float | None, on_wait: WaitFn | None, start: float) -> int:
    """Open ``path`` and flock it; returns the descriptor (closing it releases the lock).

    ``timeout`` counts from ``start`` (so that two locks taken in turn share one bound).
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        if timeout is None and on_wait is None:
            fcntl.flock(fd, mode)
            return fd
        told, told_at = "", 0.0
        delay = 0.002
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                waited = time.monotonic() - start
                if timeout is not None and waited >= timeout:
                    raise StoreBusyError(path, waited, lock_holders(path)) from None
                if on_wait is not None:
                    holders = describe_holders(path)
                    if holders != told or waited - told_at >= REPORT_EVERY:
                        on_wait(holders, waited)
                        told, told_at = holders, waited
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
    except BaseException:
        os.close(fd)
        raise


def queue_lock_path(path: str) -> str:
    """The queue lock beside a store lock: ``cas/gc.lock`` -> ``cas/gc.queue.lock``."""
    return (path[:-5] if path.endswith(".lock") else path) + ".queue.lock"


# (pid, lock path) -> how many shared holds of yielding_lock this process has now
_shared_held: dict[tuple[int, str], int] = {}
_shared_mutex = threading.Lock()


@contextmanager
def yielding_lock(path: str, exclusive: bool = False, timeout: float | None = None,
                  on_wait: WaitFn | None = None) -> Iterator[None]:
    """:func:`store_lock`, fair to the exclusive holder: once it waits, new shared holders wait behind it.

    The exclusive side holds the queue lock (:func:`queue_lock_path`) while it
    waits and runs; the shared side takes the queue lock for a moment only,
    unless this process already holds ``path`` shared (see the module docstring).
    ``timeout`` bounds the whole wait, both locks together.

    Raises:
        StoreBusyError: the locks stayed held for longer than ``timeout``.
    """
    start = time.monotonic()
    queue = queue_lock_path(path)
    if exclusive:
        gate = _acquire(queue, True, timeout, on_wait, start)
        try:
            fd = _acquire(path, True, timeout, on_wait, start)
            try:
                yield
            finally:
                os.close(fd)
        finally:
            os.close(gate)
        return
    key = (os.getpid(), os.path.abspath(path))
    with _shared_mutex:
        nested = _shared_held.get(key, 0) > 0
    if nested:
        fd = _acquire(path, False, timeout, on_wait, start)
    else:
        gate = _acquire(queue, False, timeout, on_wait, start)
        try:
            # while we hold the queue lock shared, no exclusive holder can hold the store lock
            fd = _acquire(path, False, timeout, on_wait, start)
        finally:
            os.close(gate)
    with _shared_mutex:
        _shared_held[key] = _shared_held.get(key, 0) + 1
    try:
        yield
    finally:
        with _shared_mutex:
            _shared_held[key] -= 1
            if not _shared_held[key]:
                del _shared_held[key]
        os.close(fd)


def domain_lock_path(store_path: str, domain: str) -> str:
    """The lock file of a domain (domain names are safe file names, see names.py)."""
    return os.path.join(store_path, "cas", "locks", f"domain-{domain}.lock")


# Signals that end a process unless handled: held back while a ref change and its
# history event are written.  SIGKILL cannot be held; history.reconcile is for it.
_HELD = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold back SIGINT, SIGTERM and SIGHUP for the few lines that must not be split.

    Used around "change the model ref, then record it in the history": a signal
    in between would leave a model that the log does not show (or a deletion it
    does not show).  Each signal received meanwhile is delivered right after the
    block to the handler that was in place (Ctrl-C raises KeyboardInterrupt,
    SIGTERM ends the process as it would have).  Only the main thread can hold
    signals; elsewhere, and for SIGKILL or a power cut, the next writer of the
    domain records the missing event (history.reconcile).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    # a handler installed from C (getsignal() is None) could not be put back: leave those alone
    held = [s for s in _HELD if signal.getsignal(s) is not None]
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(received):
            handler = previous[signal.Signals(s)]
            if callable(handler):
                handler(s, None)  # the default SIGINT handler raises KeyboardInterrupt here
            elif handler == signal.SIG_DFL:
                signal.raise_signal(s)  # SIGTERM/SIGHUP: end the process, as they would have
