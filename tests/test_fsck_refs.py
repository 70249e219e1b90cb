"""fsck reads the refs in one scan (loose files and ``packed-refs`` by expressions) and still names every bad one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import casstore
from casstore.cli import main
from casstore.objects.refs import CheckedRefsContainer, domain_ref, model_ref
from tests.conftest import git


@pytest.fixture
def packed(tmp_path: Path) -> casstore.Store:
    """A store of domain ``d`` (5 models) and ``e`` (1), every ref in ``packed-refs`` but the domains' histories."""
    s = casstore.open(tmp_path / "store")
    f = tmp_path / "w.bin"
    f.write_bytes(os.urandom(3000))
    for i in range(5):
        s.commit_models("d", model=str(f), model_id=f"m{i}")
    s.commit_models("e", model=str(f), model_id="x")
    assert git(s.path, "pack-refs", "--all").returncode == 0
    for domain in ("d", "e"):  # the histories loose again, as casstore's next write of the domain leaves them
        sha = s.refs.get(domain_ref(domain))
        assert sha is not None
        os.makedirs(os.path.join(s.path, "refs", "cas", "domains"), exist_ok=True)
        with open(os.path.join(s.path, "refs", "cas", "domains", domain), "wb") as out:
            out.write(sha + b"\n")
    assert not os.path.exists(os.path.join(s.path, "refs", "cas", "models", "d", "m0"))
    return casstore.open(s.path)


def test_fsck_of_packed_model_refs_never_parses_packed_refs_through_dulwich(
        packed: casstore.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """dulwich's parse checks each of a million names (~10 s); fsck reads them by one expression."""
    calls = []
    real = CheckedRefsContainer.get_packed_refs

    def counted(self: CheckedRefsContainer) -> object:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(CheckedRefsContainer, "get_packed_refs", counted)
    report = packed.fsck()
    assert report.ok, report.problems
    assert report.models == 6
    assert calls == []


def test_a_damaged_loose_model_ref_is_reported(packed: casstore.Store) -> None:
    path = os.path.join(packed.path, "refs", "cas", "models", "d", "m2")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("not a sha\n")
    report = packed.fsck()
    assert not report.ok
    assert any(p.kind == "ref" and p.name == path and "not an object id" in p.detail for p in report.problems)


def test_an_empty_loose_model_ref_is_reported(packed: casstore.Store) -> None:
    path = os.path.join(packed.path, "refs", "cas", "models", "d", "m3")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()
    report = packed.fsck()
    assert any(p.name == path and "is empty" in p.detail for p in report.problems), report.problems


@pytest.mark.parametrize("line", [b"0123 refs/cas/models/d/m9\n", b"\n",
                                  b"0123456789abcdef0123456789abcdef0123456 refs/cas/models/d/m9\n"])
def test_a_damaged_packed_refs_line_is_reported(packed: casstore.Store, line: bytes,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    packed_refs = os.path.join(packed.path, "packed-refs")
    with open(packed_refs, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    lines.insert(3, line)  # among the domain's lines
    with open(packed_refs, "wb") as f:
        f.writelines(lines)
    report = packed.fsck()
    assert not report.ok
    assert any(p.name == packed_refs and "damaged packed-refs" in p.detail for p in report.problems), report.problems
    if line.strip():
        assert any("line 4" in p.detail for p in report.problems)
    assert main(["--store", packed.path, "fsck"]) == 1
    assert "packed-refs" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["refs/cas/models/d/a+b", "refs/cas/models/d/x/y", "refs/cas/models/bad%dom/x",
                                  "refs/cas/domains/-a+"])
def test_a_model_ref_with_a_bad_name_is_reported(packed: casstore.Store, name: str) -> None:
    sha = packed.refs.get(model_ref("d", "m0"))
    assert sha is not None
    assert git(packed.path, "update-ref", name, sha.decode()).returncode == 0
    report = packed.fsck()
    assert not report.ok
    assert any(p.kind == "ref" and name.startswith(p.name) and "invalid" in p.detail for p in report.problems), \
        report.problems
    assert report.models == 6  # the other models are still checked


def test_a_deleted_model_whose_ref_is_packed_is_not_listed(packed: casstore.Store) -> None:
    """A loose ref wins over a packed one, and a deletion removes the packed line: fsck sees what the API sees."""
    packed.delete_model("d", "m1")
    report = packed.fsck()
    assert report.ok, report.problems
    assert report.models == 5
