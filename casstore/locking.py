"""The store-wide lock that keeps gc away from commits in progress.

A commit may reuse a chunk that no ref reaches at that moment (the chunk index
found it); gc must not delete it before the commit's ref exists.  Writers hold
``cas/gc.lock`` shared for their whole operation, gc holds it exclusively.
flock(2) locks die with their process, so a killed writer never blocks gc.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import StoreLockedError


@contextmanager
def store_lock(path: str, exclusive: bool = False, timeout: float | None = None) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        if timeout is None:
            fcntl.flock(fd, mode)
        else:
            start = time.monotonic()
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() - start > timeout:
                        raise StoreLockedError(path, time.monotonic() - start) from None
                    time.sleep(0.05)
        yield
    finally:
        os.close(fd)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold back SIGINT (Ctrl-C) for the few lines that must not be split.

    Used around "create the model ref, then record it in the history": an
    interrupt in between would leave a model that the log does not show.  The
    interrupt is delivered as KeyboardInterrupt right after the block.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[object] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt
