"""Small helpers for bounded, ordered work in a thread pool."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def default_workers() -> int:
    return max(1, int(os.environ.get("CAS_THREADS", 0)) or os.cpu_count() or 2)


def ordered(pool: ThreadPoolExecutor, window: int, jobs: Iterator[Callable[[], T]]) -> Iterator[T]:
    """Run jobs in the pool with at most ``window`` in flight; yield results in order.

    Memory stays bounded by ``window`` results whatever the number of jobs.
    """
    pending: deque[Future[T]] = deque()
    try:
        for job in jobs:
            pending.append(pool.submit(job))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()
