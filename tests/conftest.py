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

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for k in list(os.environ):
        if k.startswith(("GIT_", "CAS_", "AWS_")):
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


def assert_s3_remote_fsck(url: str) -> None:
    """An S3 remote laid out as a bare repository passes stock ``git fsck --strict``."""
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["git", "init", "-q", "--bare", d], check=True)
        for key, data in s3_objects(url).items():
            if key.startswith(("objects/pack/", "refs/")):
                path = Path(d, key)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
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
