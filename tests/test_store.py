"""The Python API of issue 2: commit, load, download, list, info."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pytest

import casstore
from casstore import FrameworkError, InvalidIdError, ModelExistsException, ModelNotFoundException
from tests.conftest import assert_git_fsck, git


def test_open_default_store_uses_env_then_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = casstore.open()
    assert s.path == os.path.join(os.environ["HOME"], ".casstore")
    assert os.path.isfile(os.path.join(s.path, "config"))
    monkeypatch.setenv("CAS_STORE", str(tmp_path / "envstore"))
    assert casstore.open().path == str(tmp_path / "envstore")


def test_open_refuses_non_store(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(casstore.NotAStoreError, match="not empty|no casstore"):
        casstore.open(tmp_path / "junk")


def test_commit_and_load_sklearn(store: casstore.Store, forest: tuple) -> None:
    clf, X = forest
    meta = store.commit_models("my-domain", model=clf, model_id="v1")
    assert meta["domain"] == "my-domain" and meta["model_id"] == "v1"
    assert len(meta["commit"]) == 40
    assert meta["frameworks"]["model"]["framework"] == "sklearn"
    assert meta["frameworks"]["model"]["class"].endswith("RandomForestClassifier")
    assert meta["frameworks"]["model"]["format"] == "joblib"
    assert meta["files"][0]["path"] == "model.joblib"
    assert meta["files"][0]["digest"].startswith("blake3:")
    assert meta["stats"]["chunks_new"] == meta["stats"]["chunks_total"] > 0
    loaded = store.load("my-domain", "v1")
    assert type(loaded) is type(clf)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert_git_fsck(store.path)


def test_upload_is_commit_models(store: casstore.Store, iris_model: object) -> None:
    meta = store.upload("d", model=iris_model, model_id="m")
    assert store.get_model_info("d", "m") == meta


def test_several_models_load_as_dict(store: casstore.Store, forest: tuple) -> None:
    import shap

    clf, X = forest
    explainer = shap.TreeExplainer(clf)
    meta = store.commit_models("d", model=clf, explainer=explainer, model_id="both")
    assert set(meta["frameworks"]) == {"model", "explainer"}
    models = store.load("d", "both")
    assert set(models) == {"sklearn", "shap"}
    np.testing.assert_array_equal(models["sklearn"].predict(X), clf.predict(X))
    np.testing.assert_allclose(models["shap"].shap_values(X[:5]), explainer.shap_values(X[:5]))


def test_extra_files_stored_downloaded_not_loaded(store: casstore.Store, iris_model: object, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "plots" / "deep").mkdir(parents=True)
    (src / "predictions.csv").write_text("a,b\n1,2\n")
    (src / "plots" / "roc.png").write_bytes(os.urandom(5000))
    (src / "plots" / "deep" / "x.bin").write_bytes(b"")
    meta = store.commit_models("d", model=iris_model, model_id="x",
                               extra_files=[src / "predictions.csv", str(src / "plots")])
    assert meta["extra_files"] == ["predictions.csv", "plots/deep/x.bin", "plots/roc.png"]
    # load returns the model only
    loaded = store.load("d", "x")
    assert type(loaded).__name__ == "LogisticRegression"
    out = tmp_path / "out"
    assert store.download(out, "d", "x") == str(out)
    assert (out / "predictions.csv").read_text() == "a,b\n1,2\n"
    assert (out / "plots" / "roc.png").read_bytes() == (src / "plots" / "roc.png").read_bytes()
    assert (out / "plots" / "deep" / "x.bin").read_bytes() == b""
    assert (out / "model.joblib").stat().st_size > 0
    assert_git_fsck(store.path)


def test_single_extra_file_path(store: casstore.Store, iris_model: object, tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    meta = store.commit_models("d", model=iris_model, extra_files=str(f))
    assert meta["extra_files"] == ["notes.txt"]
    assert store.read_file("d", meta["model_id"], "notes.txt") == b"hello"


def test_extra_metadata_round_trips(store: casstore.Store, iris_model: object) -> None:
    md = {"accuracy": 0.95, "epochs": 3, "big": 2**62, "flag": True, "none": None,
          "ünïcödé": {"nested": [1, 2.0, "three", [4]], "f": 1.0}, "bytes": b"\x00\xff"}
    meta = store.commit_models("d", model=iris_model, extra_metadata=md, model_id="m")
    assert meta["extra_metadata"] == md
    got = store.get_model_info("d", "m")["extra_metadata"]
    assert got == md
    assert isinstance(got["epochs"], int) and isinstance(got["ünïcödé"]["f"], float)
    assert isinstance(got["ünïcödé"]["nested"][1], float)


@pytest.mark.parametrize("bad", [{"s": {1, 2}}, {"o": object()}, ["not", "a", "dict"]])
def test_extra_metadata_must_be_serialisable_dict(store: casstore.Store, iris_model: object, bad: object) -> None:
    with pytest.raises(TypeError, match="extra_metadata"):
        store.commit_models("d", model=iris_model, extra_metadata=bad)
    assert store.list_domains() == []


def test_default_id_is_uuid4(store: casstore.Store, iris_model: object) -> None:
    meta = store.commit_models("d", model=iris_model)
    assert uuid.UUID(meta["model_id"]).version == 4


@pytest.mark.parametrize("bad", ["a/b", "..", ".x", "x.lock", "x" * 129, "sp ace", "a..b", ""])
def test_invalid_ids_and_domains_rejected(store: casstore.Store, iris_model: object, bad: str) -> None:
    with pytest.raises(InvalidIdError):
        store.commit_models("d", model=iris_model, model_id=bad)
    with pytest.raises(InvalidIdError):
        store.commit_models(bad, model=iris_model)
    assert store.list_domains() == []


def test_existing_id_raises_and_keeps_original(store: casstore.Store, iris_model: object, forest: tuple) -> None:
    first = store.commit_models("d", model=iris_model, model_id="v1")
    with pytest.raises(ModelExistsException) as ei:
        store.commit_models("d", model=forest[0], model_id="v1")
    assert ei.value.domain == "d" and ei.value.model_id == "v1"
    assert store.get_model_info("d", "v1") == first
    assert type(store.load("d", "v1")).__name__ == "LogisticRegression"
    # the same ID in another domain is fine
    store.commit_models("other", model=iris_model, model_id="v1")


def test_unknown_kwarg_lists_understood(store: casstore.Store, iris_model: object) -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'modle'.*model.*explainer"):
        store.commit_models("d", modle=iris_model)


def test_unrecognised_object(store: casstore.Store) -> None:
    with pytest.raises(TypeError, match="no framework recognises"):
        store.commit_models("d", model=object())
    with pytest.raises(TypeError, match="no framework recognises"):
        store.commit_models("d", explainer="not an explainer")


def test_no_models_is_an_error(store: casstore.Store) -> None:
    with pytest.raises(TypeError, match="at least one model"):
        store.commit_models("d", extra_metadata={"a": 1})


def test_file_name_collision_is_an_error(store: casstore.Store, iris_model: object, tmp_path: Path) -> None:
    clash = tmp_path / "model.joblib"
    clash.write_bytes(b"not the model")
    with pytest.raises(FrameworkError, match="model.joblib"):
        store.commit_models("d", model=iris_model, extra_files=[clash])
    assert store.list_domains() == []


def test_missing_extra_file_stores_nothing(store: casstore.Store, iris_model: object, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        store.commit_models("d", model=iris_model, extra_files=[tmp_path / "nope.csv"], model_id="m")
    assert not store.model_exists("d", "m")
    assert store.list_domains() == []


def test_model_file_framework(store: casstore.Store, tmp_path: Path) -> None:
    f = tmp_path / "weights.onnx"
    payload = os.urandom(300_000)
    f.write_bytes(payload)
    meta = store.commit_models("d", model=str(f), model_id="file")
    assert meta["frameworks"]["model"]["framework"] == "model_file"
    path = store.load("d", "file")
    assert os.path.basename(path) == "weights.onnx"
    assert Path(path).read_bytes() == payload
    with pytest.raises(FileNotFoundError, match="no such file"):
        store.commit_models("d", model=str(tmp_path / "missing.onnx"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(casstore.FrameworkError, match="empty directory"):
        store.commit_models("d", model=str(tmp_path / "empty"))


def test_a_directory_as_a_model_keeps_its_structure(store: casstore.Store, tmp_path: Path) -> None:
    """A SavedModel or checkpoint directory is one model-file entry; load gives the directory back."""
    src = tmp_path / "export" / "saved_model"
    (src / "variables").mkdir(parents=True)
    files = {"saved_model.pb": os.urandom(20_000), "variables/variables.index": b"index",
             "variables/variables.data-00000-of-00001": os.urandom(150_000), "fingerprint.pb": b"fp"}
    for name, data in files.items():
        (src / name).write_bytes(data)
    meta = store.commit_models("d", model=str(src), model_id="dir")
    entry = meta["frameworks"]["model"]
    assert (entry["framework"], entry["class"], entry["executes_code"]) == ("model_file", "directory", False)
    assert sorted(entry["files"]) == sorted(f"saved_model/{n}" for n in files)
    loaded = Path(store.load("d", "dir"))
    assert loaded.name == "saved_model" and loaded.is_dir()
    got = {str(p.relative_to(loaded)): p.read_bytes() for p in loaded.rglob("*") if p.is_file()}
    assert got == files
    assert Path(store.load("d", "dir")) == loaded  # the cache entry is reused
    # a list mixing a directory and a file keeps the directory's structure too
    (tmp_path / "tokenizer.json").write_text("{}")
    meta = store.commit_models("d", model=[str(src), str(tmp_path / "tokenizer.json")], model_id="mixed")
    assert "saved_model/variables/variables.index" in meta["frameworks"]["model"]["files"]
    paths = store.load("d", "mixed")
    root = os.path.commonpath(paths)
    assert sorted(os.path.relpath(p, root) for p in paths) == sorted(
        [f"saved_model/{n}" for n in files] + ["tokenizer.json"])
    assert Path(root, "saved_model", "variables", "variables.index").read_bytes() == b"index"
    # a name that two entries would share is refused, naming it
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "saved_model.pb").write_bytes(b"x")
    with pytest.raises(casstore.FrameworkError, match="saved_model.pb"):
        store.commit_models("d", model=[str(src / "saved_model.pb"), str(tmp_path / "other" / "saved_model.pb")])


def test_load_without_id_gives_newest(store: casstore.Store, iris_model: object, forest: tuple) -> None:
    store.commit_models("d", model=iris_model, model_id="old")
    store.commit_models("d", model=forest[0], model_id="new")
    assert store.list_models("d") == ["new", "old"]
    assert type(store.load("d")).__name__ == "RandomForestClassifier"
    assert store.get_model_info("d")["model_id"] == "new"


def test_listing_and_exists(store: casstore.Store, iris_model: object) -> None:
    assert store.list_domains() == []
    ids = [store.commit_models(dom, model=iris_model)["model_id"] for dom in ("b", "a", "b")]
    assert store.list_domains() == ["a", "b"]
    assert set(store.list_models("b")) == {ids[0], ids[2]}
    assert store.list_models("b")[0] == ids[2]
    assert store.model_exists("a", ids[1]) and not store.model_exists("a", ids[0])
    with pytest.raises(ModelNotFoundException, match="'nope'"):
        store.load("a", "nope")
    with pytest.raises(KeyError):
        store.get_model_info("zz", "nope")
    with pytest.raises(casstore.DomainNotFoundException):
        store.list_models("zz")


def test_stored_history_is_git_readable(store: casstore.Store, iris_model: object) -> None:
    store.commit_models("d", model=iris_model, model_id="v1")
    store.commit_models("d", model=iris_model, model_id="v2")
    r = git(store.path, "log", "--format=%s", "refs/cas/domains/d")
    assert r.stdout.split("\n")[:2] == ["commit v2", "commit v1"]
    r = git(store.path, "ls-tree", "-r", "refs/cas/domains/d", "models/")
    assert "160000 commit" in r.stdout and "v1" in r.stdout and "v2" in r.stdout
    assert [e.model_id for e in store.log("d")] == ["v2", "v1"]
    assert_git_fsck(store.path)


def test_upload_lock_is_the_file_older_casstore_locks(store: casstore.Store) -> None:
    """Issue 23.1: ``Store.upload_lock`` flocks the very file compat/cloud.py built by hand
    before (``<store>/cas/locks/modelstore-upload-<domain>.lock``), so older processes sharing
    the cache still take turns with this one."""
    import fcntl

    old = os.path.join(store.path, "cas", "locks", "modelstore-upload-fraud.lock")  # older casstore's path
    with store.upload_lock("fraud"):
        assert os.path.isfile(old)
        with open(old, "rb") as f, pytest.raises(BlockingIOError):
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(old, "rb") as f:  # released
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert sorted(os.listdir(os.path.dirname(old))) == ["modelstore-upload-fraud.lock"]
    with pytest.raises(InvalidIdError):
        store.upload_lock("../fraud")
