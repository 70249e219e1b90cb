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

import errno
import hashlib
import os
import struct
import sys
import tempfile
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from dulwich.pack import write_pack_index_v2

from ..util.fsutil import TMP_PREFIX, fsync_dir, fsync_fd
from .chunkindex import IndexEntry, write_cidx

BLOB = 3
#: The largest object casstore writes, and accepts from a remote (larger ones are
#: refused unread: a hostile pack cannot make a reader buffer or hash more).  Chunks
#: are at most 16 MiB; the largest objects are manifests (~35 bytes per chunk: 256 MiB
#: is ~350 GiB of files in one model at the default chunk size) and, far smaller, the
#: per-file chunk trees.  A commit whose manifest would be larger is refused
#: (ModelTooLargeError) rather than stored where no push could move it.
MAX_OBJECT = 256 << 20
_IOV_MAX = 1024


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


_EMPTY_ZLIB = b"\x78\x01\x01\x00\x00\xff\xff\x00\x00\x00\x01"
Buffer = bytes | memoryview


def deflate_stored_parts(*pieces: Buffer) -> list[Buffer]:
    """A zlib stream of the concatenated ``pieces`` in stored deflate blocks, as a list of parts.

    What ``zlib.compress(data, 0)`` makes, without copying the data: the parts
    are block headers and views of ``pieces``, ready for ``writev``.  Chunk blobs
    are zstd already, so the only work is framing and the Adler-32.
    """
    total = sum(len(p) for p in pieces)
    if total == 0:
        return [_EMPTY_ZLIB]
    parts: list[Buffer] = []
    head = b"\x78\x01"  # framing bytes not yet in ``parts``: joined with the next block header
    adler = 1
    done = 0
    for piece in pieces:
        view = memoryview(piece)
        adler = zlib.adler32(view, adler)
        pos, n = 0, len(view)
        while pos < n:
            size = min(0xFFFF, n - pos)
            done += size
            parts.append(head + _STORED.pack(1 if done == total else 0, size, size ^ 0xFFFF))
            parts.append(view[pos : pos + size])
            head = b""
            pos += size
    parts.append(_ADLER.pack(adler))
    return parts


def deflate_stored(data: Buffer) -> bytes:
    """:func:`deflate_stored_parts` of one buffer, joined."""
    return b"".join(deflate_stored_parts(data))


def inflate_parts(zdata: Buffer, size: int) -> list[Buffer]:
    """Inflate a pack entry's zlib stream of ``size`` bytes into pieces.

    A stream of stored blocks (what casstore writes) is sliced, not copied: the
    pieces are views of ``zdata``.  Any other stream (a pack git wrote) goes
    through zlib.  The content is verified by the caller (chunk BLAKE3 keys), so
    the stored-block path skips the Adler-32.

    Raises:
        zlib.error: a malformed stream.
    """
    view = memoryview(zdata)
    n = len(view)
    if n >= 7 and view[0] == 0x78 and (view[2] & 0x06) == 0:
        parts: list[Buffer] = []
        pos = 2
        total = 0
        while True:
            if pos + 5 > n or (view[pos] & 0x06) != 0:
                break  # not (only) stored blocks: let zlib handle it
            final, length, nlength = _STORED.unpack_from(view, pos)
            if length ^ 0xFFFF != nlength or pos + 5 + length > n:
                raise zlib.error("bad stored block")
            if length:
                parts.append(view[pos + 5 : pos + 5 + length])
            total += length
            pos += 5 + length
            if final & 1:
                if total != size or pos + 4 != n:
                    raise zlib.error("stored stream has the wrong length")
                return parts
    # bounded: a stream that inflates past ``size`` is wrong, and a hostile one could be a
    # zip bomb; exact: bytes after the stream's end would be carried along unchecked
    d = zlib.decompressobj()
    out = d.decompress(view, size + 1)
    if len(out) != size or not d.eof or d.unused_data or d.unconsumed_tail:
        raise zlib.error("stream does not inflate to exactly its size and length")
    return [out]


def inflate(zdata: Buffer, size: int) -> bytes:
    """:func:`inflate_parts`, joined."""
    return b"".join(inflate_parts(zdata, size))


def parse_object_header(buf: Buffer) -> tuple[int, int, int]:
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
    parts: Sequence[Buffer]  # the entry's zlib stream, in pieces
    zlen: int  # total length of ``parts``
    crc: int
    size: int  # blob content length

    @property
    def length(self) -> int:
        return len(self.header) + self.zlen

    @classmethod
    def verbatim(cls, oid: bytes, header: bytes, zdata: bytes) -> EncodedEntry:
        """An entry copied as it is from another pack."""
        return cls(oid, header, (zdata,), len(zdata), zlib.crc32(zdata, zlib.crc32(header)), 0)


#: git object type numbers (as in pack entry headers) and names
TYPE_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}


def encode_entry(*content: Buffer, type_num: int = BLOB, level: int = 0) -> EncodedEntry:
    """Everything about an object that can be computed off the writer thread.

    ``content`` is the object's content in pieces (a chunk blob is its codec
    header and its payload), so that it is never copied.  Chunk blobs are zstd
    already and use zlib level 0; metadata objects packed from loose ones use a
    real zlib level.
    """
    if level == 0 and len(content) > 1:
        # One copy of the pieces (``codec.encode_pieces`` gives a chunk blob's header, lanes
        # and tail: ~6) is cheaper than the Python calls it saves: then the SHA-1, the
        # Adler-32, the CRC-32 and the pack's SHA-1 each run over one buffer (one stored
        # block for most chunks) instead of a dozen small ones.  The zlib stream differs
        # only in where its stored blocks end; the object, and so its id, is the same.
        # (A commit hands over one buffer a chunk already: ``codec.encode_span``.)
        content = (b"".join(content),)
    size = sum(len(c) for c in content)
    oid = hashlib.sha1(b"%s %d\x00" % (TYPE_NAMES[type_num], size))
    for c in content:
        oid.update(c)
    header = object_header(type_num, size)
    parts = deflate_stored_parts(*content) if level == 0 else [zlib.compress(b"".join(content), level)]
    crc = zlib.crc32(header)
    zlen = 0
    for p in parts:
        crc = zlib.crc32(p, crc)
        zlen += len(p)
    return EncodedEntry(oid.digest(), header, parts, zlen, crc, size)


def publish_pack(pack_dir: str, cidx_dir: str, tmp_pack: str, checksum: bytes,  # noqa: PLR0913 - the pieces a finished pack is published from
                 entries: Sequence[tuple[bytes, int, int]], index: Sequence[IndexEntry], *,
                 durable: bool = True) -> str:
    """Publish a complete pack file ``tmp_pack`` (fsynced by the caller when ``durable``).

    Writes the ``.cidx`` of ``index`` into ``cidx_dir``, renames the pack to
    ``pack-<checksum>.pack`` and writes its ``.idx`` from ``entries`` (binary oid,
    offset, CRC-32), renamed into place last: the pack is visible only from then
    on.  If this is interrupted, what it had published is removed again; a crash
    leaves at most a ``tmp_`` file or a ``.pack`` without ``.idx`` (invisible;
    gc removes both, and copying the pack again replaces it).  On an error
    ``tmp_pack`` is removed.  A pack of the same name already published (the same
    bytes) is kept as it is, never replaced.  Returns the pack's basename.
    """
    name = "pack-" + checksum.hex()
    base = os.path.join(pack_dir, name)
    cidx = os.path.join(cidx_dir, name + ".cidx")
    if os.path.exists(base + ".idx") and os.path.exists(base + ".pack"):
        # the same bytes are published already (the name is their SHA-1: a copy of one
        # pack, a pull of a pack we hold): replacing them would, on a failure before the
        # new .idx, remove the live pack's file and every object in it with it
        os.unlink(tmp_pack)
        if not os.path.exists(cidx):
            write_cidx(cidx, checksum, index)
        return name
    published: list[str] = [tmp_pack]  # removed again if we are stopped before the .idx is in place
    try:
        write_cidx(cidx, checksum, index)
        published.append(cidx)
        os.replace(tmp_pack, base + ".pack")
        published.append(base + ".pack")
        fd, tmp_idx = tempfile.mkstemp(prefix=TMP_PREFIX + "idx_", dir=pack_dir)
        published.append(tmp_idx)
        with os.fdopen(fd, "wb") as f:
            write_pack_index_v2(f, sorted(entries), checksum)
            f.flush()
            if durable:
                fsync_fd(f.fileno())
        os.chmod(tmp_idx, 0o444)
        os.chmod(base + ".pack", 0o444)
        os.replace(tmp_idx, base + ".idx")  # the pack is visible from here on
    except BaseException:
        for path in published:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        raise
    if durable:
        fsync_dir(pack_dir)
    return name


def copy_range(src_fd: int, dst_fd: int, size: int) -> int:
    """Copy the first ``size`` bytes of ``src_fd`` to the start of ``dst_fd`` in the kernel.

    ``copy_file_range`` (a reflink or server-side copy where the file system can),
    else ``sendfile``: the bytes never pass through user space.  Returns the
    number of bytes copied, less than ``size`` only if the source is shorter.
    """
    done = 0
    # copy_file_range, then sendfile (Linux: any file), then pread/write (elsewhere)
    how = "range" if hasattr(os, "copy_file_range") else "send" if sys.platform == "linux" else "read"
    while done < size:
        want = min(size - done, 1 << 30)
        if how == "range":
            try:
                n = os.copy_file_range(src_fd, dst_fd, want, done, done)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                how = "send" if sys.platform == "linux" else "read"  # another file system, an old kernel
                continue
        elif how == "send":
            os.lseek(dst_fd, done, os.SEEK_SET)
            n = os.sendfile(dst_fd, src_fd, done, want)
        else:
            block = os.pread(src_fd, min(want, 4 << 20), done)
            n = os.pwrite(dst_fd, block, done) if block else 0
        if n == 0:
            break
        done += n
    return done


class PackWriter:
    """Stream a fixed number of blob entries into a new pack.

    The object count goes in the pack header, so it must be known up front;
    the caller deduplicates first (see ``ingest``).  Use it as a context manager:
    leaving the block without :meth:`finish` (an error, a signal) removes the
    partial pack::

        with PackWriter(pack_dir, cidx_dir, len(entries)) as writer:
            for e in entries:
                writer.add(e)
            name = writer.finish()
    """

    #: writes are gathered into one ``writev`` of at most this many bytes / buffers
    _GATHER_BYTES = 4 << 20
    _GATHER_COUNT = 512
    #: start writing dirty pages back in the background every this many bytes,
    #: so that the fsync in :meth:`finish` has little left to wait for
    _WRITEBACK_BYTES = 64 << 20

    def __init__(self, pack_dir: str, cidx_dir: str, count: int, *, durable: bool = True) -> None:
        self.durable = durable  # False for a pack that is only a file to upload
        self.pack_dir = pack_dir
        self.cidx_dir = cidx_dir
        self.count = count
        self._fd, self._tmp = tempfile.mkstemp(prefix=TMP_PREFIX + "pack_", dir=pack_dir)
        self._sha = hashlib.sha1()
        self._offset = 0
        self._pending: list[Buffer] = []
        self._pending_bytes = 0
        self._synced_at = 0
        self._syncer: threading.Thread | None = None
        self._sync_error: OSError | None = None
        self._entries: list[tuple[bytes, int, int]] = []
        self._index: list[IndexEntry] = []
        #: binary oid -> (offset, entry length) of everything written
        self.locations: dict[bytes, tuple[int, int]] = {}
        self._write(b"PACK" + struct.pack(">II", 2, count))

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()  # after finish() there is nothing left to remove

    def _write(self, b: Buffer) -> None:
        self._sha.update(b)
        self._offset += len(b)
        self._pending.append(b)
        self._pending_bytes += len(b)

    def _flush(self) -> None:
        bufs = self._pending
        self._pending, self._pending_bytes = [], 0
        i = 0
        while i < len(bufs):
            n = os.writev(self._fd, bufs[i : i + _IOV_MAX])
            if n == 0:
                raise OSError(errno.EIO, "writev wrote nothing", self._tmp)
            while i < len(bufs) and len(bufs[i]) <= n:
                n -= len(bufs[i])
                i += 1
            if n:
                bufs[i] = memoryview(bufs[i])[n:]
        if self.durable and self._offset - self._synced_at >= self._WRITEBACK_BYTES and (
                self._syncer is None or not self._syncer.is_alive()):
            self._check_sync()
            self._synced_at = self._offset
            self._syncer = threading.Thread(target=self._background_sync, name="cas-writeback", daemon=True)
            self._syncer.start()

    def _background_sync(self) -> None:
        try:
            os.fdatasync(self._fd)
        except OSError as e:
            self._sync_error = e

    def _check_sync(self) -> None:
        if self._syncer is not None:
            self._syncer.join()
            self._syncer = None
        if self._sync_error is not None:
            raise self._sync_error

    def add(self, e: EncodedEntry, key: bytes | None = None, raw_size: int = 0) -> int:
        """Append one entry (a chunk blob when ``key`` is given); returns its offset."""
        if len(self._entries) >= self.count:
            raise ValueError("more entries than the pack header announced")
        offset = self._offset
        self._write(e.header)
        for part in e.parts:
            self._write(part)
        if self._pending_bytes >= self._GATHER_BYTES or len(self._pending) >= self._GATHER_COUNT:
            self._flush()
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
        self._pending.append(checksum)
        self._flush()
        self._check_sync()
        if self.durable:
            fsync_fd(self._fd)
        fd, self._fd = self._fd, -1  # a signal between close and reset must not close it twice
        os.close(fd)
        tmp, self._tmp = self._tmp, ""
        return publish_pack(self.pack_dir, self.cidx_dir, tmp, checksum, self._entries, self._index,
                            durable=self.durable)

    def abort(self) -> None:
        """Remove the partial pack.  Safe to call at any point, and more than once (a no-op after
        :meth:`finish`)."""
        try:
            if self._syncer is not None:
                self._syncer.join()
                self._syncer = None
            if self._fd >= 0:
                fd, self._fd = self._fd, -1
                os.close(fd)
        finally:
            if self._tmp:
                tmp, self._tmp = self._tmp, ""
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
