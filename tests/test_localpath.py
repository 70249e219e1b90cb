"""Path remotes: objects travel as copied pack entries, refs through git (casstore/remote/localpath.py)."""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import casstore
from casstore import CorruptObjectError
from casstore.store import init_store
from tests.conftest import assert_git_fsck, git, write_random
from tests.helpers.hostile import snapshot

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent


def _cas(*args: str, fsize_kib: int | None = None) -> subprocess.CompletedProcess[str]:
    """`cas` in a child process; with ``fsize_kib`` the kernel kills it (SIGXFSZ) on the
    first write that makes a file larger: a real crash in the middle of a pack copy."""
    limit = None
    if fsize_kib is not None:
        def limit() -> None:
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_kib * 1024, fsize_kib * 1024))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Python ignores SIGXFSZ (a write then fails with EFBIG and is cleaned up): restore the
    # default action so that the kernel kills the process where it stands
    main = ("import runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_DFL); "
            "sys.argv[0] = 'cas'; runpy.run_module('casstore', run_name='__main__')")
    return subprocess.run([sys.executable, "-c", main, *args], capture_output=True, text=True,
                          env=env, preexec_fn=limit, timeout=300)


def check_clean(*paths: Path) -> None:
    for p in paths:
        assert_git_fsck(p)
        report = casstore.Store(str(p)).fsck(read_data=True)
        assert report.ok, report.problems


def test_push_and_pull_copy_the_commits_pack_whole(tmp_path: Path) -> None:
    """The pack a commit wrote travels byte for byte (a kernel copy) to the remote and on to a
    fresh store, with its .idx and .cidx; it holds the commit's metadata too, so it is all that moves."""
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    data = write_random(tmp_path / "m.bin", 3 * MiB)
    a.commit_models("d", model=str(tmp_path / "m.bin"), model_id="v1")
    (chunk_pack,) = [p for p in (Path(a.path) / "objects" / "pack").iterdir() if p.suffix == ".pack"]
    remote = tmp_path / "remote.git"
    pushed = a.push(str(remote))
    assert pushed.ok and pushed.models_added == ["d/v1"]
    packs = sorted(os.listdir(remote / "objects" / "pack"))
    assert len(packs) == 2 and chunk_pack.name in packs  # .pack and .idx: no pack of loose objects
    assert (remote / "objects" / "pack" / chunk_pack.name).read_bytes() == chunk_pack.read_bytes()
    # the remote's sidecars make its packs casstore packs: entries are reused verbatim by later pushes
    assert sorted(os.listdir(remote / "cas" / "chunkidx")) == [p[:-4] + ".cidx" for p in packs if p.endswith(".idx")]
    assert pushed.bytes >= 3 * MiB
    pulled = b.pull(str(remote))
    assert pulled.models_added == ["d/v1"] and pulled.objects == pushed.objects
    assert (Path(b.path) / "objects" / "pack" / chunk_pack.name).read_bytes() == chunk_pack.read_bytes()
    assert Path(b.load("d", "v1")).read_bytes() == data
    # pulled chunks entered the chunk index: committing the same bytes adds no chunk
    def indexed() -> int:
        b.odb.index.refresh()
        return sum(sc.count for sc in b.odb.index.sidecars)

    before = indexed()
    assert before > 0
    b.commit_models("d", model=str(tmp_path / "m.bin"), model_id="again")
    assert indexed() == before
    check_clean(a.path, b.path, remote)
    # nothing more to move: a second push and pull copy nothing
    assert a.push(str(remote)).objects == 0 and b.pull(str(remote)).objects == 0


def test_only_missing_objects_are_copied(tmp_path: Path) -> None:
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    v1 = bytearray(write_random(tmp_path / "m.bin", 4 * MiB))
    a.commit_models("d", model=str(tmp_path / "m.bin"), model_id="v1")
    remote = tmp_path / "remote.git"
    a.push(str(remote))
    b.pull(str(remote))
    v1[MiB : MiB + 4096] = os.urandom(4096)
    (tmp_path / "m.bin").write_bytes(v1)
    a.commit_models("d", model=str(tmp_path / "m.bin"), model_id="v2")
    pushed = a.push(str(remote))
    assert pushed.models_added == ["d/v2"] and pushed.bytes < MiB
    pulled = b.pull(str(remote))
    assert pulled.models_added == ["d/v2"] and pulled.bytes < MiB
    assert Path(b.load("d", "v2")).read_bytes() == bytes(v1)
    check_clean(b.path, remote)


def test_hook_still_judges_pushed_refs(tmp_path: Path) -> None:
    """Objects are copied, but refs go through receive-pack: the --bare remote's hook refuses a bad push."""
    a = casstore.open(tmp_path / "a")
    write_random(tmp_path / "m.bin", MiB)
    a.commit_models("d", model=str(tmp_path / "m.bin"), model_id="v1")
    remote = tmp_path / "remote.git"
    init_store(str(remote), bare_remote=True)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'casstore: refs/cas/models/d/v1: refused for the test' >&2\nexit 1\n")
    result = a.push(str(remote))
    assert not result.ok and "refs/cas/models/d/v1" in result.rejected
    assert result.models_added == []
    assert git(remote, "for-each-ref").stdout == ""
    check_clean(remote)  # the copied pack is there, unreferenced: gc's business


def _source_and_victim(tmp_path: Path) -> tuple[casstore.Store, casstore.Store]:
    """A store with one 2 MiB model (to be damaged) and a victim with a model of its own."""
    src = casstore.open(tmp_path / "src")
    write_random(tmp_path / "m.bin", 2 * MiB)
    src.commit_models("d", model=str(tmp_path / "m.bin"), model_id="v1")
    victim = casstore.open(tmp_path / "victim")
    write_random(tmp_path / "own.bin", 100_000, seed=1)
    victim.commit_models("d", model=str(tmp_path / "own.bin"), model_id="own")
    return src, victim


def test_damaged_remote_pack_is_rejected(tmp_path: Path) -> None:
    """A remote pack entry whose bytes are not its object (a consistent .idx, wrong content) is refused."""
    src, victim = _source_and_victim(tmp_path)
    pack_dir = Path(src.path) / "objects" / "pack"
    pack = next(p for p in pack_dir.iterdir() if p.suffix == ".pack")
    pack.chmod(0o644)
    with open(pack, "r+b") as f:  # a byte in the middle of some chunk's payload
        f.seek(pack.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    before = snapshot(victim.path)
    with pytest.raises(CorruptObjectError, match="SHA-1|Adler|BLAKE3"):
        victim.pull(str(src.path))
    assert snapshot(victim.path) == before
    assert victim.list_models("d") == ["own"]


def _rewrite_idx(idx: Path, edit: Callable[[bytearray], None]) -> None:
    """Edit a .idx and give it a valid SHA-1 trailer again: a forgery, not damage."""
    data = bytearray(idx.read_bytes())
    edit(data)
    data[-20:] = hashlib.sha1(bytes(data[:-20])).digest()
    idx.chmod(0o644)
    idx.write_bytes(bytes(data))


def _swap_offsets(data: bytearray) -> None:
    """Swap the pack offsets of the first two objects: each is filed under the other's id."""
    n = struct.unpack_from(">I", data, 8 + 255 * 4)[0]
    at = 8 + 1024 + 24 * n
    data[at : at + 4], data[at + 4 : at + 8] = data[at + 4 : at + 8], data[at : at + 4]


def _refile(idx: Path, moved: Callable[[str, int], bool], host: Callable[[str, int], bool]) -> str:
    """File the first object (in .idx order) that ``moved(type, offset)`` picks at the offset of the
    first other one that ``host`` picks: two ids, one entry.

    The objects are chosen by kind, not by position: which two come first in SHA order changes
    from run to run (commit ids hold the time), and that decides which check sees the lie first.
    The pull's walk reads every commit and tree it copies (through the object database, which
    hashes each object); it never reads a blob.  So a blob filed at another entry's offset is
    first seen by the whole-pack copy's layout check ("offsets do not tile the pack", naming the
    pack), and a commit or tree filed at a blob's offset by the walk, which reads that blob's
    bytes under the commit's id ("content does not match its SHA-1", naming the commit).  Both
    are true (the entry filed under that id is not its object; the pack's entries do not tile
    it), and both refuse before anything is published.  Returns the moved object's id.
    """
    listing = subprocess.run(["git", "show-index"], input=idx.read_bytes(), capture_output=True,
                             check=True).stdout.decode()
    offsets = {sha: int(off) for off, sha, _ in (line.split() for line in listing.splitlines())}
    kinds = dict(line.split() for line in git(idx.parents[2], "cat-file", "--batch-all-objects",
                                              "--batch-check=%(objectname) %(objecttype)").stdout.splitlines())
    order = sorted(offsets)  # .idx order
    m = next(i for i, sha in enumerate(order) if moved(kinds[sha], offsets[sha]))
    h = next(i for i, sha in enumerate(order) if i != m and host(kinds[sha], offsets[sha]))

    def edit(data: bytearray) -> None:
        at = 8 + 1024 + 24 * len(order)
        data[at + 4 * m : at + 4 * m + 4] = data[at + 4 * h : at + 4 * h + 4]

    _rewrite_idx(idx, edit)
    return order[m]


def _blob_at_a_blobs_offset(pack: Path, idx: Path) -> str:
    _refile(idx, lambda kind, _: kind == "blob", lambda kind, _: kind == "blob")
    return pack.name  # the layout check names the pack


def _blob_at_the_first_entrys_offset(pack: Path, idx: Path) -> str:
    _refile(idx, lambda kind, off: kind == "blob" and off != 12, lambda _, off: off == 12)
    return pack.name


def _commit_at_a_blobs_offset(pack: Path, idx: Path) -> str:
    return _refile(idx, lambda kind, _: kind == "commit", lambda kind, _: kind == "blob")  # the walk names it


def _tree_at_a_blobs_offset(pack: Path, idx: Path) -> str:
    return _refile(idx, lambda kind, _: kind == "tree", lambda kind, _: kind == "blob")


def _flip_chunk_byte(pack: Path, idx: Path) -> None:
    with open(pack, "r+b") as f:  # a byte in the middle of some chunk's payload
        f.seek(pack.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))


def _forge_offsets(pack: Path, idx: Path) -> None:
    _rewrite_idx(idx, _swap_offsets)


def _trailing_bytes(pack: Path, idx: Path) -> None:
    data = pack.read_bytes()  # junk before the trailer, which still matches the .idx
    pack.write_bytes(data[:-20] + b"junk" * 100 + data[-20:])


def _wrong_trailer(pack: Path, idx: Path) -> None:
    forged = bytes(20 * [0xAB])  # pack and .idx agree on a checksum that is not the pack's SHA-1
    pack.write_bytes(pack.read_bytes()[:-20] + forged)

    def edit(data: bytearray) -> None:
        data[-40:-20] = forged

    _rewrite_idx(idx, edit)


@pytest.mark.parametrize(("tamper", "error"), [
    (_flip_chunk_byte, "SHA-1|Adler"),
    (_forge_offsets, "content does not match its SHA-1"),
    (_blob_at_a_blobs_offset, "offsets do not tile the pack"),
    (_blob_at_the_first_entrys_offset, "offsets do not tile the pack"),
    (_commit_at_a_blobs_offset, "content does not match its SHA-1"),
    (_tree_at_a_blobs_offset, "content does not match its SHA-1"),
    (_trailing_bytes, "unreadable pack entry"),
    (_wrong_trailer, "pack checksum mismatch"),
])
def test_hostile_whole_pack_is_rejected_with_nothing_published(
        tmp_path: Path, tamper: Callable[[Path, Path], str | None], error: str) -> None:
    """A remote's pack that the puller lacks entirely is copied whole and verified in place; every
    kind of lie (content, .idx offsets, bytes after the last entry, trailer) is refused, naming
    the object or pack, before anything is published.  (A commit or tree whose .idx offset lies
    is refused sooner, by the walk that reads it: see :func:`_refile`.)"""
    src, victim = _source_and_victim(tmp_path)
    pack_dir = Path(src.path) / "objects" / "pack"
    (pack,) = [p for p in pack_dir.iterdir() if p.suffix == ".pack"]
    objects = set(git(src.path, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").stdout.split())
    pack.chmod(0o644)
    named = tamper(pack, pack.with_suffix(".idx"))
    before = snapshot(victim.path)
    with pytest.raises(CorruptObjectError, match=error) as caught:
        victim.pull(str(src.path))
    assert caught.value.oid in {pack.name} | objects  # the error names what is wrong
    assert named is None or caught.value.oid == named
    assert snapshot(victim.path) == before
    assert victim.list_models("d") == ["own"]


def test_partial_pack_is_copied_entry_by_entry(tmp_path: Path) -> None:
    """When the destination has some objects of a source pack, only the missing entries travel."""
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    shared = write_random(tmp_path / "x.bin", 3 * MiB)
    a.commit_models("d", model=str(tmp_path / "x.bin"), model_id="x")
    # b's one pack holds x's chunks and new ones: a has part of it
    y = shared + write_random(tmp_path / "tail.bin", 2 * MiB, seed=7)
    (tmp_path / "y.bin").write_bytes(y)
    b.commit_models("d", model=str(tmp_path / "y.bin"), model_id="y")
    (b_pack,) = [p for p in (Path(b.path) / "objects" / "pack").iterdir() if p.suffix == ".pack"]
    remote = tmp_path / "remote.git"
    assert b.push(str(remote)).ok
    in_pack = int(git(remote, "count-objects", "-v").stdout.split("in-pack: ")[1].split()[0])
    pulled = a.pull(str(remote))
    assert pulled.models_added == ["d/y"]
    # fewer objects than the remote holds, and not its chunk pack under its own name
    assert 0 < pulled.objects < in_pack
    assert not (Path(a.path) / "objects" / "pack" / b_pack.name).exists()
    assert Path(a.load("d", "y")).read_bytes() == y
    check_clean(a.path, remote)


def test_crash_mid_copy_leaves_both_stores_clean_and_resumable(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    init_store(str(a))
    init_store(str(b))
    data = write_random(tmp_path / "m.bin", 6 * MiB)
    assert _cas("--store", str(a), "commit", "--id", "v1", "d", str(tmp_path / "m.bin")).returncode == 0
    remote = tmp_path / "remote.git"
    init_store(str(remote), bare_remote=True)
    # push killed while its pack grows in the remote
    crashed = _cas("--store", str(a), "push", str(remote), fsize_kib=2048)
    assert crashed.returncode == -signal.SIGXFSZ, crashed.stderr
    assert git(remote, "for-each-ref").stdout == ""
    check_clean(a, remote)
    assert _cas("--store", str(a), "push", str(remote)).returncode == 0
    # pull killed while its pack grows in the quarantine
    crashed = _cas("--store", str(b), "pull", str(remote), fsize_kib=2048)
    assert crashed.returncode == -signal.SIGXFSZ, crashed.stderr
    assert casstore.Store(str(b)).list_domains() == []
    check_clean(b)
    done = _cas("--store", str(b), "pull", str(remote))
    assert done.returncode == 0, done.stderr
    assert Path(casstore.Store(str(b)).load("d", "v1")).read_bytes() == data
    check_clean(b, remote)


def test_bare_store_is_configured_for_serving(tmp_path: Path) -> None:
    """`cas init --bare` (and a first push into an empty directory) write the server options git reads."""
    from casstore.objects.repository import SERVER_CONFIG

    bare = tmp_path / "bare.git"
    init_store(str(bare), bare_remote=True)
    a = casstore.open(tmp_path / "a")
    write_random(tmp_path / "m.bin", 100_000)
    a.commit_models("d", model=str(tmp_path / "m.bin"), model_id="v1")
    pushed = tmp_path / "pushed.git"
    assert a.push(str(pushed)).ok
    for repo in (bare, pushed):
        for (section, name), value in SERVER_CONFIG.items():
            assert git(repo, "config", f"{section.decode()}.{name.decode()}").stdout.strip() == value.decode()
    # a local store that nobody serves keeps git's defaults
    assert git(a.path, "config", "pack.window").stdout == ""
    # git reads the sizes as meant, and dulwich's Repo (which int()s core.packedGitLimit) opens
    # the served stores: with git's "64m" spelling it raised ValueError (found by test_stateful)
    from dulwich.repo import Repo

    assert git(bare, "config", "--type=int", "core.packedGitLimit").stdout.strip() == str(64 << 20)
    for repo in (bare, pushed):
        with Repo(str(repo)) as r:
            assert r.object_store is not None


def test_git_pull_keeps_a_pack_in_our_format_and_rewrites_others(tmp_path: Path) -> None:
    """Over git://, a pack of whole objects with stored chunk blobs is indexed where it is; a pack
    that stock git recompressed (a plain `git repack` of the remote) is rewritten; both verify."""
    from tests.servers import git_daemon

    a = casstore.open(tmp_path / "a")
    data = write_random(tmp_path / "m.bin", 2 * MiB)
    a.commit_models("d", model=str(tmp_path / "m.bin"), model_id="v1")
    srv = tmp_path / "srv"
    srv.mkdir()
    init_store(str(srv / "m.git"), bare_remote=True)
    a.push(str(srv / "m.git"))
    with git_daemon(srv) as base:
        kept = casstore.open(tmp_path / "kept")
        assert kept.pull(f"{base}/m.git").models_added == ["d/v1"]
        # a stock repack at zlib level 9: the chunk blobs arrive zlib-compressed
        assert git(srv / "m.git", "-c", "core.compression=9", "-c", "pack.compression=9",
                   "repack", "-a", "-d", "-F", "-q").returncode == 0
        rewritten = casstore.open(tmp_path / "rewritten")
        assert rewritten.pull(f"{base}/m.git").models_added == ["d/v1"]
    for s in (kept, rewritten):
        assert Path(s.load("d", "v1")).read_bytes() == data
        pack = next(p for p in (Path(s.path) / "objects" / "pack").iterdir() if p.suffix == ".pack")
        # either way, the chunk blobs end up in stored zlib blocks (what readers slice without copying)
        loc = s.odb.index.lookup([s.odb.index.sidecars[0].key(0)])[0]
        assert loc is not None and pack.name.startswith(loc.pack)
        entry = pack.read_bytes()[loc.offset : loc.offset + loc.length]
        from casstore.objects.packwriter import parse_object_header

        _, _, hlen = parse_object_header(entry)
        assert entry[hlen] == 0x78 and entry[hlen + 2] & 0x06 == 0
    check_clean(kept.path, rewritten.path)


def test_push_to_a_plain_git_remote_leaves_no_casstore_files(tmp_path: Path) -> None:
    """A `git init --bare` remote gets a pack and its .idx, no sidecar and no cas/ directory."""
    plain = tmp_path / "plain.git"
    assert subprocess.run(["git", "init", "-q", "--bare", str(plain)]).returncode == 0
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    data = write_random(tmp_path / "m.bin", MiB)
    a.commit_models("d", model=str(tmp_path / "m.bin"), model_id="v1")
    assert a.push(str(plain)).models_added == ["d/v1"]
    assert not (plain / "cas").exists()
    assert_git_fsck(plain)
    assert b.pull(f"file://{plain}").models_added == ["d/v1"]
    assert Path(b.load("d", "v1")).read_bytes() == data


@pytest.mark.parametrize("other_fs", [False, True])
def test_copy_range_copies_every_byte(tmp_path: Path, other_fs: bool) -> None:
    """The kernel copy under whole-pack transfers, on one file system and (tmpfs: EXDEV, so
    sendfile) across two; a source shorter than asked is reported, not padded."""
    import tempfile

    from casstore.objects.packwriter import copy_range

    data = write_random(tmp_path / "src", 3 * MiB + 17)
    with tempfile.TemporaryDirectory(dir="/dev/shm" if other_fs else tmp_path) as d:
        dst = Path(d) / "dst"
        with open(tmp_path / "src", "rb") as s, open(dst, "wb") as t:
            assert copy_range(s.fileno(), t.fileno(), len(data)) == len(data)
        assert dst.read_bytes() == data
        with open(tmp_path / "src", "rb") as s, open(dst, "wb") as t:
            assert copy_range(s.fileno(), t.fileno(), len(data) + 100) == len(data)


def test_inflate_is_bounded_and_exact() -> None:
    """A pack entry's zlib stream (one git compressed) must inflate to exactly its declared size
    and end exactly at the entry's end: trailing bytes would be carried along unchecked by a
    whole-pack copy, and a stream inflating past its size could be a zip bomb."""
    import zlib

    from casstore.objects.packwriter import inflate_parts

    content = b"tree or commit " * 1000
    stream = zlib.compress(content, 6)
    assert b"".join(inflate_parts(stream, len(content))) == content
    with pytest.raises(zlib.error):
        inflate_parts(stream + b"junk", len(content))
    with pytest.raises(zlib.error):
        inflate_parts(zlib.compress(bytes(64 * MiB), 9), 1000)  # declared 1000 bytes, inflates to 64 MiB
    with pytest.raises(zlib.error):
        inflate_parts(stream[:-1], len(content))
