"""Git servers: ``ssh://``, ``user@host:path``, ``git://`` and ``http(s)://``, through dulwich.

``ssh`` is the ``ssh`` command, or ``$CAS_SSH_COMMAND`` / ``$GIT_SSH_COMMAND`` if
set; ``git://`` and ``http(s)://`` speak the smart protocols, with the store's
git config (``http.sslCAInfo``, ``http.sslVerify``, ``http.proxy`` ...) applied as
git applies it.  A fetch negotiates with the store's tips and models' root trees
as haves (``base.haves``); a push sends one pack of what the remote's refs do not
reach, asking for an atomic update (again without, from a server that refuses it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from dulwich.client import GitClient, SendPackResult, SSHGitClient, get_transport_and_path
from dulwich.config import Config
from dulwich.errors import GitProtocolError
from dulwich.object_store import ObjectStoreGraphWalker
from dulwich.objects import ObjectID
from dulwich.refs import Ref

from ...errors import RemoteError
from ...model.states import STATES_REF
from ...objects.refs import DOMAINS, MODELS
from ...util.progress import ProgressFn
from .base import PackSource, Received, Sent, UpdateRefs, Wants, haves, local_graph, receive_pack, transport_errors

if TYPE_CHECKING:
    from dulwich.client import GeneratePackDataFunc

    from ...objects.repository import Repository
    from ..incoming import Quarantine


def list_refs(client: GitClient, path: str, url: str) -> dict[Ref, ObjectID]:
    """The refs a git server advertises: a fetch that wants nothing (no object travels)."""
    seen: dict[Ref, ObjectID] = {}

    def determine_wants(refs: Mapping[Ref, ObjectID], depth: int | None = None) -> list[ObjectID]:
        seen.update(refs)
        return []

    with transport_errors(url):
        client.fetch_pack(path, determine_wants, ObjectStoreGraphWalker([], lambda sha: []), lambda data: 0)
    return seen


def ref_prefixes(domains: set[str]) -> list[bytes]:
    """The ref prefixes a pull of ``domains`` reads: their model refs and histories, and the state list.

    A domain's history prefix also matches longer names (``d`` and ``d2``): the pull
    leaves out the domains it was not asked for after parsing.
    """
    out: list[bytes] = [STATES_REF]
    for domain in sorted(domains):
        out += [MODELS + domain.encode() + b"/", DOMAINS + domain.encode()]
    return out


def send_pack(client: GitClient, path: str, update_refs: UpdateRefs, generate: GeneratePackDataFunc,
              url: str) -> tuple[SendPackResult, bytes]:
    """dulwich's ``send_pack``, atomic when the server can; the result and what its hooks said."""
    sideband = bytearray()  # what the server's hooks say: the reasons for a refusal
    with transport_errors(url):
        try:
            status = client.send_pack(path.encode(), update_refs, generate, progress=sideband.extend, atomic=True)
        except GitProtocolError as e:
            if "atomic" not in str(e):
                raise
            status = client.send_pack(path.encode(), update_refs, generate, progress=sideband.extend)
    return status, bytes(sideband)


class GitTransport:
    """A git server reached through one of dulwich's clients (see the module docstring)."""

    def __init__(self, url: str, client: GitClient, path: str) -> None:
        self.url = url
        self.client = client
        self.path = path

    @classmethod
    def open(cls, url: str, config: Config | None = None, cache_dir: str | None = None,
             progress: ProgressFn | None = None) -> GitTransport:
        """The transport for ``url``; RemoteError if dulwich cannot make sense of it."""
        try:
            client, path = get_transport_and_path(url, config=config)
        except ValueError as e:
            raise RemoteError(url, str(e)) from None
        if isinstance(client, SSHGitClient):
            command = os.environ.get("CAS_SSH_COMMAND") or os.environ.get("GIT_SSH_COMMAND")
            if command:
                client.ssh_command = command
        return cls(url, client, path)

    def read_refs(self) -> dict[Ref, ObjectID]:
        return list_refs(self.client, self.path, self.url)

    def fetch(self, repo: Repository, wants: Wants, quarantine: Quarantine, domains: set[str] | None,
              progress: ProgressFn | None) -> Received:
        walker = local_graph(repo, haves(repo))

        def determine_wants(refs: Mapping[Ref, ObjectID], depth: int | None = None) -> list[ObjectID]:
            return wants(refs)

        def fetch(write: Callable[[bytes], int]) -> None:
            if domains:  # protocol v2's ls-refs lists only these domains' refs (a v0 server lists all)
                self.client.fetch_pack(self.path, determine_wants, walker, write, protocol_version=2,
                                       ref_prefix=ref_prefixes(domains))
            else:
                self.client.fetch_pack(self.path, determine_wants, walker, write)

        return receive_pack(quarantine, fetch, self.url, progress)

    def send(self, repo: Repository, update_refs: UpdateRefs, domains: set[str] | None,
             progress: ProgressFn | None) -> Sent:
        with PackSource(repo, progress) as source:
            status, said = send_pack(self.client, self.path, update_refs, source.generate, self.url)
        return Sent(dict(status.ref_status or {}), said, source.objects, source.bytes_sent)

    def note_merged(self, domains: set[str]) -> None:
        pass  # a git server negotiates what is new each time
