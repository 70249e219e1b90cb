"""Damaging and watching a store's files in tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from dulwich.objects import ObjectID

from casstore.objects.odb import ObjectDB


def flip_byte(path: str, offset: int) -> None:
    """Flip one bit of the byte at ``offset`` in ``path`` (made writable first)."""
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


@contextmanager
def counting_reads(odb: ObjectDB) -> Iterator[list[ObjectID]]:
    """The objects ``odb.read_raw`` is asked for inside the block, in order."""
    reads: list[ObjectID] = []
    real = odb.read_raw

    def counting(oid: ObjectID) -> tuple[int, bytes]:
        reads.append(oid)
        return real(oid)

    odb.read_raw = counting  # type: ignore[method-assign, assignment]
    try:
        yield reads
    finally:
        del odb.read_raw
