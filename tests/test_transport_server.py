"""A store that git serves, and the client's side of a pack received from git.

Real git throughout: `git daemon` serving a `cas init --bare` store, `git pack-objects`
making the packs a server sends, `git index-pack` as the reference for our index.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

import casstore
from casstore.errors import CorruptObjectError
from casstore.remote.incoming import PackIndexer, index_in_place
from casstore.store import init_store
from tests.conftest import git, write_random
from tests.servers import git_daemon

MiB = 1 << 20


def loose_objects(repo: Path) -> list[str]:
    objects = repo / "objects"
    return [f"{d.name}/{f.name}" for d in objects.iterdir() if len(d.name) == 2 for f in d.iterdir()]


def test_small_push_to_a_served_store_stays_one_pack(tmp_path: Path) -> None:
    """A push of fewer than 100 objects is kept as the pack that arrived (``receive.unpackLimit=1``
    in `cas init --bare`'s config): git's default explodes it into loose objects, one file each."""
    srv = tmp_path / "srv"
    srv.mkdir()
    init_store(str(srv / "m.git"), bare_remote=True)
    a = casstore.open(tmp_path / "a")
    data = write_random(tmp_path / "m.bin", 300_000)  # a handful of chunks: well under 100 objects
    a.commit_models("d", model=str(tmp_path / "m.bin"), model_id="v1")
    with git_daemon(srv) as base:
        result = a.push(f"{base}/m.git")
        assert result.ok and 0 < result.objects < 100
        assert loose_objects(srv / "m.git") == []
        packs = list((srv / "m.git" / "objects" / "pack").glob("*.pack"))
        assert len(packs) == 1
        summary = subprocess.run(["git", "verify-pack", "-v", str(packs[0])], capture_output=True, text=True,
                                 check=True).stdout
        assert f"non delta: {result.objects} objects" in summary
        b = casstore.open(tmp_path / "b")
        assert b.pull(f"{base}/m.git").models_added == ["d/v1"]
    assert Path(b.load("d", "v1")).read_bytes() == data


def served_pack(tmp_path: Path, size: int) -> Path:
    """The pack a `cas init --bare` store sends for a model of ``size`` bytes: git's pack-objects
    with the store's own config, as upload-pack runs it."""
    a = casstore.open(tmp_path / "a")
    write_random(tmp_path / "m.bin", size)
    a.commit_models("d", model=str(tmp_path / "m.bin"), model_id="v1")
    bare = tmp_path / "bare.git"
    init_store(str(bare), bare_remote=True)
    assert a.push(str(bare)).ok
    head = git(bare, "rev-parse", "refs/cas/models/d/v1").stdout.strip()
    out = tmp_path / "sent.pack"
    with open(out, "wb") as f:
        subprocess.run(["git", "-C", str(bare), "pack-objects", "--stdout", "--revs", "-q"],
                       input=f"{head}\n".encode(), stdout=f, check=True)
    return out


def git_index(pack: Path, tmp_path: Path) -> bytes:
    """The .idx git's own index-pack writes for ``pack``."""
    ref = tmp_path / "ref.pack"
    shutil.copy(pack, ref)
    subprocess.run(["git", "index-pack", str(ref)], check=True, capture_output=True)
    return ref.with_suffix(".idx").read_bytes()


@pytest.fixture(scope="module")
def sent_packs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, bytes]]:
    """size -> (the pack a served store sends, git's .idx of it), made once for the module."""
    out = {}
    for name, size in (("small", 100_000), ("big", 2 * MiB)):
        d = tmp_path_factory.mktemp(name)
        pack = served_pack(d, size)
        out[name] = (pack.read_bytes(), git_index(pack, d))
    return out


@pytest.mark.parametrize("pieces", ["one", "bytes", "random", "side-band"])
def test_indexer_fed_as_received_writes_git_s_index(tmp_path: Path, pieces: str,
                                                    sent_packs: dict[str, tuple[bytes, bytes]]) -> None:
    """Fed in pieces of any size (a byte at a time, the whole pack at once, the 65515-byte
    pieces of git's side-band), the pack is indexed exactly as `git index-pack` does."""
    data, expected = sent_packs["small" if pieces == "bytes" else "big"]
    pack = tmp_path / "received.pack"
    pack.write_bytes(data)
    indexer = PackIndexer()
    rng = random.Random(7)
    pos = 0
    while pos < len(data):
        n = {"one": len(data), "bytes": 1, "random": rng.randint(1, 200_000), "side-band": 65515}[pieces]
        indexer.feed(data[pos:pos + n])
        pos += n
    assert indexer.error is None and indexer.unsuitable is None
    dest = tmp_path / "dest"
    dest.mkdir()
    indexed = index_in_place(str(pack), str(dest), indexer)
    assert indexed is not None
    name, locations = indexed
    assert (dest / f"{name}.idx").read_bytes() == expected
    assert (dest / f"{name}.pack").read_bytes() == data
    # every object's (offset, length) covers its whole entry: they tile the pack
    spans = sorted(locations.values())
    assert spans[0][0] == 12 and spans[-1][0] + spans[-1][1] == len(data) - 20
    assert all(a[0] + a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))


def _fed(data: bytes) -> PackIndexer:
    indexer = PackIndexer()
    for i in range(0, len(data), 65515):
        indexer.feed(data[i:i + 65515])
    return indexer


def _pack_declaring(size: int) -> bytes:
    """A one-blob pack whose entry header says ``size`` bytes (its zlib stream inflates to 4 KiB)."""
    head = [(3 << 4) | (size & 15)]
    size >>= 4
    while size:
        head[-1] |= 0x80
        head.append(size & 0x7F)
        size >>= 7
    body = b"PACK" + struct.pack(">II", 2, 1) + bytes(head) + zlib.compress(b"x" * 4096)
    return body + hashlib.sha1(body).digest()


def test_indexer_refuses_a_damaged_pack(tmp_path: Path, sent_packs: dict[str, tuple[bytes, bytes]]) -> None:
    """Truncated, one byte changed, bytes after the checksum, an entry larger than any casstore object:
    each is refused, nothing moved."""
    data = sent_packs["big"][0]
    dest = tmp_path / "dest"
    dest.mkdir()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01  # inside a chunk's stored zlib block
    cases = {
        "truncated": (data[: len(data) - 1000], "truncated"),
        "flipped": (bytes(flipped), "incorrect data check"),  # zlib's adler32
        "trailing": (data + b"junk", "after the checksum"),
        "header": (b"PACX" + data[4:], "not a git pack"),
        "oversized": (_pack_declaring(1 << 40), "declares 1099511627776 bytes"),
    }
    for case, (bad, words) in cases.items():
        path = tmp_path / f"{case}.pack"
        path.write_bytes(bad)
        with pytest.raises(CorruptObjectError, match=words):
            index_in_place(str(path), str(dest), _fed(bad))
        with pytest.raises(CorruptObjectError, match=words):  # and read from the file afterwards
            index_in_place(str(path), str(dest))
        assert path.exists() and os.listdir(dest) == []


def test_indexer_leaves_a_pack_with_deltas_to_the_rewrite(tmp_path: Path) -> None:
    """A pack of deltas (what a plain git server may send) is not ours to keep as it is."""
    repo = tmp_path / "plain"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    text = "".join(f"line {i}\n" for i in range(5000))
    for i in range(3):
        (repo / "f.txt").write_text(text + f"change {i}\n")
        subprocess.run(["git", "-C", str(repo), "add", "f.txt"], check=True)
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", str(i)],
                       check=True)
    pack = subprocess.run(["git", "-C", str(repo), "pack-objects", "--stdout", "--revs", "-q"],
                          input=b"HEAD\n", capture_output=True, check=True).stdout
    indexer = _fed(pack)
    assert indexer.unsuitable == "a delta" and indexer.error is None
    path = tmp_path / "in.pack"
    path.write_bytes(pack)
    assert index_in_place(str(path), str(tmp_path), indexer) is None
    assert path.exists()
