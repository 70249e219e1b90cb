"""Shared fixtures.  The environment is isolated from the developer's git and casstore config."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import casstore
from casstore.remote.bucket import BucketClient

REPO = Path(__file__).resolve().parents[1]


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
    from casstore.remote.transport import open_transport

    client, _ = open_transport(url)
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
