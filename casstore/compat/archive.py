"""Unpacking a modelstore archive (``artifacts.tar.gz``) safely: plain files only, expansion bounded.

A hostile archive can name links, devices, ``..`` or absolute paths, or be a
decompression bomb: members are written one by one (regular files named
``<name>`` or ``extras/<name>`` only), and the decompressed stream is refused as
soon as it outgrows its bound.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import zlib
from typing import Any, BinaryIO

from ..errors import CasError, UnsafePathError
from ..util.fsutil import check_relpath
from .meta import EXPANSION_ALLOWANCE, EXTRAS_DIR, MAX_EXPANSION


class ArchiveTooLargeError(CasError, ValueError):
    """An archive expands further than the import allows: a decompression bomb, or a limit set too low."""

    def __init__(self, key: str, compressed: int, expanded: int, ratio: float) -> None:
        self.key = key
        self.compressed = compressed
        self.expanded = expanded
        self.ratio = ratio
        super().__init__(f"{key}: refused: expands to more than {ratio:g} times its compressed size "
                         f"(over {expanded} bytes from the first {compressed}), as a decompression bomb does; "
                         f"--max-expansion raises the limit")


class _Counted(io.RawIOBase):
    """The compressed archive, counting the bytes read from it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.count += n
        return n


class _Bounded(io.RawIOBase):
    """The archive's decompressed stream, refused as soon as it outgrows ``ratio`` times what was read.

    The bound is checked on every read, before the bytes go on, so a bomb's
    memory and disk use stop at the bound (as a pull bounds every object's inflation).
    """

    def __init__(self, key: str, archive: BinaryIO, ratio: float) -> None:
        self.key = key
        self.ratio = ratio
        self.counted = _Counted(archive)
        self.inflated = gzip.GzipFile(fileobj=io.BufferedReader(self.counted, 1 << 16), mode="rb")
        self.expanded = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            data = self.inflated.read(min(len(b), 1 << 20))
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:  # what tarfile's own gzip reader calls these
            raise tarfile.ReadError(f"{self.key}: not a complete gzip archive ({e})") from e
        n = len(data)
        self.expanded += n
        if self.expanded > self.ratio * self.counted.count + EXPANSION_ALLOWANCE:
            raise ArchiveTooLargeError(self.key, self.counted.count, self.expanded, self.ratio)
        b[:n] = data
        return n


def unpack(archive: BinaryIO, into: str, key: str = "archive",
           max_expansion: float = MAX_EXPANSION) -> tuple[list[str], list[str]]:
    """Unpack a modelstore archive into ``into``: (top-level file names, extra file names).

    Only regular files named ``<name>`` or ``extras/<name>`` are written, each by
    its own ``open`` under ``into``; anything else (links, devices, ``..``,
    absolute or deeper names) refuses the whole archive.

    The archive (``key`` in errors) may expand to ``max_expansion`` times its
    compressed size plus EXPANSION_ALLOWANCE, counted as it is read.

    Raises:
        UnsafePathError: a member that is not a plain file with a plain name.
        ArchiveTooLargeError: it expands further than that.
        tarfile.TarError: not a gzip tar.
    """
    top: list[str] = []
    extras: list[str] = []
    stream = _Bounded(key, archive, max_expansion)
    with tarfile.open(fileobj=io.BufferedReader(stream, 1 << 16), mode="r|") as tar:
        for member in tar:
            name = member.name
            if name.startswith("./"):
                name = name[2:]
            if member.isdir() and name.rstrip("/") in ("", ".", EXTRAS_DIR):
                continue
            if not member.isreg():
                raise UnsafePathError(member.name, "archive member is not a regular file (a link or device)")
            check_relpath(name)
            parts = name.split("/")
            if len(parts) == 1:
                seen = top
            elif len(parts) == 2 and parts[0] == EXTRAS_DIR:
                seen = extras
            else:
                raise UnsafePathError(member.name, "not a name modelstore writes (<file> or extras/<file>)")
            if parts[-1] in seen:
                raise UnsafePathError(member.name, "archive holds this name twice")
            d = os.path.join(into, *parts[:-1])
            os.makedirs(d, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None  # a regular file
            # O_EXCL + O_NOFOLLOW: never through a link, never over an existing file
            fd = os.open(os.path.join(d, parts[-1]), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst)
            seen.append(parts[-1])
    return top, extras

