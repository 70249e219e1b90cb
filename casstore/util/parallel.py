"""Small helpers for bounded, ordered work in a thread pool."""

from __future__ import annotations

import gc
import itertools
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


def default_workers() -> int:
    return max(1, int(os.environ.get("CAS_THREADS", 0)) or os.cpu_count() or 2)


def byte_runs(starts: Sequence[int], ends: Sequence[int], limit: int, gap: int = 0) -> Iterator[range]:
    """Consecutive index ranges of spans (``starts[i]``, ``ends[i]``), sorted, that one read each can cover.

    A run ends before a span that starts more than ``gap`` bytes after the end of
    the one before it, or that would take the run (from its first start to that
    span's end) past ``limit`` bytes; a span longer than ``limit`` is a run of its own.
    The one rule for grouping by bytes: ranged requests to a bucket, ``pread``s of
    a pack, thread-pool jobs (``batched_sizes``).
    """
    first = 0
    for i in range(1, len(starts)):
        if starts[i] - ends[i - 1] > gap or ends[i] - starts[first] > limit:
            yield range(first, i)
            first = i
    if starts:
        yield range(first, len(starts))


def batched_sizes(sizes: list[int], target: int = 2 << 20) -> Iterator[range]:
    """Consecutive index ranges of items laid end to end, about ``target`` bytes each (``byte_runs``).

    Thread-pool jobs of one 64 KiB chunk each spend as much time in futures
    and the GIL as in work; a few MiB per job keeps both cores busy.
    """
    ends = list(itertools.accumulate(sizes))
    return byte_runs([0, *ends[:-1]] if ends else [], ends, target)


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


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (as it was before, after it).

    The chunk pipelines allocate a few small objects per chunk (views, tuples, index
    entries) and keep many of them until the end: every few thousand allocations the
    collector walked all of them, and every object of the process, for cycles there are
    none of (3-6 % of a commit's or a download's CPU, measured with ``perf``, issue 26).
    Reference counting still frees everything as usual; cycles made meanwhile are
    collected once the collector is back on.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
