"""A new user's setup: which store a command uses, and that only `cas init` creates one."""

from __future__ import annotations

from pathlib import Path

import pytest

import casstore
from casstore.cli import main as cli_main
from casstore.store import resolve_store
from tests.test_cli import cas


def test_relative_cas_store_from_a_subdirectory_creates_nothing(tmp_path: Path) -> None:
    """Regression: `CAS_STORE=./models` then `cas commit` in sub/ silently created sub/models."""
    (tmp_path / "sub").mkdir()
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    cas("init", "./models", cwd=tmp_path)
    env = {"CAS_STORE": "./models"}
    r = cas("commit", "fraud", str(model), "--id", "v1", env=env, cwd=tmp_path)
    assert r.stderr == f"cas: store {tmp_path / 'models'}\n"  # a write names its store
    r = cas("commit", "fraud", str(model), "--id", "v2", env=env, cwd=tmp_path / "sub", check=2)
    assert not (tmp_path / "sub" / "models").exists()
    assert r.stderr.startswith(f"cas: error: {tmp_path / 'sub' / 'models'} is not a casstore store")
    assert "$CAS_STORE=./models" in r.stderr and f"relative to the current directory {tmp_path / 'sub'}" in r.stderr
    assert casstore.open(tmp_path / "models", create=False).list_models("fraud") == ["v1"]


def test_no_command_but_init_creates_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    remote = tmp_path / "remote"
    casstore.init_store(str(remote))
    monkeypatch.setenv("CAS_STORE", str(tmp_path / "modles"))  # a typo
    for command in (["commit", "d", str(model)], ["pull", str(remote)], ["push", str(remote)], ["ls", "d"],
                    ["log", "d"], ["state", "create", "prod"], ["remote", "add", "o", "/x"], ["gc"], ["rm", "d", "x"],
                    ["cp", "d", "x", "y"], ["fsck"], ["du"], ["download", "d", "x", str(tmp_path / "out")]):
        assert cli_main(command) == 2, command
        err = capsys.readouterr().err
        assert not (tmp_path / "modles").exists(), command
        assert f"{tmp_path / 'modles'} is not a casstore store" in err and "$CAS_STORE=" in err, (command, err)


def test_default_store_is_named_in_the_error(tmp_path: Path) -> None:
    r = cas("ls", "fraud", check=2)
    home = Path.home() / ".casstore"
    assert r.stderr.startswith(f"cas: error: {home} is not a casstore store")
    assert "the default ~/.casstore" in r.stderr and "cas init" in r.stderr
    assert not home.exists()


def test_store_option_after_the_command(tmp_path: Path) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    store = tmp_path / "models"
    cas("init", str(store))
    cas("commit", "fraud", str(model), "--id", "v1", "--store", str(store))
    assert cas("ls", "fraud", "--store", str(store)).stdout == "v1\n"
    cas("state", "create", "prod", "--store", str(store))
    cas("state", "set", "fraud", "v1", "prod", "--store", str(store))
    assert cas("state", "ls", "fraud", "v1", "--store", str(store)).stdout == "prod\n"
    cas("remote", "add", "origin", str(tmp_path / "r"), "--store", str(store))
    assert cas("remote", "--store", str(store), "ls").stdout == f"origin\t{tmp_path / 'r'}\n"
    # given before the command, not overwritten by the subcommand's own (absent) option
    assert cas("--store", str(store), "ls", "fraud").stdout == "v1\n"
    # after the command wins over before it, like the last of two options
    cas("--store", str(tmp_path / "nothing"), "ls", "fraud", "--store", str(store))


def test_resolve_store_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_store("x") == (str(tmp_path / "x"), "--store")
    monkeypatch.setenv("CAS_STORE", "rel")
    path, source = resolve_store()
    assert path == str(tmp_path / "rel") and source.startswith("$CAS_STORE=rel")
    monkeypatch.delenv("CAS_STORE")
    assert resolve_store()[0] == str(Path.home() / ".casstore")


def test_python_open_without_create_names_path_and_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAS_STORE", str(tmp_path / "typo"))
    with pytest.raises(casstore.NotAStoreError) as e:
        casstore.open(create=False)
    assert e.value.path == str(tmp_path / "typo") and "$CAS_STORE" in str(e.value)
    assert not (tmp_path / "typo").exists()
