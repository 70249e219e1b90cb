"""Downloading never replaces a user's file silently: one rule in the Store, for Python and `cas` (issue 21, item 1)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import casstore
from casstore import DownloadConflictError, OtherFilesWarning
from tests.conftest import write_random
from tests.helpers.cli import cas


@pytest.fixture
def project(store: casstore.Store, tmp_path: Path) -> Path:
    """A project directory: the user's own report.txt, and a model whose extra file is also report.txt."""
    src = tmp_path / "src"
    src.mkdir()
    write_random(src / "model.bin", 200_000)
    (src / "report.txt").write_text("the model's report\n")
    store.commit_models("iris", model=str(src / "model.bin"), model_id="lr-2",
                        extra_files=[str(src / "report.txt")])
    work = tmp_path / "work"
    work.mkdir()
    (work / "report.txt").write_text("my own report\n")
    (work / "train.py").write_text("print('hi')\n")
    return work


def test_python_download_refuses_to_replace_a_users_file(store: casstore.Store, project: Path) -> None:
    with pytest.raises(DownloadConflictError) as e:
        store.download(project, "iris", "lr-2")
    assert e.value.paths == ["report.txt"]
    assert "report.txt" in str(e.value) and "force=True" in str(e.value) and "--force" in str(e.value)
    assert isinstance(e.value, FileExistsError)
    # nothing written: the user's file is intact and the model's other file did not appear
    assert (project / "report.txt").read_text() == "my own report\n"
    assert not (project / "model.bin").exists()

    with pytest.warns(OtherFilesWarning, match="train.py"):
        done = store.download(project, "iris", "lr-2", force=True)
    assert done == str(project) and isinstance(done, str)
    assert done.replaced == ("report.txt",)
    assert set(done.written) == {"model.bin", "report.txt"}
    assert done.others == ("train.py",)
    assert (project / "report.txt").read_text() == "the model's report\n"
    assert (project / "train.py").read_text() == "print('hi')\n"


def test_identical_files_are_unchanged_not_replaced(store: casstore.Store, project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = store.download(out, "iris", "lr-2")
    assert set(first.written) == {"model.bin", "report.txt"} and not first.replaced and not first.others
    before = (out / "model.bin").stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either: nothing here is foreign
        again = store.download(out, "iris", "lr-2")  # no force needed: nothing would be lost
    assert set(again.unchanged) == {"model.bin", "report.txt"}
    assert again.written == () and again.replaced == ()
    assert (out / "model.bin").stat().st_mtime_ns == before  # not rewritten

    r = cas("download", "iris", "lr-2", str(out), "--force", store=Path(store.path))
    assert "replaced" not in r.stdout
    assert "unchanged model.bin" in r.stdout and "unchanged report.txt" in r.stdout


def test_cli_reports_from_the_same_result(store: casstore.Store, project: Path) -> None:
    r = cas("download", "iris", "lr-2", str(project), store=Path(store.path), check=2)
    # the Store's message, word for word
    assert f"{project} already holds 1 file of iris/lr-2 (report.txt) with other content: nothing written" in r.stderr
    assert (project / "report.txt").read_text() == "my own report\n"
    r = cas("download", "iris", "lr-2", str(project), "--force", store=Path(store.path))
    assert "replaced report.txt" in r.stdout
    assert "also holds 1 other file that iris/lr-2 does not have (left untouched): train.py" in r.stdout
    assert "cas: warning" not in r.stderr  # said once, as the note
