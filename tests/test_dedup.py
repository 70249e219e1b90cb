"""Unchanged chunks are never stored twice (checked by bytes and counts, not time)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

import casstore
from casstore.objects.chunkindex import Sidecar
from casstore.objects.packidx import PackIdx
from casstore.objects.refs import domain_ref, model_ref
from tests.conftest import assert_git_fsck, write_random

MiB = 1 << 20


def pack_bytes(store: casstore.Store) -> int:
    d = os.path.join(store.path, "objects", "pack")
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".pack"))


def packs(store: casstore.Store) -> set[str]:
    return {f[:-5] for f in os.listdir(os.path.join(store.path, "objects", "pack")) if f.endswith(".pack")}


def pack_entries(store: casstore.Store, names: set[str]) -> tuple[dict[bytes, int], set[bytes]]:
    """Every object in the packs ``names``: oid -> its entry's bytes in the pack (read from the
    packs' .idx), and the oids that are chunk blobs (listed in the packs' .cidx)."""
    sizes: dict[bytes, int] = {}
    chunks: set[bytes] = set()
    for name in names:
        pack = os.path.join(store.path, "objects", "pack", name + ".pack")
        idx = PackIdx(pack[:-5] + ".idx")
        try:
            starts, ends = idx.entry_bounds(os.path.getsize(pack))
            sizes.update({bytes(idx.sha(i)): int(ends[i] - starts[i]) for i in range(idx.count)})
        finally:
            idx.close()
        cidx = os.path.join(store.path, "cas", "chunkidx", name + ".cidx")
        if os.path.exists(cidx):
            chunks |= {e.tobytes() for e in Sidecar(cidx, name + ".pack").entries["oid"]}
    return sizes, chunks


def reachable(store: casstore.Store, heads: list[bytes]) -> set[bytes]:
    """Binary oids of the commits, trees and blobs reachable from ``heads`` (hex oids)."""
    seen: set[bytes] = set()
    todo = list(heads)
    while todo:
        sha = todo.pop()
        if bytes.fromhex(sha.decode()) in seen:
            continue
        seen.add(bytes.fromhex(sha.decode()))
        obj = store.odb.read(sha)
        if obj.type_name == b"commit":
            todo += [obj.tree, *obj.parents]  # type: ignore[attr-defined]
        elif obj.type_name == b"tree":
            for e in obj.items():  # type: ignore[attr-defined]
                if e.mode == 0o160000:
                    continue
                if stat.S_ISDIR(e.mode):
                    todo.append(e.sha)
                else:
                    seen.add(bytes.fromhex(e.sha.decode()))
    return seen


def test_same_model_twice_stores_no_new_chunks(store: casstore.Store, forest: tuple) -> None:
    clf, _ = forest
    first = store.commit_models("d", model=clf)
    before = packs(store)
    old_heads = [store.refs.get(domain_ref("d")), store.refs.get(model_ref("d", first["model_id"]))]
    second = store.commit_models("d", model=clf)
    assert second["stats"]["chunks_new"] == 0
    assert second["stats"]["bytes_stored"] == 0
    assert second["stats"]["chunks_total"] == first["stats"]["chunks_total"]
    # the commit's one pack holds its metadata only: no chunk, and nothing stored before
    new = packs(store) - before
    assert len(new) == 1, new
    sizes, chunks = pack_entries(store, new)
    assert chunks == set()
    heads = [store.refs.get(domain_ref("d")), store.refs.get(model_ref("d", second["model_id"]))]
    added = reachable(store, [h for h in heads if h is not None]) - reachable(
        store, [h for h in old_heads if h is not None])
    assert set(sizes) == added
    assert sum(sizes.values()) < 4096, sizes  # trees, a manifest and two commits


def test_ten_percent_change_stores_about_ten_percent(store: casstore.Store, tmp_path: Path) -> None:
    size = 64 * MiB
    v1 = tmp_path / "v1" / "weights.bin"
    v1.parent.mkdir()
    data = bytearray(write_random(v1, size, seed=1))
    m1 = store.commit_models("d", model=str(v1), model_id="v1")
    assert m1["stats"]["bytes_stored"] >= size * 0.95  # random data does not compress
    rng = np.random.default_rng(2)
    blocks = rng.choice(size // MiB, size // MiB // 10, replace=False)  # 6 of 64 blocks
    for b in blocks:
        data[b * MiB : (b + 1) * MiB] = rng.bytes(MiB)
    v2 = tmp_path / "v2" / "weights.bin"
    v2.parent.mkdir()
    v2.write_bytes(data)
    before, before_packs = pack_bytes(store), packs(store)
    m2 = store.commit_models("d", model=str(v2), model_id="v2")
    grown = pack_bytes(store) - before
    changed = len(blocks) * MiB
    # bytes_stored is what the new chunk blobs take in the packs (the commit's pack also holds
    # its trees, manifest and commits: metadata, not stored model bytes)
    new = packs(store) - before_packs
    sizes, chunks = pack_entries(store, new)
    assert grown == sum(sizes.values()) + 32 * len(new)  # every entry counted; pack header and trailer
    assert len(chunks) == m2["stats"]["chunks_new"]
    assert m2["stats"]["bytes_stored"] == sum(sizes[oid] for oid in chunks)
    assert changed <= grown <= 0.15 * size, (changed, grown)
    assert m2["stats"]["chunks_new"] < m2["stats"]["chunks_total"] * 0.2
    assert Path(store.load("d", "v2")).read_bytes() == bytes(data)
    assert Path(store.load("d", "v1")).read_bytes() == v1.read_bytes()
    assert_git_fsck(store.path)


def test_duplicate_chunks_inside_one_commit_stored_once(store: casstore.Store, tmp_path: Path) -> None:
    block = np.random.default_rng(3).bytes(4 * MiB)
    f = tmp_path / "twice.bin"
    f.write_bytes(block + block)
    meta = store.commit_models("d", model=str(f))
    assert meta["stats"]["bytes_stored"] < 4.5 * MiB
    assert Path(store.load("d", meta["model_id"])).read_bytes() == block + block


def test_compressible_data_is_compressed(store: casstore.Store, tmp_path: Path) -> None:
    f = tmp_path / "zeros.npy"
    np.save(f, np.zeros(4 * MiB // 4, dtype=np.float32))
    meta = store.commit_models("d", model=str(f))
    assert meta["stats"]["bytes_stored"] < 64 * 1024
