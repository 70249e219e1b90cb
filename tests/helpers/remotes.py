"""Remotes to push to and pull from: fixtures for a fresh remote of each kind, and the check
that every store and remote involved is still sound.

tests/conftest.py loads these fixtures (``pytest_plugins``), so every test module can ask for
``remotes``, ``remote_url`` or ``any_remote`` by name.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import casstore
from casstore.objects.repository import Repository
from casstore.ops.adopt import pushed_packs
from casstore.remote.bucket import BucketClient
from casstore.store import init_store
from tests.conftest import BUCKET_URL_FIXTURES, assert_bucket_remote_fsck, assert_git_fsck, is_bucket_url
from tests.servers import git_daemon


@pytest.fixture
def remotes(tmp_path: Path) -> Path:
    root = tmp_path / "srv"
    root.mkdir()
    return root


def new_remote(root: Path, name: str = "models.git") -> Path:
    path = root / name
    init_store(str(path), bare_remote=True)
    return path


@contextmanager
def _git_remote(kind: str, remotes: Path) -> Iterator[tuple[str, Path]]:
    path = new_remote(remotes)
    if kind == "path":
        yield str(path), path
    else:
        with git_daemon(remotes) as base:
            yield f"{base}/models.git", path


@pytest.fixture(params=["path", "git"])
def remote_url(request: pytest.FixtureRequest, remotes: Path) -> Iterator[tuple[str, Path]]:
    """A fresh remote reached over a path or over git://."""
    with _git_remote(request.param, remotes) as r:
        yield r


@pytest.fixture(params=["path", "git", "s3", "gcs", "azure"])
def any_remote(request: pytest.FixtureRequest, remotes: Path) -> Iterator[tuple[str, Path | str]]:
    """A fresh remote over a path, git://, S3, GCS or Azure Blob: (URL, what check_all inspects)."""
    if request.param in BUCKET_URL_FIXTURES:
        url = request.getfixturevalue(BUCKET_URL_FIXTURES[request.param])
        yield url, url
        return
    with _git_remote(request.param, remotes) as r:
        yield r


def check_all(*paths: str | Path) -> None:
    for p in paths:
        if is_bucket_url(p):
            assert_bucket_remote_fsck(str(p))
            continue
        assert_git_fsck(p)
        if os.path.exists(os.path.join(p, "cas")):
            report = casstore.Store(str(p)).fsck(read_data=True)
            assert report.ok, report.problems


def wait_for_maintenance(repo: Path, timeout: float = 120) -> None:
    """Wait (bounded) until no merge of pushed packs holds ``repo``'s maintenance lock."""
    lock = repo / "cas" / "maintenance.lock"
    deadline = time.monotonic() + timeout
    while subprocess.run(["flock", "-n", str(lock), "true"], check=False).returncode != 0:
        assert time.monotonic() < deadline, "the merge did not finish"
        time.sleep(0.2)


def pushed_pack_count(repo: Path) -> int:
    """How many packs that pushes left (not merged yet) ``repo`` holds."""
    r = Repository(str(repo))
    try:
        return len(pushed_packs(r))
    finally:
        r.close()


def wait_for_pushes_merged(repo: Path, at_most: int, timeout: float = 120) -> None:
    """Wait (bounded) until the post-receive hook's merges leave at most ``at_most`` pushed packs in
    ``repo``, then for a merge still running to finish (``wait_for_maintenance``)."""
    deadline = time.monotonic() + timeout
    while pushed_pack_count(repo) > at_most:
        assert time.monotonic() < deadline, f"the pushed packs were not merged down to {at_most} in {timeout} s"
        time.sleep(0.2)
    wait_for_maintenance(repo, timeout)


def count_table_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The domains whose ref table a bucket client reads from now on, in order (``read_table`` counted)."""
    read: list[str] = []
    real = BucketClient.read_table

    def counting(self: BucketClient, domain: str, name: str) -> object:
        read.append(domain)
        return real(self, domain, name)

    monkeypatch.setattr(BucketClient, "read_table", counting)
    return read
