"""The pre-receive hook of `cas init --bare` remotes, against stock git pushes.

Every rule is tried with a plain ``git push`` over the path transport and over
``git daemon``: the push must be refused with a ``casstore:`` message naming the
ref and the rule, the remote's refs must be exactly as before, and casstore
clients must still pull and push afterwards.  casstore's own pushes (commits,
deletions, states, merges) must keep passing.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest
from dulwich.objects import ObjectID

import casstore
from casstore.errors import CorruptObjectError
from casstore.model import indextree
from casstore.model.history import append_event
from casstore.ops.adopt import AUTO_PACKS
from casstore.remote import hook as hook_module
from casstore.remote.hook import NAME_AWK, PRE_RECEIVE
from casstore.store import init_store
from casstore.util.names import MAX_NAME_LENGTH, check_name
from tests.conftest import assert_git_fsck, git
from tests.helpers.remotes import wait_for_pushes_merged
from tests.servers import git_daemon

ZERO = "0" * 40


@dataclass
class Remote:
    url: str
    path: Path


@pytest.fixture(params=["path", "git"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Remote]:
    """A fresh `cas init --bare` remote, reached over a path or over git://."""
    root = tmp_path / "srv"
    root.mkdir()
    path = root / "models.git"
    init_store(str(path), bare_remote=True)
    if request.param == "path":
        yield Remote(str(path), path)
    else:
        with git_daemon(root) as base:
            yield Remote(f"{base}/models.git", path)


#: the awk implementations the hook must run under (Debian packages mawk, gawk, busybox, original-awk;
#: .ci/sysdeps.sh installs them): servers ship any of them as ``awk``
AWKS = {"mawk": ["mawk"], "gawk": ["gawk"], "busybox": ["busybox", "awk"], "original-awk": ["original-awk"]}


@pytest.fixture(params=list(AWKS))
def awk(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``awk`` on PATH (for the hook, which git runs with our environment) is this implementation.

    Requested before ``remote``, so that a git daemon inherits the PATH too.
    Returns the file each run of it appends a line to: a test asserts it ran.
    """
    cmd = AWKS[request.param]
    exe = shutil.which(cmd[0])
    assert exe is not None, f"{cmd[0]} is not installed: run make sysdeps"
    bin_dir = tmp_path / "awk-bin"
    bin_dir.mkdir()
    log = tmp_path / "awk-runs.log"
    log.touch()
    wrapper = bin_dir / "awk"
    wrapper.write_text(f'#!/bin/sh\necho run >> "{log}"\nexec {exe} {" ".join(cmd[1:])} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def _file(tmp_path: Path, name: str) -> str:
    p = tmp_path / name
    p.write_bytes(os.urandom(50_000))
    return str(p)


@pytest.fixture
def seeded(tmp_path: Path, remote: Remote) -> casstore.Store:
    """A store with d/v1 and d/v2 and two states (v1 in production), pushed to ``remote``."""
    a = casstore.open(tmp_path / "a")
    for mid in ("v1", "v2"):
        a.commit_models("d", model=_file(tmp_path, mid), model_id=mid)
    a.create_model_state("production")
    a.create_model_state("staging")
    a.set_model_state("d", "v1", "production")
    assert a.push(remote.url).ok
    return a


def run_git(git_dir: str | Path, *args: str, stdin: str | None = None) -> str:
    r = subprocess.run(["git", "--git-dir", str(git_dir), *args], input=stdin,
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def push(git_dir: str | Path, url: str, *refspecs: str) -> subprocess.CompletedProcess[str]:
    """A stock ``git push --force`` (so that only the server can refuse)."""
    return subprocess.run(["git", "--git-dir", str(git_dir), "push", "--force", "--porcelain", url, *refspecs],
                          capture_output=True, text=True, check=False)


def remote_refs(remote: Remote) -> str:
    return git(remote.path, "for-each-ref").stdout


def mktree(git_dir: str | Path, *entries: tuple[str, str, str]) -> str:
    """A tree of (mode, sha, name) entries, written with stock git."""
    kinds = {"160000": "commit", "040000": "tree", "100644": "blob"}
    lines = "".join(f"{mode} {kinds[mode]} {sha}\t{name}\n" for mode, sha, name in entries)
    return run_git(git_dir, "mktree", stdin=lines)


def commit(git_dir: str | Path, tree: str, *parents: str, message: str = "x") -> str:
    args = [a for p in parents for a in ("-p", p)]
    return run_git(git_dir, "-c", "user.name=x", "-c", "user.email=x@x", "commit-tree", tree, *args, "-m", message)


def history(git_dir: str | Path, models: dict[str, str], *extra: tuple[str, str, str],
            parent: str | None = None, message: str = "x") -> str:
    """A history commit listing ``models`` (id -> commit), plus ``extra`` top-level entries."""
    entries = list(extra)
    if models:
        entries.append(("040000", mktree(git_dir, *[("160000", c, m) for m, c in models.items()]), "models"))
    return commit(git_dir, mktree(git_dir, *entries), *([parent] if parent else []), message=message)


def ref(store: casstore.Store, name: str) -> str:
    return run_git(store.path, "rev-parse", name)


def models_of(store: casstore.Store) -> dict[str, str]:
    return {m: ref(store, f"refs/cas/models/d/{m}") for m in store.list_models("d")}


def assert_refused(r: subprocess.CompletedProcess[str], remote: Remote, before: str, refname: str,
                   rule: str) -> None:
    assert r.returncode != 0, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if f"casstore: {refname}: " in ln]
    assert lines and any(rule in ln for ln in lines), r.stderr
    assert remote_refs(remote) == before


def assert_clients_still_work(tmp_path: Path, remote: Remote, a: casstore.Store, expected: list[str]) -> None:
    """A fresh store pulls the remote's models; ``a`` pulls, commits and pushes another one."""
    fresh = casstore.open(tmp_path / f"fresh-{os.urandom(4).hex()}")
    pulled = fresh.pull(remote.url)
    assert pulled.ok and sorted(fresh.list_models("d")) == sorted(expected), pulled
    assert a.pull(remote.url).ok
    a.commit_models("d", model=_file(tmp_path, "after"), model_id="after")
    pushed = a.push(remote.url)
    assert pushed.ok and pushed.models_added == ["d/after"], pushed
    assert_git_fsck(remote.path)


# -- histories and the state list --------------------------------------------------


def test_force_replacing_a_history_with_an_unrelated_one(tmp_path: Path, remote: Remote,
                                                         seeded: casstore.Store) -> None:
    # the push: an unrelated root over the history, and a model deleted with it
    b = casstore.open(tmp_path / "b")
    b.commit_models("d", model=_file(tmp_path, "x"), model_id="x")
    before = remote_refs(remote)
    r = push(b.path, remote.url, "refs/cas/domains/d:refs/cas/domains/d", ":refs/cas/models/d/v2")
    assert_refused(r, remote, before, "refs/cas/domains/d", "only fast-forwards")
    # rewinding the history to an older commit of its own is refused too
    r = push(seeded.path, remote.url, "refs/cas/domains/d~1:refs/cas/domains/d")
    assert_refused(r, remote, before, "refs/cas/domains/d", "only fast-forwards")
    assert_clients_still_work(tmp_path, remote, seeded, ["v1", "v2"])


def test_deleting_or_rewinding_a_history_or_the_state_list(tmp_path: Path, remote: Remote,
                                                           seeded: casstore.Store) -> None:
    before = remote_refs(remote)
    r = push(seeded.path, remote.url, ":refs/cas/domains/d")
    assert_refused(r, remote, before, "refs/cas/domains/d", "never deleted")
    r = push(seeded.path, remote.url, ":refs/cas/states")
    assert_refused(r, remote, before, "refs/cas/states", "never deleted")
    r = push(seeded.path, remote.url, "refs/cas/states~1:refs/cas/states")  # drops "staging"
    assert_refused(r, remote, before, "refs/cas/states", "only fast-forwards")
    # a blob is not a history
    blob = run_git(seeded.path, "hash-object", "-w", "--stdin", stdin="x")
    r = push(seeded.path, remote.url, f"{blob}:refs/cas/domains/e")
    assert_refused(r, remote, before, "refs/cas/domains/e", "must be a commit")
    assert_clients_still_work(tmp_path, remote, seeded, ["v1", "v2"])


def test_malformed_history_commits_are_refused(tmp_path: Path, remote: Remote, seeded: casstore.Store) -> None:
    g = seeded.path
    tip = ref(seeded, "refs/cas/domains/d")
    models = models_of(seeded)
    blob = run_git(g, "hash-object", "-w", "--stdin", stdin="x")
    good = history(g, models, parent=tip)
    before = remote_refs(remote)
    bad_tips = [  # (history tip, the entry the hook must name)
        (history(g, models, ("100644", blob, "junk"), parent=tip), "junk"),
        (history(g, {}, ("040000", mktree(g, ("100644", blob, "v1")), "models"), parent=tip), "models/v1"),
        (history(g, {**models, "a+b": models["v1"]}, parent=tip), "models/a+b"),
        (history(g, models, ("040000", mktree(g, ("100644", blob, "production")), "states"), parent=tip),
         "states/production"),
        # a malformed commit under a well-formed tip: `cas pull` parses every history commit
        (history(g, models, parent=history(g, models, ("100644", blob, "junk"), parent=tip)), "junk"),
        # a merge whose second parent is a malformed unrelated root
        (commit(g, run_git(g, "rev-parse", f"{good}^{{tree}}"), good, history(g, {}, ("100644", blob, "junk"))),
         "junk"),
    ]
    for sha, entry in bad_tips:
        r = push(g, remote.url, f"{sha}:refs/cas/domains/d")
        assert_refused(r, remote, before, "refs/cas/domains/d", f"has {entry} (mode")
    # the same push with the well-formed tip passes
    r = push(g, remote.url, f"{good}:refs/cas/domains/d")
    assert r.returncode == 0, r.stderr
    assert git(remote.path, "rev-parse", "refs/cas/domains/d").stdout.strip() == good
    assert_clients_still_work(tmp_path, remote, seeded, ["v1", "v2"])


def test_malformed_state_list_is_refused(tmp_path: Path, remote: Remote, seeded: casstore.Store) -> None:
    g = seeded.path
    tip = ref(seeded, "refs/cas/states")
    blob = run_git(g, "hash-object", "-w", "--stdin", stdin="")
    before = remote_refs(remote)
    for entries, bad in [
        ((("100644", blob, "production"), ("100644", blob, "bad name")), "has bad name (mode 100644)"),
        ((("100644", blob, "production"), ("040000", mktree(g, ("100644", blob, "x")), "sub")), "sub (mode 040000)"),
    ]:
        r = push(g, remote.url, f"{commit(g, mktree(g, *entries), tip)}:refs/cas/states")
        assert_refused(r, remote, before, "refs/cas/states", bad)
    assert_clients_still_work(tmp_path, remote, seeded, ["v1", "v2"])


# -- model refs ----------------------------------------------------------------------


def test_moving_an_existing_model(tmp_path: Path, remote: Remote, seeded: casstore.Store) -> None:
    before = remote_refs(remote)
    r = push(seeded.path, remote.url, "refs/cas/models/d/v2:refs/cas/models/d/v1")
    assert_refused(r, remote, before, "refs/cas/models/d/v1", "never moves")
    # even together with a history that records the move
    models = models_of(seeded)
    moved = history(seeded.path, {**models, "v1": models["v2"]}, parent=ref(seeded, "refs/cas/domains/d"))
    r = push(seeded.path, remote.url, "refs/cas/models/d/v2:refs/cas/models/d/v1", f"{moved}:refs/cas/domains/d")
    assert_refused(r, remote, before, "refs/cas/models/d/v1", "never moves")
    assert_clients_still_work(tmp_path, remote, seeded, ["v1", "v2"])


def test_deleting_a_model_the_history_still_lists(tmp_path: Path, remote: Remote, seeded: casstore.Store) -> None:
    before = remote_refs(remote)
    r = push(seeded.path, remote.url, ":refs/cas/models/d/v1")
    assert_refused(r, remote, before, "refs/cas/models/d/v1", "history still lists it")
    # a history that moves forward but still lists the model does not record the deletion
    same = history(seeded.path, models_of(seeded), parent=ref(seeded, "refs/cas/domains/d"))
    r = push(seeded.path, remote.url, ":refs/cas/models/d/v1", f"{same}:refs/cas/domains/d")
    assert_refused(r, remote, before, "refs/cas/models/d/v1", "history still lists it")
    # with a history that drops it and records the delete event (of that very commit),
    # stock git may delete it: clients then take the deletion (docs/remotes.md)
    models = models_of(seeded)
    event = f"delete v1\n\nCas-Event: delete\nCas-Model: v1\nCas-Commit: {models['v1']}\n"
    dropped = history(seeded.path, {"v2": models["v2"]}, parent=ref(seeded, "refs/cas/domains/d"), message=event)
    r = push(seeded.path, remote.url, ":refs/cas/models/d/v1", f"{dropped}:refs/cas/domains/d")
    assert r.returncode == 0, r.stderr
    assert "refs/cas/models/d/v1" not in remote_refs(remote)
    assert_clients_still_work(tmp_path, remote, seeded, ["v2"])


def test_creating_a_model_the_history_does_not_list(tmp_path: Path, remote: Remote,
                                                    seeded: casstore.Store) -> None:
    models = models_of(seeded)
    tip = ref(seeded, "refs/cas/domains/d")
    before = remote_refs(remote)
    r = push(seeded.path, remote.url, "refs/cas/models/d/v1:refs/cas/models/d/copy")
    assert_refused(r, remote, before, "refs/cas/models/d/copy", "must list models/copy as a gitlink to")
    # listed, but as another commit than the one pushed
    wrong = history(seeded.path, {**models, "copy": models["v2"]}, parent=tip)
    r = push(seeded.path, remote.url, "refs/cas/models/d/v1:refs/cas/models/d/copy", f"{wrong}:refs/cas/domains/d")
    assert_refused(r, remote, before, "refs/cas/models/d/copy", f"as a gitlink to {models['v1']}")
    # a new domain without any history
    r = push(seeded.path, remote.url, "refs/cas/models/d/v1:refs/cas/models/e/v1")
    assert_refused(r, remote, before, "refs/cas/models/e/v1", "refs/cas/domains/e must list models/v1")
    # a "model" whose tree is not a model's, even with a history that lists it
    g = seeded.path
    blob = run_git(g, "hash-object", "-w", "--stdin", stdin="x")
    fake = commit(g, mktree(g, ("100644", blob, "manifest"), ("100644", blob, "files")))
    listed = history(g, {**models, "fake": fake}, parent=tip)
    r = push(g, remote.url, f"{fake}:refs/cas/models/d/fake", f"{listed}:refs/cas/domains/d")
    assert_refused(r, remote, before, "refs/cas/models/d/fake", "'manifest' and 'files' only")
    assert_clients_still_work(tmp_path, remote, seeded, ["v1", "v2"])


def test_a_model_ref_aliasing_another_models_commit(tmp_path: Path, remote: Remote,
                                                    seeded: casstore.Store) -> None:
    """issue 20 item 3: refs/cas/models/d/evil -> the commit of d/v1, with a history that lists
    it there (every other rule is met), is refused: the commit's manifest names d/v1."""
    models = models_of(seeded)
    tip = ref(seeded, "refs/cas/domains/d")
    before = remote_refs(remote)
    listed = history(seeded.path, {**models, "evil": models["v1"]}, parent=tip)
    r = push(seeded.path, remote.url, f"{models['v1']}:refs/cas/models/d/evil", f"{listed}:refs/cas/domains/d")
    assert_refused(r, remote, before, "refs/cas/models/d/evil", "holds a manifest of another model")
    # into another domain, with its own new history
    other = history(seeded.path, {"v1": models["v1"]})
    r = push(seeded.path, remote.url, f"{models['v1']}:refs/cas/models/e/v1", f"{other}:refs/cas/domains/e")
    assert_refused(r, remote, before, "refs/cas/models/e/v1", "holds a manifest of another model")
    # a casstore push of IDs whose names encode on both sides of msgpack's 32-byte fixstr limit passes
    for mid in ("x" * 31, "y" * 32, "z" * 128, "a.b-c_D9"):
        seeded.commit_models("d" * 40, model=_file(tmp_path, mid[:8]), model_id=mid)
    pushed = seeded.push(remote.url)
    assert pushed.ok and len(pushed.models_added) == 4, pushed
    assert_clients_still_work(tmp_path, remote, seeded, ["v1", "v2"])
    # a store that holds such a ref (made with plumbing) does not push it: bucket remotes have no hook
    v1 = ObjectID(models["v1"].encode())
    run_git(seeded.path, "update-ref", "refs/cas/models/d/alias", models["v1"])
    append_event(seeded.odb, seeded.refs, "d", b"x <x@x>", "commit", "alias", v1,
                 lambda idx: idx.models.__setitem__("alias", v1))
    before = remote_refs(remote)
    with pytest.raises(CorruptObjectError, match="ref d/alias points at model d/v1"):
        seeded.push(remote.url)
    assert remote_refs(remote) == before


# -- names and foreign refs ------------------------------------------------------------


def test_bad_ref_names_under_refs_cas(tmp_path: Path, remote: Remote, seeded: casstore.Store) -> None:
    bad = {
        "refs/cas/models/zzz": "exactly two levels",  # one level: every later pull failed on it
        "refs/cas/models/d/a/b": "exactly two levels",
        "refs/cas/models/d/a+b": "exactly two levels",
        "refs/cas/models/d/" + "x" * 129: "exactly two levels",
        "refs/cas/models/dé/v1": "exactly two levels",
        "refs/cas/domains/a/b": "one level",
        "refs/cas/domains/a+b": "one level",
        "refs/cas/states/x": "not a casstore ref",
        "refs/cas/other": "not a casstore ref",
    }
    before = remote_refs(remote)
    r = push(seeded.path, remote.url, *[f"refs/cas/models/d/v1:{name}" for name in bad])
    assert r.returncode != 0
    for name, rule in bad.items():
        assert_refused(r, remote, before, name, rule)
    # the ref on its own
    r = push(seeded.path, remote.url, "refs/cas/models/d/v1:refs/cas/models/zzz")
    assert_refused(r, remote, before, "refs/cas/models/zzz", "exactly two levels")
    assert_clients_still_work(tmp_path, remote, seeded, ["v1", "v2"])


def test_refs_outside_refs_cas_are_left_to_git(tmp_path: Path, remote: Remote, seeded: casstore.Store) -> None:
    r = push(seeded.path, remote.url, "refs/cas/models/d/v1:refs/heads/main", "refs/cas/states:refs/tags/t")
    assert r.returncode == 0, r.stderr
    assert "refs/heads/main" in remote_refs(remote) and "refs/tags/t" in remote_refs(remote)
    assert_clients_still_work(tmp_path, remote, seeded, ["v1", "v2"])


# -- casstore's own pushes ----------------------------------------------------------------


def test_casstore_pushes_pass_the_hook(tmp_path: Path, remote: Remote) -> None:
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    for mid in ("v1", "v2", "v3"):  # a first push with several events in its history
        a.commit_models("d", model=_file(tmp_path, mid), model_id=mid)
    assert a.push(remote.url).models_added == ["d/v1", "d/v2", "d/v3"]
    assert b.pull(remote.url).ok
    a.delete_model("d", "v1")  # a deletion
    a.create_model_state("production")  # a state change
    a.set_model_state("d", "v2", "production")
    pushed = a.push(remote.url)
    assert pushed.ok and pushed.models_deleted == ["d/v1"], pushed
    b.commit_models("d", model=_file(tmp_path, "b1"), model_id="b1")  # diverged: b merges
    b.commit_models("e", model=_file(tmp_path, "e1"), model_id="e1")  # a new domain
    assert b.pull(remote.url).ok
    pushed = b.push(remote.url)
    assert pushed.ok and sorted(pushed.models_added) == ["d/b1", "e/e1"], pushed
    assert run_git(remote.path, "cat-file", "-p", "refs/cas/domains/d").count("parent ") == 2  # a merge
    assert a.pull(remote.url).ok
    assert sorted(a.list_models("d")) == ["b1", "v2", "v3"]
    assert a.list_models("d", state_name="production") == ["v2"]
    assert_git_fsck(remote.path)


def test_hook_refusal_is_reported_by_the_client(tmp_path: Path, remote: Remote, seeded: casstore.Store) -> None:
    """A store with a model that is not shaped like one (made with git plumbing) pushes it."""
    g = seeded.path
    v1 = ref(seeded, "refs/cas/models/d/v1")
    blob = run_git(g, "hash-object", "-w", "--stdin", stdin="x")
    # its manifest names it (the client checks that before pushing), its tree has a README too
    doc = msgpack.unpackb(subprocess.run(["git", "--git-dir", g, "cat-file", "blob", f"{v1}:manifest"],
                                         capture_output=True, check=True).stdout, raw=False)
    doc["model_id"] = "odd"
    manifest = subprocess.run(["git", "--git-dir", g, "hash-object", "-w", "--stdin"], check=True,
                              input=msgpack.packb(doc, use_bin_type=True), capture_output=True).stdout.decode().strip()
    files = run_git(g, "rev-parse", f"{v1}:files")
    odd = commit(g, mktree(g, ("100644", manifest, "manifest"), ("040000", files, "files"), ("100644", blob, "README")))
    run_git(g, "update-ref", "refs/cas/models/d/odd", odd)
    oid = ObjectID(odd.encode())
    append_event(seeded.odb, seeded.refs, "d", b"x <x@x>", "commit", "odd", oid,
                 lambda idx: idx.models.__setitem__("odd", oid))
    before = remote_refs(remote)
    result = seeded.push(remote.url)
    assert not result.ok
    assert "'manifest' and 'files' only" in result.rejected["refs/cas/models/d/odd"], result.rejected
    assert "refused the whole push because of refs/cas/models/d/odd" in result.rejected["refs/cas/domains/d"]
    assert result.models_added == []
    assert remote_refs(remote) == before
    cli = subprocess.run([sys.executable, "-m", "casstore", "--store", g, "push", remote.url],
                         capture_output=True, text=True, check=False)
    assert cli.returncode == 1
    assert "rejected by the remote: refs/cas/models/d/odd: model commit" in cli.stdout, cli.stdout + cli.stderr


def test_hook_on_a_plain_git_init_bare_remote(tmp_path: Path) -> None:
    """docs/remotes.md: the script alone, copied into a stock bare repository, enforces the rules."""
    path = tmp_path / "plain.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    hook = path / "hooks" / "pre-receive"
    hook.write_text(PRE_RECEIVE)
    hook.chmod(0o755)
    remote = Remote(str(path), path)
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    a.commit_models("d", model=_file(tmp_path, "v1"), model_id="v1")
    assert a.push(remote.url).ok
    b.commit_models("d", model=_file(tmp_path, "x"), model_id="x")
    before = remote_refs(remote)
    r = push(b.path, remote.url, "refs/cas/domains/d:refs/cas/domains/d", ":refs/cas/models/d/v1")
    assert_refused(r, remote, before, "refs/cas/domains/d", "only fast-forwards")
    r = push(b.path, remote.url, ":refs/cas/models/d/v1")
    assert_refused(r, remote, before, "refs/cas/models/d/v1", "history still lists it")
    assert_clients_still_work(tmp_path, remote, a, ["v1"])


# -- the hooks as files: package data, installable with cp, linted ---------------------------

HOOK_DIR = Path(hook_module.__file__).parent / "hooks"
HOOK_FILES = [HOOK_DIR / "pre-receive", HOOK_DIR / "post-receive"]


def _shell_assignment(path: Path, name: str) -> str:
    """The value given to ``name`` at the start of a line of the hook file, unquoted."""
    (line,) = [ln for ln in path.read_text().splitlines() if ln.startswith(name + "=")]
    return line[len(name) + 1:].split("  #")[0].strip().strip("'")


def test_hook_files_pass_shellcheck() -> None:
    """Both hooks are POSIX sh with no shellcheck finding; each check disabled inline says why."""
    r = subprocess.run(["shellcheck", "-s", "sh", *map(str, HOOK_FILES)], capture_output=True, text=True,
                       check=False, timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    for path in HOOK_FILES:
        for line in path.read_text().splitlines():
            if "shellcheck disable=" in line:
                assert line.split("shellcheck disable=", 1)[1].split(None, 1)[1].startswith("# "), line


def test_hook_file_constants_are_the_python_ones() -> None:
    """What the hook files spell out by hand equals the Python constants it mirrors."""
    pre, post = HOOK_FILES
    assert _shell_assignment(pre, "manifest_head") == hook_module.MANIFEST_HEAD
    assert _shell_assignment(pre, "manifest_mid") == hook_module.MANIFEST_MID
    assert _shell_assignment(post, "auto_packs") == str(AUTO_PACKS)
    # indextree.key_of's hash and depth, as written in the awk of key() and of the layout rule
    key, layout = hook_module.KEY_AWK, hook_module.LAYOUT_AWK
    assert key.count(f"h * {indextree.SHARD_MUL} + ") == 2 and key.count(f") % {indextree.SHARD_MOD};") == 2
    assert key.count(f"% {indextree.KEY_MOD}") == 2 and f"g * {indextree.KEY_MIX} + h" in key
    assert f"length(pre) <= {indextree.KEY_DIGITS}" in layout and f"<= {indextree.KEY_DIGITS}\n" in layout
    assert f"length(n) <= {MAX_NAME_LENGTH}" in NAME_AWK


def test_install_hook_writes_the_package_files(tmp_path: Path) -> None:
    """`cas init --bare` installs pre-receive byte for byte as shipped (so `cp` installs the same
    hook), and post-receive as shipped but for the Python it merges with; a plainly copied
    post-receive (no Python named) does nothing, whatever the number of pushed packs."""
    path = tmp_path / "srv.git"
    init_store(str(path), bare_remote=True)
    pre, post = HOOK_FILES
    assert (path / "hooks" / "pre-receive").read_bytes() == pre.read_bytes()
    installed = (path / "hooks" / "post-receive").read_text().splitlines()
    shipped = post.read_text().splitlines()
    diff = [(a, b) for a, b in zip(installed, shipped, strict=True) if a != b]
    assert diff == [("py='" + sys.executable + "'", "py=''")]
    for name in ("pre-receive", "post-receive"):
        assert os.access(path / "hooks" / name, os.X_OK)
    plain = tmp_path / "plain.git"
    subprocess.run(["git", "init", "-q", "--bare", str(plain)], check=True)
    shutil.copy(post, plain / "hooks" / "post-receive")
    git(plain, "config", "cas.autoPacks", "1")
    for i in range(3):
        (plain / "objects" / "pack" / f"pack-{i:040x}.pack").write_bytes(b"")
    r = subprocess.run(["sh", str(plain / "hooks" / "post-receive")], cwd=plain, capture_output=True, text=True,
                       check=False, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


# -- the naming rule, ported to awk ------------------------------------------------------


def test_hook_name_rule_matches_names_py(awk: Path) -> None:
    rng = random.Random(0)
    alphabet = "aZ09._-+/@ é~\t"
    names = ["a", "v1", "a.b", "a..b", ".a", "a.", "x.lock", "x.locked", "lock", "-", "_", "a-b_c.d",
             "x" * 128, "x" * 129, "é", "a b", "a/b", "a+b", "..", ".", "a.lock.b"]
    names += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(3000)]
    names = [n for n in names if n and "\n" not in n]
    r = subprocess.run(["awk", NAME_AWK + " { print valid($0) ? 1 : 0 }"], input=("\n".join(names) + "\n").encode(),
                       capture_output=True, check=True, env={**os.environ, "LC_ALL": "C"})
    got = r.stdout.decode().split()
    assert len(got) == len(names)

    def python_says(n: str) -> str:
        try:
            check_name(n)
            return "1"
        except ValueError:
            return "0"

    mismatches = [(n, g) for n, g in zip(names, got, strict=True) if python_says(n) != g]
    assert not mismatches, mismatches[:10]
    assert got.count("1") > 100 and got.count("0") > 100  # both outcomes are exercised
    assert awk.read_text()  # the implementation under test did the work


# -- the split layout of the models tree (casstore/model/indextree.py) -------------


def nested(git_dir: str | Path, placed: dict[str, tuple[str, str]], *extra: tuple[str, str, str]) -> str:
    """A ``models`` tree from {path under models/: (mode, sha)}, directories made with stock git."""
    children: dict[str, dict[str, tuple[str, str]]] = {}
    for path, entry in placed.items():
        head, _, rest = path.partition("/")
        children.setdefault(head, {})[rest] = entry
    entries = list(extra)
    for name, below in children.items():
        if list(below) == [""]:
            entries.append((*below[""], name))
        else:
            entries.append(("040000", nested(git_dir, below), name))
    mode_of = {e[2]: e for e in entries}
    return mktree(git_dir, *[(mode, sha, name) for mode, sha, name in mode_of.values()])


def split_history(git_dir: str | Path, placed: dict[str, tuple[str, str]], parent: str) -> str:
    return commit(git_dir, mktree(git_dir, ("040000", nested(git_dir, placed), "models")), parent)


def test_split_layout_passes_and_hostile_trees_are_refused(tmp_path: Path, awk: Path, remote: Remote,
                                                           seeded: casstore.Store) -> None:
    from casstore.model.indextree import key_of

    g = seeded.path
    tip = ref(seeded, "refs/cas/domains/d")
    models = models_of(seeded)
    blob = run_git(g, "hash-object", "-w", "--stdin", stdin="x")

    def at(mid: str, dirs: list[str]) -> dict[str, tuple[str, str]]:
        return {"/".join([*dirs, mid]): ("160000", models[mid])}

    k1, k2 = key_of("v1"), key_of("v2")
    wrong = "0" if k1[2] != "0" else "1"
    wrong_shard = "00" if k1[:2] != "00" else "01"
    before = remote_refs(remote)
    bad = [  # (entries, what the hook must name)
        ({**at("v1", [k1[0], k1[1], wrong]), **at("v2", [k2[0]])}, f"models/{k1[0]}/{k1[1]}/{wrong}/v1"),
        ({**at("v1", [k1[:2], "g"]), **at("v2", [])}, f"models/{k1[:2]}/g"),  # not a hex digit
        ({**at("v1", [k1[:2], k1[2:5]]), **at("v2", [])}, f"models/{k1[:2]}/{k1[2:5]}"),  # 3 digits
        ({**at("v1", [k1[:2], k1[2].upper() if k1[2].isalpha() else "A"]), **at("v2", [])}, "models/"),
        ({**at("v1", list(k1)), **at("v2", []),  # 11 digits down one path
          "/".join([*k1, "0", "x"]): ("160000", models["v2"])}, f"models/{'/'.join(k1)}/0"),
        ({**at("v1", [k1[0]]), **at("v2", []), f"{k1[0]}/junk": ("100644", blob)}, f"models/{k1[0]}/junk"),
        ({**at("v1", [k1[0]]), **at("v2", []), f"{k1[0]}/a+b": ("160000", models["v2"])}, f"models/{k1[0]}/a+b"),
        # the 256-shard layout's rule broken: a model in another 2-digit shard than its key's
        ({**at("v1", [wrong_shard]), **at("v2", [k2[:2]])}, f"models/{wrong_shard}/v1"),
        # a 1-digit directory below a 2-digit one that ends the key's prefix elsewhere
        ({**at("v1", [k1[:2], wrong]), **at("v2", [])}, f"models/{k1[:2]}/{wrong}/v1"),
        # a name that is no model ID, on a key-valid path; a subtree named like a model ID
        ({**at("v1", []), **at("v2", []), "x.lock": ("160000", models["v2"])}, "models/x.lock"),
        ({**at("v1", []), **at("v2", []), "v3/x": ("160000", models["v2"])}, "models/v3"),
    ]
    for placed, entry in bad:
        r = push(g, remote.url, f"{split_history(g, placed, tip)}:refs/cas/domains/d")
        assert_refused(r, remote, before, "refs/cas/domains/d", f"has {entry}")
    # deep paths, 1- and 2-digit directories mixed, and the flat layout: all on the keys' paths
    good = split_history(g, {**at("v1", [k1[:2], k1[2], k1[3:5], k1[5]]), **at("v2", [k2[0]])}, tip)
    r = push(g, remote.url, f"{good}:refs/cas/domains/d")
    assert r.returncode == 0, r.stderr
    assert casstore.Store(str(remote.path)).list_models("d") == seeded.list_models("d")
    assert_clients_still_work(tmp_path, remote, seeded, ["v1", "v2"])
    assert awk.read_text()  # the hook ran under the implementation under test


def test_casstore_pushes_of_a_split_tree_pass_the_hook(tmp_path: Path, awk: Path, remote: Remote,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from casstore.model import indextree

    monkeypatch.setattr(indextree, "LEAF_MAX", 2)  # 8 models: a tree 2-3 levels deep
    a = casstore.open(tmp_path / "a")
    for i in range(8):
        a.commit_models("d", model=_file(tmp_path, f"m{i}"), model_id=f"m{i}")
    listing = git(a.path, "ls-tree", "-r", "refs/cas/domains/d", "models/").stdout
    assert max(line.count("/") for line in listing.splitlines()) >= 2
    pushed = a.push(remote.url)
    assert pushed.ok and len(pushed.models_added) == 8, pushed
    a.delete_model("d", "m3")
    a.commit_models("d", model=_file(tmp_path, "m8"), model_id="m8")
    pushed = a.push(remote.url)
    assert pushed.ok and pushed.models_added == ["d/m8"] and pushed.models_deleted == ["d/m3"], pushed
    b = casstore.open(tmp_path / "b")
    assert b.pull(remote.url).ok and sorted(b.list_models("d")) == sorted(f"m{i}" for i in range(9) if i != 3)
    assert_git_fsck(remote.path)
    assert awk.read_text()


#: the pre-receive hook of casstore's first servers (commit eceddcb), cut short: what an old store holds
OLD_PRE_RECEIVE = "#!/bin/sh\n# casstore: protect model refs and histories (installed by `cas init --bare`).\nexit 0\n"


def _hook_files(path: Path) -> dict[str, tuple[bytes, int, int] | None]:
    out: dict[str, tuple[bytes, int, int] | None] = {}
    for name in ("pre-receive", "post-receive"):
        f = path / "hooks" / name
        out[name] = (f.read_bytes(), f.stat().st_ino, f.stat().st_mtime_ns) if f.exists() else None
    return out


def test_init_bare_on_an_old_store_installs_its_hooks_and_pushes_then_merge(tmp_path: Path) -> None:
    """A store made before post-receive existed (no post-receive, an older pre-receive): `cas init
    --bare` on it installs both, again changes nothing, and a push over git daemon then runs the
    auto-merge the new post-receive brings."""
    from tests.helpers.cli import cas

    srv = tmp_path / "srv"
    srv.mkdir()
    repo = srv / "m.git"
    init_store(str(repo), bare_remote=True)
    (repo / "hooks" / "post-receive").unlink()
    (repo / "hooks" / "pre-receive").write_text(OLD_PRE_RECEIVE)
    r = cas("init", "--bare", str(repo))
    assert "installed its hooks (pre-receive, post-receive)" in r.stdout, r.stdout
    assert (repo / "hooks" / "pre-receive").read_text() == PRE_RECEIVE
    assert (repo / "hooks" / "post-receive").read_text() == hook_module.post_receive(sys.executable)
    for name in ("pre-receive", "post-receive"):
        assert os.access(repo / "hooks" / name, os.X_OK)
    before = _hook_files(repo)
    r = cas("init", "--bare", str(repo))
    assert "hooks are up to date" in r.stdout, r.stdout
    assert _hook_files(repo) == before  # not even rewritten

    assert git(repo, "config", "cas.autoPacks", "2").returncode == 0
    a = casstore.open(tmp_path / "a")
    with git_daemon(srv) as base:
        url = f"{base}/m.git"
        for i in range(5):
            a.commit_models("d", model=_file(tmp_path, f"v{i}"), model_id=f"v{i}")
            assert a.push(url).ok
        wait_for_pushes_merged(repo, 2)  # the hook merged them (nothing else runs on this server)
        assert_git_fsck(repo)
        b = casstore.open(tmp_path / "b")
        assert sorted(b.pull(url).models_added) == [f"d/v{i}" for i in range(5)]
        assert b.fsck(read_data=True).ok


def test_init_bare_keeps_a_hook_that_is_not_casstores(tmp_path: Path) -> None:
    """A user's own post-receive on a store: `cas init --bare` refuses by name and changes nothing."""
    from tests.helpers.cli import cas

    repo = tmp_path / "m.git"
    init_store(str(repo), bare_remote=True)
    (repo / "hooks" / "pre-receive").write_text(OLD_PRE_RECEIVE)
    (repo / "hooks" / "post-receive").write_text("#!/bin/sh\necho 'my own deploy hook'\n")
    config = (repo / "config").read_bytes()
    before = _hook_files(repo)
    r = cas("init", "--bare", str(repo), check=2)
    assert "post-receive hook that is not casstore's is there, left as it is" in r.stderr, r.stderr
    assert str(repo / "hooks" / "post-receive") in r.stderr
    assert _hook_files(repo) == before
    assert (repo / "config").read_bytes() == config
