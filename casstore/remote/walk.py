"""Object graph walks for push: what the remote has, what it lacks, as pack entries."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from dulwich.objects import ObjectID
from dulwich.pack import UnpackedObject

from ..errors import MissingObjectError
from ..objects.graph import GITLINK as GITLINK
from ..objects.graph import TYPE_NUMS as TYPE_NUMS
from ..objects.graph import children
from ..objects.odb import ObjectDB
from ..objects.packidx import PackIdx
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


@dataclass
class _PackEntries:
    name: str
    idx: PackIdx
    starts: np.ndarray  # entry offsets in idx order
    lengths: np.ndarray


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
        self.packs: list[_PackEntries] = []
        for fn in sorted(os.listdir(odb.pack_dir)):
            name = fn[:-4]
            if not fn.endswith(".idx") or not os.path.exists(os.path.join(odb.cidx_dir, name + ".cidx")):
                continue  # only casstore packs are guaranteed delta-free
            idx = PackIdx(os.path.join(odb.pack_dir, fn))
            starts, ends = idx.entry_bounds(os.path.getsize(os.path.join(odb.pack_dir, name + ".pack")))
            self.packs.append(_PackEntries(name, idx, starts, ends - starts))
        self.bytes_sent = 0

    def close(self) -> None:
        for p in self.packs:
            p.idx.close()

    def records(self, objects: list[tuple[ObjectID, int]]) -> Iterator[UnpackedObject]:
        raws = [bytes.fromhex(o.decode()) for o, _ in objects]
        where: list[tuple[int, int] | None] = [None] * len(objects)
        for pi, p in enumerate(self.packs):
            pos = p.idx.find(raws)
            for i in np.nonzero(pos >= 0)[0].tolist():
                if where[i] is None:
                    where[i] = (pi, int(pos[i]))
        fds: dict[int, int] = {}
        try:
            for (oid, _type_num), raw, loc in zip(objects, raws, where, strict=True):
                if loc is not None:
                    p = self.packs[loc[0]]
                    fd = fds.get(loc[0])
                    if fd is None:
                        fd = fds[loc[0]] = os.open(os.path.join(self.odb.pack_dir, p.name + ".pack"), os.O_RDONLY)
                    entry = os.pread(fd, int(p.lengths[loc[1]]), int(p.starts[loc[1]]))
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
        finally:
            for fd in fds.values():
                os.close(fd)
