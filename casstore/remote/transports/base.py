"""The ``Transport`` protocol: what push and pull need of a remote, whatever its kind.

``sync.py`` decides what moves (which objects to want, which refs to change, how
histories merge); a transport only moves it.  Three kinds implement the protocol,
one module each beside this one: ``git.py`` (ssh, git, http(s): dulwich's
clients), ``path.py`` (a store on this machine: objects copied as pack entries,
refs through git's receive-pack so that hooks run) and, for object storage (s3,
gs, az), ``remote/bucket/``'s ``BucketClient`` itself.  What
differs between them is behind the protocol, not chosen by ``isinstance`` in
sync: which refs a bucket reads (``domains``), how objects travel (a negotiated
pack, a file copy, byte ranges), and what a bucket remembers between pulls
(``note_merged``).

Also here, shared by the transports: the error wrapping (``transport_errors``),
the local graph a fetch offers (``LocalGraph``, ``haves``), receiving a pack into
the quarantine (``receive_pack``), and the objects a push sends (``PackSource``).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterator, Mapping, Set
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from dulwich.config import Config
from dulwich.errors import GitProtocolError, HangupException
from dulwich.object_store import ObjectStoreGraphWalker
from dulwich.objects import ZERO_SHA, Commit, ObjectID
from dulwich.pack import UnpackedObject
from dulwich.refs import Ref

from ...errors import CasError, RemoteError
from ...util.progress import ProgressFn
from ..incoming import PackIndexer
from ..walk import EntrySource, reachable_set, walk

if TYPE_CHECKING:
    from ...objects.repository import Repository
    from ..incoming import Quarantine

#: what a fetch asks the orchestration: given the remote's refs, the objects to fetch
Wants = Callable[[Mapping[Ref, ObjectID]], list[ObjectID]]
#: what a push asks the orchestration: given the remote's refs, the refs as they should be
UpdateRefs = Callable[[dict[Ref, ObjectID]], dict[Ref, ObjectID]]


@dataclass
class Received:
    """What a fetch brought into the quarantine."""

    objects: int = 0
    bytes: int = 0


@dataclass
class Sent:
    """What a push sent, and how the remote answered each ref update."""

    #: ref -> None (moved) or the remote's reason for refusing it
    ref_status: dict[bytes, str | None] = field(default_factory=dict)
    #: what the remote said on the side (a git server's hooks: the reasons for a refusal)
    messages: bytes = b""
    objects: int = 0
    bytes: int = 0


@runtime_checkable
class Transport(Protocol):
    """One remote, as push and pull use it.

    Every method raises RemoteError when the remote cannot be reached or fails
    (its words, with the URL), CorruptObjectError when what it sent is damaged, and
    lets any other CasError of the orchestration's callbacks through.
    """

    #: the remote's URL, as configured
    url: str

    def read_refs(self) -> Mapping[Ref, ObjectID]:
        """The remote's refs, from its listing alone (no object travels)."""
        ...

    def fetch(self, repo: Repository, wants: Wants, quarantine: Quarantine, domains: set[str] | None,
              progress: ProgressFn | None) -> Received:
        """Bring into ``quarantine`` what the objects ``wants`` names reach and ``repo`` lacks.

        ``wants`` is called once with the remote's refs (again if the fetch had to
        start over); the objects arrive in the quarantine unverified (its checks are
        the caller's).  ``domains`` (None: all) are the domains the caller will
        merge: a transport may leave the refs of the others out.
        """
        ...

    def send(self, repo: Repository, update_refs: UpdateRefs, domains: set[str] | None,
             progress: ProgressFn | None) -> Sent:
        """Send the objects the new refs reach and the remote lacks, then move its refs.

        ``update_refs`` gets the remote's refs and returns them as they should be
        (it may be called again if the transport starts over).  Model refs are
        only created or deleted, each against the value read; the answer says,
        per ref, whether it moved.  The caller holds ``repo``'s store lock.
        ``domains``: the domains whose refs may change (None: all).
        """
        ...

    def note_merged(self, domains: set[str]) -> None:
        """Remember that this store merged ``domains`` as the last fetch read them (a
        transport that can tell them unchanged next time leaves them out of its refs)."""
        ...


@contextmanager
def transport_errors(url: str) -> Iterator[None]:
    """Turn a transport's own exceptions (dulwich's, the network's, a full disk's) into RemoteError."""
    try:
        yield
    except (GitProtocolError, HangupException, OSError) as e:
        if isinstance(e, CasError):
            raise
        raise RemoteError(url, describe_transport_error(e)) from e


class LocalGraph(ObjectStoreGraphWalker):
    """dulwich's walker over local history, plus what a remote without negotiation needs."""

    def __init__(self, heads: list[ObjectID], parents: Callable[[ObjectID], list[ObjectID]],
                 contains: Callable[[ObjectID], bool]) -> None:
        super().__init__(heads, parents)
        self.contains = contains


def local_graph(repo: Repository, heads: list[ObjectID]) -> LocalGraph:
    """The walker a fetch offers: ``heads`` as haves, and ``repo``'s objects to ask about."""
    odb = repo.odb

    def parents(sha: ObjectID) -> list[ObjectID]:
        c = odb.read(sha)
        return list(c.parents) if isinstance(c, Commit) else []

    return LocalGraph(heads, parents, odb.contains)


def haves(repo: Repository) -> list[ObjectID]:
    """What to announce as "have" when fetching from a git server.

    Every model commit is a root, and git's pack-objects only subtracts the trees
    of uninteresting commits that are parents of wanted ones: ``v2 ^v1`` would
    send all of v2's chunks even though we have most of them through v1.  Naming
    the models' root trees as haves makes the server mark them, and every chunk
    below them, uninteresting -- so only chunks we lack travel.
    """
    odb = repo.odb
    out: list[ObjectID] = []
    for name, sha in sorted(repo.refs.container.as_dict(Ref(b"refs/cas")).items()):
        out.append(sha)
        if name.startswith(b"models/"):
            c = odb.read(sha)
            if isinstance(c, Commit):
                out.append(c.tree)
    return out


def receive_pack(quarantine: Quarantine, fetch: Callable[[Callable[[bytes], int]], None], url: str,
                 progress: ProgressFn | None) -> Received:
    """Run ``fetch(write)`` and import the pack it writes into ``quarantine``.

    The pack is indexed as it arrives (``PackIndexer``): indexing overlaps the
    server's work and the network instead of following them.
    """
    pack_path = os.path.join(quarantine.dir, "incoming.pack")
    indexer = PackIndexer()
    received = 0
    try:
        with open(pack_path, "wb") as f:
            def write(data: bytes) -> int:
                nonlocal received
                received += len(data)
                if progress:
                    progress("receiving", received, 0)
                indexer.feed(data)
                return f.write(data)

            with transport_errors(url):
                fetch(write)
        objects = quarantine.import_pack(pack_path, indexer) if received else 0
    finally:
        if os.path.exists(pack_path):
            os.unlink(pack_path)
    return Received(objects, received)


class PackSource:
    """The objects a push sends as a pack: what the wanted refs reach and the remote's refs do not.

    ``generate`` has the shape of dulwich's ``generate_pack_data``; ``objects`` and
    ``bytes_sent`` count what it produced.
    """

    def __init__(self, repo: Repository, progress: ProgressFn | None) -> None:
        self.odb = repo.odb
        self.source = EntrySource(self.odb, progress)
        self.objects = 0

    def __enter__(self) -> PackSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.source.close()

    @property
    def bytes_sent(self) -> int:
        return self.source.bytes_sent

    def generate(self, have: Set[ObjectID], want: Set[ObjectID], *, ofs_delta: bool = False,
                 progress: Callable[[bytes], None] | None = None) -> tuple[int, Iterator[UnpackedObject]]:
        known = [h for h in have if h != ZERO_SHA and self.odb.contains(h)]
        stop = reachable_set(self.odb, known)
        objects = list(walk(self.odb, [w for w in want if w != ZERO_SHA], stop))
        objects.sort(key=lambda o: o[1] == 3)  # commits and trees first: a reader can walk them in one range
        self.objects = len(objects)
        return len(objects), self.source.records(objects)


_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\"()\]]+)")
#: what urllib3 buries in a MaxRetryError's repr, and how to say it
_HTTP_CAUSES = (
    (re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"),
     "the server's TLS certificate is not trusted (certificate verify failed; set http.sslCAInfo "
     "in the store's config to its CA)"),
    (re.compile(r"Failed to resolve|Name or service not known|nodename nor servname"), "cannot connect: unknown host"),
    (re.compile(r"Connection refused"), "cannot connect: connection refused"),
    (re.compile(r"timed out"), "cannot connect: timed out"),
)


def describe_transport_error(e: BaseException) -> str:
    """One line saying what went wrong talking to a remote, in words, without class names.

    dulwich and urllib3 raise their own exception types whose text is a repr of
    nested objects (``HangupException``, ``MaxRetryError(NewConnectionError(...))``);
    a user needs the reason (refused, unknown host, what the server said), and the URL,
    which :class:`RemoteError` adds.
    """
    stderr = getattr(e, "stderr_lines", None)
    if stderr:  # what the server or ssh said: the most useful text there is
        lines = [b.decode("utf-8", "replace").strip() for b in stderr]
        lines = [ln.removeprefix("fatal: ").removeprefix("error: ") for ln in lines if ln]
        return "; ".join(lines) or "the remote closed the connection"
    text = str(e)
    if isinstance(e, HangupException):
        return "the remote closed the connection"
    if isinstance(e, ConnectionRefusedError):
        return "cannot connect: connection refused"
    if isinstance(e, TimeoutError):
        return "cannot connect: timed out"
    if isinstance(e, (ConnectionError, socket.gaierror)) and e.strerror:
        return f"cannot connect: {e.strerror[:1].lower()}{e.strerror[1:]}"
    if isinstance(e, OSError) and e.strerror:  # e.g. a full disk while receiving: not the network's fault
        return e.strerror + (f": {e.filename}" if e.filename else "")
    for pattern, words in _HTTP_CAUSES:
        if pattern.search(text):
            return words
    if "Max retries exceeded" in text or "Caused by" in text:
        m = _ERRNO_TEXT.search(text)
        return f"cannot connect: {m.group(1).lower()}" if m else "cannot connect: the server did not answer"
    return text.splitlines()[0] if text else "the transfer failed"


#: opens a transport: (url, the store's git config, a cache directory for it, a progress function)
Opener = Callable[[str, Config | None, str | None, ProgressFn | None], Transport]
