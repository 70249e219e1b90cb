"""gc of a store that git serves: the packs each push leaves are merged, garbage is freed, nothing is lost.

Real servers throughout (tests/servers.py): a `cas init --bare` store pushed to over a
path, `git daemon`, `git http-backend` and sshd; git's own receive-pack writes what
each push leaves (one pack per push), and `git fsck --strict` judges the result.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import casstore
from casstore.store import init_store
from tests.conftest import assert_git_fsck, git, write_random
from tests.helpers.remotes import wait_for_pushes_merged
from tests.servers import git_daemon, http_backend, sshd


def packs(repo: Path) -> list[Path]:
    return sorted((repo / "objects" / "pack").glob("*.pack"))


def disk_bytes(repo: Path) -> int:
    objects = repo / "objects"
    return sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())


@contextmanager
def served(tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A `cas init --bare` store and the URL to reach it ``how``."""
    srv = tmp_path / "srv"
    srv.mkdir()
    repo = srv / "m.git"
    init_store(str(repo), bare_remote=True)
    if how == "path":
        yield str(repo), repo
    elif how == "git":
        with git_daemon(srv) as base:
            yield f"{base}/m.git", repo
    elif how == "http":
        with http_backend(srv) as base:
            yield f"{base}/m.git", repo
    else:
        with sshd(tmp_path) as (base, env):
            for k, v in env.items():
                monkeypatch.setenv(k, v)
            yield f"{base}{repo}", repo


def commit(store: casstore.Store, tmp_path: Path, name: str, size: int = 150_000, seed: int = 0) -> bytes:
    f = tmp_path / f"{name}.bin"
    data = write_random(f, size, seed=seed)
    store.commit_models("d", model=str(f), model_id=name)
    return data


def cas_gc(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "casstore", "--store", str(repo), "gc", *args],
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("how", ["path", "git", "http", "ssh"])
def test_gc_merges_the_packs_pushes_left(tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """N pushes leave N packs (git's receive-pack keeps each push as it arrived); `cas gc` on
    the server leaves one, and every model still pulls from a clean store."""
    n = 6
    a = casstore.open(tmp_path / "a")
    data = {}
    with served(tmp_path, how, monkeypatch) as (url, repo):
        for i in range(n):
            data[f"v{i}"] = commit(a, tmp_path, f"v{i}", seed=i)
            assert a.push(url).ok
        # git keeps each push as the pack that arrived; a path push copies whole packs and one more
        assert len(packs(repo)) == n if how != "path" else len(packs(repo)) >= n
        before = disk_bytes(repo)
        r = cas_gc(repo, "--json")
        assert r.returncode == 0, r.stderr
        assert len(packs(repo)) == 1
        assert not (repo / "objects" / "pack" / (packs(repo)[0].stem + ".keep")).exists()
        assert disk_bytes(repo) <= before
        assert_git_fsck(repo)
        served_store = casstore.open(repo)
        assert served_store.fsck().ok
        served_store.close()
        b = casstore.open(tmp_path / "b")
        assert sorted(b.pull(url).models_added) == [f"d/v{i}" for i in range(n)]
        # and pushes go on as before, after the merge
        data["w"] = commit(a, tmp_path, "w", seed=99)
        assert a.push(url).ok
        assert b.pull(url).models_added == ["d/w"]
    for mid, expected in data.items():
        assert Path(b.load("d", mid)).read_bytes() == expected
    assert b.fsck().ok


def test_gc_resolves_the_deltas_of_a_plain_git_push(tmp_path: Path) -> None:
    """A stock `git push` (refs outside refs/cas/ are git's business) sends deltas and, under
    git's default unpackLimit, loose objects: gc still leaves one pack of whole objects."""
    srv = tmp_path / "srv"
    init_store(str(srv), bare_remote=True)
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    text = "\n".join(f"line {i} of a text that deltas well" for i in range(3000))
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for i in range(3):
        (work / "notes.txt").write_text(text + f"\nedit {i}\n")
        subprocess.run(["git", "-C", str(work), "add", "."], check=True, env=env)
        subprocess.run(["git", "-C", str(work), "commit", "-qm", f"c{i}"], check=True, env=env)
    subprocess.run(["git", "-C", str(work), "repack", "-adq", "--window=10"], check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", str(srv), "HEAD:refs/heads/main"], check=True)
    a = casstore.open(tmp_path / "a")
    commit(a, tmp_path, "v1")
    assert a.push(str(srv)).ok
    verify = subprocess.run(["git", "verify-pack", "-v", *map(str, packs(srv))], capture_output=True, text=True)
    assert "chain length" in verify.stdout  # the push did carry deltas
    r = cas_gc(srv, "--grace", "0")
    assert r.returncode == 0, r.stderr
    assert len(packs(srv)) == 1
    verify = subprocess.run(["git", "verify-pack", "-v", str(packs(srv)[0])], capture_output=True, text=True,
                            check=True)
    assert "chain length" not in verify.stdout
    assert_git_fsck(srv)
    assert git(srv, "show", "refs/heads/main:notes.txt").stdout == text + "\nedit 2\n"
    b = casstore.open(tmp_path / "b")
    assert b.pull(str(srv)).models_added == ["d/v1"]


def test_deleted_models_bytes_are_freed_on_the_server(tmp_path: Path) -> None:
    """Deleting half the models and pushing the deletion, then `cas gc --grace 0` on the
    server, frees their bytes there: within 1.1x of a fresh push of the survivors."""
    a = casstore.open(tmp_path / "a")
    srv = tmp_path / "srv"
    srv.mkdir()
    init_store(str(srv / "m.git"), bare_remote=True)
    repo = srv / "m.git"
    with git_daemon(srv) as base:
        url = f"{base}/m.git"
        for i in range(8):
            commit(a, tmp_path, f"v{i}", size=200_000, seed=i)
            assert a.push(url).ok
        for i in range(0, 8, 2):
            a.delete_model("d", f"v{i}")
        assert a.push(url).ok
        full = disk_bytes(repo)
        r = cas_gc(repo, "--grace", "0", "--json")
        assert r.returncode == 0, r.stderr
        after = disk_bytes(repo)
        fresh_srv = tmp_path / "fresh"
        fresh_srv.mkdir()
        init_store(str(fresh_srv / "m.git"), bare_remote=True)
        c = casstore.open(tmp_path / "c")
        assert c.pull(url).models_added and c.push(str(fresh_srv / "m.git")).ok
        fresh = disk_bytes(fresh_srv / "m.git")
        assert after < 0.6 * full
        assert after <= 1.1 * fresh, (after, fresh)
        assert_git_fsck(repo)
        b = casstore.open(tmp_path / "b")
        assert sorted(b.pull(url).models_added) == [f"d/v{i}" for i in range(1, 8, 2)]
        assert b.fsck().ok


@pytest.mark.parametrize("how", ["git", "http", "path"])
def test_pushes_during_gcs_lose_nothing(tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: PLR0915 - the loops of three clients and their checks
    """Pushes (and pulls) run while `cas gc --grace 0` runs on the server again and again:
    every pushed model is there afterwards, and both fsck are clean.  git's receive-pack
    takes no lock of ours; a pack it publishes carries a .keep until its refs moved."""
    a = casstore.open(tmp_path / "a")
    errors: list[BaseException] = []
    pushed: list[str] = []
    with served(tmp_path, how, monkeypatch) as (url, repo):
        commit(a, tmp_path, "seed")
        assert a.push(url).ok
        stop = threading.Event()

        def gcs() -> None:
            try:
                while not stop.is_set():
                    r = cas_gc(repo, "--grace", "0")
                    if r.returncode != 0:
                        raise AssertionError(r.stderr)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        def pulls() -> None:
            b = casstore.open(tmp_path / "b")
            try:
                while not stop.is_set():
                    b.pull(url)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
            finally:
                b.close()

        threads = [threading.Thread(target=gcs), threading.Thread(target=pulls)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 120
            i = 0
            while i < 10 and time.monotonic() < deadline and not errors:
                commit(a, tmp_path, f"v{i}", size=100_000, seed=i)
                assert a.push(url).ok
                pushed.append(f"d/v{i}")
                i += 1
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=300)
        assert not errors, errors
        assert len(pushed) >= 3
        r = cas_gc(repo, "--grace", "0")
        assert r.returncode == 0, r.stderr
        assert_git_fsck(repo)
        c = casstore.open(tmp_path / "c")
        assert sorted(c.pull(url).models_added) == sorted(["d/seed", *pushed])
        assert c.fsck(read_data=True).ok
        # every pack git wrote was merged; ours form a geometric progression (each at least
        # twice all smaller ones together), so there are at most log2(total / smallest) + 1
        from casstore.objects.repository import Repository
        from casstore.ops.adopt import pushed_packs

        r = Repository(str(repo))
        try:
            assert pushed_packs(r) == []
        finally:
            r.close()
        sizes = sorted(p.stat().st_size for p in packs(repo))
        assert len(sizes) <= 1 + math.log2(sum(sizes) / sizes[0]), sizes


def test_gc_of_a_path_remote_runs_there_and_a_git_url_is_refused(tmp_path: Path) -> None:
    a = casstore.open(tmp_path / "a")
    srv = tmp_path / "srv"
    srv.mkdir()
    init_store(str(srv / "m.git"), bare_remote=True)
    repo = srv / "m.git"
    with git_daemon(srv) as base:
        for i in range(3):
            commit(a, tmp_path, f"v{i}", seed=i)
            assert a.push(f"{base}/m.git").ok
        assert len(packs(repo)) == 3
        env = {**os.environ, "CAS_STORE": str(tmp_path / "a")}
        r = subprocess.run([sys.executable, "-m", "casstore", "gc", f"{base}/m.git"], capture_output=True,
                           text=True, env=env, timeout=120, check=False)
        assert r.returncode == 2
        assert "run `cas gc --store PATH` on the server" in r.stderr
        r = subprocess.run([sys.executable, "-m", "casstore", "gc", str(repo), "--grace", "0"],
                           capture_output=True, text=True, env=env, timeout=120, check=False)
        assert r.returncode == 0, r.stderr
        assert "merged 3 packs and 0 loose objects that pushes left into one pack" in r.stdout, r.stdout
        assert len(packs(repo)) == 1


def test_pushes_trigger_a_merge_once_packs_accumulate(tmp_path: Path) -> None:
    """The post-receive hook of `cas init --bare` merges the packs pushes left, in the background,
    once there are more than cas.autoPacks of them (like `git gc --auto`)."""
    a = casstore.open(tmp_path / "a")
    srv = tmp_path / "srv"
    srv.mkdir()
    repo = srv / "m.git"
    init_store(str(repo), bare_remote=True)
    assert git(repo, "config", "cas.autoPacks", "3").returncode == 0
    with git_daemon(srv) as base:
        url = f"{base}/m.git"
        for i in range(8):
            commit(a, tmp_path, f"v{i}", seed=i)
            assert a.push(url).ok
        wait_for_pushes_merged(repo, 3)  # and a merge still running finished before the store is judged
        assert len(packs(repo)) < 8  # merged, not just left
        assert_git_fsck(repo)
        b = casstore.open(tmp_path / "b")
        assert sorted(b.pull(url).models_added) == [f"d/v{i}" for i in range(8)]
        assert b.fsck(read_data=True).ok


def test_a_pushed_pack_whose_keep_goes_while_gc_walks_is_left_alone(tmp_path: Path) -> None:
    """git's receive-pack publishes a pushed pack with a .keep, moves the refs, then removes the
    .keep.  Regression: gc looked for the .keep only after its walk, so a push whose refs moved
    after gc read them (and whose .keep went meanwhile) lost its pack at --grace 0."""
    from casstore.objects.repository import Repository
    from casstore.ops.gc import gc

    srv = tmp_path / "srv.git"
    init_store(str(srv), bare_remote=True)
    a = casstore.open(tmp_path / "a")
    commit(a, tmp_path, "v0")
    assert a.push(str(srv)).ok  # something to walk
    b = casstore.open(tmp_path / "b")
    commit(b, tmp_path, "x1", seed=5)
    sha = git(b.path, "rev-parse", "refs/cas/models/d/x1").stdout.strip()
    sent = subprocess.run(["git", "--git-dir", b.path, "pack-objects", "--revs", "--stdout", "-q"],
                          input=f"{sha}\n".encode(), capture_output=True, check=True).stdout
    # as receive-pack leaves it before the refs move: the pack, its index, and a .keep
    out = subprocess.run(["git", "--git-dir", str(srv), "index-pack", "--stdin", "--keep=receive-pack"],
                         input=sent, capture_output=True, check=True).stdout.decode()
    keep = srv / "objects" / "pack" / f"pack-{out.split()[-1]}.keep"
    assert keep.exists()
    moved = []

    def push_finishes(_n: int) -> None:  # during gc's walk: the push's ref moves, its .keep goes
        if not moved:
            assert git(srv, "update-ref", "refs/heads/x1", sha).returncode == 0
            keep.unlink()
            moved.append(True)

    repo = Repository(str(srv))
    try:
        gc(repo, grace_period=0, progress=push_finishes)
    finally:
        repo.close()
    assert moved
    assert git(srv, "cat-file", "-e", f"{sha}^{{tree}}").returncode == 0
    assert_git_fsck(srv)
    # the next gc adopts it
    repo = Repository(str(srv))
    try:
        assert gc(repo, grace_period=0).packs_adopted >= 1
    finally:
        repo.close()
    assert_git_fsck(srv)


def test_a_merge_that_fails_half_way_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy of one pushed pack of whole objects is byte-identical to it (same name): it
    must not replace the source, whose bytes a failure while publishing the copy (here:
    writing its .idx) would take with it; publish_pack keeps the published pack, so the
    full disk does not even fail the gc."""
    from casstore.objects import packwriter
    from casstore.objects.repository import Repository
    from casstore.ops.gc import gc

    a = casstore.open(tmp_path / "a")
    srv = tmp_path / "srv"
    srv.mkdir()
    repo = srv / "m.git"
    init_store(str(repo), bare_remote=True)
    data = commit(a, tmp_path, "v1")
    with git_daemon(srv) as base:
        assert a.push(f"{base}/m.git").ok
    assert len(packs(repo)) == 1

    def no_space(*_args: object, **_kw: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(packwriter, "write_pack_index_v2", no_space)
    r = Repository(str(repo))
    try:
        gc(r, grace_period=0)  # no .idx to write: the same bytes are published already
    finally:
        r.close()
    monkeypatch.undo()
    assert_git_fsck(repo)
    assert len(packs(repo)) == 1
    assert list((repo / "cas" / "tmp").iterdir()) == []
    b = casstore.open(tmp_path / "b")
    assert b.pull(str(repo)).models_added == ["d/v1"]
    assert Path(b.load("d", "v1")).read_bytes() == data
