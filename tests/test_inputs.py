"""Input that a later read would reject is refused before anything is written.

Regression tests for issue 9, cases 6, 10 and the extra-file parts of 14: extra-file
names the manifest cannot hold, author identities git rejects, symlinks inside extra
directories and pseudo-files that report size 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import casstore
from casstore.errors import ExtraFileError, FrameworkError, InvalidIdentityError
from tests.conftest import assert_git_fsck
from tests.helpers.cli import cas


def _nothing_written(store: casstore.Store, domain: str = "d") -> None:
    """No model, no history, no ref: the failed commit left no trace readers can see."""
    assert store.list_domains() == []
    assert store.fsck().ok


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    p = tmp_path / "m.bin"
    p.write_bytes(b"model bytes")
    return p


def test_extra_dot_is_stored_under_the_directory_name(store: casstore.Store, tmp_path: Path,
                                                     model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "proj" / "plots"
    d.mkdir(parents=True)
    (d / "a.png").write_bytes(b"png")
    monkeypatch.chdir(d)
    store.commit_models("d", model=str(model_file), extra_files=["."], model_id="v1")
    assert store.get_model_info("d", "v1")["extra_files"] == ["plots/a.png"]
    out = store.download(tmp_path / "out", "d", "v1")
    assert Path(out, "plots", "a.png").read_bytes() == b"png"
    store.commit_models("d", model=str(model_file), extra_files=[".."], model_id="v2")
    assert store.get_model_info("d", "v2")["extra_files"] == ["proj/plots/a.png"]
    assert store.fsck(read_data=True).ok


@pytest.mark.parametrize("name", ["new\nline", "tab\there", "back\\slash", "del\x7f"])
def test_unstorable_extra_names_are_refused_before_writing(store: casstore.Store, tmp_path: Path,
                                                           model_file: Path, name: str) -> None:
    p = tmp_path / name
    p.write_bytes(b"x")
    with pytest.raises(ExtraFileError, match="cannot be stored under the name"):
        store.commit_models("d", model=str(model_file), extra_files=[str(p)], model_id="v1")
    _nothing_written(store)
    # the same name inside an extra directory
    d = tmp_path / "dir"
    d.mkdir()
    (d / name).write_bytes(b"x")
    with pytest.raises(ExtraFileError):
        store.commit_models("d", model=str(model_file), extra_files=[str(d)], model_id="v1")
    _nothing_written(store)


def test_file_and_directory_with_the_same_name_are_refused(store: casstore.Store, tmp_path: Path,
                                                           model_file: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "plots").write_bytes(b"a file called plots")
    (tmp_path / "b" / "plots").mkdir(parents=True)
    (tmp_path / "b" / "plots" / "x.png").write_bytes(b"png")
    with pytest.raises(FrameworkError, match="needs 'plots' to be a directory"):
        store.commit_models("d", model=str(model_file), model_id="v1",
                            extra_files=[str(tmp_path / "a" / "plots"), str(tmp_path / "b" / "plots")])
    _nothing_written(store)
    # plots and plots/ are the same directory: one clear clash, nothing stored
    with pytest.raises(FrameworkError, match="both write"):
        store.commit_models("d", model=str(model_file), model_id="v1",
                            extra_files=[str(tmp_path / "b" / "plots"), str(tmp_path / "b" / "plots") + "/"])
    _nothing_written(store)


def test_cli_commit_with_bad_extra_leaves_id_free(tmp_path: Path, model_file: Path) -> None:
    s = tmp_path / "store"
    cas("init", store=s)
    bad = tmp_path / "x\ny"
    bad.write_bytes(b"1")
    r = cas("commit", "d", str(model_file), "--extra", str(bad), "--id", "v1", store=s, check=2)
    assert "cannot be stored under the name" in r.stderr and "Traceback" not in r.stderr
    cas("commit", "d", str(model_file), "--id", "v1", store=s)  # the ID was not burned
    assert "ok" in cas("fsck", store=s).stdout


def test_symlinks_in_extra_directories_are_followed(store: casstore.Store, tmp_path: Path,
                                                    model_file: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "inner.txt").write_bytes(b"inner")
    (tmp_path / "file.txt").write_bytes(b"outer")
    d = tmp_path / "extras"
    d.mkdir()
    os.symlink(target, d / "linked_dir")
    os.symlink(tmp_path / "file.txt", d / "linked_file")
    info = store.commit_models("d", model=str(model_file), extra_files=[str(d)], model_id="v1")
    assert sorted(info["extra_files"]) == ["extras/linked_dir/inner.txt", "extras/linked_file"]


def test_symlink_loops_are_a_clear_error(store: casstore.Store, tmp_path: Path, model_file: Path) -> None:
    d = tmp_path / "loop"
    d.mkdir()
    (d / "f").write_bytes(b"f")
    os.symlink("..", d / "up")  # loop/up -> tmp_path, which holds loop again
    os.symlink(d, d / "self")
    with pytest.raises(ExtraFileError, match="symlink loop"):
        store.commit_models("d", model=str(model_file), extra_files=[str(d)], model_id="v1")
    os.symlink("me", tmp_path / "me")
    with pytest.raises(ExtraFileError, match="leads nowhere"):
        store.commit_models("d", model=str(model_file), extra_files=[str(tmp_path / "me")], model_id="v1")
    dangling = tmp_path / "dang"
    dangling.mkdir()
    os.symlink(tmp_path / "missing", dangling / "x")
    with pytest.raises(ExtraFileError, match="leads nowhere"):
        store.commit_models("d", model=str(model_file), extra_files=[str(dangling)], model_id="v1")
    _nothing_written(store)


def test_pseudo_files_are_stored_with_their_content(store: casstore.Store, tmp_path: Path,
                                                    model_file: Path) -> None:
    src = "/proc/self/cmdline" if os.path.exists("/proc/self/cmdline") else None
    assert src is not None, "this test needs /proc (Linux)"
    assert os.stat(src).st_size == 0
    store.commit_models("d", model=str(model_file), extra_files=[src], model_id="v1")
    out = Path(store.download(tmp_path / "out", "d", "v1"))
    assert len((out / "cmdline").read_bytes()) > 0
    assert store.get_model_info("d", "v1")["files"][-1]["size"] > 0


@pytest.mark.parametrize("bad", ["Ana <ana", "Ana <a<b>", "<ana@x>", "Ana <ana@x> trailing", "A\nB <a@b>"])
def test_malformed_cas_author_is_refused(store: casstore.Store, model_file: Path,
                                         monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("CAS_AUTHOR", bad)
    with pytest.raises(InvalidIdentityError, match="CAS_AUTHOR"):
        store.commit_models("d", model=str(model_file), model_id="v1")
    _nothing_written(store)
    monkeypatch.setenv("CAS_AUTHOR", "Ana <ana@example.com>")
    store.commit_models("d", model=str(model_file), model_id="v1")
    store.create_model_state("prod")
    monkeypatch.setenv("CAS_AUTHOR", bad)
    for op in (lambda: store.set_model_state("d", "v1", "prod"), lambda: store.delete_model("d", "v1")):
        with pytest.raises(InvalidIdentityError):
            op()
    assert store.list_models("d") == ["v1"] and store.get_model_states("d", "v1") == []
    assert store.fsck().ok
    assert_git_fsck(store.path)


def test_author_defaults_to_git_user_name_and_email(store: casstore.Store, model_file: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAS_AUTHOR")
    Path(os.environ["HOME"], ".gitconfig").write_text("[user]\n\tname = Grace Hopper\n\temail = grace@navy.mil\n")
    info = store.commit_models("d", model=str(model_file), model_id="v1")
    assert info["author"] == "Grace Hopper <grace@navy.mil>"
    assert store.log("d")[0].author == "Grace Hopper <grace@navy.mil>"
    # the store's own config wins over the user's, as in git
    with open(os.path.join(store.path, "config"), "a") as f:
        f.write("[user]\n\tname = Ada Lovelace\n\temail = ada@example.org\n")
    assert store.commit_models("d", model=str(model_file), model_id="v2")["author"] == \
        "Ada Lovelace <ada@example.org>"
    assert_git_fsck(store.path)


def test_a_manifest_larger_than_any_remote_accepts_is_refused(store: casstore.Store, model_file: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose manifest would exceed MAX_OBJECT (256 MiB: ~350 GiB of files) could be committed
    but never pushed, since every transport refuses such an object; the commit refuses it instead,
    naming the model, and the ID stays free.  The limit is lowered here so that a small model hits it."""
    import casstore.model.manifest as manifest

    monkeypatch.setattr(manifest, "MAX_OBJECT", 4096)
    with pytest.raises(casstore.ModelTooLargeError, match=r"model d/v1: its manifest would be [\d,]+ bytes"):
        store.commit_models("d", model=str(model_file), extra_metadata={"notes": "x" * 5000}, model_id="v1")
    _nothing_written(store)
    store.commit_models("d", model=str(model_file), extra_metadata={"notes": "x" * 100}, model_id="v1")
    monkeypatch.undo()
    store.commit_models("d", model=str(model_file), extra_metadata={"notes": "x" * 5000}, model_id="v2")
    assert store.list_models("d") == ["v2", "v1"] and store.fsck().ok
