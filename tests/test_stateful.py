"""The general property (issue 9): three stores, one remote, any sequence of operations.

A hypothesis state machine drives three stores that share one remote -- a
``cas init --bare`` git repository reached by path, or a bucket on the test S3
server.  Its rules commit (the same and different IDs on different stores, the
same and different bytes), delete, create/set/unset states, gc with grace 0, push,
pull, resolve the conflicts push and pull report in the two documented ways
(delete ours, then pull; or keep ours under a new ID), and run one of those
operations in a child process that is SIGKILLed after a random delay, after
which the next operations carry on with the same store.  A kill that lands
between a model ref and its history event is the one damage a kill may leave:
fsck must name exactly that, and one ordinary write to the domain (a commit,
as a user's next command) must record the missing event.

The test keeps a model of what must be true and checks it after every step:

* ``store.fsck()`` is clean on every store;
* every model some store reported committed, unless that same commit was
  deleted on purpose, loads bit-exact from at least one store or from the
  remote (pulled into a fresh scratch store);
* every history agrees with its refs: the domain index at the history head
  lists exactly the model refs' commits of that domain (stores and remote);
* stock ``git fsck --strict`` accepts every store and the remote.

Conflicts are expected outcomes; losing a model is a failure.

Profiles: ``ci`` (the default: a fixed seed, a few short runs) and ``long``
(``CAS_STATEFUL_PROFILE=long``: a random seed and many long runs).  With
``CAS_STATEFUL_STATS=<file>`` every finished run appends one JSON line of counts
(steps, kills) to that file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dulwich.objects import Commit, Tree
from dulwich.repo import Repo
from hypothesis import HealthCheck, Phase, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

import casstore
from casstore.errors import ModelExistsException, ModelNotFoundException, StateNotFoundException
from casstore.objects.refs import model_ref
from casstore.remote.sync import SyncResult
from casstore.store import init_store
from tests.conftest import REPO, assert_git_fsck, s3_client

# Read at import: the autouse fixture in conftest.py scrubs CAS_* from the environment.
PROFILE = os.environ.get("CAS_STATEFUL_PROFILE", "ci")
STATS_FILE = os.environ.get("CAS_STATEFUL_STATS")

settings.register_profile(
    "ci",
    # a fixed seed and no example database: CI runs the same sequences every time
    derandomize=True,
    database=None,
    max_examples=5,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
    # No shrinking in CI: every replay costs seconds, and hypothesis would shrink for up to five
    # minutes.  A failing sequence is printed as found, with the blob that reproduces it
    # (@reproduce_failure); CAS_STATEFUL_PROFILE=long shrinks.
    phases=(Phase.explicit, Phase.generate),
)
settings.register_profile(
    "long",
    derandomize=False,
    database=None,
    max_examples=100_000,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
    # no Phase.explain: it traces every line (on Python < 3.12), which made a failing run 10x slower
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
)

N_STORES = 3
DOMAINS = ("d", "e")
IDS = ("m0", "m1", "m2")
STATES = ("prod", "staging")
MODEL_NAME = "model.bin"  # every payload is committed under this file name: only the bytes differ
KILL_OPS = ("commit", "delete", "state-set", "gc", "push", "pull")
MAX_KILL_DELAY = 0.4  # seconds after the child is ready; tiny operations take 20-300 ms


def _payloads() -> tuple[bytes, ...]:
    """Tiny model files: one byte, one chunk, several chunks, and one that shares chunks with the last."""
    rng = np.random.default_rng(9)
    big = rng.bytes(80_000)
    return b"x", rng.bytes(3000), big, big[:50_000] + rng.bytes(30_000)


PAYLOADS = _payloads()


@dataclass(frozen=True)
class Committed:
    """A model some store reported committed."""

    store: int
    domain: str
    model_id: str
    commit: str
    payload: int


@dataclass(frozen=True)
class Conflict:
    """A conflict push or pull reported on one store."""

    store: int
    domain: str
    model_id: str


# -- reading a repository without casstore (the test's own oracle) -------------


def read_cas_refs(repo: Repo) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """(domain -> model ID -> commit, domain -> history head), straight from git's refs."""
    models: dict[str, dict[str, str]] = {}
    histories: dict[str, str] = {}
    for name, sha in repo.refs.as_dict(b"refs/cas").items():
        parts = name.decode().split("/")
        if parts[0] == "models" and len(parts) == 3:
            models.setdefault(parts[1], {})[parts[2]] = sha.decode()
        elif parts[0] == "domains" and len(parts) == 2:
            histories[parts[1]] = sha.decode()
    return models, histories


def _shard(model_id: str) -> str:
    """docs/format.md's fan-out directory of a model ID, written out again (an oracle)."""
    h = 0
    for b in model_id.encode():
        h = (h * 131 + b) % 1000003
    return f"{h % 256:02x}"


def history_models(repo: Repo, head: str) -> dict[str, str]:
    """The ``models/`` gitlinks of the domain index at history commit ``head``."""
    c = repo.object_store[head.encode()]
    assert isinstance(c, Commit), head
    root = repo.object_store[c.tree]
    assert isinstance(root, Tree)
    if b"models" not in root:
        return {}
    _, tid = root[b"models"]
    t = repo.object_store[tid]
    assert isinstance(t, Tree)
    out: dict[str, str] = {}
    for e in t.iteritems():
        if e.mode == 0o160000:  # the flat layout of older stores: models/<id>
            out[e.path.decode()] = e.sha.decode()
            continue
        shard = repo.object_store[e.sha]  # models/<xx>/<id>
        assert isinstance(shard, Tree)
        for m in shard.iteritems():
            assert m.mode == 0o160000 and _shard(m.path.decode()) == e.path.decode(), m
            out[m.path.decode()] = m.sha.decode()
    return out


def assert_histories_agree(repo: Repo, where: str) -> None:
    """Each domain index at its history head lists exactly that domain's model refs."""
    models, histories = read_cas_refs(repo)
    for domain in sorted(set(models) | set(histories)):
        refs = models.get(domain, {})
        head = histories.get(domain)
        listed = history_models(repo, head) if head else {}
        assert listed == refs, (
            f"{where}: the history of domain {domain!r} disagrees with its model refs\n"
            f"  history head {head}: {listed}\n  model refs: {refs}")


# -- the child process that gets killed ----------------------------------------


class ForkServer:
    """tests/stateful_child.py's fork server, started once per test process."""

    _proc: subprocess.Popen[str] | None = None

    @classmethod
    def start(cls, fifo: Path, args: dict[str, Any]) -> int:
        """Fork a child that runs ``args["op"]``, writing to ``fifo``; returns its pid."""
        if cls._proc is None or cls._proc.poll() is not None:
            cls._proc = subprocess.Popen([sys.executable, "-m", "tests.stateful_child"], cwd=REPO,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True)
        assert cls._proc.stdin is not None and cls._proc.stdout is not None
        cls._proc.stdin.write(json.dumps({"fifo": str(fifo), "env": dict(os.environ), "args": args}) + "\n")
        cls._proc.stdin.flush()
        return int(cls._proc.stdout.readline())

    @classmethod
    def wait(cls) -> int:
        """The wait status of the child started last."""
        assert cls._proc is not None and cls._proc.stdout is not None
        return int(cls._proc.stdout.readline())


def _group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process is left in process group ``pgid``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


# -- the state machine -----------------------------------------------------------


class ThreeStoresOneRemote(RuleBasedStateMachine):
    """Three stores and a remote of ``kind`` ("git" or "s3"); see the module docstring."""

    conflicts = Bundle("conflicts")

    def __init__(self, kind: str, base: Path) -> None:
        super().__init__()
        self.kind = kind
        self.root = Path(tempfile.mkdtemp(prefix="example-", dir=base))
        self.stores = [casstore.open(self.root / f"s{i}") for i in range(N_STORES)]
        self.files = []
        for i, data in enumerate(PAYLOADS):
            d = self.root / "payloads" / str(i)
            d.mkdir(parents=True)
            (d / MODEL_NAME).write_bytes(data)
            self.files.append(str(d / MODEL_NAME))
        self.bucket: str | None = None
        if kind == "git":
            self.remote_path = self.root / "remote.git"
            init_store(str(self.remote_path), bare_remote=True)  # what `cas init --bare` does
            self.url = str(self.remote_path)
        else:
            self.bucket = "cas-stateful-" + uuid.uuid4().hex[:12]
            s3_client().create_bucket(Bucket=self.bucket)  # type: ignore[attr-defined]
            self.url = f"s3://{self.bucket}/team/models"
        self.committed: dict[str, Committed] = {}  # commit -> what was reported
        self.deleted: set[str] = set()  # commits deleted on purpose
        self.steps = 0
        self.kills = 0
        self.renames = 0

    def teardown(self) -> None:
        for s in self.stores:
            s.close()
        shutil.rmtree(self.root, ignore_errors=True)
        if self.bucket is not None:
            c = s3_client()
            for page in c.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):  # type: ignore[attr-defined]
                for o in page.get("Contents", []):
                    c.delete_object(Bucket=self.bucket, Key=o["Key"])  # type: ignore[attr-defined]
            c.delete_bucket(Bucket=self.bucket)  # type: ignore[attr-defined]
        if STATS_FILE:
            with open(STATS_FILE, "a") as f:
                f.write(json.dumps({"kind": self.kind, "steps": self.steps, "kills": self.kills}) + "\n")

    # -- bookkeeping --------------------------------------------------------------

    def _ref(self, s: int, domain: str, model_id: str) -> str | None:
        sha = self.stores[s].refs.get(model_ref(domain, model_id))
        return sha.decode() if sha is not None else None

    def _reported(self, s: int, domain: str, model_id: str, commit: str, payload: int) -> None:
        self.committed[commit] = Committed(s, domain, model_id, commit, payload)

    def _outcome(self, s: int, verb: str, result: SyncResult | dict[str, Any]) -> list[Conflict]:
        r = result.as_dict() if isinstance(result, SyncResult) else result
        note(f"store {s} {verb}: added {r['models_added']} deleted {r['models_deleted']} "
             f"conflicts {r['conflicts']} diverged {r['diverged']} rejected {r['rejected']}")
        out = []
        for name in r["conflicts"]:
            domain, _, mid = name.partition("/")
            out.append(Conflict(s, domain, mid))
        return out

    def _payload_of(self, s: int, domain: str, model_id: str) -> int:
        """Which payload the store's model holds (it may come from an unreported commit)."""
        data = self._load(self.stores[s], domain, model_id)
        return PAYLOADS.index(data)

    @staticmethod
    def _load(store: casstore.Store, domain: str, model_id: str) -> bytes:
        path = Path(store.load(domain, model_id))
        # load's file lives in the store's bounded load cache (ops/loadcache.py), nowhere else
        assert path.is_relative_to(Path(store.path, "cas", "cache", "load")), path
        return path.read_bytes()

    # -- rules -------------------------------------------------------------------

    @rule(s=st.integers(0, N_STORES - 1), domain=st.sampled_from(DOMAINS), model_id=st.sampled_from(IDS),
          payload=st.integers(0, len(PAYLOADS) - 1))
    def commit(self, s: int, domain: str, model_id: str, payload: int) -> None:
        self.steps += 1
        store = self.stores[s]
        if store.model_exists(domain, model_id):
            with pytest.raises(ModelExistsException):
                store.commit_models(domain, model=self.files[payload], model_id=model_id)
            return
        info = store.commit_models(domain, model=self.files[payload], model_id=model_id)
        self._reported(s, domain, model_id, info["commit"], payload)

    @rule(s=st.integers(0, N_STORES - 1), domain=st.sampled_from(DOMAINS), model_id=st.sampled_from(IDS))
    def delete(self, s: int, domain: str, model_id: str) -> None:
        self.steps += 1
        sha = self._ref(s, domain, model_id)
        if sha is None:
            with pytest.raises(ModelNotFoundException):
                self.stores[s].delete_model(domain, model_id)
            return
        self.stores[s].delete_model(domain, model_id)
        self.deleted.add(sha)

    @rule(s=st.integers(0, N_STORES - 1), state=st.sampled_from(STATES))
    def create_state(self, s: int, state: str) -> None:
        self.steps += 1
        self.stores[s].create_model_state(state)
        assert state in self.stores[s].list_model_states()

    @rule(s=st.integers(0, N_STORES - 1), domain=st.sampled_from(DOMAINS), model_id=st.sampled_from(IDS),
          state=st.sampled_from(STATES), put=st.booleans())
    def set_or_unset_state(self, s: int, domain: str, model_id: str, state: str, put: bool) -> None:
        self.steps += 1
        store = self.stores[s]
        call = store.set_model_state if put else store.remove_model_state
        if state not in store.list_model_states():
            with pytest.raises(StateNotFoundException):
                call(domain, model_id, state)
        elif not store.model_exists(domain, model_id):
            with pytest.raises(ModelNotFoundException):
                call(domain, model_id, state)
        else:
            call(domain, model_id, state)
            assert (state in store.get_model_states(domain, model_id)) == put

    @rule(s=st.integers(0, N_STORES - 1))
    def gc(self, s: int) -> None:
        self.steps += 1
        self.stores[s].gc(grace_period=0)

    def _push(self, s: int) -> list[Conflict]:
        return self._outcome(s, "push", self.stores[s].push(self.url))

    @rule(target=conflicts, s=st.integers(0, N_STORES - 1))
    def push(self, s: int) -> Any:
        self.steps += 1
        return multiple(*self._push(s))

    @rule(target=conflicts, s=st.integers(0, N_STORES - 1))
    def pull(self, s: int) -> Any:
        self.steps += 1
        return multiple(*self._outcome(s, "pull", self.stores[s].pull(self.url)))

    def _pull_then_maybe_push(self, s: int, then_push: bool) -> list[Conflict]:
        found = self._outcome(s, "pull", self.stores[s].pull(self.url))
        if then_push:
            found += self._push(s)
        return found

    @rule(target=conflicts, c=consumes(conflicts), then_push=st.booleans())
    def resolve_by_deleting_ours(self, c: Conflict, then_push: bool) -> Any:
        """The documented resolution: delete our model, then pull theirs."""
        self.steps += 1
        sha = self._ref(c.store, c.domain, c.model_id)
        if sha is not None:
            self.stores[c.store].delete_model(c.domain, c.model_id)
            self.deleted.add(sha)
        return multiple(*self._pull_then_maybe_push(c.store, then_push))

    @rule(target=conflicts, c=consumes(conflicts), then_push=st.booleans())
    def resolve_by_keeping_ours_under_a_new_id(self, c: Conflict, then_push: bool) -> Any:
        """The documented resolution: commit our model under a new ID, delete it under the old one, pull."""
        self.steps += 1
        store = self.stores[c.store]
        sha = self._ref(c.store, c.domain, c.model_id)
        if sha is not None:
            payload = self._payload_of(c.store, c.domain, c.model_id)
            self.renames += 1
            new_id = f"{c.model_id}-ours{self.renames}"
            info = store.commit_models(c.domain, model=self.files[payload], model_id=new_id)
            self._reported(c.store, c.domain, new_id, info["commit"], payload)
            store.delete_model(c.domain, c.model_id)
            self.deleted.add(sha)
        return multiple(*self._pull_then_maybe_push(c.store, then_push))

    @rule(target=conflicts, s=st.integers(0, N_STORES - 1), op=st.sampled_from(KILL_OPS),
          domain=st.sampled_from(DOMAINS), model_id=st.sampled_from(IDS), payload=st.integers(0, len(PAYLOADS) - 1),
          state=st.sampled_from(STATES), delay=st.floats(0, MAX_KILL_DELAY))
    def kill_and_resume(self, s: int, op: str, domain: str, model_id: str, payload: int, state: str,
                        delay: float) -> Any:
        """Run ``op`` in a child process and SIGKILL it ``delay`` seconds after it is ready."""
        self.steps += 1
        before = self._ref(s, domain, model_id)
        # only operations that should succeed: an error in the child is then a failure
        if (op == "commit") == (before is not None) and op in ("commit", "delete", "state-set"):
            return multiple()
        args = {"store": self.stores[s].path, "op": op, "domain": domain, "model_id": model_id,
                "file": self.files[payload], "state": state, "url": self.url}
        fifo = self.root / f"fifo-{self.steps}"
        os.mkfifo(fifo)
        pid = ForkServer.start(fifo, args)
        with open(fifo) as channel:
            ready = channel.readline()
            assert ready == "ready\n", (ready, channel.read())
            time.sleep(delay)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # finished and reaped already
            lines = channel.read().splitlines()
        os.unlink(fifo)
        status = ForkServer.wait()
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        self.kills += killed
        # helpers the child started (git-receive-pack for a path remote) finish on their own
        # once their parent is gone; wait for them so that no step overlaps the next
        deadline = time.monotonic() + 30
        while _group_alive(pid):
            assert time.monotonic() < deadline, "a helper of the killed operation never exited"
            time.sleep(0.01)
        errors = [json.loads(line[6:]) for line in lines if line.startswith("error ")]
        assert not errors, f"{op} failed in the child:\n{errors[0]}"
        assert killed or status == 0, (op, status, lines)
        note(f"kill_and_resume: {op} on store {s} {'killed' if killed else 'finished'} after {delay:.3f} s")
        if killed:
            # The one damage a SIGKILL may leave: a model ref changed without its history
            # event (docs/reliability.md).  fsck names exactly that, and the next write to the
            # domain records the missing event: resume as a user's next command would.
            problems = self.stores[s].fsck().problems
            assert all(p.kind == "history" for p in problems), problems
            for d in sorted({p.name for p in problems}):
                rid = f"resume-{self.steps}"
                info = self.stores[s].commit_models(d, model=self.files[0], model_id=rid)
                note(f"resume: committed {d}/{rid} after {[str(p) for p in problems]}")
                self._reported(s, d, rid, info["commit"], 0)
        done = [json.loads(line[5:]) for line in lines if line.startswith("done ")]
        if op == "delete" and self._ref(s, domain, model_id) != before:
            assert before is not None
            self.deleted.add(before)  # the user asked for it: the deletion may have happened
        if not done:
            return multiple()
        if op == "commit":
            self._reported(s, domain, model_id, done[0]["commit"], payload)
        if op in ("push", "pull"):
            return multiple(*self._outcome(s, op, done[0]))
        return multiple()

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def fsck_is_clean(self) -> None:
        for i, s in enumerate(self.stores):
            report = s.fsck()
            assert report.ok, f"store {i}: " + "; ".join(map(str, report.problems))

    def _remote_repo(self) -> Path:
        """The remote as a bare git repository on disk (an S3 bucket's keys copied into one)."""
        if self.kind == "git":
            return self.remote_path
        snapshot = self.root / "remote-snapshot.git"
        shutil.rmtree(snapshot, ignore_errors=True)
        subprocess.run(["git", "init", "-q", "--bare", str(snapshot)], check=True)
        assert self.bucket is not None
        c = s3_client()
        prefix = "team/models/"
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):  # type: ignore[attr-defined]
            for o in page.get("Contents", []):
                key = o["Key"][len(prefix):]
                if key.startswith(("objects/pack/", "refs/")):
                    path = snapshot / key
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(c.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read())  # type: ignore[attr-defined]
        return snapshot

    @invariant()
    def histories_agree_and_git_fsck_accepts(self) -> None:
        for i, s in enumerate(self.stores):
            with Repo(s.path) as repo:
                assert_histories_agree(repo, f"store {i}")
            assert_git_fsck(s.path)
        remote = self._remote_repo()
        with Repo(str(remote)) as repo:
            assert_histories_agree(repo, "the remote")
        assert_git_fsck(remote)

    def _holds(self, store: casstore.Store, m: Committed) -> bool:
        if store.refs.get(model_ref(m.domain, m.model_id)) != m.commit.encode():
            return False
        data = self._load(store, m.domain, m.model_id)
        assert data == PAYLOADS[m.payload], f"{store.path}: {m} loads other bytes"
        return True

    @invariant()
    def no_model_is_lost(self) -> None:
        missing = [m for c, m in self.committed.items()
                   if c not in self.deleted and not any(self._holds(s, m) for s in self.stores)]
        if not missing:
            return
        scratch_path = self.root / f"scratch-{uuid.uuid4().hex[:8]}"
        with casstore.open(scratch_path) as scratch:
            scratch.pull(self.url)
            lost = [m for m in missing if not self._holds(scratch, m)]
        shutil.rmtree(scratch_path)
        assert not lost, f"models lost (committed, never deleted, on no store and not on the remote): {lost}"


def _run(kind: str, base: Path) -> None:
    profile = settings.get_profile(PROFILE)
    if PROFILE == "ci" and kind == "s3":
        profile = settings(profile, max_examples=3)  # each S3 step costs about twice a git one
    run_state_machine_as_test(lambda: ThreeStoresOneRemote(kind, base), settings=profile)


def test_three_stores_and_a_git_remote(tmp_path: Path) -> None:
    _run("git", tmp_path)


def test_three_stores_and_an_s3_remote(tmp_path: Path, s3_url: str) -> None:
    # s3_url sets boto3's environment (and makes a bucket this test does not use): every
    # example gets a bucket of its own
    _run("s3", tmp_path)
