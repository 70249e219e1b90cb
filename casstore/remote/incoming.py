"""Receiving objects from a remote: quarantine, normalise, verify, publish.

Over 500 lines because the quarantine and the pack indexer that fills it are one
trust boundary: every check a received object passes is in this one file.

A pulled pack may be hostile.  It is written to ``cas/tmp/incoming-*`` (a
quarantine whose object store borrows the main one through git's alternates),
rewritten there as a casstore pack (whole objects; every object id recomputed
from its content, so objects hash to their ids), and verified: every new model
commit, tree and manifest parses strictly and agrees with its ref name, every
chunk it needs is present, and every *new* chunk decompresses (bounded) to bytes
whose BLAKE3 is the manifest's key -- only then is it entered into the chunk
index, which therefore only ever holds pairs this store verified itself.  Every
file of a new model is read in full (the chunks the store already had too: not
hashed one by one, since the whole-file BLAKE3 fixes their bytes) and must have the
size, xxh3 and BLAKE3 digest its manifest records.  A model ref whose commit
the store already holds is still checked to name the model of its ref.
History and state commits parse, and their indexes name valid models.

Only after all of that is the pack moved into the store (sidecar, pack, .idx
last), and only then do refs move.  Any failure deletes the quarantine: the
store is exactly as it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from dulwich.object_format import SHA1
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.pack import PackData, PackInflater, write_pack_index_v2

from ..errors import CorruptObjectError, MissingObjectError
from ..model.history import check_index
from ..model.manifest import FileEntry, Manifest
from ..model.manifest import decode as decode_manifest
from ..model.readback import WholeFile, chunk_oids
from ..model.states import states_at
from ..objects.chunkindex import ChunkLocation, IndexEntry, write_cidx
from ..objects.codec import HEADERS
from ..objects.odb import ObjectDB
from ..objects.packwriter import BLOB, MAX_OBJECT, TYPE_NAMES, PackWriter, encode_entry
from ..util.fsutil import fsync_dir, fsync_fd
from ..util.parallel import batched_sizes, default_workers, ordered

if TYPE_CHECKING:
    from hashlib import _Hash
    from zlib import _Decompress

    from ..objects.repository import Repository
    from .staging import Staging, Tee


class Quarantine:
    """A temporary object store for received objects, deleted unless published."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.dir = tempfile.mkdtemp(prefix="incoming-", dir=repo.tmp)
        for d in ("objects/pack", "objects/info", "cas/chunkidx"):
            os.makedirs(os.path.join(self.dir, d))
        with open(os.path.join(self.dir, "objects", "info", "alternates"), "w") as f:
            f.write(repo.odb.objects_dir + "\n")
        self.odb = ObjectDB(self.dir)
        self.pack: str | None = None
        #: binary oid -> (offset, entry length) of every object in the quarantine's pack
        self.locations: dict[bytes, tuple[int, int]] = {}
        self.new_chunks: dict[bytes, tuple[bytes, int]] = {}  # oid -> (key, raw size), verified
        #: further packs and their locations (whole packs copied from a local store)
        self.more: list[tuple[str, dict[bytes, tuple[int, int]]]] = []
        #: where a pull that also downloads writes the files it verifies (``cas pull --download``)
        self.staging: Staging | None = None

    def close(self) -> None:
        self.odb.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def import_pack(self, path: str, indexer: PackIndexer | None = None) -> int:
        """Take a received pack into the quarantine; returns the object count.

        A pack of whole objects whose chunk blobs are stored zlib blocks (what a
        casstore store served by git sends) is kept as it is: one streaming pass
        recomputes every object id, CRC and the checksum, and writes the ``.idx``
        (:func:`index_in_place`) -- or ``indexer`` made that pass while the pack was
        received.  Any other pack (deltas, a thin pack, chunk blobs that git
        compressed) is rewritten as a casstore pack.
        """
        try:
            indexed = index_in_place(path, self.odb.pack_dir, indexer)
        except (ValueError, AssertionError, zlib.error, struct.error) as e:
            raise CorruptObjectError("received pack", f"unreadable: {type(e).__name__}: {e}") from None
        if indexed is not None:
            self.pack, self.locations = indexed
            self.odb.rescan_packs()
            return len(self.locations)
        return self._rewrite_pack(path)

    def _rewrite_pack(self, path: str) -> int:
        """Rewrite a received (possibly thin) pack as a casstore pack; returns the object count."""
        main = self.repo.odb.store

        def resolve_ext_ref(sha: bytes) -> tuple[int, bytes]:
            type_num, raw = main.get_raw(sha)  # type: ignore[arg-type]
            return type_num, raw

        data = PackData(path, SHA1)
        try:
            if data.calculate_checksum() != data.get_stored_checksum():
                raise CorruptObjectError("received pack", "pack checksum mismatch")
            count = len(data)
            with PackWriter(self.odb.pack_dir, self.odb.cidx_dir, count) as writer:
                for obj in PackInflater.for_pack_data(data, resolve_ext_ref=resolve_ext_ref):  # type: ignore[arg-type]
                    raw = obj.as_raw_string()
                    is_chunk = obj.type_num == BLOB and raw[:4] in HEADERS
                    writer.add(encode_entry(raw, type_num=obj.type_num, level=0 if is_chunk else 1))
                self.pack = writer.finish()
            self.locations = writer.locations
        except (KeyError, ValueError, AssertionError, OSError, zlib.error) as e:
            if isinstance(e, CorruptObjectError):
                raise
            # a bad zlib stream, a truncated entry, a delta against nothing...
            raise CorruptObjectError("received pack", f"unreadable: {type(e).__name__}: {e}") from None
        finally:
            try:
                data.close()
            except BufferError:
                pass  # the traceback still holds views of the pack's mmap: it closes when collected
        self.odb.rescan_packs()
        return count

    def adopt(self, writer: PackWriter | None, pack: str | None, verified: dict[bytes, tuple[bytes, int]]) -> None:
        """Take a pack written into this quarantine by ``writer`` (a copy from a local store).

        ``verified`` maps chunk blob oids to the (BLAKE3 key, raw size) their content
        was checked against while copying: :meth:`verify_model` refuses a model that
        claims one under another key (and reads them again for the whole-file digests).
        """
        if pack is None or writer is None:
            return
        self.adopt_pack(pack, writer.locations, verified)

    def adopt_pack(self, pack: str, locations: dict[bytes, tuple[int, int]],
                   verified: dict[bytes, tuple[bytes, int]]) -> None:
        """Take one more verified pack written into this quarantine (see :meth:`adopt`)."""
        if self.pack is None:
            self.pack, self.locations = pack, locations
        else:
            self.more.append((pack, locations))
        self.new_chunks.update(verified)
        self.odb.rescan_packs()

    def _packs(self) -> list[tuple[str, dict[bytes, tuple[int, int]]]]:
        return ([(self.pack, self.locations)] if self.pack is not None else []) + self.more

    # -- verification ------------------------------------------------------

    def _is_new(self, oid: bytes) -> bool:
        return any(oid in locations for _, locations in self._packs())

    def verify_model_name(self, domain: str, model_id: str, sha: ObjectID) -> tuple[Manifest, ObjectID]:
        """The manifest and files tree id of model commit ``sha``, checked to name ``domain``/``model_id``.

        Run for every model ref a pull would move, also when the store already holds
        ``sha``: a ref aliasing another model's commit must not come in either way.
        """
        odb = self.odb
        c = odb.read(sha, Commit)
        assert isinstance(c, Commit)
        root = odb.read(c.tree, Tree)
        assert isinstance(root, Tree)
        names = sorted(e.path for e in root.iteritems())
        if names != [b"files", b"manifest"]:
            raise CorruptObjectError(c.tree.decode(), f"model tree has entries {names!r}")
        _, manifest_id = root[b"manifest"]
        _, files_id = root[b"files"]
        blob = odb.read(manifest_id, Blob)
        assert isinstance(blob, Blob)
        manifest = decode_manifest(blob.as_raw_string(), manifest_id.decode())
        if (manifest.domain, manifest.model_id) != (domain, model_id):
            raise CorruptObjectError(
                sha.decode(), f"ref {domain}/{model_id} carries model {manifest.domain}/{manifest.model_id}")
        return manifest, files_id

    def verify_model(self, domain: str, model_id: str, sha: ObjectID) -> Manifest:
        """Check a model commit received for ``refs/cas/models/<domain>/<model_id>``.

        Every file is read in full, the chunks the store already had included: its size,
        xxh3 and BLAKE3 digest must be what the manifest says (a manifest may claim
        another file's).  Each *new* chunk is checked against its key here, the one
        time a pull decompresses it (the copy from the remote checks only the git
        objects), and only then may :meth:`publish` index it.  The store's own chunks
        are not hashed one by one: the whole-file BLAKE3 fixes their bytes, and when it
        does not match they are read again with their keys checked, so that a damaged
        chunk of this store is named (and distrusted) rather than blamed on the remote.
        """
        odb = self.odb
        manifest, files_id = self.verify_model_name(domain, model_id, sha)
        files_tree = odb.read(files_id, Tree)
        assert isinstance(files_tree, Tree)
        entries = list(files_tree.iteritems())
        if [e.path for e in entries] != [b"%08x" % i for i in range(len(manifest.files))]:
            raise CorruptObjectError(files_id.decode(), "files tree does not match the manifest")
        main = self.repo.odb
        workers = default_workers()
        start = self.staging.tee(domain, model_id) if self.staging is not None else None
        with ThreadPoolExecutor(workers, thread_name_prefix="cas-verify") as pool:
            for f, e in zip(manifest.files, entries, strict=True):
                oids = chunk_oids(odb, e.sha, f)
                where: list[ChunkLocation | None] = []  # in this quarantine: where; else None
                for key, oid, size in zip(f.keys, oids, f.sizes, strict=True):
                    pl = next((pl for pl in self._packs() if oid in pl[1]), None)
                    if pl is not None:
                        if oid in self.new_chunks and self.new_chunks[oid] != (key, size):
                            raise CorruptObjectError(oid.hex(), "one chunk blob claimed under two keys")
                        offset, length = pl[1][oid]
                        where.append(ChunkLocation(pl[0], offset, length, oid, size))
                    elif not main.contains(ObjectID(oid.hex().encode())):
                        raise MissingObjectError(oid.hex(), f"chunk of {domain}/{model_id}:{f.path} was not sent")
                    else:
                        where.append(None)
                tee = start(f) if start is not None else None
                try:
                    self._check_file(pool, 2 * workers, f"{domain}/{model_id}", f, oids, where, tee)
                finally:
                    if tee is not None:
                        tee.finish()
                if tee is not None and self.staging is not None:
                    self.staging.verified(f, tee)  # every byte checked: the download may take it
                for key, oid, size, w in zip(f.keys, oids, f.sizes, where, strict=True):
                    if w is not None:
                        self.new_chunks[oid] = (key, size)
        return manifest

    def _check_file(self, pool: ThreadPoolExecutor, window: int, model: str, f: FileEntry,  # noqa: PLR0913 - one file of the model check
                    oids: list[bytes], where: list[ChunkLocation | None], tee: Tee | None) -> None:
        """Read one file of a model (:meth:`_read_file`) and check its whole-file digests."""
        whole = self._read_file(pool, window, f, oids, where, check_own=False, tee=tee)
        try:
            whole.check()
        except CorruptObjectError as err:
            if any(w is None for w in where):
                # raises naming (and distrusting) a damaged chunk of this store, if that is why
                self._read_file(pool, window, f, oids, where, check_own=True)
            raise CorruptObjectError(f"{model}:{f.path}", err.detail) from None

    def _read_file(self, pool: ThreadPoolExecutor, window: int, f: FileEntry, oids: list[bytes],  # noqa: PLR0913 - one file of the model check, with its pool and window
                   where: list[ChunkLocation | None], *, check_own: bool, tee: Tee | None = None) -> WholeFile:
        """Read one file in order: new chunks from this quarantine (each checked against its
        key: decompressed, bounded by the manifest's size, in one ``pread`` where the copy
        put it), the others from the store; the :class:`WholeFile` fed every byte, and
        ``tee`` (a file being staged for a download) too."""
        main = self.repo.odb
        known = main.index.lookup(f.keys)

        def read(batch: range) -> list[bytes | memoryview]:
            new = [i for i in batch if where[i] is not None]
            own = [i for i in batch if where[i] is None]
            out: dict[int, bytes | memoryview] = {}
            if new:
                raws = self.odb.read_chunks([f.keys[i] for i in new], [oids[i] for i in new],
                                            [f.sizes[i] for i in new], [where[i] for i in new])
                out.update(zip(new, raws, strict=True))
            if own:
                # the store's own copy; through its chunk index only where that names this blob
                locs = [loc if (loc := known[i]) is not None and loc.oid == oids[i] else None for i in own]
                raws = main.read_chunks([f.keys[i] for i in own], [oids[i] for i in own],
                                        [f.sizes[i] for i in own], locs, check_keys=check_own)
                out.update(zip(own, raws, strict=True))
            return [out[i] for i in batch]

        whole = WholeFile(f)
        jobs = (lambda batch=batch: read(batch) for batch in batched_sizes(f.sizes))
        for raws in ordered(pool, window, jobs):  # type: ignore[misc]
            for raw in raws:
                whole.update(raw)
                if tee is not None:
                    tee.write(raw)
        return whole

    def verify_history(self, tip: ObjectID) -> None:
        """Parse every history commit from ``tip`` down to ones the store already had."""
        stack = [tip]
        seen: set[ObjectID] = set()
        checked: set[ObjectID] = set()  # index trees already checked: each shard version once
        while stack:
            sha = stack.pop()
            if sha in seen or self.repo.odb.contains(sha):
                continue
            seen.add(sha)
            c = self.odb.read(sha, Commit)
            assert isinstance(c, Commit)
            check_index(self.odb, sha, checked)  # names, entry types, shards
            stack.extend(c.parents)

    def verify_states(self, tip: ObjectID) -> None:
        states_at(self.odb, tip)

    # -- publication -------------------------------------------------------

    def publish(self) -> None:
        """Move the verified packs into the store, indexing the verified chunks.

        Each pack is published on its own (sidecar, pack, ``.idx`` last); a crash
        between two leaves the first one's objects unreferenced (gc frees them, a
        new pull finds them present).
        """
        if self.pack is None:
            return
        main = self.repo.odb
        for pack, locations in self._packs():
            entries = []
            for oid, (key, size) in self.new_chunks.items():
                if oid in locations:
                    offset, length = locations[oid]
                    entries.append(IndexEntry(key, oid, offset, length, size))
            checksum = bytes.fromhex(pack[len("pack-"):])
            write_cidx(os.path.join(main.cidx_dir, pack + ".cidx"), checksum, entries)
            src = os.path.join(self.odb.pack_dir, pack)
            dst = os.path.join(main.pack_dir, pack)
            os.replace(src + ".pack", dst + ".pack")
            os.replace(src + ".idx", dst + ".idx")  # visible from here on
        fsync_dir(main.pack_dir)
        main.rescan_packs()
        main.index.refresh()


class PackIndexer:
    """Indexes a pack of whole objects as its bytes arrive, for :func:`index_in_place`.

    :meth:`feed` takes the pack in pieces of any size (what a transport delivers, while
    it delivers: the work overlaps the server's); each entry is inflated in bounded
    steps, its id computed from its content (so the ``.idx`` is ours whatever the
    sender claimed) and its CRC-32 taken; the pack's checksum is computed on the way.
    Memory: one entry's worth of pending input at most, plus 1 MiB of inflated output.

    After the last byte: :attr:`error` says why the pack is damaged (truncated, bad
    checksum, an entry larger than its header says...), :attr:`unsuitable` why it is
    not in casstore's format (a delta, a duplicate object, a chunk blob git
    compressed) and must be rewritten; with neither, :meth:`finish` has the entries.
    """

    _STEP = 1 << 20  # inflated bytes per decompress call: bounds a zlib bomb's memory
    #: what is parsed at a time: each step copies what is pending, so pieces much larger
    #: than an entry would make the work quadratic (git's side-band pieces are 64 KiB)
    PIECE = 1 << 16

    def __init__(self) -> None:
        self.error: str | None = None
        self.unsuitable: str | None = None
        self.entries: list[tuple[bytes, int, int]] = []  # (oid, offset, crc32)
        self.end = 0  # offset of the checksum (the end of the last entry) once known
        self._pending = bytearray()
        self._offset = 0  # pack offset of _pending[0]
        self._count = -1  # entries still to come; -1 before the pack header
        self._pack = hashlib.sha1()
        self._seen: set[bytes] = set()
        self._stored: bytes | None = None
        self._entry: tuple[int, int, int, _Decompress, _Hash] | None = None  # offset, type, size, inflater, oid hash
        self._crc = 0
        self._inflated = 0
        self._first = b""  # first bytes of the content (a chunk blob's codec tag)
        self._comp = b""  # first bytes of the zlib stream (its first deflate block's type)

    @property
    def stopped(self) -> bool:
        return self.error is not None or self.unsuitable is not None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        for start in range(0, len(view), self.PIECE):
            if self.stopped:
                return
            self._pending += view[start:start + self.PIECE]
            try:
                while self._step():
                    pass
            except (zlib.error, ValueError, struct.error) as e:
                self.error = f"unreadable: {type(e).__name__}: {e}"

    def _take(self, n: int) -> bytes:
        """Consume ``n`` pending bytes into the pack checksum."""
        out = bytes(self._pending[:n])
        del self._pending[:n]
        self._pack.update(out)
        self._offset += n
        return out

    def _step(self) -> bool:
        """Parse what the pending bytes allow; False when more input is needed (or it stopped)."""
        if self._count < 0:
            if len(self._pending) < 12:
                return False
            head = self._take(12)
            if head[:4] != b"PACK" or struct.unpack(">I", head[4:8])[0] not in (2, 3):
                self.error = "not a git pack"
                return False
            self._count = struct.unpack(">I", head[8:12])[0]
            return True
        if self._count == 0:
            if self._stored is None:
                self.end = self._offset
                self._stored = b""
            if len(self._pending) > 20:
                self.error = f"{len(self._pending) - 20} bytes after the checksum"
            return False
        if self._entry is None:
            return self._entry_header()
        return self._entry_body()

    def _entry_header(self) -> bool:
        n = 0
        while n < len(self._pending) and self._pending[n] & 0x80:
            n += 1
        if n >= len(self._pending):
            return False  # the header continues in the next piece
        if n > 9:
            raise ValueError("entry header too long")
        type_num = (self._pending[0] >> 4) & 7
        if type_num not in TYPE_NAMES:
            self.unsuitable = "a delta"
            return False
        size = self._pending[0] & 15
        for i in range(1, n + 1):
            size |= (self._pending[i] & 0x7F) << (4 + 7 * (i - 1))
        offset = self._offset
        if size > MAX_OBJECT:  # no casstore object is that large: do not inflate and hash it
            self.error = f"entry at offset {offset} declares {size} bytes, more than any casstore object"
            return False
        header = self._take(n + 1)
        self._crc = zlib.crc32(header)
        self._inflated, self._first, self._comp = 0, b"", b""
        oid_hash = hashlib.sha1(b"%s %d\x00" % (TYPE_NAMES[type_num], size))
        self._entry = (offset, type_num, size, zlib.decompressobj(), oid_hash)
        return True

    def _entry_body(self) -> bool:
        assert self._entry is not None
        offset, type_num, size, inflater, oid_hash = self._entry
        if not self._pending:
            return False
        data = bytes(self._pending)
        if len(self._comp) < 3:
            self._comp += data[:3 - len(self._comp)]
        out = inflater.decompress(data, self._STEP)
        while True:
            self._inflated += len(out)
            if self._inflated > size:
                self.error = f"entry at offset {offset} inflates to more than its {size} bytes"
                return False
            if len(self._first) < 4:
                self._first += out[:4 - len(self._first)]
            oid_hash.update(out)
            if not inflater.unconsumed_tail:
                break
            out = inflater.decompress(inflater.unconsumed_tail, self._STEP)
        used = len(data) - len(inflater.unused_data)
        self._crc = zlib.crc32(data[:used], self._crc)
        self._take(used)
        if not inflater.eof:
            return False
        if self._inflated != size:
            self.error = f"entry at offset {offset} inflates to {self._inflated} bytes, not {size}"
            return False
        oid = oid_hash.digest()
        self._entry = None
        self._count -= 1
        if oid in self._seen:
            self.unsuitable = "a duplicate object"
            return False
        self._seen.add(oid)
        if type_num == BLOB and self._first in HEADERS and (len(self._comp) < 3 or self._comp[2] & 0x06):
            self.unsuitable = "a chunk blob git compressed"  # store it as ours (zlib level 0)
            return False
        self.entries.append((oid, offset, self._crc))
        return True

    def finish(self) -> tuple[bytes, list[tuple[bytes, int, int]]]:
        """The pack's checksum and its entries, once every byte was fed.

        Raises:
            CorruptObjectError: the pack is damaged or ends early.
        """
        if self.error is not None:
            raise CorruptObjectError("received pack", self.error)
        if self._count != 0 or len(self._pending) < 20:
            raise CorruptObjectError("received pack", "truncated")
        checksum = self._pack.digest()
        if checksum != bytes(self._pending):
            raise CorruptObjectError("received pack", "pack checksum mismatch")
        return checksum, self.entries


def index_in_place(path: str, pack_dir: str, indexer: PackIndexer | None = None,
                   ) -> tuple[str, dict[bytes, tuple[int, int]]] | None:
    """Index a received pack where it is, if it is in casstore's format; else None.

    ``indexer`` has seen the whole file already (fed while it was received); without
    one, the file is read once through ``read`` (no mmap: the pages of a memory-mapped
    pack count in the RSS, about the pack's size) into a :class:`PackIndexer`.  The
    pack is then moved to ``pack_dir/pack-<checksum>.pack`` and the ``.idx`` written
    (fsynced) next to it.  Returns the pack name and oid -> (offset, entry length);
    None (nothing moved) for a pack with a delta, a duplicate object, or a chunk blob
    not in stored zlib blocks.

    Raises:
        CorruptObjectError: the checksum does not match, or the pack is truncated.
    """
    if indexer is None:
        indexer = PackIndexer()
        with open(path, "rb") as f:
            while not indexer.stopped and (block := f.read(PackIndexer.PIECE)):
                indexer.feed(block)
    if indexer.unsuitable is not None and indexer.error is None:
        return None
    checksum, entries = indexer.finish()
    end = indexer.end
    name = "pack-" + checksum.hex()
    base = os.path.join(pack_dir, name)
    os.replace(path, base + ".pack")
    with open(base + ".pack", "rb") as pf:
        fsync_fd(pf.fileno())  # published from the quarantine by rename, later
    with open(base + ".idx.tmp", "wb") as out:
        write_pack_index_v2(out, sorted(entries), checksum)
        out.flush()
        fsync_fd(out.fileno())
    os.replace(base + ".idx.tmp", base + ".idx")
    by_offset = sorted(entries, key=lambda e: e[1])
    locations: dict[bytes, tuple[int, int]] = {}
    for i, (oid, offset, _) in enumerate(by_offset):
        nxt = by_offset[i + 1][1] if i + 1 < len(by_offset) else end
        locations[oid] = (offset, nxt - offset)
    return name, locations
