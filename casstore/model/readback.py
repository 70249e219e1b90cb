"""Reading files back out of the store, verified, in bounded memory."""

from __future__ import annotations

import errno
import io
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

import blake3
import xxhash
from dulwich.objects import ObjectID, Tree

from ..errors import CorruptObjectError, UnsafePathError
from ..objects.odb import ObjectDB
from ..util.fsutil import TMP_PREFIX, removed_on_error, safe_target
from ..util.parallel import batched_sizes, gc_paused, ordered
from .manifest import FileEntry

BLOB_MODE = 0o100644
#: bytes :func:`iter_file` hashes and hands out at a time: small enough that they are still in
#: the CPU's cache when the caller writes them, after the two hashes read them
PIECE = 256 << 10


class WholeFile:
    """The whole-file checks of one stored file, fed its bytes in order: size, xxh3 and the
    BLAKE3 digest its manifest records (what ``cas show`` and the API report as its digest).

    The chunks are each checked against their BLAKE3 keys, which already fixes the bytes;
    these checks make sure the manifest's claims about the whole file are true as well (a
    manifest may name the digest of another file).
    """

    def __init__(self, entry: FileEntry) -> None:
        self.entry = entry
        self.size = 0
        self._xx = xxhash.xxh3_128()
        self._b3 = blake3.blake3()

    def update(self, raw: bytes | memoryview) -> None:
        self._xx.update(raw)
        self._b3.update(raw)
        self.size += len(raw)

    def check(self) -> None:
        """Raises :class:`CorruptObjectError` naming the file if any whole-file claim is false."""
        e = self.entry
        if self.size != e.size or self._xx.digest() != e.xxh3:
            raise CorruptObjectError(e.path, "file does not match its manifest checksum")
        if self._b3.digest() != e.blake3:
            raise CorruptObjectError(e.path, "file does not match its manifest BLAKE3 digest "
                                     f"(it records {e.blake3.hex()[:16]}..., the bytes hash to "
                                     f"{self._b3.hexdigest()[:16]}...)")


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


def iter_file(  # noqa: PLR0913 - the file, its chunks and the three ways to check them
    odb: ObjectDB, entry: FileEntry, oids: list[bytes], pool: ThreadPoolExecutor, window: int,
    *, check_keys: bool = True,
) -> Iterator[memoryview]:
    """The raw bytes of a file in order, a run of ~2 MiB of chunks at a time, each chunk
    verified; then the whole file (:class:`WholeFile`).

    Each run is read and decoded at once (``ObjectDB.read_run``): one buffer a run, so the
    hashes and the caller's writes take one call a run, not one a chunk.
    ``check_keys=False`` leaves the chunks' BLAKE3 keys out: only for a caller that uses no
    byte before the whole-file check at the end passed (:func:`write_file`).
    """
    locations = odb.index.lookup(entry.keys)

    def read(batch: range) -> memoryview:
        sl = slice(batch.start, batch.stop)
        return odb.read_run(entry.keys[sl], oids[sl], entry.sizes[sl], locations[sl], check_keys=check_keys)

    def jobs() -> Iterator[Callable[[], memoryview]]:
        for batch in batched_sizes(entry.sizes):
            yield lambda batch=batch: read(batch)  # type: ignore[misc]

    whole = WholeFile(entry)
    for run in ordered(pool, window, jobs()):
        for pos in range(0, len(run), PIECE):
            piece = run[pos:pos + PIECE]
            whole.update(piece)
            yield piece
    whole.check()


def write_file(  # noqa: PLR0913 - one file's chunks, the thread pool and the read window
    odb: ObjectDB, entry: FileEntry, oids: list[bytes], root: str, pool: ThreadPoolExecutor,
    window: int, progress: Callable[[int], None] | None = None, staged: Callable[[FileEntry], str | None] | None = None,
) -> str:
    """Write one file under ``root`` atomically; returns its path.

    The file appears under its final name only once every byte verified: against the
    whole-file size, xxh3 and BLAKE3 of the manifest, which fix every byte as surely as
    each chunk's key does, at one BLAKE3 pass instead of two.  When they do not match,
    the chunks are read again with their keys checked, to name (and stop deduplicating
    against) the damaged one.

    ``staged`` may give a file holding exactly ``entry``'s bytes, checked already against
    the same whole-file digests (a pull wrote it while it verified them,
    remote/staging.py): it is moved into place instead of reading the store again.
    """
    target = safe_target(root, entry.path)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    # re-check after creating parents: a symlink may have been planted meanwhile
    target = safe_target(root, entry.path)
    if os.path.isdir(target):
        raise IsADirectoryError(f"cannot write {entry.path}: {target} is a directory")
    if staged is not None and _move_staged(staged(entry), target):
        if progress:
            progress(entry.size)
        return target
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=parent)
    with removed_on_error(tmp):
        if entry.size:
            try:  # one extent up front: less filesystem work, and ENOSPC before any byte is read
                os.posix_fallocate(fd, 0, entry.size)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
        with os.fdopen(fd, "wb") as f, gc_paused():
            try:
                for raw in iter_file(odb, entry, oids, pool, window, check_keys=False):
                    f.write(raw)
                    if progress:
                        progress(len(raw))
            except CorruptObjectError:
                for _ in iter_file(odb, entry, oids, pool, window):
                    pass  # raises naming the chunk whose key fails, if one does
                raise
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    return target


def _move_staged(ready: str | None, target: str) -> bool:
    """Move a staged file (see :func:`write_file`) to ``target``; False if there is none, or it
    is on another file system (then the file is written from the store)."""
    if ready is None:
        return False
    try:
        os.chmod(ready, 0o644)
        os.replace(ready, target)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        return False
    return True


def holds_entry(root: str, entry: FileEntry) -> bool:
    """Whether ``root`` already holds ``entry`` as a regular file with exactly its bytes.

    Size first, then the whole-file xxh3 of the manifest: such a file needs no
    rewrite, and replacing it would lose nothing.  A symbolic link is never the
    same (writing replaces the link itself).
    """
    try:
        st = os.lstat(safe_target(root, entry.path))
    except (FileNotFoundError, NotADirectoryError, UnsafePathError):
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size:
        return False
    xx = xxhash.xxh3_128()
    with open(safe_target(root, entry.path), "rb") as f:
        while block := f.read(1 << 20):
            xx.update(block)
    return xx.digest() == entry.xxh3


def files_under(root: str) -> list[str]:
    """Stored-path names (``/``-separated, relative) of every file under ``root``, sorted."""
    out: list[str] = []
    for dirpath, _, names in os.walk(root):
        for fn in names:
            out.append(os.path.relpath(os.path.join(dirpath, fn), root).replace(os.sep, "/"))
    return sorted(out)


class Downloaded(str):
    """What ``Store.download`` returns: the directory (a ``str``, as it always was) and what it did.

    Attributes:
        written: stored paths written (new files and replaced ones).
        replaced: of those, the ones whose file existed before with other bytes (``force=True``).
        unchanged: stored paths whose file already held exactly the model's bytes (not rewritten).
        others: files under the directory that are not the model's, left untouched.
    """

    written: tuple[str, ...]
    replaced: tuple[str, ...]
    unchanged: tuple[str, ...]
    others: tuple[str, ...]

    def __new__(cls, path: str, *, written: Sequence[str] = (), replaced: Sequence[str] = (),
                unchanged: Sequence[str] = (), others: Sequence[str] = ()) -> Downloaded:
        self = super().__new__(cls, path)
        self.written, self.replaced = tuple(written), tuple(replaced)
        self.unchanged, self.others = tuple(unchanged), tuple(others)
        return self

    def as_dict(self) -> dict[str, object]:
        return {"directory": str(self), "written": list(self.written), "replaced": list(self.replaced),
                "unchanged": list(self.unchanged), "others": list(self.others)}


class _ChunkStream(io.RawIOBase):
    """A read-only stream over verified chunks (each checked before it is handed out)."""

    def __init__(self, chunks: Iterator[bytes | memoryview]) -> None:
        self._chunks = chunks
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._buf = memoryview(nxt)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def drain(self) -> None:
        """Read to the end, so that the whole-file check runs (and raises if it fails)."""
        self._buf = memoryview(b"")
        for _ in self._chunks:
            pass


def open_file(
    odb: ObjectDB, entry: FileEntry, oids: list[bytes], pool: ThreadPoolExecutor, window: int
) -> tuple[BinaryIO, Callable[[], None]]:
    """A buffered stream of one stored file and a function that finishes verifying it.

    Decompression and verification run in the pool while the caller reads, so
    deserialising overlaps with them and memory stays bounded by the window.
    """
    raw = _ChunkStream(iter_file(odb, entry, oids, pool, window))
    return io.BufferedReader(raw, buffer_size=1 << 20), raw.drain  # type: ignore[return-value]
