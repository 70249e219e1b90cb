"""Object storage (``s3://``, ``gs://``, ``az://``): the protocol of ``remote/bucket.py``.

There is no server to negotiate with: a fetch reads the ref tables, walks the
remote's packs from the wanted objects and fetches by byte range only what the
local store lacks (it asks the local store, so no haves are listed: O(models)); a
push uploads one pack and moves refs with conditional writes (``BucketClient``).
Two things only a bucket does: it reads the ref tables of the domains a push may
change or a pull merges (``domains``), and it remembers which domain tables this
store merged (``note_merged``), leaving those out of the next pull's refs when
they are unchanged (a pull with nothing new is O(changed domains), not O(models)).

A bucket kind is a ``BucketClient`` subclass (s3.py, gcs.py, azure.py) and one
line in ``transports/__init__.py``'s ``SCHEMES``: ``BucketTransport.opener(...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from dulwich.config import Config
from dulwich.object_store import ObjectStoreGraphWalker
from dulwich.objects import ObjectID
from dulwich.refs import Ref

from ...util.progress import ProgressFn
from ..bucket import BucketClient
from .base import Opener, PackSource, Received, Sent, UpdateRefs, Wants, local_graph, receive_pack, transport_errors

if TYPE_CHECKING:
    from ...objects.repository import Repository
    from ..incoming import Quarantine

#: makes the client of one bucket kind: (url, cache directory, progress) -> client
BucketFactory = Callable[[str, "str | None", "ProgressFn | None"], BucketClient]


class BucketTransport:
    """A bucket remote, through its ``BucketClient`` (see the module docstring)."""

    def __init__(self, client: BucketClient) -> None:
        self.client = client
        self.url = client.url

    @staticmethod
    def opener(make: BucketFactory) -> Opener:
        """The registry entry of a bucket kind whose client ``make`` builds."""
        def open_bucket(url: str, config: Config | None = None, cache_dir: str | None = None,
                        progress: ProgressFn | None = None) -> BucketTransport:
            return BucketTransport(make(url, cache_dir, progress))

        return open_bucket

    def read_refs(self) -> dict[Ref, ObjectID]:
        self.client.domains = None
        self.client.skip_merged = False
        seen: dict[Ref, ObjectID] = {}

        def determine_wants(refs: Mapping[Ref, ObjectID], depth: int | None = None) -> list[ObjectID]:
            seen.update(refs)
            return []

        with transport_errors(self.url):
            self.client.fetch_pack(self.url, determine_wants, ObjectStoreGraphWalker([], lambda sha: []),
                                   lambda data: None)
        return seen

    def fetch(self, repo: Repository, wants: Wants, quarantine: Quarantine, domains: set[str] | None,
              progress: ProgressFn | None) -> Received:
        self.client.domains = domains  # the ref tables of these domains only
        self.client.skip_merged = True  # and not those this store merged as they are
        walker = local_graph(repo, [])  # the walker is asked what is here: no haves to list

        def fetch(write: Callable[[bytes], int]) -> None:
            self.client.fetch_pack(self.url, lambda refs, depth=None: wants(refs), walker, write)

        return receive_pack(quarantine, fetch, self.url, progress)

    def send(self, repo: Repository, update_refs: UpdateRefs, domains: set[str] | None,
             progress: ProgressFn | None) -> Sent:
        self.client.domains = domains  # a push reads the ref tables of the domains it may change only
        with PackSource(repo, progress) as source:
            with transport_errors(self.url):
                status = self.client.send_pack(self.url, update_refs, source.generate)
        return Sent({ref: why for ref, why in status.ref_status.items()}, b"", source.objects, source.bytes_sent)

    def note_merged(self, domains: set[str]) -> None:
        self.client.note_merged(domains)
