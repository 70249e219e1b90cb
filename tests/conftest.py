"""Shared fixtures.  The environment is isolated from the developer's git and casstore config."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import casstore
from casstore.remote.bucket import BucketClient

REPO = Path(__file__).resolve().parents[1]

#: fixtures shared by several test modules that live beside their helpers (tests/helpers/)
pytest_plugins = ["tests.helpers.remotes"]


def run_in_pty(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
               size: tuple[int, int] | None = None, timeout: float = 60) -> tuple[int, str]:
    """Run ``argv`` with stdin, stdout and stderr on a pseudo-terminal: (exit code, screen text).

    ``size`` (rows, columns) sizes the terminal first: a new pty is 0x0 until a terminal
    sizes it, and tqdm draws nothing in 0 columns.  ``env`` replaces the environment.
    """
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    if size is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                         env=env if env is not None else dict(os.environ), close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return p.wait(timeout=timeout), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for k in list(os.environ):
        if k.startswith(("GIT_", "CAS_", "AWS_", "AZURE_", "GOOGLE_", "STORAGE_EMULATOR_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("CAS_AUTHOR", "Test User <test@example.com>")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[casstore.Store]:
    s = casstore.open(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture(scope="session")
def iris_model() -> object:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=300).fit(X, y)


@pytest.fixture(scope="session")
def forest() -> tuple[object, np.ndarray]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(500, 8, random_state=0)
    return RandomForestClassifier(10, random_state=0).fit(X, y), X


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from tests.servers import s3_server

    with s3_server() as endpoint:
        yield endpoint


def s3_client() -> object:
    import boto3

    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")


@pytest.fixture
def s3_url(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<new bucket>/team/models`` on the test S3 server, with boto3's environment set."""
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": s3_endpoint}.items():
        monkeypatch.setenv(k, v)
    bucket = "cas-" + uuid.uuid4().hex[:12]
    s3_client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    return f"s3://{bucket}/team/models"


def s3_objects(url: str) -> dict[str, bytes]:
    """Every object under an S3 remote, by key relative to its prefix."""
    bucket, _, prefix = url[len("s3://"):].partition("/")
    c = s3_client()
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):  # type: ignore[attr-defined]
        for o in page.get("Contents", []):
            out[o["Key"][len(prefix) + 1:]] = c.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()  # type: ignore[attr-defined]
    return out


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    from tests.servers import gcs_server

    with gcs_server() as endpoint:
        yield endpoint


def gcs_bucket(url: str) -> object:
    """The google-cloud-storage Bucket of a ``gs://`` URL, on the emulator."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage  # type: ignore[import-untyped]

    client = storage.Client(project="test", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    return client.bucket(url[len("gs://"):].partition("/")[0])


@pytest.fixture
def gs_url(gcs_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``gs://<new bucket>/team/models`` on the test GCS emulator, with STORAGE_EMULATOR_HOST set."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    url = f"gs://cas-{uuid.uuid4().hex[:12]}/team/models"
    gcs_bucket(url).create()  # type: ignore[attr-defined]
    return url


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    from tests.servers import azurite_server

    with azurite_server() as connection_string:
        yield connection_string


def azure_container(url: str) -> object:
    """The azure-storage-blob ContainerClient of an ``az://`` URL, on the emulator."""
    from azure.storage.blob import ContainerClient

    return ContainerClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"],
                                                  url[len("az://"):].partition("/")[0])


@pytest.fixture
def az_url(azurite: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``az://<new container>/team/models`` on Azurite, with AZURE_STORAGE_CONNECTION_STRING set."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    url = f"az://cas-{uuid.uuid4().hex[:12]}/team/models"
    azure_container(url).create_container()  # type: ignore[attr-defined]
    return url


#: bucket kind -> the fixture that makes a fresh remote URL of that kind
BUCKET_URL_FIXTURES = {"s3": "s3_url", "gcs": "gs_url", "azure": "az_url"}


@pytest.fixture(params=sorted(BUCKET_URL_FIXTURES))
def bucket(request: pytest.FixtureRequest) -> str:
    """A fresh ``s3://``, ``gs://`` or ``az://`` remote URL on its emulator (each test runs on all three)."""
    return str(request.getfixturevalue(BUCKET_URL_FIXTURES[request.param]))


def bucket_client(url: str) -> BucketClient:
    """The bucket client casstore opens for ``url``."""
    from casstore.remote.transports import open_bucket

    client = open_bucket(url)
    assert isinstance(client, BucketClient)
    return client


def is_bucket_url(url: str | Path) -> bool:
    return str(url).startswith(("s3://", "gs://", "az://"))


def bucket_objects(url: str) -> dict[str, bytes]:
    """Every object under a bucket remote (S3, GCS or Azure), by key relative to its prefix."""
    if url.startswith("s3://"):
        return s3_objects(url)
    prefix = url.split("://", 1)[1].partition("/")[2] + "/"
    if url.startswith("gs://"):
        bucket = gcs_bucket(url)
        return {b.name[len(prefix):]: b.download_as_bytes()
                for b in bucket.client.list_blobs(bucket, prefix=prefix)}  # type: ignore[attr-defined]
    container = azure_container(url)
    return {b.name[len(prefix):]: container.download_blob(b.name).readall()  # type: ignore[attr-defined]
            for b in container.list_blobs(name_starts_with=prefix)}  # type: ignore[attr-defined]


def put_bucket_object(url: str, key: str, data: bytes) -> None:
    """Write ``<prefix>/<key>`` of a bucket remote directly, as another tool (or an attacker) would."""
    bucket, _, prefix = url.split("://", 1)[1].partition("/")
    if url.startswith("s3://"):
        s3_client().put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)  # type: ignore[attr-defined]
    elif url.startswith("gs://"):
        gcs_bucket(url).blob(f"{prefix}/{key}").upload_from_string(data)  # type: ignore[attr-defined]
    else:
        azure_container(url).upload_blob(f"{prefix}/{key}", data, overwrite=True)  # type: ignore[attr-defined]


def delete_bucket_object(url: str, key: str) -> None:
    bucket, _, prefix = url.split("://", 1)[1].partition("/")
    if url.startswith("s3://"):
        s3_client().delete_object(Bucket=bucket, Key=f"{prefix}/{key}")  # type: ignore[attr-defined]
    elif url.startswith("gs://"):
        gcs_bucket(url).blob(f"{prefix}/{key}").delete()  # type: ignore[attr-defined]
    else:
        azure_container(url).delete_blob(f"{prefix}/{key}")  # type: ignore[attr-defined]


def bucket_refs(url: str, objects: dict[str, bytes] | None = None) -> dict[str, str]:
    """The refs of a bucket remote, of either format: ``refs/cas/...`` -> hex commit.

    Format 1 holds one object per ref; format 2 ref tables (casstore/remote/reftable.py).
    """
    from casstore.remote.reftable import ROOT_KEY, TABLES, DomainTable, RootTable

    objects = bucket_objects(url) if objects is None else objects
    if not objects.get("casstore-remote", b"").startswith(b"casstore-remote 2"):
        return {k: v.decode().strip() for k, v in objects.items() if k.startswith("refs/")}
    root = RootTable.decode(objects[ROOT_KEY], "root") if ROOT_KEY in objects else RootTable()
    refs = {} if root.states is None else {"refs/cas/states": root.states.decode()}
    for domain, name in root.domains.items():
        table = DomainTable.decode(objects[TABLES + name], domain, name)
        if table.history is not None:
            refs[f"refs/cas/domains/{domain}"] = table.history.decode()
        refs.update({f"refs/cas/models/{domain}/{m}": sha.decode() for m, sha in table.models.items()})
    return refs


def make_per_ref_remote(url: str) -> str:
    """Make the empty bucket remote ``url`` one of format 1 (one object per ref), as casstore < 0.2 left them."""
    put_bucket_object(url, "casstore-remote", b"casstore-remote 1\n")
    return url


def assert_s3_remote_fsck(url: str) -> None:
    """A bucket remote (S3, GCS or Azure) laid out as a bare repository passes stock ``git fsck --strict``."""
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["git", "init", "-q", "--bare", d], check=True)
        objects = bucket_objects(url)
        for key, data in objects.items():
            if key.startswith("objects/pack/"):
                path = Path(d, key)
                assert path.resolve().is_relative_to(Path(d).resolve()), key  # a test's own hostile keys
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        for ref, sha in bucket_refs(url, objects).items():
            path = Path(d, ref)
            assert path.resolve().is_relative_to(Path(d).resolve()), ref
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(sha + "\n")
        assert_git_fsck(d)


def git(store_path: str | Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "--git-dir", str(store_path), *args],
                          capture_output=True, text=True, check=False)


def assert_git_fsck(store_path: str | Path) -> None:
    r = git(store_path, "fsck", "--strict", "--no-dangling")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error" not in r.stderr.lower(), r.stderr


def write_random(path: Path, size: int, seed: int = 0) -> bytes:
    data = np.random.default_rng(seed).bytes(size)
    path.write_bytes(data)
    return data


def run_py(
    code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, check=False)


#: the same check under the name that says what it covers
assert_bucket_remote_fsck = assert_s3_remote_fsck


# -- test tiers (docs/testing.md) -------------------------------------------------------------
#
# Every test gets its markers here, from what it uses, so a new test file falls into its tier
# without naming one: ``unit`` unless it needs a real server, another process, a heavy runtime or
# a browser, is a hypothesis property test, or takes seconds (``slow``).  ``make check`` runs
# ``-m unit``; ``make test`` runs everything.

#: fixtures that start or reach a real server (moto, fake-gcs-server, Azurite, git daemon):
#: matched with the module that defines them, so a test module's own fixture of the same name
#: (an in-memory ``bucket``, say) does not count
SERVER_FIXTURES = {
    "conftest": {"s3_endpoint", "s3_url", "gcs_endpoint", "gs_url", "azurite", "az_url", "bucket"},
    "tests.helpers.remotes": {"remote_url", "any_remote"},
}
#: the same, as strings a test passes to ``request.getfixturevalue`` ("bucket" is too common a word)
SERVER_FIXTURE_NAMES = {"s3_endpoint", "s3_url", "gcs_endpoint", "gs_url", "azurite", "az_url", "remote_url",
                        "any_remote"}
#: names that take a test out of the unit tier when its code (or a fixture or test helper it
#: uses) mentions them: what starts a real server, what runs casstore (or any Python) as another
#: process (the CLI, ``cas serve``, a writer to kill: seconds each on a busy machine), heavy runtimes
NOT_UNIT_NAMES = {
    "git_daemon", "http_backend", "sshd", "s3_server", "gcs_server", "azurite_server", "dropping_proxy",
    "dying_proxy",
    "cas", "cas_tty", "run_py", "run_in_pty", "start_server", "executable",
    "torch", "transformers", "lightning", "keras", "skorch", "pyspark", "prophet", "catboost",
    "BUCKET_URL_FIXTURES",
}
#: whole modules outside the unit tier, and why
INTEGRATION_MODULES = {
    "test_frameworks_torch": "PyTorch",
    "test_frameworks_transformers": "transformers on PyTorch",
    "test_frameworks_lightning": "Lightning on PyTorch (11 s to import)",
    "test_frameworks_skorch": "skorch on PyTorch",
    "test_frameworks_boosting_keras": "Keras on PyTorch, CatBoost",
    "test_frameworks_pyspark": "Spark ML: a JVM",
    "test_stateful": "kills writer processes, with a git and an S3 remote",
    "test_packaging": "builds the wheel and installs it into a new venv",
}
BROWSER_MODULES = {"test_serve_browser", "test_serve_ml_browser"}
#: whole modules whose tests take seconds each (measured: ``pytest -m unit --durations=0``), so
#: ``make check`` leaves them to ``make test``: marked ``slow``
SLOW_MODULES = {
    "test_damage": "240 damage cases, a fresh store each",
    "test_scale": "stores of hundreds of models, old and new layouts",
    "test_import_modelstore": "the real modelstore writes every store imported",
    "test_consistency": "racing writers, stale locks, writers interrupted at each step",
    "test_corruption": "damages, fscks and repairs stores of several MB",
    "test_maintenance": "many commits, to show how packs are merged",
    "test_dedup": "tens of MB, to measure what a changed model stores",
    "test_localpath": "transfers between stores, whole and by entry",
    "test_modelstore_compat": "modelstore's whole workflow on every store kind",
}
#: single tests over a second each in otherwise quick modules (``module::function``): ``slow``
SLOW_TESTS = {
    "test_api_habits::test_load_by_state_errors_name_the_problem",
    "test_cache::test_cache_is_bounded_least_recently_used_first",
    "test_cache::test_cas_cache_ls_and_clear",
    "test_cache::test_hundred_loads_leave_one_copy",
    "test_codec::test_float_model_round_trips_through_every_reader",
    "test_config::test_default_remote_set_url_and_rename",
    "test_frameworks::test_xgboost_models_round_trip_as_data_not_pickles",
    "test_frameworks_data::test_onnx_model_round_trips_and_runs_the_same",
    "test_frameworks_data::test_onnx_model_with_external_data_is_refused",
    "test_frameworks_data::test_sklearn_as_skops_round_trips_under_allow_pickle_false",
    "test_frameworks_data::test_skops_types_outside_the_trusted_list_are_refused",  # importing skops: 5 s
    "test_frameworks_misc::test_gensim_keyed_vectors_are_stored_as_word2vec_binary_data",
    "test_frameworks_misc::test_gensim_large_arrays_stored_beside_the_pickle_load_back",
    "test_frameworks_misc::test_gensim_word2vec_is_stored_with_gensims_save_and_counts_as_code",
    "test_frameworks_misc::test_keyed_vectors_the_format_cannot_hold_fall_back_to_gensims_save",
    "test_frameworks_misc::test_the_sklearn_format_setting_stores_estimators_with_skops",
    "test_frameworks_misc::test_under_the_skops_setting_a_forest_warns_at_commit_what_load_will_refuse",
    "test_frameworks_safety::test_old_manifests_derive_the_flag_from_the_format",
    "test_hook::test_hook_on_a_plain_git_init_bare_remote",
    "test_hostile_remote::test_decompression_bomb_chunk",
    "test_indextree::test_an_event_writes_one_path_of_the_tree",
    "test_indextree::test_old_layouts_are_read_and_rewritten_by_the_next_write",
    "test_inputs::test_malformed_cas_author_is_refused",
    "test_objects::test_pack_of_blobs_in_pieces_and_partial_writes",
    "test_registry::test_delete_then_gc_frees_unique_chunks",
    "test_remote::test_dropped_connection_on_path_transport",
    "test_remote::test_round_trip_file_url_into_empty_dir",
    "test_serve::test_listing_follows_deletions_and_recommits",
    "test_serve_ml::test_table_update_reads_only_what_changed",
    "test_signing::test_every_history_event_is_signed",
    "test_store::test_several_models_load_as_dict",
    "test_transport_server::test_indexer_fed_as_received_writes_git_s_index",
    "test_transport_server::test_indexer_refuses_a_damaged_pack",
}
#: modules in the unit tier by name whatever they call (the bucket protocol on an in-memory bucket)
UNIT_MODULES = ("test_bucket_memory",)


def _not_unit(code: Any, namespace: dict[str, Any], seen: set[int]) -> bool:
    """Whether ``code`` (or a nested function, or a test helper it names) mentions one of NOT_UNIT_NAMES."""
    if id(code) in seen:
        return False
    seen.add(id(code))
    if any(isinstance(c, str) and c in SERVER_FIXTURE_NAMES for c in code.co_consts):
        return True  # request.getfixturevalue("s3_url") and the like
    for name in code.co_names:
        if name in NOT_UNIT_NAMES:
            return True
        helper = namespace.get(name)
        if (callable(helper) and str(getattr(helper, "__module__", "")).startswith(("test", "tests.", "conftest"))
                and hasattr(helper, "__code__")
                and _not_unit(helper.__code__, getattr(helper, "__globals__", namespace), seen)):
            return True
    return any(hasattr(c, "co_names") and _not_unit(c, namespace, seen) for c in code.co_consts)


def tiers_of(item: pytest.Item) -> set[str]:
    """The tier markers of ``item``: ``browser``, ``integration``, ``property``, ``slow``, else ``unit``."""
    module = item.module.__name__.rpartition(".")[2] if getattr(item, "module", None) else ""
    fn = getattr(item, "function", None)
    hypothesis = getattr(fn, "hypothesis", None)  # a @given test: its own code is the inner test's
    code = hypothesis.inner_test.__code__ if hypothesis is not None else getattr(fn, "__code__", None)
    tiers = set()
    if module in BROWSER_MODULES:
        tiers.add("browser")
    fixtures = getattr(item, "_fixtureinfo", None)
    for name, defs in (fixtures.name2fixturedefs.items() if fixtures else ()):
        func = defs[-1].func  # the definition that applies here
        if name in SERVER_FIXTURES.get(func.__module__, ()) or (
                func.__module__.startswith(("test", "tests.")) and not module.startswith(UNIT_MODULES)
                and _not_unit(func.__code__, func.__globals__, set())):
            tiers.add("integration")
    if module in INTEGRATION_MODULES or (
            code is not None and not module.startswith(UNIT_MODULES)
            and _not_unit(code, getattr(fn, "__globals__", {}), set())):
        tiers.add("integration")
    if hypothesis is not None or module == "test_stateful":
        tiers.add("property")
    if module in SLOW_MODULES or f"{module}::{getattr(item, 'originalname', item.name)}" in SLOW_TESTS:
        tiers.add("slow")
    return tiers or {"unit"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for tier in sorted(tiers_of(item)):
            item.add_marker(tier)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m``, skip importing a whole module whose tiers the expression leaves out (PyTorch
    and Lightning alone take 11 s to import: ``make check`` must not pay that to deselect them)."""
    expr = config.getoption("markexpr", "")
    module = collection_path.stem
    tiers = set()
    if module in INTEGRATION_MODULES:
        tiers.add("integration")
    if module in BROWSER_MODULES:
        tiers |= {"browser", "integration"}
    if module in SLOW_MODULES:
        tiers.add("slow")
    if module == "test_stateful":
        tiers.add("property")
    if not expr or not tiers:
        return None  # tiers decided test by test: collect
    from itertools import product

    from _pytest.mark.expression import Expression

    # the module's tests have these tiers and not ``unit``; any other name in the expression
    # (another tier, a marker of a single test) may go either way: skip the module only if the
    # expression is false whatever they are
    names = set(re.findall(r"[^\s()]+", expr)) - {"and", "or", "not", "unit"} - tiers
    compiled = Expression.compile(expr)
    for values in product((False, True), repeat=len(names)):
        true = tiers | {n for n, v in zip(sorted(names), values, strict=True) if v}
        if compiled.evaluate(lambda name, true=true, **_: name in true):
            return None
    return True
