"""Push and pull between stores, against real git servers on loopback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import casstore
from casstore.errors import RemoteError
from tests.conftest import git
from tests.helpers.remotes import check_all, new_remote
from tests.servers import dropping_proxy, git_daemon, http_backend, sshd

MiB = 1 << 20


def remote_model_file(tmp_path: Path, url: str, remote: Path | str, domain: str, model_id: str) -> bytes:
    """The content of a model file as the remote holds it."""
    if isinstance(remote, Path):
        return Path(casstore.Store(str(remote)).load(domain, model_id)).read_bytes()
    fresh = casstore.open(tmp_path / "inspect")
    fresh.pull(url, [domain])
    return Path(fresh.load(domain, model_id)).read_bytes()


def stores(tmp_path: Path) -> tuple[casstore.Store, casstore.Store]:
    return casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")


def round_trip(a: casstore.Store, b: casstore.Store, url: str, forest: tuple, remote_path: Path) -> None:
    clf, X = forest
    a.commit_models("fraud", model=clf, model_id="v1", extra_metadata={"auc": 0.9})
    result = a.push(url)
    assert result.ok and result.models_added == ["fraud/v1"], result
    result = b.pull(url)
    assert result.ok and result.models_added == ["fraud/v1"], result
    loaded = b.load("fraud", "v1")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert b.get_model_info("fraud", "v1") == a.get_model_info("fraud", "v1")
    assert [e.model_id for e in b.log("fraud")] == ["v1"]
    check_all(a.path, b.path, remote_path)


def test_round_trip_path(tmp_path: Path, remotes: Path, forest: tuple) -> None:
    path = remotes / "fresh"  # does not exist yet: the first push initialises it
    a, b = stores(tmp_path)
    round_trip(a, b, str(path), forest, path)
    assert os.path.exists(path / "hooks" / "pre-receive")


def test_round_trip_file_url_into_empty_dir(tmp_path: Path, remotes: Path, forest: tuple) -> None:
    path = remotes / "empty"
    path.mkdir()
    a, b = stores(tmp_path)
    round_trip(a, b, f"file://{path}", forest, path)


def test_round_trip_git_daemon(tmp_path: Path, remotes: Path, forest: tuple) -> None:
    path = new_remote(remotes)
    a, b = stores(tmp_path)
    with git_daemon(remotes) as base:
        round_trip(a, b, f"{base}/models.git", forest, path)


def test_round_trip_http_backend(tmp_path: Path, remotes: Path, forest: tuple) -> None:
    path = new_remote(remotes)
    a, b = stores(tmp_path)
    with http_backend(remotes) as base:
        round_trip(a, b, f"{base}/models.git", forest, path)


def test_round_trip_https_with_ca_from_store_config(tmp_path: Path, remotes: Path, forest: tuple) -> None:
    from dulwich.config import ConfigFile

    path = new_remote(remotes)
    a, b = stores(tmp_path)
    tls = tmp_path / "tls"
    with http_backend(remotes, tls_dir=tls) as base:
        url = f"{base}/models.git"
        a.commit_models("x", model=forest[0], model_id="probe")
        with pytest.raises(RemoteError, match="(?i)certificate|ssl"):
            a.push(url)  # the throwaway CA is not trusted yet
        a.delete_model("x", "probe")
        for s in (a, b):  # trust it the way git would: http.sslCAInfo in the store's config
            cfg_path = os.path.join(s.path, "config")
            cfg = ConfigFile.from_path(cfg_path)
            cfg.set((b"http",), b"sslCAInfo", str(tls / "ca.pem").encode())
            cfg.write_to_path(cfg_path)
        round_trip(a, b, url, forest, path)


def test_round_trip_ssh(tmp_path: Path, remotes: Path, forest: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    path = new_remote(remotes)
    a, b = stores(tmp_path)
    with sshd(tmp_path) as (base, env):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        round_trip(a, b, f"{base}{path}", forest, path)


def test_round_trip_scp_like_ssh(tmp_path: Path, remotes: Path, forest: tuple,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = new_remote(remotes)
    a, b = stores(tmp_path)
    with sshd(tmp_path) as (base, env):
        user_host, port = base[len("ssh://"):].rsplit(":", 1)
        monkeypatch.setenv("GIT_SSH_COMMAND", env["GIT_SSH_COMMAND"] + f" -p {port}")
        round_trip(a, b, f"{user_host}:{path}", forest, path)


def test_only_missing_chunks_travel(tmp_path: Path, any_remote: tuple[str, Path | str]) -> None:
    url, remote_path = any_remote
    a, b = stores(tmp_path)
    size = 32 * MiB
    rng = np.random.default_rng(0)
    data = bytearray(rng.bytes(size))
    f1 = tmp_path / "w1.bin"
    f1.write_bytes(data)
    a.commit_models("d", model=str(f1), model_id="v1")
    first = a.push(url)
    assert first.bytes >= size
    assert b.pull(url).bytes >= size
    for blk in rng.choice(size // MiB, size // MiB // 10, replace=False):  # 10% of 1 MiB blocks
        data[blk * MiB : (blk + 1) * MiB] = rng.bytes(MiB)
    f2 = tmp_path / "w2.bin"
    f2.write_bytes(data)
    a.commit_models("d", model=str(f2), model_id="v2")
    second = a.push(url)
    assert second.ok
    assert second.bytes <= 0.15 * size, second.bytes
    pulled = b.pull(url)
    assert pulled.models_added == ["d/v2"]
    assert pulled.bytes <= 0.15 * size, pulled.bytes
    assert Path(b.load("d", "v2")).read_bytes() == bytes(data)
    # pulled chunks are indexed: committing the same file in b stores nothing new
    again = b.commit_models("d", model=str(f2), model_id="v2-again")
    assert again["stats"]["chunks_new"] == 0
    check_all(a.path, b.path, remote_path)


def _file(tmp_path: Path, name: str, size: int = 200_000) -> str:
    p = tmp_path / name
    p.write_bytes(os.urandom(size))
    return str(p)


@pytest.mark.parametrize("order", ["a-first", "b-first"])
def test_two_machines_same_domain_merge(tmp_path: Path, any_remote: tuple[str, Path | str], order: str) -> None:
    url, remote_path = any_remote
    a, b = stores(tmp_path)
    a.commit_models("d", model=_file(tmp_path, "a1"), model_id="a1")
    assert a.push(url).ok
    assert b.pull(url).ok
    a.commit_models("d", model=_file(tmp_path, "a2"), model_id="a2")
    b.commit_models("d", model=_file(tmp_path, "b1"), model_id="b1")
    first, second = (a, b) if order == "a-first" else (b, a)
    assert first.push(url).ok
    refused = second.push(url)  # second has not seen first's new history
    assert refused.diverged == ["d"] and not refused.models_added
    assert second.pull(url).ok
    assert second.push(url).ok
    assert first.pull(url).ok
    for s in (a, b):
        assert sorted(s.list_models("d")) == ["a1", "a2", "b1"]
        assert sorted(e.model_id for e in s.log("d")) == ["a1", "a2", "b1"]
    assert a.refs.get(b"refs/cas/domains/d") == b.refs.get(b"refs/cas/domains/d")  # one merged history
    check_all(a.path, b.path, remote_path)


def test_same_id_different_content_is_a_conflict(tmp_path: Path, any_remote: tuple[str, Path | str]) -> None:
    url, remote_path = any_remote
    a, b = stores(tmp_path)
    a.commit_models("d", model=_file(tmp_path, "base"), model_id="base")
    assert a.push(url).ok and b.pull(url).ok
    fa, fb = _file(tmp_path, "x-a"), _file(tmp_path, "x-b")
    a.commit_models("d", model=fa, model_id="x")
    b.commit_models("d", model=fb, model_id="x")
    b.commit_models("d", model=_file(tmp_path, "other"), model_id="other")
    assert a.push(url).ok
    pulled = b.pull(url)
    assert pulled.conflicts == ["d/x"]
    assert Path(b.load("d", "x")).read_bytes() == Path(fb).read_bytes()  # local model kept
    pushed = b.push(url)  # a conflict holds back the whole domain (docs/remotes.md)
    assert pushed.conflicts == ["d/x"] and pushed.models_added == []
    assert a.pull(url).conflicts == []
    assert Path(a.load("d", "x")).read_bytes() == Path(fa).read_bytes()  # remote never overwritten
    assert sorted(a.list_models("d")) == ["base", "x"]
    assert remote_model_file(tmp_path, url, remote_path, "d", "x") == Path(fa).read_bytes()
    b.delete_model("d", "x")  # resolved: B keeps theirs
    assert b.pull(url).ok
    assert b.push(url).models_added == ["d/other"]
    assert a.pull(url).models_added == ["d/other"]
    assert sorted(a.list_models("d")) == ["base", "other", "x"]
    assert Path(b.load("d", "x")).read_bytes() == Path(fa).read_bytes()
    check_all(a.path, b.path, remote_path)


def test_deletions_and_states_travel(tmp_path: Path, any_remote: tuple[str, Path | str]) -> None:
    url, remote_path = any_remote
    a, b = stores(tmp_path)
    for mid in ("v1", "v2"):
        a.commit_models("d", model=_file(tmp_path, mid), model_id=mid)
    a.create_model_state("production")
    a.set_model_state("d", "v1", "production")
    assert a.push(url).ok and b.pull(url).ok
    assert b.list_model_states() == ["production"]
    assert b.list_models("d", state_name="production") == ["v1"]
    a.delete_model("d", "v2")
    a.remove_model_state("d", "v1", "production")
    a.set_model_state("d", "v1", "production")  # a no-op
    a.create_model_state("staging")
    a.set_model_state("d", "v1", "staging")
    pushed = a.push(url)
    assert pushed.ok and pushed.models_deleted == ["d/v2"]
    pulled = b.pull(url)
    assert pulled.ok and pulled.models_deleted == ["d/v2"]
    assert b.list_models("d") == ["v1"]
    assert b.get_model_states("d", "v1") == ["production", "staging"]
    assert [e.event for e in b.log("d")][:2] == ["state-set", "state-set"]
    check_all(a.path, b.path, remote_path)


def test_server_hook_refuses_moving_a_model(tmp_path: Path, remote_url: tuple[str, Path]) -> None:
    url, remote_path = remote_url
    a, _ = stores(tmp_path)
    a.commit_models("d", model=_file(tmp_path, "one"), model_id="m")
    a.commit_models("d", model=_file(tmp_path, "two"), model_id="n")
    assert a.push(url).ok
    before = git(remote_path, "for-each-ref").stdout
    # a plain git client force-pushing one model over another
    r = subprocess.run(["git", "--git-dir", a.path, "push", "--force", url,
                        "refs/cas/models/d/n:refs/cas/models/d/m"], capture_output=True, text=True)
    assert r.returncode != 0
    r = subprocess.run(["git", "--git-dir", a.path, "push", url, ":refs/cas/models/d/m"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "history still lists it" in r.stderr
    assert git(remote_path, "for-each-ref").stdout == before


def test_dead_remote_is_a_clear_error(tmp_path: Path) -> None:
    a, _ = stores(tmp_path)
    a.commit_models("d", model=_file(tmp_path, "m"), model_id="m")
    from tests.servers import free_port

    with pytest.raises(RemoteError, match="127.0.0.1"):
        a.push(f"git://127.0.0.1:{free_port()}/nothing.git")
    with pytest.raises(RemoteError):
        a.pull(f"git://127.0.0.1:{free_port()}/nothing.git")
    assert a.fsck().ok


def test_dropped_connection_then_retry(tmp_path: Path, remotes: Path) -> None:
    path = new_remote(remotes)
    a, b = stores(tmp_path)
    a.commit_models("d", model=_file(tmp_path, "big", 8 * MiB), model_id="big")
    a.push(str(path))
    with git_daemon(remotes) as base:
        port = int(base.rsplit(":", 1)[1])
        with dropping_proxy(port, limit=2 * MiB) as proxy:
            with pytest.raises(RemoteError):
                b.pull(f"git://127.0.0.1:{proxy}/models.git")
        assert b.list_domains() == []
        assert os.listdir(os.path.join(b.path, "cas", "tmp")) == []
        assert os.listdir(os.path.join(b.path, "objects", "pack")) == []
        assert b.pull(f"{base}/models.git").models_added == ["d/big"]
    check_all(b.path, path)


def test_dropped_connection_on_path_transport(tmp_path: Path, remotes: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """git upload-pack dies at once (a wrapper on PATH); nothing changes, and a retry completes.

    Objects of a path remote are copied, not sent by upload-pack (localpath.py): the
    subprocess only advertises refs.  A crash in the middle of the copy itself is
    tested in test_localpath.py.
    """
    import shutil

    path = new_remote(remotes)
    a, b = stores(tmp_path)
    a.commit_models("d", model=_file(tmp_path, "big", 8 * MiB), model_id="big")
    assert a.push(str(path)).ok
    real_git = shutil.which("git")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(
        "#!/bin/sh\n"
        'if [ "$1" = upload-pack ]; then echo "upload-pack died" >&2; exit 1; fi\n'
        f'exec "{real_git}" "$@"\n')
    (bin_dir / "git").chmod(0o755)
    with monkeypatch.context() as m:
        m.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        with pytest.raises(RemoteError):
            b.pull(str(path))
    assert b.list_domains() == []
    assert os.listdir(os.path.join(b.path, "cas", "tmp")) == []
    assert os.listdir(os.path.join(b.path, "objects", "pack")) == []
    assert b.pull(str(path)).models_added == ["d/big"]
    check_all(b.path, path)


def test_named_remotes(tmp_path: Path, remotes: Path) -> None:
    from casstore.remote.config import RemoteNotFoundError, add_remote, list_remotes, remove_remote

    a, _ = stores(tmp_path)
    add_remote(a.repo, "origin", str(remotes / "r"))
    assert list_remotes(a.repo) == {"origin": str(remotes / "r")}
    a.commit_models("d", model=_file(tmp_path, "m"), model_id="m")
    assert a.push("origin").models_added == ["d/m"]
    remove_remote(a.repo, "origin")
    with pytest.raises(RemoteNotFoundError):
        a.push("origin")


def test_push_when_the_remote_has_a_state_list_we_never_pulled(tmp_path: Path,
                                                               any_remote: tuple[str, Path | str]) -> None:
    """Found by the stateful test: such a push crashed with "object is missing"."""
    url, remote = any_remote
    a, b = stores(tmp_path)
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    a.create_model_state("prod")
    a.commit_models("d", model=str(model), model_id="v1")
    assert a.push(url).ok
    # b has no state list of its own: its models go, nothing to merge
    b.commit_models("e", model=str(model), model_id="w1")
    result = b.push(url)
    assert result.ok and result.models_added == ["e/w1"], result
    # b has states of its own: models still go, the state list waits for a pull
    b.create_model_state("staging")
    b.commit_models("e", model=str(model), model_id="w2")
    result = b.push(url)
    assert not result.ok and result.diverged == ["refs/cas/states"] and result.models_added == ["e/w2"], result
    assert b.pull(url).ok
    assert b.list_model_states() == ["prod", "staging"]
    assert b.push(url).ok
    assert a.pull(url).ok and a.list_model_states() == ["prod", "staging"]
    check_all(a.path, b.path, remote)
