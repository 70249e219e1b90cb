"""A pulled store may be hostile: nothing it sends may change the local store unless it verifies."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from dulwich.objects import Blob, Commit, Tree

import casstore
from casstore import CasError, CorruptObjectError
from tests.conftest import assert_git_fsck
from tests.helpers.hostile import forge_model, hostile_store, snapshot
from tests.servers import git_daemon


@pytest.fixture
def victim(tmp_path: Path) -> casstore.Store:
    s = casstore.open(tmp_path / "victim")
    f = tmp_path / "own.bin"
    f.write_bytes(os.urandom(100_000))
    s.commit_models("d", model=str(f), model_id="own")
    return s


def expect_refused(victim: casstore.Store, path: str, match: str, models: tuple[str, ...] = ("own",)) -> None:
    """The pull is refused over a path and over git://, and the victim is unchanged (holding ``models``)."""
    before = snapshot(victim.path)
    with git_daemon(Path(path).parent) as base:
        for url in (path, f"{base}/{Path(path).name}"):
            with pytest.raises(CasError, match=match):
                victim.pull(url)
            assert snapshot(victim.path) == before
    assert sorted(victim.list_models("d") if models else []) == sorted(models)
    assert victim.fsck(read_data=True).ok
    assert_git_fsck(victim.path)


def test_path_traversal_in_manifest(tmp_path: Path, victim: casstore.Store) -> None:
    s, path = hostile_store(tmp_path)

    def evil(doc: dict) -> None:  # type: ignore[type-arg]
        doc["model_id"] = "evil"
        doc["files"][0]["path"] = "../../../../tmp/pwned"
        doc["frameworks"][0]["files"] = ["../../../../tmp/pwned"]

    forge_model(s, "evil", evil)
    expect_refused(victim, str(path), "unsafe file name")
    assert not os.path.exists("/tmp/pwned")


def test_chunk_bytes_do_not_match_manifest_keys(tmp_path: Path, victim: casstore.Store) -> None:
    s, path = hostile_store(tmp_path)

    def lie(doc: dict) -> None:  # type: ignore[type-arg]
        doc["model_id"] = "liar"
        keys = bytearray(doc["files"][0]["chunk_keys"])
        keys[0] ^= 1  # claims a chunk key its bytes do not have: would poison dedup
        doc["files"][0]["chunk_keys"] = bytes(keys)

    forge_model(s, "liar", lie)
    # whichever model is verified first, the lie is caught before anything is stored
    expect_refused(victim, str(path), "BLAKE3|claimed under two keys")


def test_ref_carries_another_model(tmp_path: Path, victim: casstore.Store) -> None:
    s, path = hostile_store(tmp_path)
    sha = s.refs.get(b"refs/cas/models/d/legit")
    s.refs.container.set_if_equals(b"refs/cas/models/d/impostor", None, sha)
    expect_refused(victim, str(path), "carries model d/legit")


@pytest.mark.parametrize("ref", ["refs/cas/models/d/a+b", "refs/cas/models/d/x/y", "refs/cas/models/bad%dom/x",
                                 "refs/cas/domains/-a+", "refs/cas/whatever"])
def test_bad_ref_names(tmp_path: Path, victim: casstore.Store, ref: str) -> None:
    s, path = hostile_store(tmp_path)
    sha = s.refs.get(b"refs/cas/models/d/legit").decode()
    subprocess.run(["git", "--git-dir", str(path), "update-ref", ref, sha], check=True)
    expect_refused(victim, str(path), "bad ref name")


def replace_first_chunk(s: casstore.Store, blob_id: bytes, ref_id: str, message: bytes) -> None:
    """Point refs/cas/models/d/<ref_id> at a copy of the legit model whose first chunk is ``blob_id``."""
    legit = s.refs.get(b"refs/cas/models/d/legit")
    c = s.odb.read(legit, Commit)
    root = s.odb.read(c.tree, Tree)
    files = s.odb.read(root[b"files"][1], Tree)
    chunks = s.odb.read(files[b"00000000"][1], Tree)
    chunks.add(b"00000000", 0o100644, blob_id)
    files.add(b"00000000", 0o040000, s.odb.write_loose(chunks))
    root.add(b"files", 0o040000, s.odb.write_loose(files))
    nc = Commit()
    nc.tree = s.odb.write_loose(root)
    nc.author = nc.committer = c.author
    nc.author_time = nc.commit_time = c.commit_time
    nc.author_timezone = nc.commit_timezone = 0
    nc.message = message
    name = b"refs/cas/models/d/" + ref_id.encode()
    s.refs.container.set_if_equals(name, s.refs.get(name), s.odb.write_loose(nc))


def test_missing_chunk(tmp_path: Path, victim: casstore.Store) -> None:
    s, path = hostile_store(tmp_path)
    # a model whose chunk tree names a blob the remote does not have
    replace_first_chunk(s, b"1" * 40, "legit2", b"missing\n")
    before = snapshot(victim.path)
    with pytest.raises(CasError):
        victim.pull(str(path))
    assert snapshot(victim.path) == before


def test_decompression_bomb_chunk(tmp_path: Path, victim: casstore.Store) -> None:
    import zstandard

    from casstore.objects import codec

    s, path = hostile_store(tmp_path)
    bomb = codec.ZSTD + zstandard.ZstdCompressor().compress(b"\0" * (64 << 20))
    replace_first_chunk(s, s.odb.write_loose(Blob.from_string(bomb)), "legit", b"bomb\n")
    before = snapshot(victim.path)
    with pytest.raises(CorruptObjectError, match="declares"):
        victim.pull(str(path))
    assert snapshot(victim.path) == before


def alias_legit(s: casstore.Store, ref_id: str) -> None:
    """refs/cas/models/d/<ref_id> -> the commit of d/legit, recorded in d's history as stock git could push it."""
    from dulwich.objects import ObjectID

    from casstore.model.history import append_event

    sha = ObjectID(s.refs.get(b"refs/cas/models/d/legit"))
    s.refs.container.set_if_equals(b"refs/cas/models/d/" + ref_id.encode(), None, sha)
    append_event(s.odb, s.refs, "d", b"x <x@x>", "commit", ref_id, sha,
                 lambda idx: idx.models.__setitem__(ref_id, sha))


def test_a_ref_aliasing_a_model_the_store_already_holds(tmp_path: Path, victim: casstore.Store) -> None:
    """issue 20 item 3: the victim pulled d/legit; then the remote gains d/evil -> that same commit.
    The objects are all present, and the ref is refused all the same (before: taken in, fsck then failed)."""
    s, path = hostile_store(tmp_path)
    assert victim.pull(str(path)).ok
    alias_legit(s, "evil")
    expect_refused(victim, str(path), "ref d/evil carries model d/legit", ("legit", "own"))
    fresh = casstore.open(tmp_path / "fresh")
    expect_refused(fresh, str(path), "ref d/evil carries model d/legit", ())


def test_a_manifest_claiming_another_files_digest(tmp_path: Path, victim: casstore.Store) -> None:
    """issue 20 item 2: d/liar has legit's chunks (all present in a store that pulled legit)
    but records another file's BLAKE3: refused like a chunk that does not match its key."""
    s, path = hostile_store(tmp_path)

    def lie(doc: dict) -> None:  # type: ignore[type-arg]
        doc["model_id"] = "liar"
        doc["files"][0]["blake3"] = hashlib.blake2s(b"another file").digest()

    forge_model(s, "liar", lie)
    expect_refused(victim, str(path), "BLAKE3 digest")  # the chunks are new here
    s.refs.container.remove_if_equals(b"refs/cas/models/d/liar", None)
    assert victim.pull(str(path)).ok
    forge_model(s, "liar", lie)
    expect_refused(victim, str(path), "d/liar:legit.bin: file does not match its manifest BLAKE3 digest",
                   ("legit", "own"))  # every chunk was here already


def test_a_remote_carrying_a_false_digest_and_an_alias(tmp_path: Path, victim: casstore.Store) -> None:
    """issue 20 items 2 and 3 together, as a teammate with push access could leave a remote:
    d/evil aliases d/legit's commit and d/liar records a false digest.  A store that already
    holds the aliased commit and a fresh store both refuse the pull and stay byte-identical."""
    s, path = hostile_store(tmp_path)
    assert victim.pull(str(path)).ok  # holds d/legit, the commit d/evil will alias

    def lie(doc: dict) -> None:  # type: ignore[type-arg]
        doc["model_id"] = "liar"
        doc["files"][0]["blake3"] = bytes(32)

    forge_model(s, "liar", lie)
    alias_legit(s, "evil")
    fresh = casstore.open(tmp_path / "fresh")
    for store, models in ((victim, ("legit", "own")), (fresh, ())):
        expect_refused(store, str(path), "ref d/evil carries model d/legit|BLAKE3 digest", models)
    # each lie alone is refused too, into both stores
    s.refs.container.remove_if_equals(b"refs/cas/models/d/liar", None)
    for store, models in ((victim, ("legit", "own")), (fresh, ())):
        expect_refused(store, str(path), "ref d/evil carries model d/legit", models)
    s.refs.container.remove_if_equals(b"refs/cas/models/d/evil", None)
    forge_model(s, "liar", lie)
    for store, models in ((victim, ("legit", "own")), (fresh, ())):
        expect_refused(store, str(path), "d/liar:legit.bin: file does not match its manifest BLAKE3 digest",
                       models)
