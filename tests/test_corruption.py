"""Corrupt or missing objects are detected and named; wrong bytes are never returned."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import casstore
from casstore import CorruptObjectError
from casstore.objects import odb as odb_module
from tests.conftest import write_random
from tests.helpers.damage import flip_byte


@pytest.fixture(autouse=True)
def _loose_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """These cases damage loose metadata objects: commits write them loose here, as casstore did before
    a commit packed its objects (and as state changes, notes and deletions still do)."""
    monkeypatch.setattr(odb_module, "DEFER", False)


def _commit_file(store: casstore.Store, tmp_path: Path, size: int = 1 << 20) -> tuple[dict, bytes]:
    f = tmp_path / "w.bin"
    data = write_random(f, size, seed=7)
    return store.commit_models("d", model=str(f), model_id="m"), data


def _a_chunk(store: casstore.Store) -> tuple[str, int, int, str]:
    store.odb.index.refresh()
    sc = store.odb.index.sidecars[0]
    loc = sc.location(sc.count // 2)
    return os.path.join(store.odb.pack_dir, loc.pack + ".pack"), loc.offset, loc.length, loc.oid.hex()


def test_flipped_framing_byte_found_by_fsck_not_returned_wrong(store: casstore.Store, tmp_path: Path) -> None:
    """A flip in the zlib Adler-32 of a stored chunk leaves its content intact.

    load verifies content (BLAKE3) and returns the right bytes; fsck --read-data
    verifies pack checksums and names the damaged pack.
    """
    _, data = _commit_file(store, tmp_path)
    pack, off, length, oid = _a_chunk(store)
    flip_byte(pack, off + length - 2)
    store2 = casstore.open(store.path)
    assert Path(store2.load("d", "m")).read_bytes() == data
    report = store2.fsck(read_data=True)
    assert not report.ok and os.path.basename(pack) in str(report.problems)
    assert store2.fsck().ok  # without --read-data nothing is read


@pytest.mark.parametrize("where", ["header", "middle", "last-data-byte"])
def test_flipped_chunk_byte_is_named_on_load_and_download(store: casstore.Store, tmp_path: Path, where: str) -> None:
    _commit_file(store, tmp_path)
    pack, off, length, oid = _a_chunk(store)
    flip_byte(pack, off + {"header": 3, "middle": length // 2, "last-data-byte": length - 5}[where])
    store2 = casstore.open(store.path)  # fresh process view, no caches
    with pytest.raises(CorruptObjectError) as ei:
        store2.load("d", "m")
    assert ei.value.oid == oid
    out = tmp_path / "out"
    with pytest.raises(CorruptObjectError, match=oid):
        store2.download(out, "d", "m")
    assert not (out / "w.bin").exists()  # nothing partial under the final name
    assert not [p for p in out.iterdir()]
    report = store2.fsck(read_data=True)
    assert not report.ok and oid in str(report.problems[0])


def test_corruption_found_without_chunk_index_too(store: casstore.Store, tmp_path: Path) -> None:
    _, data = _commit_file(store, tmp_path)
    pack, off, length, oid = _a_chunk(store)
    shutil.rmtree(store.odb.cidx_dir)
    s2 = casstore.open(store.path)
    assert Path(s2.load("d", "m")).read_bytes() == data  # readable through dulwich by oid
    flip_byte(pack, off + length // 2)
    s3 = casstore.open(store.path)
    s3.load_cache().clear()  # the first load's verified copy would be reused: read the pack again
    with pytest.raises(CorruptObjectError):
        s3.load("d", "m")


def test_corrupt_manifest_is_named(store: casstore.Store, tmp_path: Path) -> None:
    meta, _ = _commit_file(store, tmp_path)
    from dulwich.objects import Commit, Tree

    c = store.odb.read(meta["commit"].encode(), Commit)
    root = store.odb.read(c.tree, Tree)
    _, manifest_id = root[b"manifest"]
    hexs = manifest_id.decode()
    path = os.path.join(store.path, "objects", hexs[:2], hexs[2:])
    flip_byte(path, os.path.getsize(path) // 2)
    s2 = casstore.open(store.path)
    with pytest.raises(CorruptObjectError, match=hexs):
        s2.get_model_info("d", "m")
    report = s2.fsck()
    assert not report.ok and hexs in str(report.problems[0])


def test_missing_pack_is_reported(store: casstore.Store, tmp_path: Path) -> None:
    _commit_file(store, tmp_path)
    pack, _, _, oid = _a_chunk(store)
    os.unlink(pack)
    os.unlink(pack[:-5] + ".idx")
    s2 = casstore.open(store.path)
    with pytest.raises(casstore.MissingObjectError):
        s2.load("d", "m")
    report = s2.fsck()
    assert not report.ok
    assert any("missing" in str(p) for p in report.problems)


def test_clean_store_passes_fsck(store: casstore.Store, tmp_path: Path, forest: tuple) -> None:
    _commit_file(store, tmp_path)
    store.commit_models("d2", model=forest[0])
    report = store.fsck(read_data=True)
    assert report.ok, report.problems
    assert report.models == 2 and report.bytes_verified > 1 << 20


# -- issue 9: damage is reported, never a traceback, never turned into loss -------------


def _pack_files(store: casstore.Store) -> tuple[str, str]:
    store.odb.index.refresh()
    (sc,) = store.odb.index.sidecars
    base = os.path.join(store.odb.pack_dir, sc.pack)
    return base + ".pack", base + ".idx"


@pytest.mark.parametrize("table", ["sha", "offset"])
def test_flipped_idx_byte_is_reported_and_never_loses_chunks(store: casstore.Store, tmp_path: Path,
                                                              table: str) -> None:
    """Case 7: a damaged .idx made roll-up and gc copy chunks under wrong ids or drop them."""
    from casstore.objects.maintenance import maintain

    _, data = _commit_file(store, tmp_path)
    _, idx = _pack_files(store)
    good = Path(idx).read_bytes()
    n = int.from_bytes(good[8 + 1020 : 8 + 1024], "big")
    pos = 8 + 1024 + (20 * (n // 2) + 5 if table == "sha" else 24 * n + 4 * (n // 2) + 3)
    flip_byte(idx, pos)
    s2 = casstore.open(store.path)
    report = s2.fsck(read_data=True)
    assert not report.ok and os.path.basename(idx) in str(report.problems)
    with pytest.raises(casstore.CasError, match=os.path.basename(idx)):
        s2.gc(grace_period=0)
    maintain(s2.repo, force=True)  # the roll-up after ordinary commits
    s2.close()
    # nothing was copied or dropped on the damaged index's word: restoring it restores everything
    assert os.path.exists(idx)
    os.chmod(idx, 0o644)
    Path(idx).write_bytes(good)
    s3 = casstore.open(store.path)
    assert Path(s3.load("d", "m")).read_bytes() == data
    assert s3.fsck(read_data=True).ok


def test_truncated_idx_is_an_error_not_a_struct_error(store: casstore.Store, tmp_path: Path) -> None:
    """Case 12: an .idx cut to 100 bytes made every call raise struct.error."""
    _, data = _commit_file(store, tmp_path)
    _, idx = _pack_files(store)
    os.chmod(idx, 0o644)
    with open(idx, "r+b") as f:
        f.truncate(100)
    s2 = casstore.open(store.path)
    # the metadata is loose and the chunks are found through the .cidx, which points into the .pack
    assert Path(s2.load("d", "m")).read_bytes() == data
    report = s2.fsck()
    assert not report.ok and os.path.basename(idx) in str(report.problems)
    with pytest.raises(casstore.CasError, match="gc stopped before deleting anything"):
        s2.gc(grace_period=0)
    assert os.path.exists(idx[:-4] + ".pack")


def test_garbage_in_packed_refs_is_named(store: casstore.Store, tmp_path: Path) -> None:
    """Case 12: one bad line in packed-refs crashed list, commit, fsck and gc."""
    from tests.conftest import git

    _commit_file(store, tmp_path)
    assert git(store.path, "pack-refs", "--all").returncode == 0
    with open(os.path.join(store.path, "packed-refs"), "a") as f:
        f.write("this is not a ref line\n")
    s2 = casstore.open(store.path)
    for call in (lambda: s2.list_models("d"), lambda: s2.gc(grace_period=0),
                 lambda: s2.commit_models("d", model=str(tmp_path / "w.bin"), model_id="m2")):
        with pytest.raises(CorruptObjectError, match="packed-refs"):
            call()
    report = s2.fsck()
    assert not report.ok and "packed-refs" in str(report.problems)


def test_truncated_pack_does_not_fail_a_commit(store: casstore.Store, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Case 12: a half pack made `cas commit` print an IndexError traceback (exit 1) after committing."""
    from casstore.cli import main

    _commit_file(store, tmp_path)
    pack, _ = _pack_files(store)
    os.chmod(pack, 0o644)
    with open(pack, "r+b") as f:
        f.truncate(os.path.getsize(pack) // 2)
    other = tmp_path / "o.bin"
    write_random(other, 1 << 20, seed=8)  # as big as the damaged pack: the roll-up would merge them
    rc = main(["--store", store.path, "commit", "d", str(other), "--id", "m2"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "Traceback" not in err and all(line.startswith("cas: warning:") for line in err.splitlines())
    assert "truncated" in err
    with pytest.warns(UserWarning, match="truncated"):
        s2 = casstore.open(store.path)
    assert Path(s2.load("d", "m2")).read_bytes() == other.read_bytes()
    with pytest.raises(CorruptObjectError):
        s2.load("d", "m")
    assert main(["--store", store.path, "fsck"]) == 1
    assert os.path.basename(pack) in capsys.readouterr().out


def test_damaged_cidx_is_skipped_not_fatal(store: casstore.Store, tmp_path: Path) -> None:
    """Case 12: one bad byte in a .cidx made the store refuse to open; it must never be used to dedupe."""
    _, data = _commit_file(store, tmp_path)
    store.odb.index.refresh()
    (sc,) = store.odb.index.sidecars
    flip_byte(sc.path, os.path.getsize(sc.path) // 2)
    with pytest.warns(UserWarning, match="chunk index"):  # noqa: PT031 - the first of these reads to touch the index warns
        s2 = casstore.open(store.path)
        assert Path(s2.load("d", "m")).read_bytes() == data  # read by oid
        report = s2.fsck(read_data=True)
    assert not report.ok and os.path.basename(sc.path) in str(report.problems)
    meta = s2.commit_models("d", model=str(tmp_path / "w.bin"), model_id="m2")
    assert meta["stats"]["chunks_new"] == meta["stats"]["chunks_total"]  # no dedupe against it
    s2.gc(grace_period=0)
    assert Path(s2.load("d", "m")).read_bytes() == data
    assert Path(s2.load("d", "m2")).read_bytes() == data


def test_fsck_checks_history_ancestors_and_states(store: casstore.Store, tmp_path: Path) -> None:
    """Case 12: a missing older history commit or a broken states ref gave "ok"."""
    from dulwich.objects import Commit

    from casstore.model.states import STATES_REF
    from casstore.objects.refs import domain_ref

    _commit_file(store, tmp_path)
    store.create_model_state("prod")
    store.create_model_state("staging")
    store.set_model_state("d", "m", "prod")
    head = store.refs.get(domain_ref("d"))
    assert head is not None
    c = store.odb.read(head, Commit)
    assert isinstance(c, Commit)
    (parent,) = c.parents
    os.unlink(os.path.join(store.path, "objects", parent.decode()[:2], parent.decode()[2:]))
    report = casstore.open(store.path).fsck()
    assert not report.ok and parent.decode() in str(report.problems)

    states = store.refs.get(STATES_REF)
    assert states is not None
    s = store.odb.read(states, Commit)
    assert isinstance(s, Commit)
    (older,) = s.parents
    os.unlink(os.path.join(store.path, "objects", older.decode()[:2], older.decode()[2:]))
    report = casstore.open(store.path).fsck()
    assert older.decode() in str(report.problems)
    with open(os.path.join(store.path, "refs", "cas", "states"), "w") as f:
        f.write("garbage\n")
    report = casstore.open(store.path).fsck()
    assert "refs/cas/states" in str(report.problems)


def test_recommit_repairs_a_corrupt_chunk(store: casstore.Store, tmp_path: Path) -> None:
    """Case 13: a commit deduped against a corrupt chunk, and re-committing could not repair it."""
    from casstore.objects.maintenance import maintain

    _, data = _commit_file(store, tmp_path)
    pack, off, length, oid = _a_chunk(store)
    flip_byte(pack, off + length // 2)
    s2 = casstore.open(store.path)
    # not yet known to be corrupt: deduplicated (verifying every reused chunk would cost a full read)
    meta = s2.commit_models("d", model=str(tmp_path / "w.bin"), model_id="m2")
    assert meta["stats"]["chunks_new"] == 0
    with pytest.raises(CorruptObjectError, match=oid):
        s2.load("d", "m2")  # the read finds it: that copy is no longer offered for dedupe
    s3 = casstore.open(store.path)  # another process sees it too
    meta = s3.commit_models("d", model=str(tmp_path / "w.bin"), model_id="m3")
    assert meta["stats"]["chunks_new"] == 1
    for mid in ("m", "m2", "m3"):  # the fresh copy is preferred by every reader
        assert Path(s3.load("d", mid)).read_bytes() == data
    maintain(s3.repo, force=True)  # the roll-up keeps the good copy
    s3.gc(grace_period=0)
    s4 = casstore.open(store.path)
    for mid in ("m", "m2", "m3"):
        assert Path(s4.load("d", mid)).read_bytes() == data
    assert s4.fsck(read_data=True).ok


def test_fsck_read_data_also_distrusts_corrupt_chunks(store: casstore.Store, tmp_path: Path) -> None:
    _, data = _commit_file(store, tmp_path)
    pack, off, length, oid = _a_chunk(store)
    flip_byte(pack, off + length // 2)
    s2 = casstore.open(store.path)
    assert not s2.fsck(read_data=True).ok
    meta = s2.commit_models("d", model=str(tmp_path / "w.bin"), model_id="m2")
    assert meta["stats"]["chunks_new"] == 1
    assert Path(s2.load("d", "m")).read_bytes() == data


def test_copying_a_pack_onto_its_own_name_keeps_it(store: casstore.Store, tmp_path: Path) -> None:
    """Copying one pack whole gives identical bytes, hence the same name: it was then deleted."""
    from casstore.objects.maintenance import copy_packs

    _, data = _commit_file(store, tmp_path)
    pack, _ = _pack_files(store)
    name = os.path.basename(pack)[:-5]
    assert copy_packs(store.repo, [name])[0] == name
    s2 = casstore.open(store.path)
    assert Path(s2.load("d", "m")).read_bytes() == data
    assert s2.fsck(read_data=True).ok
