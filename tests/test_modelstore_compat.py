"""casstore.ModelStore runs code written for modelstore: its documented examples, its own
tests and the checks of its CI workflow, with modelstore's assertions, on a file system
and on a real S3 server (moto, on loopback)."""

from __future__ import annotations

import json
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import casstore
from casstore import (
    DomainNotFoundException,
    ModelDeletedException,
    ModelExistsException,
    ModelNotFoundException,
    ModelStore,
)
from casstore.errors import NoMatchingFrameworkError, StateNameError


@pytest.fixture
def model_store(tmp_path: Path) -> ModelStore:
    # modelstore's own test fixture: an existing directory, no create_directory
    return ModelStore.from_file_system(root_directory=str(tmp_path))


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    # modelstore's fixture: an empty file uploaded as a model
    path = tmp_path / "model.txt"
    path.touch()
    return str(path)


@pytest.fixture(params=["file_system", "aws_s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ModelStore:
    if request.param == "file_system":
        return ModelStore.from_file_system(root_directory=str(tmp_path / "root"), create_directory=True)
    url: str = request.getfixturevalue("s3_url")
    bucket = url[len("s3://"):].split("/", 1)[0]
    return ModelStore.from_aws_s3(bucket_name=bucket, root_prefix="team", cache_dir=str(tmp_path / "cache"))


# -- modelstore's README quick start ------------------------------------------------


def test_readme_quick_start(tmp_path: Path, forest: tuple[Any, np.ndarray]) -> None:
    clf, X = forest
    model_store = ModelStore.from_file_system(root_directory=str(tmp_path / "models"), create_directory=True)
    domain = "example-model"
    meta_data = model_store.upload(domain, model=clf)
    printed = json.loads(json.dumps(meta_data, indent=4))  # the README prints it as JSON
    assert printed == meta_data
    loaded = model_store.load(domain=domain, model_id=meta_data["model"]["model_id"])
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert meta_data["model"]["domain"] == domain
    assert meta_data["model"]["model_type"] == {"library": "sklearn", "type": "RandomForestClassifier",
                                               "models": None}
    assert meta_data["model"]["parameters"]["n_estimators"] == 10
    assert os.path.isdir(tmp_path / "models" / "casstore")  # where the store lives: documented


# -- "additional upload functionality" (modelstore's docs) ---------------------------


def test_upload_extra_files_extra_metadata_and_model_id(tmp_path: Path, model_store: ModelStore,
                                                         iris_model: Any) -> None:
    (tmp_path / "data").mkdir()
    csv = tmp_path / "data" / "columns.csv"
    csv.write_text("a,b\n")
    notes = tmp_path / "data" / "notes.txt"
    notes.write_text("trained on iris\n")
    meta = model_store.upload("iris", model_id="my-model-v1", model=iris_model,
                              extra_files=[str(csv), str(notes)],
                              extra_metadata={"required_columns": ["col1", "col2"], "auc": 0.9})
    assert meta["model"]["model_id"] == "my-model-v1"
    assert meta["extra"] == {"required_columns": ["col1", "col2"], "auc": 0.9}
    assert model_store.get_model_info("iris", "my-model-v1") == meta
    out = model_store.download(str(tmp_path / "out"), "iris", "my-model-v1")
    assert out == str(tmp_path / "out")
    assert (tmp_path / "out" / "extras" / "columns.csv").read_text() == "a,b\n"
    assert (tmp_path / "out" / "extras" / "notes.txt").read_text() == "trained on iris\n"
    assert json.loads((tmp_path / "out" / "model-info.json").read_text()) == meta["model"]["model_type"]
    assert (tmp_path / "out" / "model.joblib").exists()
    # extra files are downloaded, never loaded
    assert type(model_store.load("iris", "my-model-v1")) is type(iris_model)


def test_deprecated_extras_and_dropped_extra_files(tmp_path: Path, model_store: ModelStore,
                                                   model_file: str) -> None:
    one = tmp_path / "one.txt"
    one.write_text("1")
    (tmp_path / "other").mkdir()
    same_name = tmp_path / "other" / "one.txt"
    same_name.write_text("2")
    with pytest.warns(DeprecationWarning, match="extras= is deprecated"):
        model_store.upload("d-extras", "m1", model=model_file, extras=str(one))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model_store.upload("d-extras", "m2", model=model_file,
                           extra_files=[str(one), str(same_name), str(tmp_path / "missing.txt")])
    messages = " ".join(str(w.message) for w in caught)
    assert "missing.txt" in messages and "same name" in messages
    model_store.download(str(tmp_path / "m2"), "d-extras", "m2")
    assert os.listdir(tmp_path / "m2" / "extras") == ["one.txt"]
    assert (tmp_path / "m2" / "extras" / "one.txt").read_text() == "1"  # the first one wins
    model_store.download(str(tmp_path / "m1"), "d-extras", "m1")
    assert (tmp_path / "m1" / "extras" / "one.txt").read_text() == "1"


# -- modelstore's own tests (tests/test_model_store.py) -------------------------------


def test_model_not_found(model_store: ModelStore, model_file: str) -> None:
    with pytest.raises(DomainNotFoundException):
        model_store.get_model_info("missing-domain", "missing-model")
    model_store.upload(domain="existing-domain", model_id="test-model-id-1", model=model_file)
    with pytest.raises(ModelNotFoundException):
        model_store.get_model_info("existing-domain", "missing-model")


def test_model_exists(model_store: ModelStore, model_file: str) -> None:
    domain, model_id = "test-domain", "test-model-id-1"
    assert not model_store.model_exists(domain, model_id)
    model_store.upload(domain=domain, model_id="test-model-id-2", model=model_file)
    assert not model_store.model_exists(domain, model_id)
    model_store.upload(domain=domain, model_id=model_id, model=model_file)
    assert model_store.model_exists(domain, model_id)


def test_extra_metadata(model_store: ModelStore, model_file: str) -> None:
    extra_metadata = {"required_columns": ["col1", "col2"]}
    meta_data = model_store.upload(domain="test-domain", model_id="test-model-id-1", model=model_file,
                                   extra_metadata=extra_metadata)
    assert meta_data["extra"] == extra_metadata
    meta_data = model_store.get_model_info(domain="test-domain", model_id="test-model-id-1")
    assert meta_data["extra"] == extra_metadata


def test_model_upload_doesnt_overwrite_existing_model(model_store: ModelStore, model_file: str) -> None:
    model_store.upload("test-domain", "test-model-id-1", model=model_file)
    with pytest.raises(ModelExistsException):
        model_store.upload("test-domain", "test-model-id-1", model=model_file)


def test_model_upload_overwrites_deleted_model(model_store: ModelStore, model_file: str) -> None:
    domain, model_id = "test-domain", "test-model-id-1"
    model_store.upload(domain, model_id, model=model_file)
    model_store.delete_model(domain, model_id, skip_prompt=True)
    assert model_id in model_store.list_models(domain, "modelstore-deleted")
    model_store.upload(domain, model_id, model=model_file)
    assert model_id not in model_store.list_models(domain, "modelstore-deleted")
    assert model_store.model_exists(domain, model_id)


# -- the checks modelstore's CI workflow runs against every backend (workflows/actions) -------


def _workflow(model_store: ModelStore, model: Any, extra_file: str) -> None:
    domain = "diabetes-boosting-demo"
    # storage actions
    with pytest.raises(DomainNotFoundException):
        model_store.get_domain("missing-domain")
    for state_name in ("staging", "production"):
        model_store.create_model_state(state_name)
    assert {"staging", "production"} <= set(model_store.list_model_states())
    # model actions (the workflow still uploads with the deprecated extras=)
    with pytest.warns(DeprecationWarning, match="extras= is deprecated"):
        meta_data = model_store.upload(domain=domain, model=model, extra_metadata={"source": "workflow"},
                                       extras=[extra_file])
    model_id = meta_data["model"]["model_id"]
    with pytest.raises(ModelNotFoundException):
        model_store.get_model_info(domain, "missing-model")
    assert domain in model_store.list_domains()
    assert isinstance(model_store.get_domain(domain), dict)
    assert model_id in model_store.list_models(domain=domain)
    assert model_store.get_model_info(domain, model_id) == meta_data
    assert type(model_store.load(domain, model_id)) is type(model)
    with _tmpdir() as d:
        path = model_store.download(d, domain, model_id)
        assert os.path.exists(path) and os.path.exists(os.path.join(path, "extras", "extra.txt"))
    model_store.set_model_state(domain, model_id, "production")
    assert model_id in model_store.list_models(domain, state_name="production")
    model_store.remove_model_state(domain, model_id, "production")
    assert model_id not in model_store.list_models(domain, state_name="production")
    model_store.set_model_state(domain, model_id, "production")
    model_store.delete_model(domain, model_id, skip_prompt=True)
    with pytest.raises(ModelDeletedException):
        model_store.get_model_info(domain, model_id)
    assert model_id not in model_store.list_models(domain, state_name="production")
    assert model_id in model_store.list_models(domain, "modelstore-deleted")


def _tmpdir() -> Any:
    import tempfile

    return tempfile.TemporaryDirectory()


def test_workflow_actions(any_store: ModelStore, iris_model: Any, tmp_path: Path) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("x")
    _workflow(any_store, iris_model, str(extra))


def test_s3_bucket_is_the_source_of_truth(s3_url: str, tmp_path: Path, iris_model: Any) -> None:
    """What one machine uploads, deletes or labels, another sees: each keeps its own cache."""
    bucket = s3_url[len("s3://"):].split("/", 1)[0]
    a = ModelStore.from_aws_s3(bucket, root_prefix="shared", cache_dir=str(tmp_path / "a"))
    b = ModelStore.from_aws_s3(bucket, root_prefix="shared", cache_dir=str(tmp_path / "b"))
    assert a.store.path != b.store.path
    meta = a.upload("fraud", "v1", model=iris_model, extra_metadata={"auc": 0.9})
    assert b.get_model_info("fraud", "v1") == meta
    b.create_model_state("production")
    b.set_model_state("fraud", "v1", "production")
    assert a.list_models("fraud", "production") == ["v1"]
    b.upload("fraud", "v2", model=iris_model)
    assert a.list_models("fraud") == ["v2", "v1"]
    a.delete_model("fraud", "v1", skip_prompt=True)
    with pytest.raises(ModelDeletedException):
        b.load("fraud", "v1")
    assert b.list_models("fraud", "modelstore-deleted") == ["v1"]
    # the bucket holds a casstore remote under <root_prefix>/casstore, nothing else
    from tests.conftest import s3_client

    keys = [o["Key"] for o in s3_client().list_objects_v2(Bucket=bucket)["Contents"]]  # type: ignore[attr-defined]
    assert keys and all(k.startswith("shared/casstore/") for k in keys)


def test_s3_same_id_from_two_machines_exactly_one_wins(s3_url: str, tmp_path: Path) -> None:
    """Two ModelStores on two cache stores upload the same IDs at once: one wins each ID,
    the other gets ModelExistsException and afterwards sees the winner's model."""
    bucket = s3_url[len("s3://"):].split("/", 1)[0]
    stores = [ModelStore.from_aws_s3(bucket, cache_dir=str(tmp_path / f"cache{i}")) for i in range(2)]
    for round_ in range(2):
        model_id = f"race-{round_}"
        barrier = threading.Barrier(2)
        outcome: dict[int, Any] = {}

        def upload(i: int, model_id: str = model_id, barrier: threading.Barrier = barrier,
                   outcome: dict[int, Any] = outcome) -> None:
            payload = tmp_path / f"model-{i}-{model_id}.bin"
            payload.write_bytes(os.urandom(1 << 16))
            barrier.wait()
            try:
                outcome[i] = stores[i].upload("shared", model_id, model=str(payload))
            except ModelExistsException as e:
                outcome[i] = e

        threads = [threading.Thread(target=upload, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [i for i, r in outcome.items() if isinstance(r, dict)]
        losers = [i for i, r in outcome.items() if isinstance(r, ModelExistsException)]
        assert len(winners) == 1 and len(losers) == 1, outcome
        meta = outcome[winners[0]]
        for s in stores:
            assert s.get_model_info("shared", model_id) == meta
            assert s.list_models("shared").count(model_id) == 1
        with _tmpdir() as d:
            stores[losers[0]].download(d, "shared", model_id)
            winner_file = tmp_path / f"model-{winners[0]}-{model_id}.bin"
            assert Path(d, winner_file.name).read_bytes() == winner_file.read_bytes()


def test_s3_push_that_loses_the_id_deletes_only_its_own_copy(s3_url: str, tmp_path: Path) -> None:
    """The losing side of the race, step by step: B has committed ``x`` to its cache (the state
    B's upload is in after its commit) when A's upload of ``x`` reaches the bucket first."""
    bucket = s3_url[len("s3://"):].split("/", 1)[0]
    a = ModelStore.from_aws_s3(bucket, cache_dir=str(tmp_path / "a"))
    b = ModelStore.from_aws_s3(bucket, cache_dir=str(tmp_path / "b"))
    (tmp_path / "a.bin").write_bytes(b"A" * 1000)
    (tmp_path / "b.bin").write_bytes(b"B" * 1000)
    b.store.commit_models("d", model_id="x", model=str(tmp_path / "b.bin"))
    won = a.upload("d", "x", model=str(tmp_path / "a.bin"))
    with pytest.raises(ModelExistsException):
        b._publish_model("d", "x")  # what upload does right after its commit
    assert b.store.read_file("d", "x", "a.bin") == b"A" * 1000  # the winner's model, pulled
    assert b.get_model_info("d", "x") == won == a.get_model_info("d", "x")
    assert [e.event for e in b.store.log("d")].count("delete") == 1  # its own attempt, logged
    b.upload("d", "y", model=str(tmp_path / "b.bin"))  # B's history goes to the bucket with its next push
    assert a.list_models("d") == ["y", "x"] and a.get_model_info("d", "x") == won


def _upload_that_dies_before_its_push(bucket: str, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                      model_id: str, payload: Path) -> str:
    """An upload whose network dies between its local commit and its push (a real cut: the
    machine reaches moto through a proxy, closed right after the commit)."""
    from contextlib import ExitStack

    from casstore.errors import RemoteError
    from tests.servers import dying_proxy

    port = int(os.environ["AWS_ENDPOINT_URL_S3"].rsplit(":", 1)[1])
    with ExitStack() as network:
        proxy = network.enter_context(dying_proxy(port, after=1 << 40))
        a = ModelStore.from_minio(f"127.0.0.1:{proxy}", bucket_name=bucket, root_prefix="team", secure=False,
                                  cache_dir=str(cache))
        commit = a.store.commit_models

        def commit_then_cut(*args: Any, **kwargs: Any) -> Any:
            info = commit(*args, **kwargs)
            network.close()
            return info

        monkeypatch.setattr(a.store, "commit_models", commit_then_cut)
        with pytest.raises(RemoteError) as failed:
            a.upload("d", model_id, model=str(payload))
    assert a.store.model_exists("d", model_id)  # in the cache only
    assert not any(f"/models/d/{model_id}" in k for k in _bucket_keys(bucket))
    return str(failed.value)


def _bucket_keys(bucket: str) -> list[str]:
    from tests.conftest import s3_client

    pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket)  # type: ignore[attr-defined]
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_s3_upload_that_never_reached_the_bucket_does_not_claim_the_id(
        s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 21.4: an upload cut between its local commit and its push leaves the model in that
    machine's cache only; the retry publishes (it does not raise ModelExistsException), and
    then the ID is taken for every machine."""
    bucket = s3_url[len("s3://"):].split("/", 1)[0]
    (tmp_path / "a.bin").write_bytes(b"A" * 1000)
    why = _upload_that_dies_before_its_push(bucket, tmp_path / "a", monkeypatch, "x", tmp_path / "a.bin")
    a = ModelStore.from_aws_s3(bucket, root_prefix="team", cache_dir=str(tmp_path / "a"))  # the network is back
    with pytest.warns(UserWarning, match="never reached"):
        meta = a.upload("d", "x", model=str(tmp_path / "a.bin"))
    b = ModelStore.from_aws_s3(bucket, root_prefix="team", cache_dir=str(tmp_path / "b"))
    assert b.get_model_info("d", "x") == meta == a.get_model_info("d", "x")
    assert b.store.read_file("d", "x", "a.bin") == b"A" * 1000
    for ms in (a, b):
        with pytest.raises(ModelExistsException):
            ms.upload("d", "x", model=str(tmp_path / "a.bin"))
    assert a.list_models("d") == ["x"] and a.list_models("d", "modelstore-deleted") == []
    assert a.store.fsck().ok
    assert "d/x was not published" in why and "upload it again" in why  # the failed upload said so


def test_s3_upload_killed_between_commit_and_push_does_not_claim_the_id(s3_url: str, tmp_path: Path) -> None:
    """Issue 21.4, with a kill: a process dies (os._exit) right after its upload's local commit;
    the next upload of the ID on that machine publishes, and another machine reads it."""
    import subprocess
    import sys

    from tests.conftest import REPO

    bucket = s3_url[len("s3://"):].split("/", 1)[0]
    (tmp_path / "a.bin").write_bytes(b"A" * 1000)
    child = f"""
import os
from casstore import ModelStore
ms = ModelStore.from_aws_s3({bucket!r}, root_prefix="team", cache_dir={str(tmp_path / "a")!r})
commit = ms.store.commit_models
def commit_then_die(*args, **kwargs):
    commit(*args, **kwargs)
    os._exit(9)
ms.store.commit_models = commit_then_die
ms.upload("d", "x", model={str(tmp_path / "a.bin")!r})
"""
    r = subprocess.run([sys.executable, "-c", child], env={**os.environ, "PYTHONPATH": str(REPO)},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 9, r.stderr
    assert not any("/models/d/x" in k for k in _bucket_keys(bucket))
    a = ModelStore.from_aws_s3(bucket, root_prefix="team", cache_dir=str(tmp_path / "a"))
    assert a.store.model_exists("d", "x")  # the killed upload's commit, in the cache only
    with pytest.warns(UserWarning, match="never reached"):
        meta = a.upload("d", "x", model=str(tmp_path / "a.bin"))
    b = ModelStore.from_aws_s3(bucket, root_prefix="team", cache_dir=str(tmp_path / "b"))
    assert b.get_model_info("d", "x") == meta and b.store.read_file("d", "x", "a.bin") == b"A" * 1000


def test_s3_upload_that_never_reached_the_bucket_yields_to_another_machine(
        s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 21.4: while A's cut upload of ``x`` sits in A's cache only, B uploads ``x``. The
    bucket is the truth: A drops its unpublished copy (with a warning) and reads B's model,
    A's retry gets ModelExistsException, and A's later writes go through."""
    bucket = s3_url[len("s3://"):].split("/", 1)[0]
    (tmp_path / "a.bin").write_bytes(b"A" * 1000)
    (tmp_path / "b.bin").write_bytes(b"B" * 1000)
    _upload_that_dies_before_its_push(bucket, tmp_path / "a", monkeypatch, "x", tmp_path / "a.bin")
    b = ModelStore.from_aws_s3(bucket, root_prefix="team", cache_dir=str(tmp_path / "b"))
    won = b.upload("d", "x", model=str(tmp_path / "b.bin"))
    with pytest.warns(UserWarning, match="never published"):
        a = ModelStore.from_aws_s3(bucket, root_prefix="team", cache_dir=str(tmp_path / "a"))
    assert a.get_model_info("d", "x") == won
    with _tmpdir() as d:
        a.download(d, "d", "x")
        assert Path(d, "b.bin").read_bytes() == b"B" * 1000 and not Path(d, "a.bin").exists()
    with pytest.raises(ModelExistsException):
        a.upload("d", "x", model=str(tmp_path / "a.bin"))
    a.upload("d", "y", model=str(tmp_path / "a.bin"))  # A's later writes are not stuck on the conflict
    a.create_model_state("production")
    a.set_model_state("d", "x", "production")
    assert b.list_models("d") == ["y", "x"] and b.list_models("d", "production") == ["x"]
    assert b.get_model_info("d", "x") == won and b.store.read_file("d", "y", "a.bin") == b"A" * 1000
    assert a.store.fsck().ok and b.store.fsck().ok



def test_s3_uploads_take_turns_with_an_older_casstore_process(s3_url: str, tmp_path: Path) -> None:
    """Issue 23.1: the upload lock moved behind ``Store.upload_lock``; its file is the one older
    casstore processes lock (built by hand from the cache's path), so an upload waits for them."""
    import subprocess
    import sys

    bucket = s3_url[len("s3://"):].split("/", 1)[0]
    (tmp_path / "a.bin").write_bytes(b"A" * 1000)
    a = ModelStore.from_aws_s3(bucket, root_prefix="team", cache_dir=str(tmp_path / "a"))
    old = os.path.join(a.store.path, "cas", "locks", "modelstore-upload-d.lock")  # as older casstore built it
    holder = """
import fcntl, os, sys
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""
    older = subprocess.Popen([sys.executable, "-c", holder, old], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert older.stdout is not None and older.stdout.readline() == "held\n"
        done: list[Any] = []
        t = threading.Thread(target=lambda: done.append(a.upload("d", "x", model=str(tmp_path / "a.bin"))))
        t.start()
        t.join(2)
        assert t.is_alive() and not done and not a.store.model_exists("d", "x")  # waiting for the older process
    finally:
        assert older.stdin is not None
        older.stdin.close()
        older.wait(timeout=60)
    t.join(300)
    assert not t.is_alive() and done and done[0]["model"]["model_id"] == "x"
    assert ModelStore.from_aws_s3(bucket, root_prefix="team", cache_dir=str(tmp_path / "b")).list_models("d") == ["x"]

# -- the differences issue 11 lists, one assertion each ---------------------------------


def test_modelstore_signatures_and_exceptions(tmp_path: Path, model_store: ModelStore, model_file: str,
                                             iris_model: Any) -> None:
    meta = model_store.upload("first", "positional-id", model=model_file)  # positional model_id
    assert meta["model"]["model_id"] == "positional-id"
    assert model_store.get_domain("first") == meta
    model_store.upload("second", "m", model=model_file)
    assert model_store.list_domains() == ["second", "first"]  # newest model first, not by name
    model_store.upload("first", "newer", model=model_file)
    assert model_store.list_domains() == ["first", "second"]
    assert model_store.get_domain("first")["model"]["model_id"] == "newer"
    for bad in ("", None):
        with pytest.raises(DomainNotFoundException):
            model_store.get_model_info(bad, "m")  # type: ignore[arg-type]
        with pytest.raises(DomainNotFoundException):
            model_store.get_model_info("second", bad)  # type: ignore[arg-type]
        with pytest.raises(DomainNotFoundException):
            model_store.list_models(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="could not find matching manager") as no_match:
        model_store.upload("first", model=object())
    assert isinstance(no_match.value, NoMatchingFrameworkError)
    assert (no_match.value.kwarg, no_match.value.type_name) == ("model", "builtins.object")
    with pytest.raises(ValueError, match="invalid characters"):
        model_store.upload("first", "has space", model=model_file)
    with pytest.raises(ValueError, match="must not be empty"):
        model_store.upload("", model=model_file)
    # states: unknown -> ValueError, short names refused, the reserved one hidden and refused
    with pytest.raises(ValueError, match="does not exist") as unknown:
        model_store.list_models("first", "production")
    assert isinstance(unknown.value, StateNameError) and unknown.value.state == "production"
    with pytest.raises(ValueError, match="does not exist"):
        model_store.set_model_state("first", "newer", "production")
    for bad_state in ("ab", "", "a/b/c"):
        with pytest.raises(ValueError):  # noqa: PT011 - each bad name fails a check of its own, with its own message
            model_store.create_model_state(bad_state)
    model_store.create_model_state("modelstore-deleted")  # as modelstore: reserved, created silently
    model_store.create_model_state("production")
    model_store.create_model_state("production")  # idempotent
    model_store.set_model_state("first", "newer", "production")
    assert model_store.get_model_states("first", "newer") == ["production"]
    model_store.delete_model("first", "newer", skip_prompt=True)
    assert model_store.list_model_states() == ["production"]  # the reserved state stays hidden
    assert model_store.list_models("first", "modelstore-deleted") == ["newer"]
    assert model_store.list_models("first", "production") == []
    with pytest.raises(ModelDeletedException):
        model_store.load("first", "newer")
    with pytest.raises(ModelDeletedException):
        model_store.model_exists("first", "newer")  # as modelstore: only upload() gets past it
    with pytest.raises(ValueError, match="reserved"):
        model_store.delete_model_state("modelstore-deleted", skip_prompt=True)
    model_store.delete_model_state("production", skip_prompt=True)  # skip_prompt, as modelstore
    assert model_store.list_model_states() == []
    with pytest.raises(ValueError, match="does not exist"):
        model_store.delete_model_state("production", skip_prompt=True)


def test_prompts_say_no_without_a_yes(model_store: ModelStore, model_file: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    model_store.upload("d", "m", model=model_file)
    model_store.create_model_state("production")
    answers = iter(["n", "", "yes"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    model_store.delete_model("d", "m")  # "n"
    model_store.delete_model_state("production")  # ""
    assert model_store.model_exists("d", "m") and model_store.list_model_states() == ["production"]
    model_store.delete_model("d", "m")  # "yes"
    assert model_store.list_models("d", "modelstore-deleted") == ["m"]


def test_native_store_keeps_its_own_rules(tmp_path: Path, model_store: ModelStore, model_file: str,
                                          iris_model: Any) -> None:
    """The same models through the native API: flat dicts, strict extra files, keyword-only IDs."""
    meta = model_store.upload("d", "m", model=iris_model, extra_metadata={"auc": 1.0})
    store = casstore.open(tmp_path / "casstore", create=False)
    info = store.get_model_info("d", "m")
    assert info["model_id"] == "m" and info["extra_metadata"]["modelstore"] == meta
    assert sorted(info["extra_files"]) == ["model-info.json"]
    with pytest.raises(FileNotFoundError):
        store.commit_models("d", model=iris_model, extra_files=[str(tmp_path / "missing.txt")])
    with pytest.raises(TypeError):
        store.upload("d", "positional", model=iris_model)  # type: ignore[misc]
    store.delete_model("d", "m")
    with pytest.raises(ModelNotFoundException) as e:
        store.get_model_info("d", "m")
    assert not isinstance(e.value, ModelDeletedException)
    # a model committed natively reads through ModelStore in modelstore's shape
    store.commit_models("d", model_id="native", model=iris_model, extra_metadata={"k": "v"})
    got = model_store.get_model_info("d", "native")
    assert got["model"]["model_id"] == "native" and got["model"]["domain"] == "d"
    assert got["model"]["model_type"] == {"library": "sklearn", "type": "LogisticRegression", "models": None}
    assert got["extra"] == {"k": "v"}
    model_store.download(str(tmp_path / "native"), "d", "native")
    assert json.loads((tmp_path / "native" / "model-info.json").read_text())["library"] == "sklearn"


def test_from_file_system_checks_its_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ModelStore.from_file_system(root_directory=str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        ModelStore.from_file_system(root_directory=str(tmp_path / "no" / "parent"), create_directory=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        ModelStore.from_file_system(root_directory=str(tmp_path / "file"))
    with pytest.raises(ValueError, match="without a root directory"):
        ModelStore.from_file_system()
    ms = ModelStore.from_file_system(root_directory=str(tmp_path / "new"), create_directory=True)
    assert ms.store.path == str(tmp_path / "new" / "casstore")


def test_cloud_cache_lives_under_cas_cache_dir(s3_url: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3_url[len("s3://"):].split("/", 1)[0]
    monkeypatch.setenv("CAS_CACHE_DIR", str(tmp_path / "cache"))
    ms = ModelStore.from_aws_s3(bucket, root_prefix="p")
    assert ms.remote == f"s3://{bucket}/p/casstore"
    assert ms.store.path.startswith(str(tmp_path / "cache" / "stores") + os.sep)
    monkeypatch.delenv("CAS_CACHE_DIR")
    home = ModelStore.from_aws_s3(bucket, root_prefix="p")
    assert home.store.path.startswith(os.path.join(os.environ["HOME"], ".cache", "casstore", "stores"))




def _cloud_store(kind: str, url: str, cache: Path) -> ModelStore:
    bucket, prefix = url.split("://", 1)[1].split("/", 1)
    if kind == "gcs":
        return ModelStore.from_gcloud(bucket_name=bucket, root_prefix=prefix, cache_dir=str(cache))
    return ModelStore.from_azure(container_name=bucket, root_prefix=prefix, cache_dir=str(cache))


@pytest.mark.parametrize("kind", ["gcs", "azure"])
def test_gcloud_and_azure_buckets_are_the_source_of_truth(kind: str, request: pytest.FixtureRequest,
                                                          tmp_path: Path, iris_model: Any) -> None:
    """from_gcloud / from_azure as from_aws_s3: two machines share a bucket of the emulator the
    tests start (fake-gcs-server, Azurite); one ID has exactly one winner."""
    url: str = request.getfixturevalue({"gcs": "gs_url", "azure": "az_url"}[kind])
    a = _cloud_store(kind, url, tmp_path / "a")
    b = _cloud_store(kind, url, tmp_path / "b")
    assert a.remote is not None and a.remote.startswith(("gs://", "az://")) and a.remote.endswith("/casstore")
    meta = a.upload("fraud", "v1", model=iris_model, extra_metadata={"auc": 0.9})
    assert meta["model"]["model_id"] == "v1"
    assert b.get_model_info("fraud", "v1") == meta
    with pytest.raises(ModelExistsException):
        b.upload("fraud", "v1", model=iris_model)
    assert a.get_model_info("fraud", "v1") == meta  # the winner's model, untouched
    b.create_model_state("production")
    b.set_model_state("fraud", "v1", "production")
    assert a.list_models("fraud", "production") == ["v1"]
    a.delete_model("fraud", "v1", skip_prompt=True)
    with pytest.raises(ModelDeletedException):
        b.load("fraud", "v1")
