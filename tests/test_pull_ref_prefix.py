"""A pull of some domains from a git server lists only their refs (protocol v2's ref-prefix) and still gets them."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from dulwich.objects import ObjectID
from dulwich.refs import Ref

import casstore
from casstore.remote import sync
from casstore.remote.report import RemoteRefs
from tests.conftest import assert_git_fsck
from tests.helpers.remotes import new_remote
from tests.servers import git_daemon, http_backend, sshd


@contextmanager
def served(kind: str, tmp_path: Path, remotes: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    new_remote(remotes)
    if kind == "git":
        with git_daemon(remotes) as base:
            yield f"{base}/models.git"
    elif kind == "http":
        with http_backend(remotes) as base:
            yield f"{base}/models.git"
    else:
        with sshd(tmp_path) as (base, env):
            for k, v in env.items():
                monkeypatch.setenv(k, v)
            yield f"{base}{remotes / 'models.git'}"


@pytest.mark.parametrize("kind", ["git", "http", "ssh"])
def test_a_pull_of_one_domain_gets_it_and_lists_only_its_refs_where_the_server_can(
        kind: str, tmp_path: Path, remotes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(os.urandom(5000))
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    for i in range(4):
        a.commit_models("big", model=str(f), model_id=f"m{i}")
    a.commit_models("small", model=str(f), model_id="s0")
    a.commit_models("small2", model=str(f), model_id="t0")
    a.create_model_state("prod")
    a.set_model_state("small", "s0", "prod")
    seen: list[set[bytes]] = []
    real = sync.parse_refs

    def recording(refs: Mapping[Ref, ObjectID], url: str) -> RemoteRefs:
        seen.append(set(refs))
        return real(refs, url)

    with served(kind, tmp_path, remotes, monkeypatch) as url:
        assert a.push(url).ok
        monkeypatch.setattr(sync, "parse_refs", recording)
        result = b.pull(url, ["small"])
        assert result.ok and result.models_added == ["small/s0"], result
        assert b.list_models("small") == ["s0"] and b.list_domains() == ["small"]
        assert b.get_model_states("small", "s0") == ["prod"]  # the state list came too
        names = seen[-1]
        assert b"refs/cas/models/small/s0" in names and b"refs/cas/states" in names
        if kind in ("git", "ssh"):  # git daemon and sshd pass the protocol version on; this http test server does not
            assert not any(n.startswith(b"refs/cas/models/big/") for n in names), sorted(names)
        assert b.pull(url).ok  # and a pull of everything lists everything
        assert sorted(b.list_domains()) == ["big", "small", "small2"]
    assert b.fsck().ok
    assert_git_fsck(b.path)
