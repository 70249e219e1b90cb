"""The object database: a git object store with verified reads.

Metadata objects (trees, manifests, commits) are read through dulwich and
verified against their SHA-1 here, because dulwich does not verify what it
reads.  Chunk blobs are read directly from our packs via the chunk index
(``pread`` of one entry, no dulwich caches), or through dulwich by oid when the
chunk arrived in a pack we did not write; either way the decompressed bytes are
checked against the chunk's BLAKE3 key before anyone sees them.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from dulwich.object_store import DiskObjectStore
from dulwich.objects import Commit, ObjectID, ShaFile
from dulwich.pack import Pack

from ..errors import CorruptObjectError, MissingObjectError
from ..util.fsutil import makedirs_durable, write_new_file
from .chunker import chunk_key
from .chunkindex import ChunkIndex, ChunkLocation, VerifiedFiles, stat_key
from .codec import decode_run
from .packidx import check_idx
from .packs import DeltaEntry, inflate_entry
from .packwriter import BLOB, TYPE_NAMES, Buffer, EncodedEntry, PackWriter, encode_entry

#: turns a commit's bytes into the armored signature for its ``gpgsig`` header
Signer = Callable[[bytes], bytes]
#: this thread's signer for new commits, if one was chosen with ``ObjectDB.signing``
_SIGNER: ContextVar[tuple[Signer | None] | None] = ContextVar("casstore_signer", default=None)


#: new chunk bytes a commit holds back for its one pack (``ObjectDB.chunk_writer``); more
#: are streamed into a pack of their own, so memory stays bounded
DEFER_CHUNK_BYTES = 16 << 20
#: False: ``deferred`` holds nothing back, every object is a loose file (the layout of stores
#: written before commits packed their objects; tests of damaged loose objects use it)
DEFER = True


class _Pending:
    """What one thread wrote inside ``ObjectDB.deferred`` and has not published yet."""

    def __init__(self) -> None:
        self.objects: dict[ObjectID, tuple[int, bytes]] = {}  # hex oid -> (type, content)
        self.chunks: list[tuple[EncodedEntry, bytes, int]] = []  # (entry, key, raw size)


class PendingChunks:
    """A ``PackWriter`` look-alike that holds a small commit's new chunks for the commit's one pack."""

    def __init__(self, pending: _Pending) -> None:
        self._pending = pending
        self._added: list[tuple[EncodedEntry, bytes, int]] = []

    def __enter__(self) -> PendingChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        pass  # nothing is on disk; without finish() nothing was handed over

    def add(self, e: EncodedEntry, key: bytes | None = None, raw_size: int = 0) -> None:
        assert key is not None
        self._added.append((e, key, raw_size))

    def finish(self) -> str | None:
        """Hand the chunks to the pending pack; it is published by ``ObjectDB.flush``."""
        self._pending.chunks += self._added
        self._added = []
        return None


def object_id(type_num: int, raw: bytes) -> bytes:
    h = hashlib.sha1(b"%s %d\x00" % (TYPE_NAMES[type_num], len(raw)))
    h.update(raw)
    return h.digest()


class CheckedObjectStore(DiskObjectStore):
    """dulwich's object store, minus packs whose ``.idx`` is damaged.

    dulwich trusts an ``.idx`` blindly: a truncated one makes every lookup raise
    ``struct.error``, and a flipped byte misplaces objects.  Each pack's index is
    verified (:func:`packidx.check_idx`) the first time this process sees it,
    unless ``cas/idx-verified`` records that this very file version (inode, size,
    mtime, ctime) was verified whole before;
    a damaged one is left out of lookups and listed in :attr:`damaged` (pack
    basename -> what is wrong), so reads of its objects fail as missing,
    naming the damaged index, and fsck reports it.  Its chunks stay readable
    through the chunk index, which points into the ``.pack`` directly.
    """

    def __init__(self, path: str, verified: str | None = None) -> None:
        super().__init__(path)
        self.damaged: dict[str, str] = {}
        #: the ``.idx`` files some process verified whole, by file version (see VerifiedFiles):
        #: a process maps an index that is still that very file without reading all of it
        self.verified = VerifiedFiles(verified) if verified else None

    def _update_pack_cache(self) -> list[Pack]:
        fresh = []
        for pack in super()._update_pack_cache():
            base = os.path.basename(pack._basename)
            path = pack._basename + ".idx"
            try:
                with open(path, "rb") as f:
                    key = stat_key(os.fstat(f.fileno()))
                    stamp = self.verified.get(base) if self.verified else None
                    if stamp is None or stamp[0] != key:
                        check_idx(path, f.read())
                        if self.verified:
                            self.verified.put(base, key)
            except CorruptObjectError as e:
                if self.verified:
                    self.verified.drop(base)
                self.damaged[base] = e.detail
                self._evict_pack(pack)
                continue
            except FileNotFoundError:
                self._evict_pack(pack)
                continue
            self.damaged.pop(base, None)
            fresh.append(pack)
        if self.verified and self.verified.changed:
            try:
                live = {fn[:-4] for fn in os.listdir(self.pack_dir) if fn.endswith(".idx")}
            except OSError:
                live = set()
            self.verified.save(live)
        return fresh


def _close_all(store: DiskObjectStore, fds: dict[str, int]) -> None:
    for fd in fds.values():
        os.close(fd)
    fds.clear()
    try:
        store.close()
    except BufferError:
        # a view of a pack's memory map is still alive (the traceback of an error that read
        # a damaged pack holds one): the map is unmapped when that view goes.  Raising here
        # would break whatever code the garbage collector ran this finalizer in
        pass


class ObjectDB:
    """Objects of one store.  Thread safe for reads; one writer per pack."""

    def __init__(self, git_dir: str) -> None:
        self.git_dir = git_dir
        self.objects_dir = os.path.join(git_dir, "objects")
        self.pack_dir = os.path.join(self.objects_dir, "pack")
        self.cidx_dir = os.path.join(git_dir, "cas", "chunkidx")
        self.store = CheckedObjectStore(self.objects_dir, os.path.join(git_dir, "cas", "idx-verified"))
        self.index = ChunkIndex(self.cidx_dir, self.pack_dir)
        self.index.refresh()
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()
        self._local = threading.local()  # .pending: this thread's _Pending inside ``deferred``
        #: returns the signer for new commits (None: unsigned) when ``signing`` chose none:
        #: the store's ``cas.signCommits`` setting; asked at each commit, so a missing key
        #: fails the write that needs it, not the opening of the store
        self.default_signer: Callable[[], Signer | None] = lambda: None
        # Close packs at exit even if nobody calls close(): dulwich warns otherwise.
        self._finalizer = weakref.finalize(self, _close_all, self.store, self._fds)

    def close(self) -> None:
        with self._lock:
            self._finalizer()

    # -- metadata objects -------------------------------------------------

    def _pending(self) -> _Pending | None:
        p: _Pending | None = getattr(self._local, "pending", None)
        return p

    def contains(self, oid_hex: ObjectID) -> bool:
        p = self._pending()
        if p is not None and oid_hex in p.objects:
            return True
        try:
            return oid_hex in self.store
        except OSError:
            raise
        except Exception:  # a damaged pack that dulwich cannot parse
            return False

    def _missing(self, oid_hex: str, detail: str = "object is missing") -> MissingObjectError:
        if self.store.damaged:
            detail += " (perhaps it is in a pack whose index is damaged: " + ", ".join(
                sorted(f"{p}.idx" for p in self.store.damaged)) + "; run cas fsck)"
        return MissingObjectError(oid_hex, detail)

    def read_raw(self, oid_hex: ObjectID) -> tuple[int, bytes]:
        """Type number and content of an object, verified against its id.

        Raises:
            MissingObjectError: the object is not in the store.
            CorruptObjectError: its content does not hash to its id.
        """
        p = self._pending()
        held = p.objects.get(oid_hex) if p is not None else None
        if held is not None:
            return held  # made from the object by write_loose: its id is its content's
        try:
            try:
                type_num, raw = self.store.get_raw(oid_hex)
            except KeyError:
                # dulwich looks in the packs, then in the loose objects: another process's
                # pack_loose (maintenance.py) may have moved it from the latter to a new pack
                # between the two looks; a second look finds it in that pack
                type_num, raw = self.store.get_raw(oid_hex)
        except KeyError:
            raise self._missing(oid_hex.decode()) from None
        except OSError:
            raise
        except Exception as e:  # dulwich's zoo for damaged packs: zlib, struct, checksum, index errors
            raise CorruptObjectError(oid_hex.decode(), f"unreadable: {type(e).__name__}: {e}") from None
        if type_num not in TYPE_NAMES or object_id(type_num, raw).hex().encode() != oid_hex:
            raise CorruptObjectError(oid_hex.decode(), "content does not match its SHA-1")
        return type_num, raw

    def read(self, oid_hex: ObjectID, expect: type[ShaFile] | None = None) -> ShaFile:
        type_num, raw = self.read_raw(oid_hex)
        try:
            obj = ShaFile.from_raw_string(type_num, raw, sha=oid_hex)
        except Exception as e:  # dulwich raises a zoo of parse errors
            raise CorruptObjectError(oid_hex.decode(), f"does not parse: {e}") from None
        if expect is not None and not isinstance(obj, expect):
            raise CorruptObjectError(
                oid_hex.decode(), f"is a {obj.type_name.decode()}, expected {expect.type_name.decode()}"
            )
        return obj

    def write_loose(self, obj: ShaFile) -> ObjectID:
        """Store a (small) object as a durable loose object; returns its hex id.

        Inside :meth:`deferred`, the object is held for the block's one pack instead.
        """
        oid = obj.id
        if self.contains(oid):
            return oid
        p = self._pending()
        if p is not None:
            p.objects[oid] = (obj.type_num, obj.as_raw_string())
            return oid
        hexs = oid.decode()
        d = os.path.join(self.objects_dir, hexs[:2])
        makedirs_durable(d)
        raw = obj.as_raw_string()
        data = zlib.compress(b"%s %d\x00" % (obj.type_name, len(raw)) + raw, 1)
        write_new_file(os.path.join(d, hexs[2:]), lambda f: None if f.write(data) else None)
        return oid

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Write this thread's new objects in the block as one pack, not one file (and fsync) each.

        What :meth:`write_loose` and :meth:`chunk_writer` get in the block is held in
        memory (readable by this thread: ``contains``, ``read_raw``) and published as
        one pack by :meth:`flush`, which every ref change runs first (``Refs.before_write``,
        wired by the Repository): a ref never names an object that is not durable.  What
        is left at the end of the block is flushed too; on an exception it is dropped
        (no ref names it).  Other threads do not see the held objects, so a block that
        fails cannot take away an object another thread's ref relies on.  Nested blocks
        share the outer one's pack.
        """
        if not DEFER or self._pending() is not None:
            yield
            return
        self._local.pending = _Pending()
        try:
            yield
            self.flush()
        finally:
            self._local.pending = None

    def chunk_writer(self, count: int, nbytes: int) -> PackWriter | PendingChunks:
        """Where ingest writes ``count`` new chunks of ``nbytes``: the deferred pack if small, else a pack."""
        p = self._pending()
        if p is None or nbytes > DEFER_CHUNK_BYTES:
            return PackWriter(self.pack_dir, self.cidx_dir, count)
        return PendingChunks(p)

    def flush(self) -> str | None:
        """Publish what this thread holds back (see :meth:`deferred`) as one durable pack.

        Returns the pack's name, None when nothing was held.
        """
        p = self._pending()
        if p is None or not (p.objects or p.chunks):
            return None
        chunk_oids = {e.oid for e, _, _ in p.chunks}
        # metadata objects compress well; the chunk blobs are zstd already
        meta = [encode_entry(raw, type_num=t, level=1) for t, raw in p.objects.values()]
        meta = [e for e in meta if e.oid not in chunk_oids]
        with PackWriter(self.pack_dir, self.cidx_dir, len(p.chunks) + len(meta)) as writer:
            for e, key, size in p.chunks:
                writer.add(e, key, size)
            for e in meta:
                writer.add(e)
            name = writer.finish()
        self.rescan_packs()
        self.index.refresh()
        p.objects.clear()
        p.chunks.clear()
        return name

    def damaged_packs(self) -> dict[str, str]:
        """Packs left out of lookups because their ``.idx`` is damaged: name -> what is wrong."""
        self.rescan_packs()
        return dict(self.store.damaged)

    def rescan_packs(self) -> None:
        """Make packs that appeared on disk (published here or by another process) readable."""
        self.store._update_pack_cache()  # dulwich has no public name for its rescan

    def forget_pack(self, pack: str) -> None:
        """Drop cached handles of a pack that is about to be deleted."""
        with self._lock:
            fd = self._fds.pop(pack, None)
            if fd is not None:
                os.close(fd)
        cached = self.store._pack_cache.pop(pack, None)
        if cached is not None:
            cached.close()

    def write_commit(self, tree: ObjectID, parents: list[ObjectID], author: bytes, message: bytes,
                     when: int | None = None) -> ObjectID:
        """Write a commit (author = committer, UTC) as a loose object; returns its id."""
        c = Commit()
        c.tree = tree
        c.parents = parents
        c.author = c.committer = author
        c.author_time = c.commit_time = int(time.time()) if when is None else when
        c.author_timezone = c.commit_timezone = 0
        c.message = message
        chosen = _SIGNER.get()
        signer = chosen[0] if chosen is not None else self.default_signer()
        if signer is not None:
            # git's SSH signing: the signature covers the commit without its gpgsig header
            c.gpgsig = signer(c.as_raw_string())
        return self.write_loose(c)

    @contextmanager
    def signing(self, signer: Signer | None) -> Iterator[None]:
        """Sign (or, with None, do not sign) the commits this thread writes in the block."""
        token = _SIGNER.set((signer,))
        try:
            yield
        finally:
            _SIGNER.reset(token)

    # -- chunks -----------------------------------------------------------

    def _pack_fd(self, pack: str) -> int:
        with self._lock:
            fd = self._fds.get(pack)
            if fd is None:
                fd = os.open(os.path.join(self.pack_dir, pack + ".pack"), os.O_RDONLY)
                self._fds[pack] = fd
            return fd

    def _read_chunk_blob(self, oid: bytes, loc: ChunkLocation | None) -> bytes | list[Buffer]:
        oid_hex = oid.hex()
        if loc is not None and loc.oid == oid:
            try:
                fd = self._pack_fd(loc.pack)
                entry = os.pread(fd, loc.length, loc.offset)
            except FileNotFoundError:
                entry = b""  # pack gone since the index was loaded: use dulwich
            if entry:
                return self._chunk_parts(oid, entry)
        try:
            type_num, content = self.store.get_raw(ObjectID(oid_hex.encode()))
        except KeyError:
            raise self._missing(oid_hex, "chunk blob is missing") from None
        except OSError:
            raise
        except Exception as e:  # see read_raw
            raise CorruptObjectError(oid_hex, f"unreadable: {type(e).__name__}: {e}") from None
        if type_num != BLOB:
            raise CorruptObjectError(oid_hex, "chunk is not a blob")
        return content

    def _read_chunk_blobs(self, oids: Sequence[bytes], locs: Sequence[ChunkLocation | None]) -> list[
            bytes | list[Buffer]]:
        """:meth:`_read_chunk_blob` of each, entries that lie end to end in one pack read with one ``pread``.

        A commit writes a file's new chunks in order, so a run of them is one span of a pack:
        one system call and one buffer for the run instead of one of each per chunk.
        """
        out: list[bytes | list[Buffer]] = []
        i, n = 0, len(oids)
        while i < n:
            loc = locs[i]
            j = i + 1
            if loc is not None and loc.oid == oids[i]:
                end = loc.offset + loc.length
                while j < n and (nxt := locs[j]) is not None and nxt.pack == loc.pack and nxt.offset == end \
                        and nxt.oid == oids[j]:
                    end += nxt.length
                    j += 1
            if j - i < 2:
                out.append(self._read_chunk_blob(oids[i], loc))
                i += 1
                continue
            assert loc is not None
            try:
                span = memoryview(os.pread(self._pack_fd(loc.pack), end - loc.offset, loc.offset))
            except FileNotFoundError:
                span = memoryview(b"")  # pack gone since the index was loaded: one by one, through dulwich
            if len(span) != end - loc.offset:
                out.extend(self._read_chunk_blob(oids[k], locs[k]) for k in range(i, j))
            else:
                for k in range(i, j):
                    at = locs[k]
                    assert at is not None
                    rel = at.offset - loc.offset
                    out.append(self._chunk_parts(oids[k], span[rel:rel + at.length]))
            i = j
        return out

    @staticmethod
    def _chunk_parts(oid: bytes, entry: Buffer) -> list[Buffer]:
        """The content of a chunk blob's pack entry, in pieces (checked by the caller's decode and key)."""
        try:
            type_num, parts = inflate_entry(entry, oid.hex(), limit=None)
        except DeltaEntry:
            raise CorruptObjectError(oid.hex(), "pack entry is not the expected blob") from None
        if type_num != BLOB:
            raise CorruptObjectError(oid.hex(), "pack entry is not the expected blob")
        return parts

    def read_run(self, keys: Sequence[bytes], oids: Sequence[bytes], raw_sizes: Sequence[int],
                 locs: Sequence[ChunkLocation | None], *, check_keys: bool = True) -> memoryview:
        """The raw bytes of consecutive chunks, end to end in one buffer, decoded as a run
        (``codec.decode_run``) and each chunk verified against its BLAKE3 key.

        ``check_keys=False`` leaves out the BLAKE3 of each chunk: only for a caller that
        hands no byte out before a whole-file BLAKE3 over them all matched its manifest
        (which fixes every byte as surely), and that reads again with the keys checked
        to name the bad chunk when it did not (``readback.write_file``, the pull's checks).

        Raises:
            CorruptObjectError: naming the first chunk blob that is wrong; no byte of the
                run is returned.
        """
        try:
            blobs = self._read_chunk_blobs(oids, locs)
            run = decode_run(blobs, raw_sizes, [oid.hex() for oid in oids])
            pos = 0
            for n, key, oid in zip(raw_sizes, keys, oids, strict=True) if check_keys else ():
                if chunk_key(run[pos:pos + n]) != key:
                    raise CorruptObjectError(oid.hex(), "chunk content does not match its BLAKE3 key")
                pos += n
        except CorruptObjectError as e:
            # Stop deduplicating against the copy that failed, so that committing these
            # bytes again stores a good copy (see ChunkIndex.distrust).
            for key, oid, loc in zip(keys, oids, locs, strict=True):
                if loc is not None and oid.hex() == e.oid:
                    self.index.distrust(loc, key)
            raise
        return run

    def read_chunks(self, keys: Sequence[bytes], oids: Sequence[bytes], raw_sizes: Sequence[int],
                    locs: Sequence[ChunkLocation | None], *, check_keys: bool = True) -> list[memoryview]:
        """:meth:`read_run`, as one view a chunk.

        Raises:
            CorruptObjectError: naming the first chunk blob that is wrong.
        """
        run = self.read_run(keys, oids, raw_sizes, locs, check_keys=check_keys)
        out, pos = [], 0
        for n in raw_sizes:
            out.append(run[pos:pos + n])
            pos += n
        return out

    def read_chunk(self, key: bytes, oid: bytes, raw_size: int, loc: ChunkLocation | None) -> bytes | memoryview:
        """The raw bytes of a chunk, verified against its BLAKE3 key.

        Raises:
            CorruptObjectError: naming the chunk blob's oid.
        """
        return self.read_chunks([key], [oid], [raw_size], [loc])[0]
