"""Write git packfiles (version 2) of whole blobs, with their .idx and .cidx.

dulwich's pack writers recompress with zlib and re-read what they wrote; we
already hold zstd-compressed blob content, so entries are stored with zlib level
0 and everything is computed in one streaming pass: object ids and CRCs in the
worker threads (:func:`encode_entry`), the pack checksum in the writer.

Publication order makes a crash harmless: the pack data is written to a temporary
file and fsynced, the chunk-index sidecar is renamed into place, then the
``.pack``, and the ``.idx`` last -- git and dulwich only see a pack once its
``.idx`` exists.  Leftovers (``tmp_*``, a ``.pack`` without ``.idx``, a sidecar
without a pack) are invisible to readers and removed by gc.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass

from dulwich.pack import write_pack_index_v2

from .chunkindex import IndexEntry, write_cidx
from .fsutil import TMP_PREFIX, _fsync, fsync_dir

BLOB = 3


def object_header(type_num: int, size: int) -> bytes:
    """The variable-length type+size header of an undeltified pack entry."""
    out = bytearray()
    c = (type_num << 4) | (size & 15)
    size >>= 4
    while size:
        out.append(c | 0x80)
        c = size & 0x7F
        size >>= 7
    out.append(c)
    return bytes(out)


_STORED = struct.Struct("<BHH")
_ADLER = struct.Struct(">I")


def deflate_stored(data: bytes) -> bytes:
    """A zlib stream of ``data`` in stored (uncompressed) deflate blocks.

    What ``zlib.compress(data, 0)`` makes, four times faster: chunk blobs are
    zstd already, so the only work is framing and the Adler-32.
    """
    n = len(data)
    if n == 0:
        return b"\x78\x01\x01\x00\x00\xff\xff\x00\x00\x00\x01"
    view = memoryview(data)
    parts: list[bytes | memoryview] = [b"\x78\x01"]
    pos = 0
    while pos < n:
        size = min(0xFFFF, n - pos)
        parts.append(_STORED.pack(1 if pos + size >= n else 0, size, size ^ 0xFFFF))
        parts.append(view[pos : pos + size])
        pos += size
    parts.append(_ADLER.pack(zlib.adler32(data)))
    return b"".join(parts)


def inflate(zdata: bytes, size: int) -> bytes:
    """Inflate a pack entry's zlib stream of ``size`` bytes; stored blocks are sliced out.

    Any other stream (a pack git wrote) goes through zlib.  The content is
    verified by the caller (chunk BLAKE3 keys), so the stored-block path skips
    the Adler-32.

    Raises:
        zlib.error: a malformed stream.
    """
    if len(zdata) >= 7 and zdata[0] == 0x78 and (zdata[2] & 0x06) == 0:
        view = memoryview(zdata)
        parts = []
        pos = 2
        while True:
            if pos + 5 > len(zdata) or (zdata[pos] & 0x06) != 0:
                break  # not (only) stored blocks: let zlib handle it
            final, length, nlength = _STORED.unpack_from(zdata, pos)
            if length ^ 0xFFFF != nlength or pos + 5 + length > len(zdata):
                raise zlib.error("bad stored block")
            parts.append(view[pos + 5 : pos + 5 + length])
            pos += 5 + length
            if final & 1:
                out = b"".join(parts)
                if len(out) != size or pos + 4 != len(zdata):
                    raise zlib.error("stored stream has the wrong length")
                return out
    return zlib.decompress(zdata, bufsize=size + 64)


def parse_object_header(buf: bytes) -> tuple[int, int, int]:
    """(type, size, header length) of a pack entry header."""
    c = buf[0]
    type_num = (c >> 4) & 7
    size = c & 15
    shift = 4
    i = 1
    while c & 0x80:
        c = buf[i]
        i += 1
        size |= (c & 0x7F) << shift
        shift += 7
    return type_num, size, i


@dataclass(frozen=True)
class EncodedEntry:
    oid: bytes  # binary SHA-1 of the git object
    header: bytes
    zdata: bytes  # zlib stream (level 0) of the blob content
    crc: int
    size: int  # blob content length

    @property
    def length(self) -> int:
        return len(self.header) + len(self.zdata)


_TYPE_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}


def encode_entry(content: bytes, type_num: int = BLOB, level: int = 0) -> EncodedEntry:
    """Everything about an object that can be computed off the writer thread.

    Chunk blobs are zstd already and use zlib level 0; metadata objects packed
    from loose ones use a real zlib level.
    """
    oid = hashlib.sha1(b"%s %d\x00" % (_TYPE_NAMES[type_num], len(content)))
    oid.update(content)
    header = object_header(type_num, len(content))
    zdata = deflate_stored(content) if level == 0 else zlib.compress(content, level)
    crc = zlib.crc32(zdata, zlib.crc32(header))
    return EncodedEntry(oid.digest(), header, zdata, crc, len(content))


class PackWriter:
    """Stream a fixed number of blob entries into a new pack.

    The object count goes in the pack header, so it must be known up front;
    the caller deduplicates first (see ``ingest``).
    """

    def __init__(self, pack_dir: str, cidx_dir: str, count: int) -> None:
        self.pack_dir = pack_dir
        self.cidx_dir = cidx_dir
        self.count = count
        fd, self._tmp = tempfile.mkstemp(prefix=TMP_PREFIX + "pack_", dir=pack_dir)
        self._f = os.fdopen(fd, "wb", buffering=1 << 20)
        self._sha = hashlib.sha1()
        self._offset = 0
        self._entries: list[tuple[bytes, int, int]] = []
        self._index: list[IndexEntry] = []
        #: binary oid -> (offset, entry length) of everything written
        self.locations: dict[bytes, tuple[int, int]] = {}
        self._write(b"PACK" + struct.pack(">II", 2, count))

    def _write(self, b: bytes) -> None:
        self._f.write(b)
        self._sha.update(b)
        self._offset += len(b)

    def add(self, e: EncodedEntry, key: bytes | None = None, raw_size: int = 0) -> int:
        """Append one entry (a chunk blob when ``key`` is given); returns its offset."""
        if len(self._entries) >= self.count:
            raise ValueError("more entries than the pack header announced")
        offset = self._offset
        self._write(e.header)
        self._write(e.zdata)
        self._entries.append((e.oid, offset, e.crc))
        self.locations[e.oid] = (offset, e.length)
        if key is not None:
            self._index.append(IndexEntry(key, e.oid, offset, e.length, raw_size))
        return offset

    def finish(self) -> str:
        """Publish the pack; returns its basename (``pack-<hex>``)."""
        if len(self._entries) != self.count:
            raise ValueError(f"pack announced {self.count} entries, got {len(self._entries)}")
        checksum = self._sha.digest()
        self._f.write(checksum)
        self._f.flush()
        _fsync(self._f.fileno())
        self._f.close()
        name = "pack-" + checksum.hex()
        base = os.path.join(self.pack_dir, name)
        write_cidx(os.path.join(self.cidx_dir, name + ".cidx"), checksum, self._index)
        os.replace(self._tmp, base + ".pack")
        self._tmp = ""
        fd, tmp_idx = tempfile.mkstemp(prefix=TMP_PREFIX + "idx_", dir=self.pack_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                write_pack_index_v2(f, sorted(self._entries), checksum)
                f.flush()
                _fsync(f.fileno())
            os.chmod(tmp_idx, 0o444)
            os.chmod(base + ".pack", 0o444)
            os.replace(tmp_idx, base + ".idx")
        except BaseException:
            os.unlink(tmp_idx)
            raise
        fsync_dir(self.pack_dir)
        return name

    def abort(self) -> None:
        if not self._f.closed:
            try:
                self._f.close()
            except OSError:
                pass  # e.g. the disk is full and the buffer cannot be flushed
        if self._tmp:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            self._tmp = ""
