"""`cas clone URL [DIR]`, and what a git copy of a store is told."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import casstore
from casstore import NotAStoreError
from casstore.store import clone_store, init_store
from tests.conftest import assert_git_fsck
from tests.servers import git_daemon


def cas(*args: str, cwd: Path | None = None, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "casstore", *args], capture_output=True, text=True, timeout=120,
                       cwd=cwd)
    if check is not None:
        assert r.returncode == check, (r.returncode, r.stdout, r.stderr)
    return r


@pytest.fixture
def remote(tmp_path: Path) -> tuple[Path, bytes]:
    """A bare remote with two domains, pushed from a first machine."""
    path = tmp_path / "models.git"
    init_store(str(path), bare_remote=True)
    a = casstore.open(tmp_path / "a")
    data = os.urandom(300_000)
    (tmp_path / "m.bin").write_bytes(data)
    a.commit_models("fraud", model=str(tmp_path / "m.bin"), model_id="v1", extra_metadata={"acc": 0.9})
    a.commit_models("churn", model=str(tmp_path / "m.bin"), model_id="v1")
    a.create_model_state("production")
    a.set_model_state("fraud", "v1", "production")
    assert a.push(str(path)).ok
    return path, data


def test_cas_clone_makes_a_store_with_everything_and_origin(tmp_path: Path, remote: tuple[Path, bytes]) -> None:
    url, data = remote
    out = cas("clone", str(url), cwd=tmp_path).stdout
    cloned = tmp_path / "models"  # the URL's last part without .git, as git clone names it
    assert f"cloned {url} into {cloned}: 2 models in 2 domains" in out
    s = casstore.open(cloned, create=False)
    assert s.list_domains() == ["churn", "fraud"]
    assert Path(s.load("fraud", "v1")).read_bytes() == data
    assert s.get_model_states("fraud", "v1") == ["production"]
    assert s.get_model_info("fraud", "v1")["extra_metadata"] == {"acc": 0.9}
    assert cas("--store", str(cloned), "remote", "ls").stdout.strip() == f"origin\t{url}"
    assert cas("--store", str(cloned), "pull").returncode == 0  # origin is the default remote
    assert s.fsck().ok
    assert_git_fsck(cloned)


def test_clone_over_git_daemon_into_a_named_dir(tmp_path: Path, remote: tuple[Path, bytes]) -> None:
    url, data = remote
    with git_daemon(tmp_path) as base:
        store, result = clone_store(f"{base}/models.git", tmp_path / "mine", progress=None)
    with store:
        assert sorted(result.models_added) == ["churn/v1", "fraud/v1"]
        assert Path(store.load("churn", "v1")).read_bytes() == data


def test_clone_refuses_a_non_empty_dir_and_cleans_up_after_a_failure(tmp_path: Path,
                                                                        remote: tuple[Path, bytes]) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    r = cas("clone", str(remote[0]), str(tmp_path / "busy"), check=2)
    assert "not an empty directory" in r.stderr
    assert os.listdir(tmp_path / "busy") == ["notes.txt"]
    # a remote that is not there: nothing is left behind, as git clone does
    r = cas("clone", str(tmp_path / "nowhere.git"), str(tmp_path / "new"), check=2)
    assert "nowhere.git" in r.stderr
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    cas("clone", str(tmp_path / "nowhere.git"), str(tmp_path / "empty"), check=2)
    assert os.listdir(tmp_path / "empty") == []


def test_a_git_mirror_of_a_store_is_named_and_cas_clone_reads_it(tmp_path: Path,
                                                                  remote: tuple[Path, bytes]) -> None:
    url, data = remote
    mirror = tmp_path / "mirror.git"
    subprocess.run(["git", "clone", "-q", "--mirror", str(url), str(mirror)], check=True)
    with pytest.raises(NotAStoreError, match="git clone --mirror.*cas clone"):
        casstore.open(mirror, create=False)
    with pytest.raises(NotAStoreError, match="cas clone"):
        casstore.Store(str(mirror))
    r = cas("--store", str(mirror), "ls", "fraud", check=2)
    assert f"cas clone {mirror} DIR" in r.stderr
    cas("clone", str(mirror), str(tmp_path / "from-mirror"))
    s = casstore.open(tmp_path / "from-mirror", create=False)
    assert Path(s.load("fraud", "v1")).read_bytes() == data
    assert s.fsck(read_data=True).ok
