"""Reading many objects of one kind at once, straight from their packs.

A full read of a big domain index (model/indextree.py) reads tens of thousands of
small trees; one object-store lookup each costs more than the reading.  Here they
are located in the packs' indexes and inflated from the pack files in pack order,
each still checked against its id; anything else (loose, a delta, damage) goes
through ``ObjectDB.read_raw``, which names the problem.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Sequence
from typing import cast

from dulwich.objects import ObjectID, Tree

from ..errors import CorruptObjectError
from .odb import ObjectDB
from .packwriter import parse_object_header

#: a tree this large is not one casstore wrote (an index leaf of 128 IDs is ~20 KB): ``read_raw`` decides
_MAX_TREE = 64 << 20


def _inflate_tree(fd: int, offset: int, oid: bytes) -> bytes | None:
    """The content of the tree ``oid`` (binary) whose pack entry starts at ``offset``, verified.

    None when the entry is not a whole tree that hashes to ``oid`` (a delta, another
    type, damage): the caller then reads it through the object store, which
    resolves deltas and names what is wrong.
    """
    data = os.pread(fd, 4096, offset)
    try:
        type_num, size, hlen = parse_object_header(data)
    except IndexError:
        return None
    if type_num != Tree.type_num or size > _MAX_TREE:
        return None
    need = hlen + size + (size >> 12) + (size >> 14) + 64  # zlib's bound on a stream of ``size`` bytes
    if len(data) < need:
        data = os.pread(fd, need, offset)
    d = zlib.decompressobj()
    try:
        raw = d.decompress(memoryview(data)[hlen:], size + 1)
    except zlib.error:
        return None
    if len(raw) != size or not d.eof or hashlib.sha1(b"tree %d\x00" % size + raw).digest() != oid:
        return None
    return raw


def read_trees(odb: ObjectDB, ids: Sequence[ObjectID]) -> list[bytes]:  # noqa: C901, PLR0912 - locate, read in pack order, fall back: each with its failure path
    """The content of the trees ``ids``, each verified against its id (as ``ObjectDB.read_raw``).

    A full read of a big index reads tens of thousands of small trees: each is
    located in the packs' indexes and inflated from its pack directly, in pack
    order, instead of one object-store lookup per tree.  Loose trees, deltas and
    anything that does not verify go through ``read_raw``, which names the problem.

    Raises:
        CorruptObjectError: an object that is not a tree, or damaged.
        MissingObjectError: an object that is not in the store.
    """
    out: list[bytes | None] = [None] * len(ids)
    oids = [bytes.fromhex(i.decode()) for i in ids]
    todo: list[int] = []
    # where each tree is: loose ones first (one stat), then the packs, the last one that
    # had a tree first (a level's trees were written together): a store of many packs
    # pays about one index lookup per tree, not one per pack
    packs = list(odb.store.packs) if len(ids) > 1 else []
    found: dict[int, list[tuple[int, int]]] = {}  # pack number -> (offset, i)
    for i, tid in enumerate(ids):
        if not packs or os.path.exists(os.path.join(odb.objects_dir, tid[:2].decode(), tid[2:].decode())):
            todo.append(i)
            continue
        for k, pack in enumerate(packs):
            try:
                offset = pack.index.object_offset(oids[i])  # type: ignore[arg-type]
            except KeyError:
                continue
            except Exception:  # a damaged index (dulwich's zoo), a pack gone meanwhile: read_raw decides
                todo.append(i)
                break
            found.setdefault(id(pack), []).append((offset, i))
            if k:
                packs.insert(0, packs.pop(k))
            break
        else:
            todo.append(i)
    by_id = {id(p): p for p in packs}
    for key, hits in found.items():
        idx_path = getattr(by_id[key].index, "path", None)  # a FilePackIndex's: <name>.idx beside <name>.pack
        try:
            if not isinstance(idx_path, str) or not idx_path.endswith(".idx"):
                raise FileNotFoundError(idx_path)
            fd = os.open(idx_path[: -len(".idx")] + ".pack", os.O_RDONLY)
        except OSError:  # a pack gone meanwhile (gc): read_raw finds the trees where they are now
            todo.extend(i for _, i in hits)
            continue
        try:
            for offset, i in sorted(hits):
                out[i] = _inflate_tree(fd, offset, oids[i])
        finally:
            os.close(fd)
        todo.extend(i for _, i in hits if out[i] is None)
    for i in todo:
        type_num, raw = odb.read_raw(ids[i])
        if type_num != Tree.type_num:
            raise CorruptObjectError(ids[i].decode(), "is not a tree, in domain index")
        out[i] = raw
    return cast("list[bytes]", out)
