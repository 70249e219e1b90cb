"""Receiving objects from a remote: quarantine, normalise, verify, publish.

A pulled pack may be hostile.  It is written to ``cas/tmp/incoming-*`` (a
quarantine whose object store borrows the main one through git's alternates),
rewritten there as a casstore pack (whole objects; every object id recomputed
from its content, so objects hash to their ids), and verified: every new model
commit, tree and manifest parses strictly and agrees with its ref name, every
chunk it needs is present, and every *new* chunk decompresses (bounded) to bytes
whose BLAKE3 is the manifest's key -- only then is it entered into the chunk
index, which therefore only ever holds pairs this store verified itself.
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
from typing import TYPE_CHECKING

from dulwich.object_format import SHA1
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.pack import PackData, PackInflater, unpack_object, write_pack_index_v2

from ..errors import CorruptObjectError, MissingObjectError
from ..model.history import check_index
from ..model.manifest import Manifest
from ..model.manifest import decode as decode_manifest
from ..model.readback import chunk_oids
from ..model.states import states_at
from ..objects.chunkindex import ChunkLocation, IndexEntry, write_cidx
from ..objects.codec import HEADERS
from ..objects.odb import ObjectDB
from ..objects.packwriter import BLOB, TYPE_NAMES, PackWriter, encode_entry
from ..util.fsutil import fsync_dir, fsync_fd

if TYPE_CHECKING:
    from ..objects.repository import Repository


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

    def close(self) -> None:
        self.odb.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def import_pack(self, path: str) -> int:
        """Take a received pack into the quarantine; returns the object count.

        A pack of whole objects whose chunk blobs are stored zlib blocks (what a
        casstore store served by git sends) is kept as it is: one streaming pass
        recomputes every object id, CRC and the checksum, and writes the ``.idx``
        (:func:`index_in_place`).  Any other pack (deltas, a thin pack, chunk blobs
        that git compressed) is rewritten as a casstore pack.
        """
        try:
            indexed = index_in_place(path, self.odb.pack_dir)
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
            writer = PackWriter(self.odb.pack_dir, self.odb.cidx_dir, count)
            try:
                for obj in PackInflater.for_pack_data(data, resolve_ext_ref=resolve_ext_ref):  # type: ignore[arg-type]
                    raw = obj.as_raw_string()
                    is_chunk = obj.type_num == BLOB and raw[:4] in HEADERS
                    writer.add(encode_entry(raw, type_num=obj.type_num, level=0 if is_chunk else 1))
                self.pack = writer.finish()
            except BaseException:
                writer.abort()
                raise
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
        was checked against while copying: :meth:`verify_model` does not decompress
        them again, and still refuses a model that claims one under another key.
        """
        if pack is None or writer is None:
            return
        self.pack, self.locations = pack, writer.locations
        self.new_chunks.update(verified)
        self.odb.rescan_packs()

    # -- verification ------------------------------------------------------

    def _is_new(self, oid: bytes) -> bool:
        return oid in self.locations

    def verify_model(self, domain: str, model_id: str, sha: ObjectID) -> Manifest:
        """Check a model commit received for ``refs/cas/models/<domain>/<model_id>``."""
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
        files_tree = odb.read(files_id, Tree)
        assert isinstance(files_tree, Tree)
        entries = list(files_tree.iteritems())
        if [e.path for e in entries] != [b"%08x" % i for i in range(len(manifest.files))]:
            raise CorruptObjectError(files_id.decode(), "files tree does not match the manifest")
        for f, e in zip(manifest.files, entries, strict=True):
            for key, oid, size in zip(f.keys, chunk_oids(odb, e.sha, f), f.sizes, strict=True):
                if self._is_new(oid):
                    if oid not in self.new_chunks:
                        # decompress (bounded by the manifest's size) and check the BLAKE3 key.
                        # Read the entry where the writer put it (one pread), not through
                        # dulwich, which maps the whole pack: every page read counted in
                        # the RSS, ~1 GiB for a 1 GiB model
                        assert self.pack is not None
                        offset, length = self.locations[oid]
                        odb.read_chunk(key, oid, size, ChunkLocation(self.pack, offset, length, oid, size))
                        self.new_chunks[oid] = (key, size)
                    elif self.new_chunks[oid] != (key, size):
                        raise CorruptObjectError(oid.hex(), "one chunk blob claimed under two keys")
                elif not self.repo.odb.contains(ObjectID(oid.hex().encode())):
                    raise MissingObjectError(oid.hex(), f"chunk of {domain}/{model_id}:{f.path} was not sent")
        return manifest

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
        """Move the verified pack into the store, indexing the verified chunks."""
        if self.pack is None:
            return
        main = self.repo.odb
        entries = []
        for oid, (key, size) in self.new_chunks.items():
            offset, length = self.locations[oid]
            entries.append(IndexEntry(key, oid, offset, length, size))
        checksum = bytes.fromhex(self.pack[len("pack-"):])
        write_cidx(os.path.join(main.cidx_dir, self.pack + ".cidx"), checksum, entries)
        src = os.path.join(self.odb.pack_dir, self.pack)
        dst = os.path.join(main.pack_dir, self.pack)
        os.replace(src + ".pack", dst + ".pack")
        os.replace(src + ".idx", dst + ".idx")  # visible from here on
        fsync_dir(main.pack_dir)
        main.rescan_packs()
        main.index.refresh()


def index_in_place(path: str, pack_dir: str) -> tuple[str, dict[bytes, tuple[int, int]]] | None:
    """Index a received pack where it is, if it is in casstore's format; else None.

    One pass over the file through ``read`` (no mmap: the pages of a memory-mapped
    pack count in the RSS, about the pack's size): each entry is inflated one at a
    time and its id computed from its content, so the ``.idx`` is ours whatever the
    sender claimed.  The pack is then moved to ``pack_dir/pack-<checksum>.pack`` and
    the ``.idx`` written (fsynced) next to it.  Returns the pack name and oid ->
    (offset, entry length); None (nothing moved) for a pack with a delta, a
    duplicate object, or a chunk blob not in stored zlib blocks.

    Raises:
        CorruptObjectError: the checksum does not match, or the pack is truncated.
    """
    size = os.path.getsize(path)
    entries: list[tuple[bytes, int, int]] = []
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) != 12 or head[:4] != b"PACK" or struct.unpack(">I", head[4:8])[0] not in (2, 3):
            raise CorruptObjectError("received pack", "not a git pack")
        count = struct.unpack(">I", head[8:12])[0]
        seen: set[bytes] = set()
        for _ in range(count):
            offset = f.tell()
            unpacked, unused = unpack_object(f.read, hashlib.sha1, compute_crc32=True, include_comp=True)
            f.seek(-len(unused), os.SEEK_CUR)
            type_num = unpacked.pack_type_num
            if type_num not in TYPE_NAMES:
                return None  # a delta: rewrite
            chunks = unpacked.decomp_chunks
            h = hashlib.sha1(b"%s %d\x00" % (TYPE_NAMES[type_num], sum(len(c) for c in chunks)))
            for c in chunks:
                h.update(c)
            oid = h.digest()
            if oid in seen:
                return None
            seen.add(oid)
            if type_num == BLOB:
                first = b"".join(chunks)[:4] if not chunks or len(chunks[0]) < 4 else bytes(chunks[0][:4])
                comp = b"".join(unpacked.comp_chunks or [])[:3]
                if first in HEADERS and (len(comp) < 3 or comp[2] & 0x06):
                    return None  # a chunk blob git compressed: store it as ours (zlib level 0)
            assert unpacked.crc32 is not None
            entries.append((oid, offset, unpacked.crc32))
        end = f.tell()
        if end != size - 20:
            raise CorruptObjectError("received pack", f"{size - 20 - end} bytes where the checksum should be")
        stored = f.read(20)
        f.seek(0)
        sha = hashlib.sha1()
        left = end
        while left:
            block = f.read(min(1 << 20, left))
            if not block:
                raise CorruptObjectError("received pack", "truncated")
            sha.update(block)
            left -= len(block)
    checksum = sha.digest()
    if checksum != stored:
        raise CorruptObjectError("received pack", "pack checksum mismatch")
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
