"""Reading packs: opening a store's packs, locating objects in them, checking one entry.

Everything that reads pack entries by offset goes through here: the copy of a
path remote (``remote/localpath.py``), the pack a push sends (``remote/walk.py``),
pack roll-up (:mod:`.maintenance`), the bucket client (its packs are bucket
objects read by range: :class:`PackLayout`, :func:`find_first`), and chunk reads
(:mod:`.odb`).  The rules they share:

* a pack is sliced by the offsets of its ``.idx`` only when its trailer is the
  pack checksum the ``.idx`` records (:meth:`PackFile.open`): a truncated or
  replaced ``.pack`` is never read by offsets;
* a pack whose ``.pack`` cannot be read whole (a bucket object) is sliced only
  when its ``.idx`` names it (the pack checksum is in the name) and its offsets
  fit the size the bucket lists (:meth:`PackLayout.of`);
* an entry copied verbatim is first checked to be the object it is filed under
  (:func:`verify_entry`): a whole object whose content hashes to its oid, with
  intact zlib framing, no larger than casstore writes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import CorruptObjectError
from ..util.lazy import numpy as np  # imported on first use (util/lazy.py)
from .packidx import PackIdx
from .packwriter import MAX_OBJECT, TYPE_NAMES, Buffer, inflate_parts, parse_object_header


class DeltaEntry(CorruptObjectError):
    """A pack entry that is a delta (a pack git wrote), not a whole object: nothing is wrong with it,
    but it cannot be copied or read by itself."""


def inflate_entry(entry: Buffer, name: str, *, limit: int | None = MAX_OBJECT) -> tuple[int, list[Buffer]]:
    """(type, content pieces) of a whole-object pack entry; the content is not hashed.

    Raises:
        DeltaEntry: the entry is a delta.
        CorruptObjectError: naming ``name``: a truncated header, an object over
            ``limit`` bytes, a zlib stream that does not inflate to exactly its size.
    """
    try:
        type_num, size, hlen = parse_object_header(entry)
    except IndexError:
        raise CorruptObjectError(name, "truncated pack entry header") from None
    if type_num not in TYPE_NAMES:
        raise DeltaEntry(name, f"pack entry of type {type_num} is not a whole object")
    if limit is not None and size > limit:
        raise CorruptObjectError(name, f"object of {size} bytes is out of bounds")
    try:
        parts = inflate_parts(memoryview(entry)[hlen:], size)
    except zlib.error as e:
        raise CorruptObjectError(name, f"unreadable pack entry: {e}") from None
    if sum(len(p) for p in parts) != size:
        raise CorruptObjectError(name, "pack entry has the wrong size")
    return type_num, parts


def verify_entry(entry: Buffer, oid: bytes, *, limit: int | None = MAX_OBJECT) -> tuple[int, list[Buffer]]:
    """(type, content pieces) of pack entry ``entry``, checked to be the whole object ``oid`` (binary).

    Checked: the header, the size (at most ``limit``), the zlib stream inflates
    to exactly that size with its Adler-32 intact, and the content hashes to
    ``oid`` -- so a damaged or forged ``.idx`` can never file bytes under the
    wrong id.

    Raises:
        DeltaEntry: the entry is a delta.
        CorruptObjectError: naming the object.
    """
    name = oid.hex()
    type_num, parts = inflate_entry(entry, name, limit=limit)
    h = hashlib.sha1(b"%s %d\x00" % (TYPE_NAMES[type_num], sum(len(p) for p in parts)))
    adler = 1
    for part in parts:
        h.update(part)
        adler = zlib.adler32(part, adler)
    if h.digest() != oid:
        raise CorruptObjectError(name, "content does not match its SHA-1")
    # zlib checked the Adler-32 itself unless the stream was sliced as stored blocks
    if all(isinstance(p, memoryview) for p in parts) and bytes(entry[-4:]) != adler.to_bytes(4, "big"):
        raise CorruptObjectError(name, "pack entry fails its Adler-32")
    return type_num, parts


def check_bounds(starts: np.ndarray | list[int], ends: np.ndarray | list[int], size: int) -> bool:
    """Whether entries (start, end) lie in a pack of ``size`` bytes: after the header, before the
    trailer, none empty (so no two at one offset)."""
    if len(starts) == 0:
        return True
    if isinstance(starts, list) and isinstance(ends, list):  # PackIdx.bounds: no numpy
        return min(starts) >= 12 and max(ends) <= size - 20 and all(e > s for s, e in zip(starts, ends, strict=True))
    return bool(np.min(starts) >= 12 and np.max(ends) <= size - 20 and np.all(np.greater(ends, starts)))


@dataclass
class PackLayout:
    """Where the entries of one pack are, as its verified ``.idx`` says, in ``.idx`` order and in pack order.

    For a pack whose bytes are read by ranges (a bucket object), where
    :class:`PackFile` cannot check the trailer first.
    """

    name: str  # pack-<hex of the pack checksum>
    size: int
    idx: PackIdx
    starts: np.ndarray  # entry offsets, in .idx order
    ends: np.ndarray
    order: np.ndarray  # the .idx position of each entry, in pack order
    sorted_starts: np.ndarray  # entry offsets, in pack order
    sorted_ends: np.ndarray

    @classmethod
    def of(cls, name: str, idx: PackIdx, size: int, where: str) -> PackLayout:
        """The layout of pack ``name``, ``size`` bytes long, that ``idx`` describes.

        Raises:
            CorruptObjectError: naming ``where``: the index is another pack's (its
                pack checksum is not the one in ``name``), or its offsets do not fit
                the pack (:func:`check_bounds`).
        """
        if idx.pack_checksum.hex() != name[len("pack-"):]:
            raise CorruptObjectError(where, "pack index belongs to another pack")
        starts, ends = idx.entry_bounds(size)
        if not check_bounds(starts, ends, size):
            raise CorruptObjectError(where, "pack index offsets do not fit the pack")
        order = starts.argsort(kind="stable")
        return cls(name, size, idx, starts, ends, order, starts[order], ends[order])

    def entry(self, pos: int) -> tuple[int, int]:
        """(start, end) in the pack of the entry at ``.idx`` position ``pos``."""
        return int(self.starts[pos]), int(self.ends[pos])


def find_first(idxs: Sequence[PackIdx], oids: Sequence[bytes]) -> list[tuple[int, int] | None]:
    """(number in ``idxs``, ``.idx`` position) of each binary oid in the first index that holds it; None if none does.

    Each index is asked only for the oids the ones before it lack.
    """
    where: list[tuple[int, int] | None] = [None] * len(oids)
    todo = list(range(len(oids)))
    for n, idx in enumerate(idxs):
        if not todo:
            break
        found = idx.find([oids[i] for i in todo])
        rest = []
        for i, pos in zip(todo, found.tolist(), strict=True):
            if pos >= 0:
                where[i] = (n, pos)
            else:
                rest.append(i)
        todo = rest
    return where


@dataclass
class PackFile:
    """One open pack of a store: its ``.pack`` (a file descriptor) and verified ``.idx``."""

    name: str  # pack-<hex>
    fd: int
    idx: PackIdx
    size: int

    @functools.cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.idx.entry_bounds(self.size)

    @property
    def starts(self) -> np.ndarray:
        """Entry offsets, in ``.idx`` order (numpy, computed when first asked for)."""
        return self._bounds[0]

    @property
    def ends(self) -> np.ndarray:
        return self._bounds[1]

    @classmethod
    def open(cls, pack_dir: str, name: str) -> PackFile:
        """Open pack ``name`` of ``pack_dir``, checking its trailer against its ``.idx``.

        Raises:
            CorruptObjectError: the ``.idx`` is damaged, or the ``.pack`` is not the
                one it describes (truncated, replaced).
            FileNotFoundError: either file is gone.
        """
        base = os.path.join(pack_dir, name)
        idx = PackIdx(base + ".idx")
        try:
            fd = os.open(base + ".pack", os.O_RDONLY)
        except BaseException:
            idx.close()
            raise
        try:
            size = os.fstat(fd).st_size
            if size < 32 or os.pread(fd, 20, size - 20) != idx.pack_checksum:
                raise CorruptObjectError(base + ".pack", "pack does not match its index (truncated or damaged)")
        except BaseException:
            os.close(fd)
            idx.close()
            raise
        return cls(name, fd, idx, size)

    def close(self) -> None:
        os.close(self.fd)
        self.idx.close()


#: where an object's entry is: (pack number in the reader, offset, length)
Location = tuple[int, int, int]


class PackReader:
    """The packs of a store (all, or those ``names``), opened once, for reading entries by oid.

    Packs whose ``.idx`` is damaged or whose ``.pack`` does not match it are
    left out (their objects are not located here: read them by oid through
    the object database, which reports what is wrong); so are packs removed
    meanwhile.
    """

    def __init__(self, pack_dir: str, names: Iterable[str] | None = None) -> None:
        self.pack_dir = pack_dir
        if names is None:
            names = [fn[:-4] for fn in os.listdir(pack_dir) if fn.endswith(".idx") and not fn.startswith("tmp")]
        self.packs: list[PackFile] = []
        for name in sorted(names):
            try:
                self.packs.append(PackFile.open(pack_dir, name))
            except (CorruptObjectError, FileNotFoundError):
                continue

    def close(self) -> None:
        for p in self.packs:
            p.close()
        self.packs = []

    def locate(self, oids: list[bytes]) -> list[Location | None]:
        """Where each binary oid's entry is (the first pack that holds it), None if in none."""
        where: list[Location | None] = []
        for found in find_first([p.idx for p in self.packs], oids):
            if found is None:
                where.append(None)
            else:
                p = self.packs[found[0]]
                where.append((found[0], int(p.starts[found[1]]), int(p.ends[found[1]] - p.starts[found[1]])))
        return where

    def read(self, loc: Location) -> bytes:
        """The bytes of the entry at ``loc``."""
        pi, offset, length = loc
        return os.pread(self.packs[pi].fd, length, offset)
