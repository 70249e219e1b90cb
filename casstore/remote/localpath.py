"""Path and ``file://`` remotes: objects move by copying packs and pack entries, refs through git.

Over 500 lines because both copies (whole packs and single entries) and every check a copy from
a possibly hostile store passes belong to one trust boundary, kept in one file.

git's ``upload-pack``/``receive-pack`` inflate, hash and (for a pull) delta-search
every object, and ``pack-objects`` holds about the whole pack in memory while it
serves a pull (measured: ~1 GiB RSS for a 1 GiB model).  Our chunk blobs are zstd
in stored deflate blocks, so none of that work is needed to move them between two
stores on the same machine.  For a local remote, casstore therefore:

* finds the objects the destination lacks (walk from the wanted tips, stopping at
  every object the destination has; gitlinks are not followed);
* copies every source pack *all* of whose objects are among them (the normal case: a
  commit's pack holds only the chunks it added) **whole**, with the kernel
  (``copy_file_range``/``sendfile``: no user-space copy), and checks the copy where it
  lies, in parallel ``pread`` jobs of a few MiB: for our own pack (a push) what git
  checks when it reuses pack data -- each entry's CRC-32 against the ``.idx``, the
  trailer; for a possibly hostile one (a pull) everything about the git objects -- the
  entries tile the pack exactly, each hashes to the oid the ``.idx`` files it under,
  every claimed chunk decompresses to bytes with its BLAKE3 key (a pull claims none:
  the quarantine's model checks decompress each chunk once), the trailer is the
  pack's SHA-1 (:func:`copy_whole_pack`);
* copies everything else (objects of packs the destination partly has, loose
  objects, deltas) entry by entry into **one new pack**: each pack entry verbatim
  (objects that are loose or deltas in the source are re-encoded, metadata at zlib
  level 1, chunk blobs at level 0), after verifying it: its content hashes to its
  oid, its zlib framing (Adler-32) holds, and, for a pull, every chunk blob that a
  model's manifest names decompresses (bounded by the manifest's size) to bytes
  whose BLAKE3 is the manifest's key.  Verification runs in a thread pool, a few
  MiB per job, with a bounded window: memory does not grow with the model;
* writes each new pack's ``.idx`` and ``.cidx`` from what it verified (a remote's
  index files are never trusted), fsyncs, and renames sidecar, ``.pack``, ``.idx``
  last -- the order :class:`~casstore.objects.packwriter.PackWriter` keeps.

**Push** writes those packs straight into the remote's ``objects/pack`` and then
moves refs through ``git-receive-pack`` exactly as before, with an empty pack:
the remote's ``pre-receive`` hook sees and can refuse every ref update, git's
atomic update and old-value checks apply, and the reported status is git's.  A
refused push leaves the copied objects unreferenced in the remote (its gc frees
them after the grace period), as a crash after the copy does.  The remote's
``receive.fsckObjects`` does not see the copied objects (git checks only the
objects it receives): anyone who can write the remote's directory can put any
file there anyway, so the hook's ref rules are what protects such a store.

**Pull** writes the packs into the quarantine of :mod:`.incoming`, where the usual
checks of models, histories and states (each new chunk decompressed and checked
against its key there, once) run before the pack is published and refs move.  A
remote pack whose content is wrong is rejected and leaves the local store as it
was.  Refs are read with ``git-upload-pack --advertise-refs``, as before.

A crash at any point leaves a ``tmp_pack_*``, a ``.pack`` without ``.idx`` (or a
quarantine directory) that gc removes; nothing half-copied is ever visible; running
the command again copies what is still missing.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from dulwich.client import SubprocessGitClient
from dulwich.objects import ObjectID, Tree
from dulwich.refs import Ref

from ..errors import CorruptObjectError
from ..model.manifest import decode as decode_manifest
from ..model.readback import chunk_oids
from ..objects.chunker import chunk_key
from ..objects.chunkindex import IndexEntry
from ..objects.codec import HEADERS, decode
from ..objects.graph import TYPE_NUMS, children
from ..objects.odb import ObjectDB
from ..objects.packidx import PackIdx
from ..objects.packs import DeltaEntry, PackFile, PackReader, verify_entry
from ..objects.packwriter import (
    BLOB,
    MAX_OBJECT,
    EncodedEntry,
    PackWriter,
    copy_range,
    encode_entry,
    parse_object_header,
    publish_pack,
)
from ..util.fsutil import TMP_PREFIX, fsync_fd, removed_on_error
from ..util.parallel import batched_sizes, default_workers, ordered
from ..util.progress import ProgressFn

#: the largest object read into memory from a source pack: anything bigger is refused
MAX_ENTRY = MAX_OBJECT
_JOB_BYTES = 4 << 20


class LocalPathClient(SubprocessGitClient):
    """dulwich's subprocess client (refs through git), whose objects travel by file copy.

    ``remote/transports/path.py`` copies the objects; the ``send_pack`` and
    ``get_refs`` it inherits run ``git-receive-pack`` and ``git-upload-pack`` so
    that hooks and ref semantics are git's.
    """

    def remote_refs(self, path: str) -> dict[Ref, ObjectID]:
        refs = self.get_refs(path.encode()).refs
        return {name: sha for name, sha in refs.items() if sha is not None}


@dataclass
class PackCopy:
    """A source pack copied whole (see :func:`copy_whole_pack`)."""

    name: str
    #: binary oid -> (offset, entry length) of every object in it
    locations: dict[bytes, tuple[int, int]]
    #: binary oid -> (BLAKE3 key, raw size) of its chunk blobs: verified for a hostile source
    chunks: dict[bytes, tuple[bytes, int]]
    size: int


@dataclass
class CopyStats:
    objects: int = 0
    pack_bytes: int = 0  # pack bytes written
    #: binary oid -> (BLAKE3 key, raw size) of every chunk blob verified while copying
    chunks: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)
    pack: str | None = None  # the pack of entries copied one by one
    writer: PackWriter | None = None
    #: source packs copied whole
    packs: list[PackCopy] = field(default_factory=list)


class Presence:
    """Which objects a store holds, answered for many blobs at once.

    dulwich's ``in`` rescans the pack directory on every miss (a ``listdir`` per
    chunk the store lacks); here every ``.idx`` is loaded once and searched with
    numpy, and loose objects are looked up by file name.
    """

    def __init__(self, odb: ObjectDB) -> None:
        self.odb = odb
        self.idxs: list[PackIdx] = []
        for fn in sorted(os.listdir(odb.pack_dir)):
            if fn.endswith(".idx") and not fn.startswith("tmp"):
                try:
                    self.idxs.append(PackIdx(os.path.join(odb.pack_dir, fn)))
                except (CorruptObjectError, FileNotFoundError):
                    continue  # its objects count as absent: copying them again is harmless

    def close(self) -> None:
        for idx in self.idxs:
            idx.close()

    def __call__(self, oid: ObjectID) -> bool:
        return self.odb.contains(oid)

    def many(self, oids: list[ObjectID]) -> list[bool]:
        raws = [bytes.fromhex(o.decode()) for o in oids]
        found = np.zeros(len(raws), dtype=bool)
        for idx in self.idxs:
            found |= idx.find(raws) >= 0
        out = found.tolist()
        for i, hit in enumerate(out):
            if not hit:
                h = oids[i].decode()
                out[i] = os.path.exists(os.path.join(self.odb.objects_dir, h[:2], h[2:]))
        return out


def missing_objects(src: ObjectDB, tips: Iterable[ObjectID], have: Presence
                    ) -> tuple[list[tuple[ObjectID, int]], list[ObjectID]]:
    """(hex oid, type) of every object reachable from ``tips`` that ``have`` lacks, and model root trees.

    An object the destination has is neither listed nor descended into: a store
    that holds an object holds everything it reaches (objects are published before
    anything refers to them).  Blobs are never read, and looked up in one batch.
    Commits and trees come first in the list, blobs after.  Model root trees
    (``manifest`` + ``files``) among the missing are returned so that their chunk
    keys can be checked while copying.
    """
    seen: set[ObjectID] = set()
    stack: list[tuple[ObjectID, int]] = []
    for t in tips:
        if t not in seen and not have(t):
            seen.add(t)
            stack.append((t, 0))
    meta: list[tuple[ObjectID, int]] = []
    blobs: list[ObjectID] = []
    models: list[ObjectID] = []
    while stack:
        oid, type_num = stack.pop()
        obj = src.read(oid)
        type_num = TYPE_NUMS[obj.type_name]
        meta.append((oid, type_num))
        inner, tree_blobs = children(obj)
        if isinstance(obj, Tree) and [e.path for e in obj.iteritems()] == [b"files", b"manifest"]:
            models.append(oid)
        for b in tree_blobs:
            if b not in seen:
                seen.add(b)
                blobs.append(b)
        for child in inner:
            if child in seen or have(child):
                continue
            seen.add(child)
            stack.append((child, 0))
    present = have.many(blobs)
    return meta + [(b, BLOB) for b, p in zip(blobs, present, strict=True) if not p], models


def chunk_claims(src: ObjectDB, model_trees: Iterable[ObjectID]) -> dict[bytes, tuple[bytes, int]]:
    """Chunk blob oid -> (BLAKE3 key, raw size) that the manifests of these model trees claim.

    Where two manifests claim one blob under different keys, the first claim is
    kept: copying checks it, and the model check that follows
    (:meth:`Quarantine.verify_model`) refuses the other.

    Raises:
        CorruptObjectError: a manifest or chunk tree that does not parse.
    """
    claims: dict[bytes, tuple[bytes, int]] = {}
    for root_id in model_trees:
        root = src.read(root_id, Tree)
        assert isinstance(root, Tree)
        _, manifest_id = root[b"manifest"]
        _, files_id = root[b"files"]
        blob = src.read(manifest_id)
        manifest = decode_manifest(blob.as_raw_string(), manifest_id.decode())
        files = src.read(files_id, Tree)
        assert isinstance(files, Tree)
        entries = list(files.iteritems())
        if len(entries) != len(manifest.files):
            raise CorruptObjectError(files_id.decode(), "files tree does not match the manifest")
        for f, e in zip(manifest.files, entries, strict=True):
            for key, oid, size in zip(f.keys, chunk_oids(src, e.sha, f), f.sizes, strict=True):
                claims.setdefault(oid, (key, size))
    return claims


class EntryReader(PackReader):
    """Pack entries of a store's objects, located through its (verified) ``.idx`` files."""

    def __init__(self, odb: ObjectDB) -> None:
        super().__init__(odb.pack_dir)
        self.odb = odb

    def entry(self, oid: bytes, loc: tuple[int, int, int] | None
              ) -> tuple[EncodedEntry, int, list[bytes | memoryview] | None]:
        """The verified pack entry of ``oid`` (verbatim when possible), its type and content pieces.

        Raises:
            CorruptObjectError: naming the object, when its copy does not verify.
            MissingObjectError: it is nowhere in the store.
        """
        if loc is not None:
            if not 0 < loc[2] <= MAX_ENTRY:
                raise CorruptObjectError(oid.hex(), f"pack entry of {loc[2]} bytes is out of bounds")
            data = self.read(loc)
            try:
                type_num, parts = verify_entry(data, oid, limit=MAX_ENTRY)
                hlen = parse_object_header(data)[2]
                return EncodedEntry.verbatim(oid, data[:hlen], data[hlen:]), type_num, parts
            except DeltaEntry:
                pass  # a delta (a pack git wrote): let dulwich resolve it, then verify below
        type_num, raw = self.odb.read_raw(ObjectID(oid.hex().encode()))  # verified against its SHA-1
        is_chunk = type_num == BLOB and raw[:4] in HEADERS
        return encode_entry(raw, type_num=type_num, level=0 if is_chunk else 1), type_num, [raw]


def _check_chunk(oid: bytes, parts: list[bytes | memoryview], key: bytes, size: int) -> None:
    raw = decode(parts, size, oid.hex())
    if chunk_key(raw) != key:
        raise CorruptObjectError(oid.hex(), "chunk content does not match its BLAKE3 key")


def copy_objects(src: ObjectDB, objects: list[tuple[ObjectID, int]], pack_dir: str, cidx_dir: str,  # noqa: PLR0913 - the copy's source, destination and checks
                 claims: Mapping[bytes, tuple[bytes, int]], *, verify_chunks: bool,
                 progress: ProgressFn | None = None, label: str = "copying",
                 reader: EntryReader | None = None, done: int = 0) -> CopyStats:
    """Copy ``objects`` from ``src`` into one new, published pack in ``pack_dir``.

    Every entry is verified as it is read (see the module docstring); with
    ``verify_chunks`` every claimed chunk blob is also decompressed and its BLAKE3
    compared with its claimed key.  The new pack's ``.cidx`` (in ``cidx_dir``)
    lists the claimed chunks.  Memory is bounded by a few jobs of ~4 MiB.
    ``reader`` (left open) saves opening ``src``'s packs again; ``done`` is the
    byte count progress starts from.

    Raises:
        CorruptObjectError: naming the first object that does not verify; nothing
            is published then.
    """
    stats = CopyStats()
    if not objects:
        return stats
    own_reader = reader is None
    reader = EntryReader(src) if reader is None else reader
    raws = [bytes.fromhex(o.decode()) for o, _ in objects]
    where = reader.locate(raws)

    def job(batch: range) -> Callable[[], list[tuple[EncodedEntry, bytes | None, int]]]:
        def run() -> list[tuple[EncodedEntry, bytes | None, int]]:
            out: list[tuple[EncodedEntry, bytes | None, int]] = []
            for i in batch:
                oid = raws[i]
                entry, type_num, parts = reader.entry(oid, where[i])
                claim = claims.get(oid) if type_num == BLOB else None
                if claim is not None and verify_chunks and parts is not None:
                    _check_chunk(oid, parts, *claim)
                out.append((entry, claim[0] if claim else None, claim[1] if claim else 0))
            return out
        return run

    def jobs() -> Iterator[Callable[[], list[tuple[EncodedEntry, bytes | None, int]]]]:
        sizes = [loc[2] if loc is not None else 4096 for loc in where]
        return (job(batch) for batch in batched_sizes(sizes, _JOB_BYTES))

    workers = default_workers()
    try:
        with PackWriter(pack_dir, cidx_dir, len(objects)) as writer, \
                ThreadPoolExecutor(workers, thread_name_prefix="cas-copy") as pool:
            for batch in ordered(pool, 2 * workers, jobs()):
                for entry, key, raw_size in batch:
                    writer.add(entry, key, raw_size)
                    if key is not None:
                        stats.chunks[entry.oid] = (key, raw_size)
                    stats.pack_bytes += entry.length
                    if progress:
                        progress(label, done + stats.pack_bytes, 0)
            stats.pack = writer.finish()
    finally:
        if own_reader:
            reader.close()
    stats.objects = len(objects)
    stats.writer = writer
    return stats


class NotWholeObjects(Exception):
    """A source pack holds deltas (git wrote it): its objects are copied entry by entry."""


def _ranges(starts: list[int], ends: list[int]) -> Iterator[range]:
    """Runs of consecutive entries of about ``_JOB_BYTES`` (one ``pread`` each)."""
    return batched_sizes([b - a for a, b in zip(starts, ends, strict=True)], _JOB_BYTES)


@dataclass
class _Layout:
    """A source pack's entries in pack order, as its ``.idx`` describes them."""

    oids: list[bytes]
    starts: list[int]
    ends: list[int]
    crcs: list[int]


def _layout(p: PackFile) -> _Layout:
    order = np.argsort(p.starts, kind="stable")
    crcs = p.idx.crcs()[order]
    return _Layout([p.idx.sha(int(i)) for i in order.tolist()], p.starts[order].tolist(),
                   p.ends[order].tolist(), crcs.tolist())


def _check_layout(fd: int, p: PackFile, lay: _Layout) -> bytes:
    """The copy's 12-byte header, after checking it and that the entries tile the pack.

    Raises:
        CorruptObjectError: naming the pack.
    """
    what = p.name + ".pack"
    n = len(lay.oids)
    head = os.pread(fd, 12, 0)
    if len(head) != 12 or head[:4] != b"PACK" or struct.unpack(">I", head[4:8])[0] not in (2, 3):
        raise CorruptObjectError(what, "not a git pack")
    if struct.unpack(">I", head[8:12])[0] != n:
        raise CorruptObjectError(what, "pack header and .idx disagree on the object count")
    # entries start at 12, each ends where the next starts (entry_bounds), the last at the
    # trailer: offsets that repeat or point elsewhere cannot tile the pack
    if n and (lay.starts[0] != 12 or any(b <= a for a, b in zip(lay.starts, lay.ends, strict=True))):
        raise CorruptObjectError(what, ".idx offsets do not tile the pack")
    if n == 0 and p.size != 32:
        raise CorruptObjectError(what, "bytes after the last entry")
    return head


def _check_trusted_copy(fd: int, p: PackFile, lay: _Layout, pool: ThreadPoolExecutor, window: int) -> bytes:
    """What git checks when it reuses pack data, on the copy: each entry's CRC-32 against the
    ``.idx``, and the trailer against the ``.idx``'s pack checksum.  Returns the checksum."""
    _check_layout(fd, p, lay)
    if os.pread(fd, 20, p.size - 20) != p.idx.pack_checksum:
        raise CorruptObjectError(p.name + ".pack", "pack trailer does not match its .idx")

    def job(r: range) -> None:
        base = lay.starts[r.start]
        view = memoryview(os.pread(fd, lay.ends[r.stop - 1] - base, base))
        for k in r:
            if zlib.crc32(view[lay.starts[k] - base : lay.ends[k] - base]) != lay.crcs[k]:
                raise CorruptObjectError(lay.oids[k].hex(), f"pack entry in {p.name}.pack fails the CRC-32 "
                                         "its .idx records")

    for _ in ordered(pool, window, (lambda r=r: job(r) for r in _ranges(lay.starts, lay.ends))):  # type: ignore[misc]
        pass
    return p.idx.pack_checksum


def _verify_hostile_copy(fd: int, p: PackFile, lay: _Layout, claims: Mapping[bytes, tuple[bytes, int]],  # noqa: PLR0913 - the checks of a copy from an untrusted store
                         pool: ThreadPoolExecutor, window: int
                         ) -> tuple[bytes, list[int], dict[bytes, tuple[bytes, int]]]:
    """Verify a copied pack of a possibly hostile store in place; (checksum, CRC-32s, verified chunks).

    The source's ``.idx`` only proposes where entries start.  Checked: the header
    and the entries tile the pack exactly (each zlib stream ends exactly where the
    next entry starts, the last one at the trailer), every entry is a whole object
    whose content hashes to the oid the ``.idx`` files it under, no oid twice,
    every claimed chunk decompresses to bytes with its BLAKE3 key, and the trailer
    is the SHA-1 of everything before it.  Each byte is read once (``pread`` of a
    few MiB per job); the pack SHA-1 is taken in order on this thread.

    Raises:
        CorruptObjectError: naming the object (or the pack) that is wrong.
        NotWholeObjects: a delta entry (nothing is wrong; it is not our format).
    """
    what = p.name + ".pack"
    head = _check_layout(fd, p, lay)
    if len(set(lay.oids)) != len(lay.oids):
        raise CorruptObjectError(what, "an object appears twice in the pack")

    def job(r: range) -> tuple[bytes, list[tuple[int, tuple[bytes, int] | None]]]:
        base = lay.starts[r.start]
        data = os.pread(fd, lay.ends[r.stop - 1] - base, base)
        if len(data) != lay.ends[r.stop - 1] - base:
            raise CorruptObjectError(what, "truncated")
        view = memoryview(data)
        out: list[tuple[int, tuple[bytes, int] | None]] = []
        for k in r:
            oid = lay.oids[k]
            entry = view[lay.starts[k] - base : lay.ends[k] - base]
            if len(entry) > MAX_ENTRY:
                raise CorruptObjectError(oid.hex(), f"pack entry of {len(entry)} bytes is out of bounds")
            try:
                type_num, parts = verify_entry(entry, oid, limit=MAX_ENTRY)  # exact framing, SHA-1 == oid
            except DeltaEntry:
                raise NotWholeObjects(oid.hex()) from None
            claim = claims.get(oid) if type_num == BLOB else None
            if claim is not None:
                _check_chunk(oid, parts, *claim)
            out.append((zlib.crc32(entry), claim))
        return data, out

    sha = hashlib.sha1(head)
    crcs: list[int] = []
    chunks: dict[bytes, tuple[bytes, int]] = {}
    k = 0
    for data, out in ordered(pool, window, (lambda r=r: job(r) for r in _ranges(lay.starts, lay.ends))):  # type: ignore[misc]
        sha.update(data)  # the ranges are contiguous from offset 12 to the trailer
        for crc, claim in out:
            crcs.append(crc)
            if claim is not None:
                chunks[lay.oids[k]] = claim
            k += 1
    checksum = sha.digest()
    if os.pread(fd, 20, p.size - 20) != checksum:
        raise CorruptObjectError(what, "pack checksum mismatch")
    return checksum, crcs, chunks


def copy_whole_pack(p: PackFile, pack_dir: str, cidx_dir: str, claims: Mapping[bytes, tuple[bytes, int]], *,
                    hostile: bool) -> PackCopy:
    """Copy a source pack, every object of which the destination lacks, as it is; publish it.

    The bytes move in the kernel (:func:`~casstore.objects.packwriter.copy_range`)
    into a ``tmp_pack_*`` file in ``pack_dir``, and are checked *there*, where
    nobody else writes: for our own store (``hostile=False``) as git checks
    reused pack data (CRC-32 of each entry against the ``.idx``, trailer); for a
    possibly hostile one, in full (:func:`_verify_hostile_copy`).  The ``.idx``
    is written from the verified layout, the ``.cidx`` from the claimed (for a
    hostile source: verified) chunks, and everything is published in
    :class:`~casstore.objects.packwriter.PackWriter`'s order.  On any error
    nothing is published and the temporary file is removed.

    Raises:
        CorruptObjectError: naming the object or pack that is wrong.
        NotWholeObjects: the pack holds deltas; nothing was published.
    """
    lay = _layout(p)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + "pack_", dir=pack_dir)
    with removed_on_error(tmp):
        try:
            if copy_range(p.fd, fd, p.size) != p.size:
                raise CorruptObjectError(p.name + ".pack", "pack became shorter while it was copied")
            workers = default_workers()
            # a pool of its own: leaving it waits for every job (so none reads ``fd`` after
            # close) and for the write-back, started now so that it overlaps the checks
            with ThreadPoolExecutor(workers + 1, thread_name_prefix="cas-verify") as pool:
                synced = pool.submit(os.fdatasync, fd)
                if hostile:
                    checksum, crcs, chunks = _verify_hostile_copy(fd, p, lay, claims, pool, 2 * workers)
                else:
                    checksum, crcs = _check_trusted_copy(fd, p, lay, pool, 2 * workers), lay.crcs
                    chunks = {oid: claims[oid] for oid in lay.oids if oid in claims}
                synced.result()
            fsync_fd(fd)  # whatever the write-back did not cover, and the metadata
        finally:
            os.close(fd)
    locations = {oid: (a, b - a) for oid, a, b in zip(lay.oids, lay.starts, lay.ends, strict=True)}
    index = [IndexEntry(key, oid, *locations[oid], raw) for oid, (key, raw) in chunks.items()]
    name = publish_pack(pack_dir, cidx_dir, tmp, checksum, list(zip(lay.oids, lay.starts, crcs, strict=True)),
                        index)
    return PackCopy(name, locations, chunks, p.size)


def transfer(src: ObjectDB, objects: list[tuple[ObjectID, int]], pack_dir: str, cidx_dir: str,  # noqa: PLR0913 - the transfer's source, destination and checks
             claims: Mapping[bytes, tuple[bytes, int]], *, hostile: bool,
             progress: ProgressFn | None = None, label: str = "copying") -> CopyStats:
    """Copy ``objects`` from ``src`` into published packs in ``pack_dir``.

    A source pack whose every object is in ``objects`` (the usual case: a commit's
    pack holds only the objects it added) is copied whole (:func:`copy_whole_pack`);
    everything else -- objects of packs the destination partly has, loose
    objects, packs with deltas -- goes entry by entry into one new pack
    (:func:`copy_objects`).  ``hostile`` selects full verification (a pull) or
    the checks of a store's own data (a push).

    Raises:
        CorruptObjectError: naming the first object or pack that does not verify;
            packs published before stay (unreferenced: gc's business).
    """
    stats = CopyStats()
    if not objects:
        return stats
    reader = EntryReader(src)
    try:
        where = reader.locate([bytes.fromhex(o.decode()) for o, _ in objects])
        wanted = Counter(loc[0] for loc in where if loc is not None)
        copied: set[int] = set()
        for pi, n in sorted(wanted.items()):
            p = reader.packs[pi]
            if n != p.idx.count:
                continue  # the destination has some of it: copy what it lacks, entry by entry
            try:
                pc = copy_whole_pack(p, pack_dir, cidx_dir, claims, hostile=hostile)
            except NotWholeObjects:
                continue
            copied.add(pi)
            stats.packs.append(pc)
            stats.objects += n
            stats.pack_bytes += pc.size
            if hostile:
                stats.chunks.update(pc.chunks)
            if progress:
                progress(label, stats.pack_bytes, 0)
        rest = [o for o, loc in zip(objects, where, strict=True) if loc is None or loc[0] not in copied]
        entries = copy_objects(src, rest, pack_dir, cidx_dir, claims, verify_chunks=hostile, progress=progress,
                               label=label, reader=reader, done=stats.pack_bytes)
    finally:
        reader.close()
    stats.objects += entries.objects
    stats.pack_bytes += entries.pack_bytes
    stats.chunks.update(entries.chunks)
    stats.pack, stats.writer = entries.pack, entries.writer
    return stats


def scratch_cidx_dir(git_dir: str) -> str:
    """Where a pushed pack's ``.cidx`` goes: the remote's chunk index, or a scratch directory.

    A remote that is not a casstore store (``git init --bare``) gets no sidecar:
    the caller removes the scratch directory (``tempfile.mkdtemp``) afterwards.
    """
    cidx = os.path.join(git_dir, "cas", "chunkidx")
    if os.path.isdir(cidx):
        return cidx
    return tempfile.mkdtemp(prefix="cas-cidx-")

