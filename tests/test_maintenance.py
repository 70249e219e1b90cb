"""Pack count stays logarithmic; loose objects get packed; nothing is lost on the way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import casstore
from casstore.objects.maintenance import geometric_rollup, maintain
from tests.conftest import assert_git_fsck


@pytest.mark.parametrize(
    ("sizes", "k"),
    [
        ([], 0),
        ([10], 0),
        ([10, 100], 0),  # 100 >= 2 * 10: geometric already
        ([10, 15], 2),
        ([1, 1, 1, 100], 3),
        ([1, 2, 6, 18, 54], 0),  # each pack at least twice all smaller ones together
        ([1, 2, 4, 8, 16], 5),
        ([1, 2, 4, 8, 9], 5),
        ([5, 100, 150, 1000], 3),
    ],
)
def test_geometric_rollup(sizes: list[int], k: int) -> None:
    assert geometric_rollup(sizes) == k


def _packs(store: casstore.Store) -> list[str]:
    return [f for f in os.listdir(os.path.join(store.path, "objects", "pack")) if f.endswith(".pack")]


def test_many_commits_keep_few_packs(store: casstore.Store, tmp_path: Path) -> None:
    payloads = {}
    for i in range(60):
        f = tmp_path / f"m{i}.bin"
        payloads[f"m{i}"] = os.urandom(20_000 + i)
        f.write_bytes(payloads[f"m{i}"])
        store.commit_models("d", model=str(f), model_id=f"m{i}")
    assert len(_packs(store)) <= 8, _packs(store)
    for mid, data in payloads.items():
        assert Path(store.load("d", mid)).read_bytes() == data
    assert store.fsck(read_data=True).ok
    assert_git_fsck(store.path)


def test_forced_maintenance_packs_loose_objects_and_merges(store: casstore.Store, tmp_path: Path) -> None:
    for i in range(5):
        f = tmp_path / f"m{i}.bin"
        f.write_bytes(os.urandom(10_000))
        store.commit_models("d", model=str(f), model_id=f"m{i}")
    # a commit writes its objects into its pack (ObjectDB.deferred); a state change leaves some loose
    store.create_model_state("prod")
    store.set_model_state("d", "m4", "prod")
    report = maintain(store.repo, force=True)
    assert report.loose_packed > 0
    loose = [d for d in os.listdir(os.path.join(store.path, "objects")) if len(d) == 2
             and os.listdir(os.path.join(store.path, "objects", d))]
    assert loose == []
    assert len(_packs(store)) == 1
    # dedup still works against the merged pack, reads still verify
    again = store.commit_models("d", model=str(tmp_path / "m0.bin"), model_id="again")
    assert again["stats"]["chunks_new"] == 0
    assert store.fsck(read_data=True).ok
    assert [e.model_id for e in store.log("d")][:2] == ["again", "m4"]
    # gc on merged packs keeps everything reachable
    store.delete_model("d", "m1")
    store.gc(grace_period=0)
    assert store.fsck(read_data=True).ok
    assert_git_fsck(store.path)


def test_reader_survives_packs_merged_under_it(store: casstore.Store, tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    data = os.urandom(2 << 20)
    f.write_bytes(data)
    store.commit_models("d", model=str(f), model_id="w")
    reader = casstore.open(store.path)
    reader.odb.index.refresh()  # the reader has the old pack's locations cached
    other = casstore.open(store.path)
    for i in range(3):
        g = tmp_path / f"x{i}.bin"
        g.write_bytes(os.urandom(5000))
        other.commit_models("d", model=str(g))
    maintain(other.repo, force=True)
    assert Path(reader.load("d", "w")).read_bytes() == data
