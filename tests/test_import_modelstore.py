"""``cas import-modelstore`` on stores written by the real modelstore package: every domain,
model, creation time, metadata dict, state, deletion and extra file comes across, so that
casstore.ModelStore answers as modelstore did; a second run imports only what is new; a
hostile source never writes outside the store's scratch directory."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import casstore
from casstore import ModelDeletedException, ModelStore
from casstore.cli import main
from tests.conftest import assert_git_fsck


def _only_the_libraries_used(storage: Any = None) -> Iterator[tuple[str, Any]]:
    """modelstore's managers for the libraries these tests upload, as modelstore's own tests
    do (``iter_only_sklearn``): its default probes every library it knows by importing it
    (torch, tensorflow, pyspark, ...), which took 50 s per ModelStore on the shared machine.
    What modelstore writes does not depend on it."""
    from modelstore.models.model_file import ModelFileManager
    from modelstore.models.sklearn import SKLearnManager

    for manager in (SKLearnManager, ModelFileManager):
        yield manager.NAME, manager(storage)


@pytest.fixture(scope="module")
def original() -> Iterator[type]:
    """modelstore's own ModelStore class, from the package installed next to casstore."""
    from modelstore import ModelStore as Original

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("modelstore.model_store.iter_libraries", _only_the_libraries_used)
        yield Original


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, iris_model: Any, original: Any) -> dict[str, Any]:
    """A modelstore file-system store written by modelstore itself, and what modelstore answered."""
    Original = original
    base = tmp_path_factory.mktemp("modelstore")
    root = base / "root"
    ms = Original.from_file_system(root_directory=str(root), create_directory=True)
    (base / "plots").mkdir()
    (base / "plots" / "roc.csv").write_text("fpr,tpr\n0,0\n1,1\n")
    (base / "notes.txt").write_text("trained on iris\n")
    (base / "weights.bin").write_bytes(os.urandom(4096))
    ms.create_model_state("production")
    ms.create_model_state("staging")
    ms.upload("fraud", "v1", model=iris_model, extra_files=[str(base / "plots" / "roc.csv"), str(base / "notes.txt")],
              extra_metadata={"auc": 0.91, "columns": ["a", "b"]})
    ms.upload("fraud", "v2", model=iris_model)
    churn = ms.upload("churn", model=iris_model)["model"]["model_id"]
    ms.upload("churn", "raw", model=str(base / "weights.bin"))  # modelstore's model_file library
    ms.upload("fraud", "gone", model=iris_model)
    ms.set_model_state("fraud", "v1", "production")
    ms.set_model_state("churn", churn, "staging")
    ms.set_model_state("fraud", "gone", "staging")
    ms.delete_model("fraud", "gone", skip_prompt=True)
    live = {(d, m): ms.get_model_info(d, m) for d in ("fraud", "churn") for m in ms.list_models(d)}
    return {
        "root": root, "base": base, "live": live, "churn": churn,
        "states": sorted(ms.list_model_states()),
        "in_state": {(d, s): sorted(ms.list_models(d, s)) for d in ("fraud", "churn")
                     for s in ("production", "staging")},
        "deleted": ms.list_models("fraud", "modelstore-deleted"),
        "domains": sorted(ms.list_domains()),
    }


def _run(store: Path, source: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--store", str(store), "import-modelstore", source])
    return code, capsys.readouterr().out


def test_import_round_trips_a_real_modelstore_store(tmp_path: Path, written: dict[str, Any], iris_model: Any,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "store"
    code, out = _run(target, str(written["root"]), capsys)
    assert code == 0, out
    assert "4 models imported, 1 deleted models, 0 already here, 0 failed" in out
    assert "note: churn/raw: model_file model imported as files" in out
    ms = ModelStore(casstore.open(target, create=False))
    for (domain, model_id), meta in written["live"].items():
        assert ms.get_model_info(domain, model_id) == meta  # modelstore's dict, whole
        assert ms.model_exists(domain, model_id)
    assert sorted(ms.list_domains()) == written["domains"]
    assert ms.list_model_states() == written["states"]
    for (domain, state), ids in written["in_state"].items():
        assert sorted(ms.list_models(domain, state)) == ids
    assert ms.list_models("fraud", "modelstore-deleted") == written["deleted"] == ["gone"]
    with pytest.raises(ModelDeletedException):
        ms.get_model_info("fraud", "gone")
    assert sorted(ms.list_models("fraud")) == ["v1", "v2"]
    # creation times are modelstore's: the native created time is the one it recorded
    native = ms.store.get_model_info("fraud", "v1")
    from casstore.compat.meta import modelstore_time

    assert modelstore_time(__import__("datetime").datetime.fromisoformat(native["created"])) == (
        written["live"][("fraud", "v1")]["code"]["created"])
    # files: loadable sklearn models, extras where modelstore's download puts them
    X = np.random.default_rng(0).normal(size=(5, 4))
    np.testing.assert_array_equal(ms.load("fraud", "v1").predict(X), iris_model.predict(X))
    out_dir = tmp_path / "v1"
    ms.download(str(out_dir), "fraud", "v1")
    assert (out_dir / "extras" / "roc.csv").read_text() == "fpr,tpr\n0,0\n1,1\n"
    assert (out_dir / "extras" / "notes.txt").read_text() == "trained on iris\n"
    assert json.loads((out_dir / "model-info.json").read_text())["library"] == "sklearn"
    raw = ms.load("churn", "raw")
    assert Path(raw).read_bytes() == (written["base"] / "weights.bin").read_bytes()
    events = [e.event for e in ms.store.log("fraud")]
    assert events.count("delete") == 1 and "state-set" in events
    assert ms.store.fsck(read_data=True).ok
    assert_git_fsck(target)


def test_import_is_resumable(tmp_path: Path, written: dict[str, Any], iris_model: Any, original: Any,
                             capsys: pytest.CaptureFixture[str]) -> None:
    Original = original
    root = tmp_path / "root"
    shutil.copytree(written["root"], root, symlinks=True)
    target = tmp_path / "store"
    code, out = _run(target, str(root), capsys)
    assert code == 0, out
    refs = casstore.open(target).refs.container.as_dict(b"refs/cas")
    code, out = _run(target, str(root), capsys)
    assert code == 0 and "0 models imported, 0 deleted models, 5 already here, 0 failed" in out, out
    assert casstore.open(target).refs.container.as_dict(b"refs/cas") == refs  # nothing recorded twice
    # modelstore goes on writing; the next run takes only what is new
    ms = Original.from_file_system(root_directory=str(root))
    new = ms.upload("fraud", "v3", model=iris_model, extra_metadata={"n": 3})
    ms.set_model_state("fraud", "v3", "production")
    code, out = _run(target, str(root), capsys)
    assert code == 0 and "imported: fraud/v3" in out and "1 models imported, 0 deleted models, 5 already here" in out
    assert ModelStore(casstore.open(target)).get_model_info("fraud", "v3") == new
    assert "v3" in ModelStore(casstore.open(target)).list_models("fraud", "production")


def test_import_reports_what_it_could_not_import(tmp_path: Path, written: dict[str, Any],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    shutil.copytree(written["root"], root, symlinks=True)
    meta = written["live"][("fraud", "v2")]
    archive = Path(meta["storage"]["path"].replace(str(written["root"]), str(root)))
    archive.write_bytes(archive.read_bytes()[:100])  # a truncated archive
    (root / "operatorai-model-store" / "churn" / "versions" / "broken.json").write_text("{not json")
    code, out = _run(tmp_path / "store", str(root), capsys)
    assert code == 1
    assert "failed: fraud/v2:" in out and "failed: churn/broken:" in out
    assert "imported: fraud/v1" in out  # the rest went on
    # the failed one comes in once it is repaired
    shutil.copy(meta["storage"]["path"], archive)
    code, out = _run(tmp_path / "store", str(root), capsys)
    assert "imported: fraud/v2" in out and code == 1  # broken.json is still broken


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


def test_hostile_source_never_writes_outside_the_scratch_dir(tmp_path: Path, written: dict[str, Any],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "src" / "root"
    shutil.copytree(written["root"], root, symlinks=True)
    base = root / "operatorai-model-store"
    template = written["live"][("fraud", "v1")]
    outside = tmp_path / "outside-secret.txt"
    outside.write_text("secret")

    def plant(model_id: str, archive: bytes | None, path: str | None = None) -> None:
        meta = json.loads(json.dumps(template))
        meta["model"]["domain"], meta["model"]["model_id"] = "evil", model_id
        rel = f"evil/2026.01.01-00.00.00/{model_id}/artifacts.tar.gz"
        meta["storage"]["path"] = path or f"{root}/operatorai-model-store/{rel}"
        (base / "evil" / "versions").mkdir(parents=True, exist_ok=True)
        (base / "evil" / "versions" / f"{model_id}.json").write_text(json.dumps(meta))
        if archive is not None:
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            (base / rel).write_bytes(archive)

    joblib = (Path(written["root"]) / "operatorai-model-store")
    good = next(joblib.rglob("artifacts.tar.gz")).read_bytes()
    plant("good", good)
    plant("dotdot", _tar([_file("../../../escape.txt", b"x"), _file("model.joblib", b"y")]))
    plant("extras-dotdot", _tar([_file("extras/../../escape2.txt", b"x"), _file("model.joblib", b"y")]))
    plant("absolute", _tar([_file(str(tmp_path / "escape3.txt"), b"x")]))
    plant("symlink", _tar([_link("model.joblib", str(outside)), _file("model.joblib", b"y")]))
    plant("hardlink", _tar([_link("model.joblib", str(outside), tarfile.LNKTYPE)]))
    plant("link-then-write", _tar([_link("extras", str(tmp_path)), _file("extras/escape4.txt", b"x")]))
    plant("outside-path", None, path=str(outside))
    plant("dotdot-path", None, path=f"{root}/operatorai-model-store/../../outside-secret.txt")
    # an archive that is a symlink out of the source
    plant("linked-archive", None)
    rel = base / "evil" / "2026.01.01-00.00.00" / "linked-archive"
    rel.mkdir(parents=True)
    (rel / "artifacts.tar.gz").symlink_to(outside)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, out = _run(tmp_path / "store", str(root), capsys)
    assert code == 1
    assert "imported: evil/good" in out
    for bad in ("dotdot", "extras-dotdot", "absolute", "symlink", "hardlink", "link-then-write", "outside-path",
                "dotdot-path", "linked-archive"):
        assert f"failed: evil/{bad}:" in out, (bad, out)
    after = [p for p in tmp_path.rglob("*") if p.name.startswith("escape")]
    assert after == [] and outside.read_text() == "secret"
    new = sorted(p.name for p in tmp_path.rglob("*") if not str(p).startswith(str(tmp_path / "store")))
    assert new == before  # the source and its neighbours are untouched
    store = casstore.open(tmp_path / "store")
    assert sorted(store.list_models("evil")) == ["good"]
    assert os.listdir(os.path.join(store.path, "cas", "tmp")) == []  # scratch cleaned up
    assert store.fsck().ok


def _plant(root: Path, template: dict[str, Any], domain: str, model_id: str, archive: bytes | None) -> None:
    """A model in the modelstore store at ``root``: metadata made from ``template``, and its archive."""
    meta = json.loads(json.dumps(template))
    meta["model"]["domain"], meta["model"]["model_id"] = domain, model_id
    rel = f"{domain}/2026.01.01-00.00.00/{model_id}/artifacts.tar.gz"
    meta["storage"]["path"] = f"{root}/operatorai-model-store/{rel}"
    base = root / "operatorai-model-store"
    (base / domain / "versions").mkdir(parents=True, exist_ok=True)
    (base / domain / "versions" / f"{model_id}.json").write_text(json.dumps(meta))
    if archive is not None:
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(archive)


def test_an_archive_that_expands_too_far_is_refused_by_name(tmp_path: Path, written: dict[str, Any],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 20.8: a gzip bomb (96 MiB of zeros in ~100 KiB) fails its model, named, while the
    rest imports; unpacking stops at the bound, and --max-expansion lets a real one through."""
    root = tmp_path / "root"
    shutil.copytree(written["root"], root, symlinks=True)
    bomb = _tar([_file("model.joblib", bytes(96 << 20))])
    assert len(bomb) < 200 << 10
    _plant(root, written["live"][("fraud", "v1")], "evil", "bomb", bomb)
    store_dir = tmp_path / "store"
    code, out = _run(store_dir, str(root), capsys)
    assert code == 1, out
    line = next(x for x in out.splitlines() if x.startswith("failed: evil/bomb:"))
    assert "evil/2026.01.01-00.00.00/bomb/artifacts.tar.gz" in line and "expands to more than 100 times" in line
    assert "--max-expansion" in line and "imported: fraud/v1" in out
    store = casstore.open(store_dir)
    assert not store.model_exists("evil", "bomb")
    assert os.listdir(os.path.join(store.path, "cas", "tmp")) == [] and store.fsck().ok
    code, out = _run(store_dir, str(root), capsys)  # the same refusal on every run, nothing else to do
    assert code == 1 and "failed: evil/bomb:" in out and "0 models imported" in out
    with pytest.raises(SystemExit) as usage:
        main(["--store", str(store_dir), "import-modelstore", "--max-expansion", "0.5", str(root)])
    assert usage.value.code == 2 and "at least 1" in capsys.readouterr().err
    code = main(["--store", str(store_dir), "import-modelstore", "--max-expansion", "2000", str(root)])
    assert code == 0, capsys.readouterr().out
    assert casstore.open(store_dir).read_file("evil", "bomb", "model.joblib") == bytes(96 << 20)


def test_import_from_an_s3_bucket_modelstore_wrote(tmp_path: Path, s3_url: str, iris_model: Any, original: Any,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """modelstore's own S3 backend writes the bucket (moto on loopback); the import reads it back."""
    Original = original
    bucket = s3_url[len("s3://"):].split("/", 1)[0]
    ms = Original.from_aws_s3(bucket_name=bucket, region="us-east-1", root_prefix="team")
    extra = tmp_path / "notes.txt"
    extra.write_text("from s3\n")
    ms.create_model_state("production")
    v1 = ms.upload("fraud", "v1", model=iris_model, extra_files=[str(extra)], extra_metadata={"auc": 0.8})
    ms.upload("fraud", "gone", model=iris_model)
    ms.set_model_state("fraud", "v1", "production")
    ms.delete_model("fraud", "gone", skip_prompt=True)
    code, out = _run(tmp_path / "store", f"s3://{bucket}/team", capsys)
    assert code == 0 and "1 models imported, 1 deleted models" in out, out
    got = ModelStore(casstore.open(tmp_path / "store"))
    assert got.get_model_info("fraud", "v1") == ms.get_model_info("fraud", "v1") == v1
    assert got.list_models("fraud", "production") == ["v1"]
    assert got.list_models("fraud", "modelstore-deleted") == ["gone"]
    got.download(str(tmp_path / "out"), "fraud", "v1")
    assert (tmp_path / "out" / "extras" / "notes.txt").read_text() == "from s3\n"
    code, out = _run(tmp_path / "store", f"s3://{bucket}/team", capsys)
    assert code == 0 and "0 models imported, 0 deleted models, 2 already here" in out, out


def test_store_commit_files_keeps_bytes_and_a_given_creation_time(tmp_path: Path, iris_model: Any) -> None:
    """The two Store additions the import stands on: commit_files (files a framework already
    wrote, stored byte for byte) and created= (an older model sorts as older)."""
    import datetime as dt

    import joblib

    from casstore.errors import FrameworkError
    from casstore.frameworks import Saved

    store = casstore.open(tmp_path / "store")
    path = tmp_path / "model.joblib"
    joblib.dump(iris_model, path, compress=3)  # not how casstore would write it: kept as it is
    store.commit_models("d", model_id="new", model=iris_model)
    when = dt.datetime(2021, 3, 4, 5, 6, 7, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    info = store.commit_files("d", model_id="old", created=when,
                              frameworks=[("model", "sklearn", Saved("joblib", {"model.joblib": str(path)},
                                                                      {"name": "sklearn"}, "LogisticRegression"))])
    assert info["created"] == "2021-03-04T03:06:07+00:00"  # kept in UTC, so listings sort it
    assert store.list_models("d") == ["new", "old"]
    assert store.read_file("d", "old", "model.joblib") == path.read_bytes()
    X = np.random.default_rng(1).normal(size=(4, 4))
    np.testing.assert_array_equal(store.load("d", "old").predict(X), iris_model.predict(X))
    assert [e.time for e in store.log("d") if e.model_id == "old"] == [int(when.timestamp())]
    with pytest.raises(TypeError, match="timezone"):
        store.commit_models("d", model=iris_model, created=dt.datetime(2021, 1, 1))
    with pytest.raises(FrameworkError):
        store.commit_files("d", frameworks=[("model", "no-such-framework", Saved("x", {}))])
    with pytest.raises(FrameworkError):
        store.commit_files("d", frameworks=[])
    assert store.list_models("d") == ["new", "old"]


#: runs an import that dies (os._exit, as a SIGKILL would leave it) right after its Nth change to the store
_DIE_AFTER = """
import os, sys
import casstore
from casstore.compat.importer import import_modelstore
from casstore.store import Store

steps = 0
def dying(name):
    real = getattr(Store, name)
    def step(self, *args, **kwargs):
        global steps
        out = real(self, *args, **kwargs)
        steps += 1
        if steps == int(sys.argv[3]):
            os._exit(9)
        return out
    setattr(Store, name, step)
for name in ("commit_files", "delete_model", "create_model_state", "set_model_state"):
    dying(name)
import_modelstore(casstore.open(sys.argv[1]), sys.argv[2])
print(steps)
"""


def _end_state(path: Path) -> dict[str, Any]:
    """What a user of the imported store sees: domains, models and their metadata, deletions, states."""
    ms = ModelStore(casstore.open(path, create=False))
    out: dict[str, Any] = {"states": ms.list_model_states(), "domains": sorted(ms.list_domains())}
    for d in out["domains"]:
        out[d] = {"live": {m: ms.get_model_info(d, m) for m in ms.list_models(d)},
                  "deleted": sorted(ms.list_models(d, "modelstore-deleted")),
                  "states": {s: sorted(ms.list_models(d, s)) for s in out["states"]}}
    assert ms.store.fsck().ok
    return out


def test_an_import_killed_at_any_step_resumes_to_the_same_end(tmp_path: Path, written: dict[str, Any],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 21.5: an import killed after each of its changes to the store (between a deleted
    model's placeholder commit and its deletion among them), then run again, ends exactly as
    an uninterrupted import: the deleted model deleted, nothing twice, nothing missing."""
    import subprocess
    import sys

    from tests.conftest import REPO

    root = str(written["root"])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    whole = subprocess.run([sys.executable, "-c", _DIE_AFTER, str(tmp_path / "whole"), root, "0"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    steps = int(whole.stdout)
    assert steps == 10  # 2 states, 4 models, the deleted model's commit and deletion, 2 state memberships
    expected = _end_state(tmp_path / "whole")
    assert expected["fraud"]["deleted"] == ["gone"]
    for n in range(1, steps):
        store = tmp_path / f"killed-{n}"
        r = subprocess.run([sys.executable, "-c", _DIE_AFTER, str(store), root, str(n)], env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 9, (n, r.stderr)
        code, out = _run(store, root, capsys)
        assert code == 0, (n, out)
        assert _end_state(store) == expected, n
        code, out = _run(store, root, capsys)  # and a third run finds everything there
        assert code == 0 and "0 models imported, 0 deleted models, 5 already here, 0 failed" in out, (n, out)


def test_a_bad_metadata_file_fails_alone(tmp_path: Path, written: dict[str, Any],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 21.5: metadata with "storage" as a list, or nested deeper than the JSON parser
    allows, is reported by name while the rest imports (it aborted the whole import)."""
    root = tmp_path / "root"
    shutil.copytree(written["root"], root, symlinks=True)
    versions = root / "operatorai-model-store" / "fraud" / "versions"
    listed = json.loads((versions / "v2.json").read_text())
    listed["model"]["model_id"], listed["storage"] = "listed", ["not", "an", "object"]
    (versions / "listed.json").write_text(json.dumps(listed))
    (versions / "deep.json").write_text('{"model": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}")
    deep_extra = json.loads((versions / "v2.json").read_text())
    deep_extra["model"]["model_id"] = "deep-extra"
    (versions / "deep-extra.json").write_text(json.dumps(deep_extra)[:-1] + ', "x": '
                                              + "[" * 100_000 + "]" * 100_000 + "}")
    code, out = _run(tmp_path / "store", str(root), capsys)
    assert code == 1, out
    assert "failed: fraud/listed: ValueError: its metadata's storage is a list, not an object" in out
    assert "failed: fraud/deep:" in out and "nested deeper than the JSON parser allows" in out
    assert "failed: fraud/deep-extra:" in out and "internal error" not in out
    assert "4 models imported, 1 deleted models, 0 already here, 3 failed" in out
    assert sorted(casstore.open(tmp_path / "store").list_models("fraud")) == ["v1", "v2"]


def test_ids_casstore_refuses_come_through_with_map_ids(tmp_path: Path, written: dict[str, Any], iris_model: Any,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 21.5: a modelstore ID such as ``v1+exp`` fails with a hint; ``--map-ids`` imports it
    under a casstore ID made from it (the same on every run), modelstore's ID in its metadata."""
    from casstore.compat.importer import mapped_id

    root = tmp_path / "root"
    shutil.copytree(written["root"], root, symlinks=True)
    good = next((root / "operatorai-model-store").rglob("artifacts.tar.gz")).read_bytes()
    template = written["live"][("fraud", "v1")]
    _plant(root, template, "fraud", "v1+exp", good)
    _plant(root, template, "fraud", "..hidden", good)
    state_dir = root / "operatorai-model-store" / "fraud" / "versions" / "production"
    (state_dir / "v1+exp.json").write_text((root / "operatorai-model-store" / "fraud" / "versions" /
                                           "v1+exp.json").read_text())
    store_dir = tmp_path / "store"
    code, out = _run(store_dir, str(root), capsys)
    assert code == 1 and "failed: fraud/v1+exp: not imported:" in out and "--map-ids" in out, out
    mapped = mapped_id("v1+exp")
    assert mapped.startswith("v1-exp-") and mapped == mapped_id("v1+exp") != mapped_id("v1-exp")
    assert mapped_id("..hidden").startswith("hidden-")
    code = main(["--store", str(store_dir), "import-modelstore", "--map-ids", str(root)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"imported: fraud/{mapped}" in out and f"imported as {mapped}" in out
    ms = ModelStore(casstore.open(store_dir))
    meta = ms.get_model_info("fraud", mapped)
    assert meta["model"]["model_id"] == mapped and meta["model"]["modelstore_model_id"] == "v1+exp"
    assert mapped in ms.list_models("fraud", "production")
    X = np.random.default_rng(0).normal(size=(3, 4))
    np.testing.assert_array_equal(ms.load("fraud", mapped).predict(X), iris_model.predict(X))
    assert ms.load("fraud", mapped_id("..hidden")) is not None
    code = main(["--store", str(store_dir), "import-modelstore", "--map-ids", str(root)])
    assert code == 0 and "0 models imported" in capsys.readouterr().out  # the same IDs: nothing twice


DOC_MARKER = "<!-- tests/test_import_modelstore.py runs the console and python blocks below"


def test_the_documented_migration_runs_as_written(tmp_path: Path, written: dict[str, Any]) -> None:
    """Issue 21.6: docs/modelstore.md's migration (the import, then the user's unchanged
    from_file_system code) shows the imported models; each block runs exactly as written."""
    import re
    import shlex
    import subprocess
    import sys

    from tests.conftest import REPO

    text = (REPO / "docs" / "modelstore.md").read_text()
    after = text.split(DOC_MARKER, 1)[1]
    console = re.search(r"```console\n(.*?)```", after, flags=re.S)
    python = re.search(r"```python\n(.*?)```", after, flags=re.S)
    assert console and python
    shutil.copytree(written["root"], tmp_path / "ml-models", symlinks=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("CAS_STORE", None)
    for line in console.group(1).splitlines():
        argv = shlex.split(line.removeprefix("$ "))
        assert argv[0] == "cas", line
        r = subprocess.run([sys.executable, "-m", "casstore", *argv[1:]], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "ml-models/casstore" in r.stderr  # it says where the import went
    r = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", python.group(1)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    domains, models = r.stdout.splitlines()
    assert sorted(eval(domains)) == written["domains"]  # noqa: S307 (the snippet prints a list)
    assert sorted(eval(models)) == ["v1", "v2"]  # noqa: S307
    assert not Path(os.environ["HOME"], ".casstore").exists()


def test_from_file_system_warns_beside_an_unimported_modelstore_store(tmp_path: Path, written: dict[str, Any],
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 21.6: an empty casstore store beside modelstore's tree is named, with the command
    that imports it; once imported (or with nothing of modelstore's there) there is no warning."""
    root = tmp_path / "root"
    shutil.copytree(written["root"], root, symlinks=True)
    with pytest.warns(UserWarning, match=r"cas import-modelstore .*root"):
        assert ModelStore.from_file_system(root_directory=str(root)).list_domains() == []
    code = main(["--store", str(tmp_path / "elsewhere"), "import-modelstore", str(root)])
    assert code == 0 and "from_file_system(root_directory=" in capsys.readouterr().err  # the note
    code = main(["import-modelstore", str(root / "operatorai-model-store")])
    assert code == 0, capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(ModelStore.from_file_system(root_directory=str(root)).list_domains()) == written["domains"]
        empty = tmp_path / "fresh"
        empty.mkdir()
        assert ModelStore.from_file_system(root_directory=str(empty)).list_domains() == []


def test_a_missing_source_is_an_error_and_creates_no_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--store", str(tmp_path / "store"), "import-modelstore", str(tmp_path / "nothing")])
    assert code == 2 and "no modelstore store here" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def _parity_scenario(ms: Any, tmp: Path) -> dict[str, Any]:
    """What a modelstore user sees of the reserved state and of unmatched uploads, through ``ms``."""
    seen: dict[str, Any] = {}

    def attempt(name: str, call: Any) -> None:
        try:
            seen[name] = ("ok", call())
        except Exception as e:  # the exception's kind is what is compared
            seen[name] = ("raises", isinstance(e, ValueError), "could not find matching manager" in str(e),
                          type(e).__name__ if "Exception" in type(e).__name__ else None)

    model = tmp / "model.txt"
    model.write_text("weights")
    ms.upload("d", "m", model=str(model))
    ms.upload("d", "other", model=str(model))
    ms.create_model_state("production")
    ms.set_model_state("d", "other", "production")
    ms.set_model_state("d", "m", "modelstore-deleted")  # no create_model_state needed
    attempt("live", lambda: sorted(ms.list_models("d")))
    attempt("in deleted", lambda: ms.list_models("d", "modelstore-deleted"))
    attempt("its states", lambda: ms.get_model_states("d", "m"))
    attempt("exists", lambda: ms.model_exists("d", "m"))
    attempt("states", lambda: ms.list_model_states())
    attempt("info", lambda: ms.get_model_info("d", "m")["model"]["model_id"])
    ms.remove_model_state("d", "m", "modelstore-deleted")  # ignored: reserved
    attempt("still in deleted", lambda: ms.list_models("d", "modelstore-deleted"))
    attempt("upload again", lambda: ms.upload("d", "m", model=str(model)))
    attempt("create reserved", lambda: ms.create_model_state("modelstore-deleted"))
    ms.delete_model("d", "m", skip_prompt=True)
    attempt("deleted", lambda: ms.list_models("d", "modelstore-deleted"))
    attempt("exists after delete", lambda: ms.model_exists("d", "m"))
    attempt("no such path", lambda: ms.upload("d", model=str(tmp / "not-a-file")))
    attempt("a word", lambda: ms.upload("d", model="model"))
    attempt("an object", lambda: ms.upload("d", model=object()))
    attempt("nothing", lambda: ms.upload("d"))
    return seen


def test_reserved_state_and_unmatched_uploads_behave_as_in_modelstore(tmp_path: Path, original: Any) -> None:
    """The same calls through modelstore and through casstore.ModelStore answer alike."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    theirs = _parity_scenario(original.from_file_system(root_directory=str(tmp_path / "a")), tmp_path / "a")
    ours = _parity_scenario(ModelStore.from_file_system(root_directory=str(tmp_path / "b")), tmp_path / "b")
    assert ours == theirs
    # what the scenario pins, so a change on either side shows here
    assert theirs["in deleted"] == theirs["still in deleted"] == ("ok", ["m"])
    assert theirs["live"] == ("ok", ["m", "other"]) and theirs["its states"] == ("ok", [])
    assert theirs["upload again"] == ("raises", False, False, "ModelExistsException")
    assert theirs["exists after delete"] == ("raises", False, False, "ModelDeletedException")
    for unmatched in ("no such path", "a word", "an object"):
        assert theirs[unmatched] == ("raises", True, True, None)
    assert theirs["info"] == ("ok", "m")
    ms = ModelStore(casstore.open(tmp_path / "b" / "casstore", create=False))
    assert ms.store.fsck().ok


def test_import_keeps_modelstore_authors_and_the_deleted_label(tmp_path: Path, original: Any, iris_model: Any,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import getpass

    root = tmp_path / "root"
    ms = original.from_file_system(root_directory=str(root), create_directory=True)
    for mid in ("labelled", "alice", "hostile"):
        ms.upload("fraud", mid, model=iris_model)
    ms.set_model_state("fraud", "labelled", "modelstore-deleted")
    versions = root / "operatorai-model-store" / "fraud" / "versions"
    for mid, user in (("alice", "alice"), ("hostile", "mallory <evil@x>\nInjected: yes")):
        path = versions / f"{mid}.json"
        meta = json.loads(path.read_text())
        meta["code"]["user"] = user
        path.write_text(json.dumps(meta))
    target = tmp_path / "store"
    code, out = _run(target, str(root), capsys)
    assert code == 0, out
    assert "3 models imported" in out and "note: fraud/hostile: author not kept" in out
    got = ModelStore(casstore.open(target, create=False))
    assert got.store.get_model_info("fraud", "labelled")["author"] == f"{getpass.getuser()} <>"
    assert got.store.get_model_info("fraud", "alice")["author"] == "alice <>"
    assert [e.author for e in got.store.log("fraud") if e.model_id == "alice"] == ["alice <>"]
    assert "mallory" not in got.store.get_model_info("fraud", "hostile")["author"]
    # set_model_state(..., "modelstore-deleted") labelled a live model: it stays live and labelled
    assert got.list_models("fraud", "modelstore-deleted") == ms.list_models("fraud", "modelstore-deleted")
    assert got.list_models("fraud", "modelstore-deleted") == ["labelled"]
    assert "labelled" in got.list_models("fraud") and got.get_model_states("fraud", "labelled") == []
    code, out = _run(target, str(root), capsys)  # a second run changes nothing
    assert code == 0 and "0 models imported" in out, out
    assert got.store.fsck(read_data=True).ok
    assert_git_fsck(target)
