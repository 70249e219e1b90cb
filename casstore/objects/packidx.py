"""Read-only view of a git pack ``.idx`` (version 2) for vectorised lookups.

gc marks reachable objects in one bit-array per pack, so it needs "which position
of which pack holds this oid" for millions of oids without Python objects per
object: the sorted SHA table is searched with numpy on its first 8 bytes.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import mmap
import os
import struct
from collections.abc import Sequence

from ..errors import CorruptObjectError
from ..util.lazy import numpy as np  # imported on first use (util/lazy.py)

_HEADER = b"\377tOc\x00\x00\x00\x02"
_MIN_SIZE = 8 + 1024 + 40
_FANOUT = struct.Struct(">256I")


def check_idx(path: str, data: bytes | mmap.mmap | memoryview) -> int:
    """Verify a whole ``.idx`` v2: header, fan-out, size and SHA-1 trailer; returns its count.

    A damaged index silently misplaces objects (a flipped oid makes one object
    vanish and another appear; a flipped offset files the wrong bytes under an id),
    so everything that copies or drops pack entries on its word checks it first.

    Raises:
        CorruptObjectError: naming the file, with what is wrong.
    """
    size = len(data)
    if size < _MIN_SIZE or data[:8] != _HEADER:
        raise CorruptObjectError(path, "not a version 2 pack index (damaged or truncated)")
    if hashlib.sha1(memoryview(data)[:-20]).digest() != data[-20:]:
        raise CorruptObjectError(path, "pack index checksum mismatch: the .idx file is damaged")
    fanout = _FANOUT.unpack_from(data, 8)  # struct, not numpy: a commit checks the .idx it wrote
    count = int(fanout[-1])
    if list(fanout) != sorted(fanout) or not (
            _MIN_SIZE + 28 * count <= size <= _MIN_SIZE + 36 * count):
        raise CorruptObjectError(path, "pack index has an inconsistent fan-out table or size")
    return count


def pack_order(starts: Sequence[int]) -> list[int]:
    """The ``.idx`` positions of a pack's entries, in pack order (by offset)."""
    return sorted(range(len(starts)), key=starts.__getitem__)


class PackIdx:
    """A verified, memory-mapped ``.idx``.

    Raises:
        CorruptObjectError: the file is damaged (see :func:`check_idx`).
        FileNotFoundError: it is gone.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        mm = self._mm
        try:
            self.count = check_idx(path, mm if mm is not None else b"")
        except CorruptObjectError:
            self.close()
            raise
        assert mm is not None
        self._sha_off = 8 + 1024
        #: the checksum of the pack this index describes (its last 20 bytes)
        self.pack_checksum = bytes(mm[-40:-20])

    @functools.cached_property
    def prefixes(self) -> np.ndarray:
        """A contiguous copy of the first 8 bytes of each SHA (8 bytes per object), for ``find``."""
        return np.ndarray((self.count,), dtype=">u8", buffer=self._mm, offset=self._sha_off, strides=(20,)).copy()

    def offsets(self) -> np.ndarray:
        """Pack offset of every entry, in index (SHA) order."""
        assert self._mm is not None
        n = self.count
        small = np.frombuffer(self._mm, dtype=">u4", count=n, offset=self._sha_off + 24 * n).astype(np.int64)
        big = small & 0x80000000 != 0
        if big.any():
            large = np.frombuffer(self._mm, dtype=">u8", count=int(big.sum()), offset=self._sha_off + 28 * n)
            small[big] = large[(small[big] & 0x7FFFFFFF)].astype(np.int64)
        return small

    def crcs(self) -> np.ndarray:
        """CRC-32 of every entry's bytes in the pack, in index (SHA) order."""
        assert self._mm is not None
        return np.frombuffer(self._mm, dtype=">u4", count=self.count, offset=self._sha_off + 20 * self.count
                             ).astype(np.int64)

    def entry_bounds(self, pack_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) in the pack of every entry, in index (SHA) order.

        An entry ends where the next one (by offset) starts; the last one at the
        pack's 20-byte trailer.
        """
        starts = self.offsets()
        order = starts.argsort(kind="stable")
        ends = np.empty_like(starts)
        ends[order] = np.append(starts[order][1:], pack_size - 20)
        return starts, ends

    def bounds(self, pack_size: int) -> tuple[list[int], list[int]]:
        """:meth:`entry_bounds` as lists, without numpy: for copying a pack's entries one by one."""
        assert self._mm is not None
        n = self.count
        starts = list(struct.unpack_from(f">{n}I", self._mm, self._sha_off + 24 * n))
        large = self._sha_off + 28 * n
        for i, s in enumerate(starts):
            if s & 0x80000000:
                starts[i] = struct.unpack_from(">Q", self._mm, large + 8 * (s & 0x7FFFFFFF))[0]
        order = pack_order(starts)
        ends = [0] * n
        for a, b in itertools.pairwise(order):
            ends[a] = starts[b]
        if n:
            ends[order[-1]] = pack_size - 20
        return starts, ends

    def sha(self, i: int) -> bytes:
        assert self._mm is not None
        o = self._sha_off + 20 * i
        return self._mm[o : o + 20]

    def find(self, oids: Sequence[bytes]) -> np.ndarray:
        """Positions of the binary oids in this index, -1 where absent."""
        out = np.full(len(oids), -1, dtype=np.int64)
        if not oids or self.count == 0:
            return out
        q = np.frombuffer(b"".join(o[:8] for o in oids), dtype=">u8")
        pos = np.searchsorted(self.prefixes, q, side="left")
        clipped = np.minimum(pos, self.count - 1)
        for qi in np.nonzero(self.prefixes[clipped] == q)[0].tolist():
            i = int(pos[qi])
            while i < self.count and self.prefixes[i] == q[qi]:
                if self.sha(i) == oids[qi]:
                    out[qi] = i
                    break
                i += 1
        return out

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None
