"""Reading files back out of the store, verified, in bounded memory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import xxhash
from dulwich.objects import ObjectID, Tree

from .errors import CorruptObjectError
from .fsutil import TMP_PREFIX, safe_target
from .manifest import FileEntry
from .odb import ObjectDB
from .parallel import ordered

BLOB_MODE = 0o100644


def chunk_oids(odb: ObjectDB, tree_id: ObjectID, entry: FileEntry) -> list[bytes]:
    """Binary oids of a file's chunk blobs, checked against the manifest."""
    t = odb.read(tree_id, Tree)
    assert isinstance(t, Tree)
    items = list(t.iteritems())
    if len(items) != len(entry.keys):
        raise CorruptObjectError(
            tree_id.decode(), f"{entry.path}: tree has {len(items)} chunks, manifest {len(entry.keys)}"
        )
    oids = []
    for i, it in enumerate(items):
        if it.path != b"%08x" % i or it.mode != BLOB_MODE:
            raise CorruptObjectError(tree_id.decode(), f"{entry.path}: unexpected tree entry {it.path!r}")
        oids.append(bytes.fromhex(it.sha.decode()))
    return oids


def iter_file(
    odb: ObjectDB, entry: FileEntry, oids: list[bytes], pool: ThreadPoolExecutor, window: int
) -> Iterator[bytes]:
    """The raw chunks of a file in order, each verified; then the whole file."""
    locations = odb.index.lookup(entry.keys)

    def jobs() -> Iterator[Callable[[], bytes]]:
        for key, oid, size, loc in zip(entry.keys, oids, entry.sizes, locations, strict=True):
            yield lambda key=key, oid=oid, size=size, loc=loc: odb.read_chunk(key, oid, size, loc)  # type: ignore[misc]

    xx = xxhash.xxh3_128()
    total = 0
    for raw in ordered(pool, window, jobs()):
        xx.update(raw)
        total += len(raw)
        yield raw
    if total != entry.size or xx.digest() != entry.xxh3:
        raise CorruptObjectError(entry.path, "file does not match its manifest checksum")


def write_file(
    odb: ObjectDB, entry: FileEntry, oids: list[bytes], root: str, pool: ThreadPoolExecutor,
    window: int, progress: Callable[[int], None] | None = None,
) -> str:
    """Write one file under ``root`` atomically; returns its path.

    The file appears under its final name only once every byte verified.
    """
    target = safe_target(root, entry.path)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    # re-check after creating parents: a symlink may have been planted meanwhile
    target = safe_target(root, entry.path)
    if os.path.isdir(target):
        raise IsADirectoryError(f"cannot write {entry.path}: {target} is a directory")
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for raw in iter_file(odb, entry, oids, pool, window):
                f.write(raw)
                if progress:
                    progress(len(raw))
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target
