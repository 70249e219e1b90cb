"""Two stores that disagree about a model, through the CLI, and the check that a domain's
history still agrees with its model refs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import casstore
from casstore.model.history import iter_log
from casstore.objects.refs import domain_ref
from tests.helpers.cli import cas


def _file(tmp_path: Path, name: str) -> Path:
    p = tmp_path / name
    p.write_bytes(os.urandom(150_000))
    return p


def commit_of(store: Path, model_id: str, domain: str = "d") -> str:
    """(Checks read the stores through the API, in-process; users' steps go through ``cas``.)"""
    return str(casstore.Store(str(store)).get_model_info(domain, model_id)["commit"])


def model_bytes(tmp_path: Path, store: Path, model_id: str) -> bytes:
    return Path(casstore.Store(str(store)).load("d", model_id)).read_bytes()


def assert_consistent(store: casstore.Store) -> None:
    """The domain history records exactly the model refs, and its log never names a
    model commit as present that the refs do not hold."""
    for domain in store.list_domains():
        refs = {m: store.refs.get(b"refs/cas/models/%s/%s" % (domain.encode(), m.encode()))
                for m in store.refs.model_ids(domain)}
        head = store.refs.get(domain_ref(domain))
        assert head is not None, domain
        assert store._index(domain).models == refs, (store.path, domain)
        added: dict[str, set[str]] = {}
        deleted: dict[str, set[str]] = {}
        for e in iter_log(store.odb, head):
            if e.event == "commit":
                added.setdefault(e.model_id, set()).add(e.model_commit)
            elif e.event == "delete":
                deleted.setdefault(e.model_id, set()).add(e.model_commit)
        for mid, commits in added.items():
            alive = commits - deleted.get(mid, set())
            held = {refs[mid].decode()} if refs.get(mid) else set()
            assert alive == held, (store.path, domain, mid, alive, held)


def conflict_setup(tmp_path: Path, url: str) -> tuple[Path, Path, bytes, bytes]:
    """A and B both commit d/v1 (different bytes); A pushes; B's pull reports the conflict."""
    a, b = tmp_path / "a", tmp_path / "b"
    for s in (a, b):
        cas("init", str(s))
    fa, fb = _file(tmp_path, "model-a.bin"), _file(tmp_path, "model-b.bin")
    cas("commit", "d", str(fa), "--id", "v1", store=a)
    cas("commit", "d", str(fb), "--id", "v1", store=b)
    cas("push", url, store=a)
    r = cas("pull", url, "--json", store=b, check=1)
    assert json.loads(r.stdout)["conflicts"] == ["d/v1"]
    assert model_bytes(tmp_path, b, "v1") == fb.read_bytes()  # a pull never replaces a local model
    return a, b, fa.read_bytes(), fb.read_bytes()

