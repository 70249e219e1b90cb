"""Progress reporting hooks for long operations.

The API calls ``store.progress(label, done, total)`` (``total`` 0 when unknown)
if the attribute is set; the CLI sets it to a terminal progress bar when stderr
is a terminal, and leaves it unset when piped.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

ProgressFn = Callable[[str, int, int], None]


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Counter:
    """Accumulates increments for one labelled phase and forwards them."""

    def __init__(self, fn: ProgressFn | None, label: str, total: int) -> None:
        self.fn, self.label, self.total, self.done = fn, label, total, 0
        if fn:
            fn(label, 0, total)

    def __call__(self, n: int) -> None:
        self.done += n
        if self.fn:
            self.fn(self.label, self.done, self.total)


class TerminalProgress:
    """A one-line progress bar on a terminal, redrawn at most 10 times a second."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self._last = 0.0
        self._label = ""
        self._start = time.monotonic()

    def __call__(self, label: str, done: int, total: int) -> None:
        now = time.monotonic()
        if label != self._label:
            if self._label:
                self.stream.write("\n")
            self._label, self._start = label, now
        elif now - self._last < 0.1 and done < total:
            return
        self._last = now
        rate = done / max(now - self._start, 1e-6)
        if total:
            frac = min(done / total, 1.0)
            bar = "#" * int(frac * 30)
            text = f"\r{label:<12} [{bar:<30}] {frac:4.0%} {human(done)}/{human(total)} {human(rate)}/s"
        else:
            text = f"\r{label:<12} {human(done)} {human(rate)}/s"
        self.stream.write(text + "\x1b[K")
        self.stream.flush()

    def finish(self) -> None:
        if self._label:
            self.stream.write("\n")
            self.stream.flush()
            self._label = ""
