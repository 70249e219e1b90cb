"""Two machines and a remote, driven through the `cas` CLI: the sequences users run.

Each test plays one story end to end in subprocesses -- the same ID committed on
both machines, pull, resolve the conflict the documented way, push, delete, gc, a
crash in between -- and then checks that no model was lost: every model that was
committed and not deliberately deleted has its bytes on both machines and on the
remote (pulled into a fresh store), and every store passes `cas fsck` and
`git fsck --strict`.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import casstore
from tests.conftest import assert_git_fsck, assert_s3_remote_fsck
from tests.helpers.cli import cas

MODEL = "model.bin"


class Machine:
    """One user's store, used only through `cas`."""

    def __init__(self, root: Path, name: str, remote: str) -> None:
        self.path = root / name
        self.work = root / f"{name}-files"
        self.work.mkdir()
        self.remote = remote
        cas("init", str(self.path))
        cas("remote", "add", "origin", remote, store=self.path)

    def __call__(self, *args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
        return cas(*args, store=self.path, check=check)

    def commit(self, domain: str, model_id: str, data: bytes) -> None:
        d = self.work / model_id
        d.mkdir(exist_ok=True)
        (d / MODEL).write_bytes(data)
        self("commit", domain, str(d / MODEL), "--id", model_id)

    def models(self, domain: str) -> dict[str, str]:
        """Every model of the domain and a digest of its bytes, read back through the API (verified reads)."""
        return _models(self.path, domain)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _models(path: Path, domain: str) -> dict[str, str]:
    with casstore.Store(str(path)) as s:
        if domain not in s.list_domains():
            return {}
        return {mid: _digest(s.read_file(domain, mid, MODEL)) for mid in s.list_models(domain)}


def _data(tag: str, size: int = 70_000) -> bytes:
    return (tag.encode() * (size // len(tag) + 1))[:size] + os.urandom(1000)


def _remote_models(root: Path, url: str, domain: str) -> dict[str, str]:
    """What the remote holds: pulled into a fresh store."""
    fresh = root / f"inspect-{time.monotonic_ns()}"
    cas("init", str(fresh))  # only `cas init` creates a store (docs/config.md)
    cas("pull", url, store=fresh)
    return _models(fresh, domain)


def _assert_everywhere(root: Path, url: str, domain: str, expected: dict[str, bytes], *machines: Machine) -> None:
    """Each machine and the remote hold exactly ``expected``, bit-exact; every store checks out."""
    want = {mid: _digest(data) for mid, data in expected.items()}
    for m in machines:
        assert m.models(domain) == want, f"on {m.path.name}"
        assert m("fsck", "--read-data").returncode == 0
        assert_git_fsck(m.path)
    assert _remote_models(root, url, domain) == want, "on the remote"
    if url.startswith("s3://"):
        assert_s3_remote_fsck(url)
    else:
        assert_git_fsck(url)


@pytest.fixture(params=["git", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh remote: `cas init --bare` reached by path, or a bucket on the test S3 server."""
    if request.param == "s3":
        return str(request.getfixturevalue("s3_url"))
    path = tmp_path / "remote.git"
    r = cas("init", "--bare", str(path))
    assert "bare remote store" in r.stdout
    return str(path)


def _two_machines_with_the_same_id(tmp_path: Path, remote: str) -> tuple[Machine, Machine, dict[str, bytes]]:
    """a and b both committed d/x with different bytes; a pushed first; b pulled and saw the conflict."""
    a, b = Machine(tmp_path, "a", remote), Machine(tmp_path, "b", remote)
    data = {"base": _data("base"), "x-a": _data("x on a"), "x-b": _data("x on b"), "mine": _data("b's own")}
    a.commit("d", "base", data["base"])
    a("push")
    b("pull")
    a.commit("d", "x", data["x-a"])
    b.commit("d", "x", data["x-b"])
    b.commit("d", "mine", data["mine"])
    a("push")
    r = b("pull", check=1)  # a conflict is exit code 1 ...
    assert "conflict: d/x" in r.stdout
    assert b.models("d")["x"] == _digest(data["x-b"])  # ... and leaves our model as it was
    return a, b, data


def test_same_id_resolved_by_deleting_ours(tmp_path: Path, remote: str) -> None:
    a, b, data = _two_machines_with_the_same_id(tmp_path, remote)
    b("rm", "d", "x")  # resolve: drop ours, take theirs
    b("pull")
    assert b.models("d").get("x") == _digest(data["x-a"]), "theirs was not pulled"
    b("push")
    a("pull")
    _assert_everywhere(tmp_path, remote, "d", {"base": data["base"], "x": data["x-a"], "mine": data["mine"]}, a, b)


def test_same_id_resolved_by_keeping_ours_under_a_new_id(tmp_path: Path) -> None:
    remote = str(tmp_path / "remote.git")
    cas("init", "--bare", remote)
    a, b, data = _two_machines_with_the_same_id(tmp_path, remote)
    out = tmp_path / "ours"
    b("download", "d", "x", str(out))
    b("commit", "d", str(out / MODEL), "--id", "x-b")  # resolve: keep ours under a new ID ...
    b("rm", "d", "x")  # ... and take theirs under the old one
    b("pull")
    b("push")
    a("pull")
    expected = {"base": data["base"], "x": data["x-a"], "x-b": data["x-b"], "mine": data["mine"]}
    _assert_everywhere(tmp_path, remote, "d", expected, a, b)


def _killed(machine: Machine, *args: str, once: str, then: float) -> None:
    """Run `cas <args>` and SIGKILL it ``then`` seconds after a path matching ``once`` (a glob
    under the store) appeared, i.e. in the middle of its work: a crash."""
    p = subprocess.Popen([sys.executable, "-m", "casstore", "--store", str(machine.path), *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while p.poll() is None and not list(machine.path.glob(once)):
        time.sleep(0.001)
    time.sleep(then)
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=60)


def test_delete_gc_and_a_crashed_pull_in_between(tmp_path: Path, remote: str) -> None:
    a, b = Machine(tmp_path, "a", remote), Machine(tmp_path, "b", remote)
    data = {f"v{i}": _data(f"version {i}") for i in range(1, 5)}
    a.commit("d", "v1", data["v1"])
    a.commit("d", "v2", data["v2"])
    a("push")
    b("pull")
    b("rm", "d", "v1")
    b("gc", "--grace", "0")
    b.commit("d", "v4", data["v4"])
    a.commit("d", "v3", data["v3"])
    a("push")
    r = b("push", check=1)  # b has not seen a's v3 yet
    assert "diverged: d" in r.stdout
    _killed(b, "pull", once="cas/tmp/incoming-*", then=0.0)  # the machine dies during the pull ...
    b("pull")  # ... and the user runs it again
    b("push")
    a("pull")
    a("gc", "--grace", "0")
    expected = {"v2": data["v2"], "v3": data["v3"], "v4": data["v4"]}
    _assert_everywhere(tmp_path, remote, "d", expected, a, b)


def test_crashed_commit_then_push_and_pull(tmp_path: Path) -> None:
    remote = str(tmp_path / "remote.git")
    cas("init", "--bare", remote)
    a, b = Machine(tmp_path, "a", remote), Machine(tmp_path, "b", remote)
    data = {"v1": _data("one"), "v2": _data("two", 3_000_000)}
    a.commit("d", "v1", data["v1"])
    big = a.work / "v2" / MODEL
    big.parent.mkdir()
    big.write_bytes(data["v2"])
    _killed(a, "commit", "d", str(big), "--id", "v2", once="cas/tmp/commit-*", then=0.02)
    # the user does not know how far the commit got: commit again unless it made it
    with casstore.Store(str(a.path)) as s:
        exists = s.model_exists("d", "v2")
    if not exists:
        a("commit", "d", str(big), "--id", "v2")
    a("gc", "--grace", "0")
    a("push")
    b("pull")
    _assert_everywhere(tmp_path, remote, "d", data, a, b)


def test_a_commit_killed_between_its_ref_and_its_event_is_recorded_by_the_next_push(tmp_path: Path) -> None:
    """The window test_crashed_commit_then_push_and_pull hits only when the kill lands there, made
    certain: the model ref exists, the history lacks its event (and the refs stamp is the old one),
    as SIGKILL leaves it.  The push records the event first; the hook takes the model; fsck is clean."""
    remote = str(tmp_path / "remote.git")
    cas("init", "--bare", remote)
    a, b = Machine(tmp_path, "a", remote), Machine(tmp_path, "b", remote)
    data = {"v1": _data("one"), "v2": _data("two")}
    a.commit("d", "v1", data["v1"])
    with casstore.Store(str(a.path)) as s:
        before = s.refs.get(b"refs/cas/domains/d")
    stamp = a.path / "cas" / "locks" / "domain-d.stamp"
    old_stamp = stamp.read_bytes() if stamp.exists() else None
    a.commit("d", "v2", data["v2"])
    subprocess.run(["git", "--git-dir", str(a.path), "update-ref", "refs/cas/domains/d", before.decode()], check=True)
    if old_stamp is None:
        stamp.unlink(missing_ok=True)
    else:
        stamp.write_bytes(old_stamp)
    assert "model v2 is not in the domain history" in a("fsck", check=1).stdout
    a("push")
    b("pull")
    _assert_everywhere(tmp_path, remote, "d", data, a, b)
