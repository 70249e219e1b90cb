"""Unchanged chunks are never stored twice (checked by bytes and counts, not time)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import casstore
from tests.conftest import assert_git_fsck, write_random

MiB = 1 << 20


def pack_bytes(store: casstore.Store) -> int:
    d = os.path.join(store.path, "objects", "pack")
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".pack"))


def test_same_model_twice_stores_no_new_chunks(store: casstore.Store, forest: tuple) -> None:
    clf, _ = forest
    first = store.commit_models("d", model=clf)
    before = pack_bytes(store)
    second = store.commit_models("d", model=clf)
    assert second["stats"]["chunks_new"] == 0
    assert second["stats"]["bytes_stored"] == 0
    assert second["stats"]["chunks_total"] == first["stats"]["chunks_total"]
    assert pack_bytes(store) == before


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
    before = pack_bytes(store)
    m2 = store.commit_models("d", model=str(v2), model_id="v2")
    grown = pack_bytes(store) - before
    changed = len(blocks) * MiB
    assert m2["stats"]["bytes_stored"] == grown - 32  # pack header and trailer
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
