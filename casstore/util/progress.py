"""Progress reporting hooks for long operations.

The API calls ``store.progress(label, done, total)`` (``total`` 0 when unknown)
if the attribute is set.  A Store starts with :func:`default_progress`: tqdm bars
where a user watches (a Jupyter notebook, or stderr on a terminal) and nothing
otherwise (logs, pipes, CI); ``CAS_PROGRESS=0``/``1`` forces it off/on, and any
callable (or None) can be assigned.  The CLI uses its own one-line
:class:`TerminalProgress` on a terminal and nothing when piped.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

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


def _in_notebook() -> bool:
    """Whether we run in a Jupyter kernel (IPython's ZMQ shell), where stderr is no tty but a user watches."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an IPython too old or too broken to ask: no bars rather than a failing store
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def default_progress(stream: TextIO | None = None) -> ProgressFn | None:
    """tqdm progress bars where users expect them, else None (see the module docstring)."""
    setting = os.environ.get("CAS_PROGRESS", "")
    if setting == "0":
        return None
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        tty = False
    notebook = _in_notebook()
    if setting != "1" and not (tty or notebook):
        return None
    return TqdmProgress(stream, notebook)


class TqdmProgress:
    """One tqdm bar per phase (hashing, storing, downloading, ...), in bytes.

    A bar closes when its phase reaches its total or the next phase starts; call
    :meth:`finish` to close an open-ended one (``total`` 0) early.
    """

    def __init__(self, stream: TextIO | None = None, notebook: bool = False) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.notebook = notebook
        self._bar: Any = None
        self._label = ""

    def _new(self, label: str, total: int) -> Any:
        if self.notebook:
            from tqdm.auto import tqdm  # widgets when ipywidgets is installed, text otherwise
        else:
            from tqdm import tqdm
        return tqdm(total=total or None, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
                    file=self.stream, leave=True, dynamic_ncols=True)

    def __call__(self, label: str, done: int, total: int) -> None:
        if label != self._label or self._bar is None:
            self.finish()
            self._bar, self._label = self._new(label, total), label
        if total and self._bar.total != total:
            self._bar.total = total
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)
        if total and done >= total:
            self.finish()

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar, self._label = None, ""
