"""Every durable filesystem write goes through here.

The rule is git's: write to a temporary name in the same directory, fsync the
file, rename it into place, fsync the directory.  A crash at any point leaves
either the old state or the new one, plus at worst a stray temporary file
(``tmp_*``) that ``gc`` removes.  Tests inject failures by patching
:func:`fsync_fd` or :func:`os.replace` here.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from ..errors import UnsafePathError

TMP_PREFIX = "tmp_"


def fsync_fd(fd: int) -> None:
    """fsync ``fd``: every durability point of casstore goes through here (one seam for tests)."""
    os.fsync(fd)


def fsync_dir(path: str) -> None:
    """Make a rename or creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fsync_fd(fd)
    finally:
        os.close(fd)


def makedirs_durable(path: str) -> None:
    """``os.makedirs`` that also fsyncs each parent it had to create an entry in."""
    missing = []
    p = os.path.abspath(path)
    while not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            pass
        fsync_dir(os.path.dirname(d))


@contextmanager
def removed_on_error(path: str) -> Iterator[None]:
    """Remove ``path`` (a temporary file being written) if the block raises, then re-raise.

    Whatever the error, Ctrl-C included, no half-written file stays behind.
    """
    try:
        yield
    except BaseException:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        raise


@contextmanager
def atomic_file(path: str, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Open a temporary file next to ``path``; on success it replaces ``path``.

    On any exception (including KeyboardInterrupt) the temporary file is removed
    and ``path`` is untouched.
    """
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=directory)
    with removed_on_error(tmp):
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            fsync_fd(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    fsync_dir(directory)


def write_new_file(path: str, writer: Callable[[BinaryIO], None], mode: int = 0o444) -> bool:
    """Create ``path`` atomically unless it already exists (content-addressed files).

    Returns True if this call created it.  Two racing writers of the same
    content-addressed file both succeed; the rename makes it appear once.
    """
    if os.path.exists(path):
        return False
    with atomic_file(path, mode) as f:
        writer(f)
    return True


def check_relpath(path: str) -> str:
    """Validate a manifest file path: relative, '/'-separated, no escape.

    Returns the normalised path.

    Raises:
        UnsafePathError: absolute paths, ``..`` or ``.`` components, empty
            components, backslashes, NUL or control characters, names that
            are not UTF-8.
    """
    if not isinstance(path, str) or not path:
        raise UnsafePathError(str(path), "must be a non-empty string")
    if any(ord(c) < 32 or c == "\x7f" for c in path):
        raise UnsafePathError(path, "must not contain control characters")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # a POSIX name that is not UTF-8 (Python keeps its bytes as surrogates)
        raw = path.encode("utf-8", "surrogateescape")
        raise UnsafePathError(path, f"is not UTF-8 (its bytes: {raw!r}); stored names are UTF-8 text: "
                                    f"rename the file") from None
    if "\\" in path:
        raise UnsafePathError(path, "must not contain backslashes")
    if path.startswith("/"):
        raise UnsafePathError(path, "must be relative")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePathError(path, "must not contain an empty, '.' or '..' component")
    if len(path.encode("utf-8", "surrogateescape")) > 4096:
        raise UnsafePathError(path, "is longer than 4096 bytes")
    return posixpath.normpath(path)


def safe_target(root: str, relpath: str) -> str:
    """The absolute path of ``relpath`` under ``root``, refusing any escape.

    Besides the lexical checks of :func:`check_relpath`, every existing parent
    directory between ``root`` and the target must be a real directory, not a
    symlink, so a hostile manifest cannot write through a planted link.
    """
    rel = check_relpath(relpath)
    root = os.path.abspath(root)
    target = os.path.join(root, *rel.split("/"))
    cur = root
    for part in rel.split("/")[:-1]:
        cur = os.path.join(cur, part)
        if os.path.islink(cur):
            raise UnsafePathError(relpath, f"parent {cur} is a symbolic link")
    if os.path.islink(target):
        raise UnsafePathError(relpath, f"{target} is a symbolic link")
    if os.path.commonpath([root, target]) != root:
        raise UnsafePathError(relpath, "escapes the target directory")
    return target


#: ``fail(path, detail)``: the exception to raise for a file that cannot be stored
Failure = Callable[[str, str], Exception]

NOWHERE = "is a symbolic link that leads nowhere (dangling, or a loop)"


def walk_files(path: str, name: str, fail: Failure) -> list[tuple[str, str]]:
    """(stored name, local path) of every file under the directory ``path``, named
    ``name/...``, sorted.  Symbolic links are followed, to files and to directories alike,
    as ``cp -rL`` does; a link that leads back into a directory being walked is a loop.

    Raises (through ``fail``): a symlink loop, a dangling link, an unreadable entry, or
    something that is not a regular file.
    """
    return _walk(path, name, {os.path.realpath(path)}, fail)


def _walk(path: str, name: str, ancestors: set[str], fail: Failure) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    with os.scandir(path) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        full = os.path.join(path, e.name)
        try:
            is_dir = e.is_dir()  # follows symlinks
        except OSError as err:
            raise fail(full, f"cannot be read: {err.strerror}") from None
        if is_dir:
            real = os.path.realpath(full)
            if real in ancestors:
                raise fail(full, f"is a symlink loop (it leads back to {real!r})")
            out.extend(_walk(full, f"{name}/{e.name}", ancestors | {real}, fail))
        elif not os.path.exists(full):
            raise fail(full, NOWHERE)
        else:
            check_regular(full, fail)
            out.append((f"{name}/{e.name}", full))
    return out


def check_regular(path: str, fail: Failure) -> None:
    """Raise ``fail(path, ...)`` unless ``path`` is (a link to) a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:  # ELOOP: a symlink to itself
        raise fail(path, f"cannot be read: {err.strerror}") from None
    if not stat.S_ISREG(mode):
        raise fail(path, "is not a regular file")
