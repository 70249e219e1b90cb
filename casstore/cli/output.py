"""Terminal habits borrowed from git: a pager on a terminal, colour only on a terminal."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, TextIO

from ..errors import CasError, StateNotFoundException
from ..util.jsonsafe import to_json
from ..util.progress import human

__all__ = ["cli_message", "count", "human", "pager", "paint", "print_json", "to_json", "use_color"]

COLORS = {"yellow": "33", "green": "32", "red": "31", "bold": "1", "dim": "2", "cyan": "36"}


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 model"``, ``"2 models"``, ``"0 models"``: a number with its noun agreeing."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def use_color(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def paint(text: str, color: str, enabled: bool) -> str:
    return f"\x1b[{COLORS[color]}m{text}\x1b[0m" if enabled else text


def print_json(obj: Any) -> None:
    """Print ``obj`` as one valid JSON document (RFC 8259), or nothing at all.

    The whole document is built before the first byte is written, so a value
    that cannot be converted fails the command without half a document on
    stdout.  Metadata may hold what JSON cannot (it is stored as msgpack); the
    mapping, documented in docs/cli.md, is :func:`to_json`'s.
    """
    text = json.dumps(to_json(obj), indent=2, allow_nan=False)
    sys.stdout.write(text + "\n")


@contextmanager
def pager(enabled: bool) -> Iterator[IO[str]]:
    """Yield a stream that goes through ``$CAS_PAGER``/``$PAGER``/``less -FRX`` on a terminal.

    Lines are written as they are produced, so the first screen appears at once.
    """
    if not enabled or not sys.stdout.isatty():
        yield sys.stdout
        return
    cmd = os.environ.get("CAS_PAGER") or os.environ.get("PAGER") or "less"
    if cmd in ("cat", "") or not shutil.which(shlex.split(cmd)[0]):
        yield sys.stdout
        return
    env = {**os.environ, "LESS": os.environ.get("LESS", "FRX")}
    proc = subprocess.Popen(shlex.split(cmd), stdin=subprocess.PIPE, text=True, env=env)
    assert proc.stdin is not None
    try:
        yield proc.stdin
    except BrokenPipeError:
        pass  # the user quit the pager early
    finally:
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        proc.wait()



def cli_message(e: BaseException) -> str:
    """The one-line message ``cas`` prints for error ``e``, in the command line's words.

    The exceptions keep the Python API's wording (``create_model_state``,
    ``extra_files``), which is right for Python users; the few errors whose advice
    names a Python call are reworded here with the ``cas`` command that does the
    same.  Everything else prints as ``str(e)``.
    """
    if isinstance(e, StateNotFoundException):
        return f"model state {e.state!r} does not exist (create it with `cas state create {e.state}`)"
    if isinstance(e, KeyError) and not isinstance(e, CasError) and e.args:
        return str(e.args[0])  # KeyError's str() is the repr of its argument
    if isinstance(e, OSError) and e.filename is not None and e.strerror and str(e).startswith("[Errno"):
        # "[Errno 17] File exists: 'x'" is Python's wording: say "x: file exists"
        return f"{e.filename}: {e.strerror[:1].lower()}{e.strerror[1:]}"
    return str(e)


def chunks_new(new: int, total: int) -> str:
    """``3/10 chunks new``: how many of a model's chunks its commit stored."""
    return f"{new}/{count(total, 'chunk')} new"
