"""Settings: `cas config` (store and --global), the default remote, remote set-url / rename / URL checks."""

from __future__ import annotations

from pathlib import Path

import pytest

import casstore
from casstore.cli import main as cli_main
from casstore.remote.config import UnsupportedRemoteError, check_url, list_remotes
from casstore.util.config import user_config_path


@pytest.fixture
def store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "store"
    casstore.init_store(str(path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli_main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_config_get_set_unset_like_git(store_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = str(store_path)
    assert run(capsys, "config", "cas.allowPickle", "--store", s) == (1, "", "")  # unset: exit 1, no output
    assert run(capsys, "config", "cas.allowPickle", "false", "--store", s)[0] == 0
    assert run(capsys, "config", "cas.allowPickle", "--store", s) == (0, "false\n", "")
    with casstore.open(store_path, create=False) as st:
        assert st.allow_pickle is False
    rc, out, _ = run(capsys, "config", "--list", "--store", s)
    assert "cas.allowPickle=false" in out.splitlines() and "cas.formatVersion=1" in out.splitlines()
    assert run(capsys, "config", "--unset", "cas.allowPickle", "--store", s)[0] == 0
    assert run(capsys, "config", "cas.allowPickle", "--store", s)[0] == 1
    # refused: unknown keys, casstore's own marker, git's core settings, bad values
    for argv in (["cas.alowPickle", "no"], ["cas.formatVersion", "9"], ["core.compression", "9"],
                 ["cas.allowPickle", "maybe"], ["cas.loadCacheLimit", "lots"], ["remote.o.url", "ftp://x/y"]):
        rc, _, err = run(capsys, "config", *argv, "--store", s)
        assert rc == 2 and err.startswith("cas: error: ") and (argv[0] in err or argv[1] in err), (argv, err)
    with casstore.open(store_path, create=False) as st:
        assert st.repo.config.get((b"cas",), b"formatVersion") == b"1"


def test_global_config_is_the_default_and_the_store_wins(store_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    s = str(store_path)
    rc, _, err = run(capsys, "config", "--global", "cas.allowPickle", "false")
    assert rc == 0 and err == f"cas: user config {user_config_path()}\n"
    assert Path(user_config_path()).read_text().count("allowPickle = false") == 1
    with casstore.open(store_path, create=False) as st:
        assert st.allow_pickle is False  # the user's default
    run(capsys, "config", "cas.allowPickle", "true", "--store", s)
    with casstore.open(store_path, create=False) as st:
        assert st.allow_pickle is True  # the store's own value wins
    rc, _, err = run(capsys, "config", "--global", "user.name", "Ana")
    assert rc == 2 and "git config --global" in err


def test_default_remote_set_url_and_rename(store_path: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    s = str(store_path)
    other, moved = tmp_path / "other", tmp_path / "moved"
    casstore.init_store(str(other))
    casstore.init_store(str(moved))
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights" * 100)
    with casstore.open(store_path, create=False) as st:
        st.commit_models("d", model=str(model), model_id="v1")
    assert run(capsys, "remote", "add", "backup", str(other), "--store", s)[0] == 0
    # no remote named, no origin: cas.defaultRemote says which
    rc, _, err = run(capsys, "push", "--store", s)
    assert rc == 2 and "no remote named 'origin'" in err
    run(capsys, "config", "cas.defaultRemote", "backup", "--store", s)
    rc, out, _ = run(capsys, "push", "--store", s)
    assert rc == 0 and out.startswith(f"push {other}: 1 model added")
    # set-url: the same name now sends elsewhere
    assert run(capsys, "remote", "set-url", "backup", str(moved), "--store", s)[0] == 0
    assert run(capsys, "push", "--store", s)[1].startswith(f"push {moved}: 1 model added")
    # rename: the default follows the name
    assert run(capsys, "remote", "rename", "backup", "archive", "--store", s)[0] == 0
    with casstore.open(store_path, create=False) as st:
        assert list_remotes(st.repo) == {"archive": str(moved)}
    assert run(capsys, "config", "cas.defaultRemote", "--store", s)[1] == "archive\n"
    assert run(capsys, "push", "--store", s)[1].startswith(f"push {moved}: 0 models added")
    for argv, message in ((["remote", "rename", "nope", "x"], "no remote named 'nope'"),
                          (["remote", "set-url", "nope", str(moved)], "no remote named 'nope'"),
                          (["remote", "set-url", "archive", "ftp://x/y"], "unsupported scheme")):
        rc, _, err = run(capsys, *argv, "--store", s)
        assert rc == 2 and message in err, (argv, err)


def test_remote_urls_are_checked_when_added(store_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for url in ("/srv/models", "./models", "models", "file:///srv/models", "ssh://host/srv/m.git",
                "git@github.com:team/models.git", "host:/srv/m.git", "git://host/m.git", "http://h/m.git",
                "https://h/m.git", "s3://bucket/prefix", "gs://bucket/prefix", "az://container/prefix"):
        assert check_url(url) == url
    rc, _, err = run(capsys, "remote", "add", "x", "ftp://x/y", "--store", str(store_path))
    assert rc == 2 and "remote URL 'ftp://x/y': unsupported scheme" in err
    with casstore.open(store_path, create=False) as st:
        assert list_remotes(st.repo) == {}
        with pytest.raises(UnsupportedRemoteError):
            st.pull("ftp://x/y")  # a URL given directly is checked too, before any transport runs
