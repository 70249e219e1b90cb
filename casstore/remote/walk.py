"""Object graph walks for push: what the remote has, what it lacks, as pack entries."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Iterator

from dulwich.objects import ObjectID
from dulwich.pack import UnpackedObject

from ..errors import MissingObjectError
from ..objects.graph import TYPE_NUMS, children
from ..objects.odb import ObjectDB
from ..objects.packs import PackReader
from ..objects.packwriter import object_header, parse_object_header
from ..util.progress import ProgressFn


def walk(odb: ObjectDB, tips: Iterable[ObjectID], stop: set[bytes] | None = None) -> Iterator[tuple[ObjectID, int]]:
    """(hex oid, type) of every object reachable from ``tips``, each once.

    Gitlinks are not followed.  Objects in ``stop`` (binary oids) are neither
    yielded nor descended into; ``stop`` should be closed under reachability
    (everything the other side has).  Blobs are never read.
    """
    stop = stop or set()
    seen: set[bytes] = set()
    stack: list[tuple[ObjectID, int]] = []
    for t in tips:
        raw = bytes.fromhex(t.decode())
        if raw not in stop and raw not in seen:
            seen.add(raw)
            stack.append((t, 0))
    while stack:
        oid, type_num = stack.pop()
        if type_num == 3:
            yield oid, 3
            continue
        obj = odb.read(oid)
        type_num = TYPE_NUMS[obj.type_name]
        yield oid, type_num
        inner, blobs = children(obj)
        for child, child_type in [(c, 0) for c in inner] + [(b, 3) for b in blobs]:
            raw = bytes.fromhex(child.decode())
            if raw in stop or raw in seen:
                continue
            seen.add(raw)
            stack.append((child, child_type))


def reachable_set(odb: ObjectDB, tips: Iterable[ObjectID]) -> set[bytes]:
    return {bytes.fromhex(oid.decode()) for oid, _ in walk(odb, tips)}


class EntrySource:
    """Pack entries of objects, reused verbatim from casstore packs when possible.

    Chunk blobs sit in our packs zlib-compressed at level 0 around zstd data: we
    send those bytes as they are instead of inflating and deflating them again
    (dulwich's send_pack would re-zlib every object at the default level).
    Other objects are deflated at level 1.
    """

    def __init__(self, odb: ObjectDB, progress: ProgressFn | None = None) -> None:
        self.odb = odb
        self.progress = progress
        # only casstore packs (with a chunk index) are guaranteed delta-free
        self.reader = PackReader(odb.pack_dir, [fn[:-5] for fn in os.listdir(odb.cidx_dir) if fn.endswith(".cidx")])
        self.bytes_sent = 0

    def close(self) -> None:
        self.reader.close()

    def records(self, objects: list[tuple[ObjectID, int]]) -> Iterator[UnpackedObject]:
        raws = [bytes.fromhex(o.decode()) for o, _ in objects]
        where = self.reader.locate(raws)
        for (oid, _type_num), raw, loc in zip(objects, raws, where, strict=True):
            if loc is not None:
                entry = self.reader.read(loc)
                t, size, _ = parse_object_header(entry)
                u = UnpackedObject(t, sha=raw, decomp_len=size)
                u.comp_chunks = [entry]
            else:
                try:
                    t, content = self.odb.read_raw(oid)
                except MissingObjectError:
                    raise MissingObjectError(oid.decode(), "needed for the push but missing locally") from None
                u = UnpackedObject(t, sha=raw, decomp_len=len(content))
                entry = object_header(t, len(content)) + zlib.compress(content, 1)
                u.comp_chunks = [entry]
            self.bytes_sent += len(entry)
            if self.progress:
                self.progress("sending", self.bytes_sent, 0)
            yield u
