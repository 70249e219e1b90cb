"""The transports (casstore/remote/transports/): one protocol, three kinds, a registry by URL scheme.

mypy checks statically that ``GitTransport``, ``PathTransport`` and ``BucketClient`` (a
bucket remote is its own transport) are ``Transport``s (the registry's openers are typed to
return one); these tests check the same at run time, and that a new kind of remote is one
class plus one registration line: push, pull and listing then go through it with no other change.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path

import pytest
from dulwich.objects import ObjectID
from dulwich.refs import Ref

import casstore
from casstore.objects.repository import Repository
from casstore.remote import transports
from casstore.remote.bucket import BucketClient
from casstore.remote.incoming import Quarantine
from casstore.remote.transports import (
    GitTransport,
    PathTransport,
    Received,
    Sent,
    Transport,
    open_transport,
)
from casstore.remote.transports.base import UpdateRefs, Wants
from casstore.util.progress import ProgressFn
from tests.conftest import assert_git_fsck
from tests.fakes import bucket as memory_bucket

PROTOCOL_METHODS = ("read_refs", "fetch", "send", "note_merged")


def _signature(cls: type, name: str) -> list[str]:
    return list(inspect.signature(getattr(cls, name)).parameters)


@pytest.mark.parametrize("kind", [GitTransport, PathTransport, BucketClient])
def test_each_kind_has_the_protocols_methods_and_arguments(kind: type) -> None:
    for name in PROTOCOL_METHODS:
        assert callable(getattr(kind, name, None)), f"{kind.__name__} has no {name}"
        assert _signature(kind, name) == _signature(Transport, name), f"{kind.__name__}.{name}"


def test_the_registry_opens_each_kind_by_url(tmp_path: Path) -> None:
    memory_bucket.install()
    try:
        opened = {url: open_transport(url) for url in (
            str(tmp_path / "r"), f"file://{tmp_path}/r", "ssh://host/srv/r", "me@host:r", "git://host/r",
            "http://host/r", "https://host/r", "mem://bucket/prefix")}
    finally:
        memory_bucket.uninstall()
    kinds = {url: type(t).__name__ for url, t in opened.items()}
    assert kinds == {str(tmp_path / "r"): "PathTransport", f"file://{tmp_path}/r": "PathTransport",
                     "ssh://host/srv/r": "GitTransport", "me@host:r": "GitTransport",
                     "git://host/r": "GitTransport", "http://host/r": "GitTransport",
                     "https://host/r": "GitTransport", "mem://bucket/prefix": "MemoryBucket"}
    assert all(isinstance(t, Transport) for t in opened.values())
    assert {"file", "ssh", "git", "http", "https", "s3", "gs", "az"} <= set(transports.SCHEMES)


class Recording:
    """A new kind of remote, ``rec://<path>``: a store in a directory, each call written down.

    All it needs is the protocol's four methods; here they hand on to a path transport.
    """

    calls: list[str] = []

    def __init__(self, url: str) -> None:
        self.url = url
        self.inner = PathTransport(url, url.removeprefix("rec://"))

    @classmethod
    def open(cls, url: str, config: object = None, cache_dir: str | None = None,
             progress: ProgressFn | None = None) -> Recording:
        return cls(url)

    def read_refs(self) -> Mapping[Ref, ObjectID]:
        self.calls.append("read_refs")
        return self.inner.read_refs()

    def fetch(self, repo: Repository, wants: Wants, quarantine: Quarantine, domains: set[str] | None,
              progress: ProgressFn | None) -> Received:
        self.calls.append("fetch")
        return self.inner.fetch(repo, wants, quarantine, domains, progress)

    def send(self, repo: Repository, update_refs: UpdateRefs, domains: set[str] | None,
             progress: ProgressFn | None) -> Sent:
        self.calls.append("send")
        return self.inner.send(repo, update_refs, domains, progress)

    def note_merged(self, domains: set[str]) -> None:
        self.calls.append(f"note_merged {sorted(domains)}")


def test_a_new_transport_is_one_class_and_one_registration_line(tmp_path: Path) -> None:
    transports.SCHEMES["rec"] = Recording.open  # the registration line
    Recording.calls = []
    try:
        a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
        (tmp_path / "m.bin").write_bytes(b"weights" * 1000)
        a.commit_models("fraud", model=str(tmp_path / "m.bin"), model_id="v1")
        url = f"rec://{tmp_path / 'remote'}"
        a.add_remote("origin", url)  # the URL check knows the scheme from the same registry
        pushed = a.push("origin")
        assert pushed.ok and pushed.models_added == ["fraud/v1"], pushed
        listed = b.remote_refs(url)
        assert list(listed.models) == ["fraud"] and list(listed.models["fraud"]) == ["v1"], listed
        pulled = b.pull(url)
        assert pulled.ok and pulled.models_added == ["fraud/v1"], pulled
        assert b.list_models("fraud") == ["v1"]
    finally:
        transports.SCHEMES.pop("rec", None)
    assert Recording.calls == ["send", "read_refs", "fetch", "note_merged ['fraud']"], Recording.calls
    assert_git_fsck(tmp_path / "remote")
    assert_git_fsck(tmp_path / "b")
