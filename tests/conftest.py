"""Shared fixtures.  The environment is isolated from the developer's git and casstore config."""

from __future__ import annotations

import os
import subprocess
import sys
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
        if k.startswith("GIT_") or k.startswith("CAS_"):
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
