"""One stored file as a seekable, read-only file object that reads only what is asked for.

``load`` and ``download`` stream whole files; a reader that wants one tensor of a
multi-GiB safetensors file, or the header of an archive, needs random access
instead.  :class:`StoredFile` maps each read onto the chunks it overlaps and
reads, decompresses and verifies only those.
"""

from __future__ import annotations

import bisect
import io
import itertools
from typing import Any

from ..errors import CorruptObjectError
from ..objects.odb import ObjectDB
from .manifest import FileEntry
from .readback import WholeFile


class StoredFile(io.RawIOBase):
    """A read-only, seekable binary file over one stored file's chunks.

    Guarantees:

    - Every byte returned comes from a chunk that was checked against its
      BLAKE3 key and its size before any of it was handed out; a damaged or
      missing chunk raises :class:`CorruptObjectError` naming its blob, and
      the bytes of that read are not returned.
    - A read touches only the chunks that overlap it (plus none: the last
      chunk read is kept, so small sequential reads do not read it again).
      ``chunks_read`` counts the chunks read and verified so far, ``bytes_read``
      their raw bytes.
    - Read sequentially from offset 0 to the end (seeking back and re-reading
      is fine, skipping ahead is not), the whole file is also checked against
      its manifest's size, xxh3 and BLAKE3 digests when the end is reached; a mismatch
      raises :class:`CorruptObjectError` naming the file.  After a skip, only
      the per-chunk checks apply.

    Not thread-safe: give each thread its own file object.  Reads see the
    model as it was when the file was opened (models are immutable; a model
    deleted meanwhile stays readable until gc removes its chunks, after the
    grace period).
    """

    def __init__(self, odb: ObjectDB, entry: FileEntry, oids: list[bytes], name: str = "") -> None:
        super().__init__()
        self._odb = odb
        self._entry = entry
        self._oids = oids
        self._locs = odb.index.lookup(entry.keys)
        #: start offset of every chunk, and the file size at the end
        self._starts = [0, *itertools.accumulate(entry.sizes)]
        if self._starts[-1] != entry.size:
            raise CorruptObjectError(entry.path, f"chunk sizes add up to {self._starts[-1]}, "
                                                 f"the manifest says {entry.size}")
        self._pos = 0
        self._cached: tuple[int, bytes | memoryview] | None = None
        self._whole = WholeFile(entry)
        self._hashed = 0  # bytes hashed in order from 0; -1 once a read skipped ahead
        self.name = name or entry.path
        #: chunks read, decompressed and verified so far (a measure of the I/O a read cost)
        self.chunks_read = 0
        #: raw (decompressed) bytes of those chunks: what a read cost, against what it returned
        self.bytes_read = 0

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        return self._entry.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._entry.size + offset
        else:
            raise ValueError(f"invalid whence {whence!r}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def _chunk(self, i: int) -> bytes | memoryview:
        if self._cached is not None and self._cached[0] == i:
            return self._cached[1]
        e = self._entry
        raw = self._odb.read_chunk(e.keys[i], self._oids[i], e.sizes[i], self._locs[i])
        if len(raw) != e.sizes[i]:
            raise CorruptObjectError(self._oids[i].hex(), f"{e.path}: chunk {i} has {len(raw)} bytes, "
                                                          f"the manifest says {e.sizes[i]}")
        self.chunks_read += 1
        self.bytes_read += len(raw)
        self._cached = (i, raw)
        return raw

    def readinto(self, buffer: Any) -> int:
        self._checkClosed()
        out = memoryview(buffer).cast("B")
        start = self._pos
        end = min(start + len(out), self._entry.size)
        done = 0
        while start + done < end:
            pos = start + done
            i = bisect.bisect_right(self._starts, pos) - 1
            raw = self._chunk(i)
            lo = pos - self._starts[i]
            n = min(len(raw) - lo, end - pos)
            out[done:done + n] = memoryview(raw)[lo:lo + n]
            done += n
        self._account(start, out[:done])
        self._pos = start + done
        return done

    def _account(self, start: int, data: memoryview) -> None:
        """Feed the in-order part of a read to the whole-file check; run it at the end."""
        if self._hashed < 0 or not data and start < self._entry.size:
            return
        if start > self._hashed:
            self._hashed = -1  # skipped ahead: the bytes in between were never seen
            return
        new = data[self._hashed - start:]
        if new:
            self._whole.update(new)
            self._hashed += len(new)
        if self._hashed == self._entry.size:
            self._hashed = -1  # checked once
            self._whole.check()

    def close(self) -> None:
        self._cached = None
        super().close()
