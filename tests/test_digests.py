"""The whole-file BLAKE3 digest a manifest records is checked wherever a file is read in full
(issue 20 item 2): a manifest claiming another file's digest is caught by download, load,
open_file read to the end and fsck --read-data, and never makes ``diff`` call a changed file
unchanged.  (Pulls refuse such a model: tests/test_hostile_remote.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import blake3
import pytest

import casstore
from casstore import CorruptObjectError
from casstore.model import ingest


@pytest.fixture
def lying(store: casstore.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> casstore.Store:
    """d/v1 (model.bin, honest) and d/v2 whose model.bin differs but whose manifest records
    v1's BLAKE3 for it: what anyone with push access could send."""
    v1 = tmp_path / "v1" / "model.bin"
    v2 = tmp_path / "v2" / "model.bin"
    for p, seed in ((v1, b"1"), (v2, b"2")):
        p.parent.mkdir()
        p.write_bytes(seed * 200_000 + os.urandom(100_000))
    store.commit_models("d", model=str(v1), model_id="v1")
    claimed = blake3.blake3(v1.read_bytes()).digest()
    honest = ingest._hash_file

    def claim_v1(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = honest(*args, **kwargs)
        out.blake3 = claimed
        return out

    with monkeypatch.context() as m:
        m.setattr(ingest, "_hash_file", claim_v1)
        store.commit_models("d", model=str(v2), model_id="v2")
    assert store.get_model_info("d", "v2")["files"][0]["digest"] == "blake3:" + claimed.hex()
    return store


def test_download_load_and_open_file_refuse_a_false_digest(lying: casstore.Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(CorruptObjectError, match="model.bin: file does not match its manifest BLAKE3 digest"):
        lying.download(str(out), "d", "v2")
    assert not (out / "model.bin").exists()  # nothing appears under the final name
    with pytest.raises(CorruptObjectError, match="BLAKE3 digest"):
        lying.load("d", "v2")
    with lying.open_file("d", "v2", "model.bin") as f, pytest.raises(CorruptObjectError, match="BLAKE3 digest"):
        f.read()
    lying.download(str(tmp_path / "good"), "d", "v1")  # the honest model is fine
    with lying.open_file("d", "v1", "model.bin") as f:
        f.read()


def test_fsck_read_data_reports_a_false_digest(lying: casstore.Store) -> None:
    assert lying.fsck().ok  # without reading data: the chunks are all there
    report = lying.fsck(read_data=True)
    assert [(p.kind, p.name) for p in report.problems] == [("model", "d/v2")], report.problems
    assert "BLAKE3 digest" in report.problems[0].detail
    cli = subprocess.run([sys.executable, "-m", "casstore", "--store", lying.path, "fsck", "--read-data"],
                         capture_output=True, text=True, check=False, timeout=120)
    assert cli.returncode == 1 and "d/v2" in cli.stdout + cli.stderr, cli.stdout + cli.stderr


def test_diff_compares_chunk_lists_not_claimed_digests(lying: casstore.Store) -> None:
    d = lying.diff("d", "v1", "v2")
    assert d["unchanged"] == []
    assert [c["path"] for c in d["changed"]] == ["model.bin"]
    assert d["changed"][0]["chunks_new"] > 0
