"""The bucket client's base: the object requests a bucket kind implements, and their plumbing."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

from ...errors import CasError, RemoteError
from ...util.progress import ProgressFn
from ..reftable import MAX_TABLE, ROOT_KEY

MARKER = "casstore-remote"
#: the newest format this client reads and writes; a remote without a marker is created in it
FORMAT = 2
#: the format of one object per ref, still read and written on remotes not upgraded
FORMAT_PER_REF = 1
#: attempts of a ref table update that keeps losing the root's compare-and-swap to other writers
CAS_ATTEMPTS = 12
#: bytes read past the objects asked for, parsed for the next round of the walk
READAHEAD = 256 << 10
#: objects this close together are fetched in one request
GAP = 64 << 10
#: size of one ranged request for chunk blobs
RUN_BYTES = 8 << 20
#: times a reader lists the packs again when one it listed is gone (combined meanwhile)
RELIST = 4

log = logging.getLogger("casstore")


class ObjectGoneError(RemoteError):
    """An object the client listed is no longer in the bucket (a pack combined and deleted since)."""

    def __init__(self, url: str, key: str) -> None:
        self.key = key
        super().__init__(url, f"{key}: deleted since it was listed")


_clients: dict[tuple[object, ...], Any] = {}
_clients_lock = threading.Lock()
#: clients kept at most; a process rarely talks to more than one or two configurations
MAX_CLIENTS = 8


def shared_client(kind: str, env: tuple[str, ...], make: Callable[[], Any]) -> Any:
    """The service client of this process for ``kind`` and the configuration in ``env``.

    Every push, pull or listing opens a new ``BucketClient``; a service client is
    reused across them, so that its setup (boto3's service model, credentials,
    pooled connections) is paid once per process.  The key holds the values of
    the environment variables the client is configured from, so another endpoint
    or other credentials get a client of their own, and the process id, so a
    forked child never shares its parent's connections.  ``make`` runs under a
    lock (a boto3 session is not thread-safe); the clients themselves are.
    """
    key = (kind, os.getpid(), *(os.environ.get(name) for name in env))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = make()
            if len(_clients) >= MAX_CLIENTS:
                _clients.clear()
            _clients[key] = client
        return client


class BucketBase:
    """The state of a bucket client, the object requests a bucket kind implements, and their plumbing.

    ``BucketClient`` (the package) puts the protocol's parts together on top.

    Subclasses set ``scheme``, ``kind`` and ``error_modules`` and implement the
    object requests below the "adapter" line; everything else is shared.
    """

    #: URL scheme, e.g. "s3"
    scheme = ""
    #: what the service is called in messages, e.g. "S3"
    kind = ""
    #: exceptions from these modules are network or service failures: RemoteError
    error_modules: tuple[str, ...] = ()

    def __init__(self, url: str, cache_dir: str | None = None, progress: ProgressFn | None = None) -> None:
        parsed = urlparse(url)
        if parsed.scheme != self.scheme or not parsed.netloc:
            raise RemoteError(url, f"not {'an' if self.kind[:1] in 'AEIOSU' else 'a'} {self.kind} URL: "
                                   f"{self.scheme}://bucket[/prefix]")
        self.url = url
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.cache_dir = cache_dir
        self.progress = progress
        #: the domains whose refs a push or pull reads (None: all); set by sync for partial pulls
        #: and for pushes (a push reads only the domains it may change)
        self.domains: set[str] | None = None
        #: set by a pull: a fetch leaves out the refs of the domains whose table is the one this
        #: store merged last (``unchanged_since_merged``), so a pull with nothing new neither decodes
        #: nor checks them (O(changed domains), not O(models)); a listing of the refs keeps it False
        self.skip_merged = False
        #: the remote's format, once read: 0 (nothing there yet), 1 or 2
        self.format: int | None = None
        #: the version ``_put_ref`` gave the object it wrote, when the service's answer says it
        self.last_put_version: str | None = None
        #: domain -> digest of each ref table the last fetch read (format 2)
        self.tables_read: dict[str, str] = {}
        #: pushes this client started again because a gc of the remote ran meanwhile
        self.gc_restarts = 0
        #: pulls (fetches) this client started again because a gc of the remote ran meanwhile
        self.fetch_restarts = 0
        #: the version of the root the current fetch read
        self._root_read: str | None = None

    # -- adapter: the object requests a bucket kind implements ---------------------

    def _list(self, sub: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every object whose key starts with ``self._key(sub)``."""
        raise NotImplementedError

    def _get(self, key: str, limit: int) -> tuple[bytes, str] | None:
        """(body, version) of a small object, or None when it does not exist.

        Raises:
            CorruptObjectError: the object is larger than ``limit`` bytes.
        """
        raise NotImplementedError

    def _read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of an object; may return fewer if cut.

        Raises:
            ObjectGoneError: the object does not exist (a pack deleted since it was listed).
        """
        raise NotImplementedError

    def _delete(self, key: str) -> None:
        """Delete an object unconditionally; an object already gone is not an error."""
        raise NotImplementedError

    def _put(self, key: str, data: bytes) -> None:
        """Write a small object unconditionally."""
        raise NotImplementedError

    def _upload(self, key: str, path: str, sent: Callable[[int], None]) -> None:
        """Upload a local file (a pack or its index), calling ``sent(n)`` as bytes go out."""
        raise NotImplementedError

    def _put_ref(self, key: str, data: bytes, version: str | None) -> bool:
        """Write a ref object if it is absent (``version`` None) or still has ``version``.

        Returns False, writing nothing, when the service refuses the precondition.
        Sets ``last_put_version`` to the new object's version when the answer holds it.
        """
        raise NotImplementedError

    def _delete_ref(self, key: str, version: str) -> bool:
        """Delete a ref object if it still has ``version``; False when refused."""
        raise NotImplementedError

    def _list_times(self, sub: str) -> Iterator[tuple[str, int, float]]:
        """(key, size, time of last write as a Unix time) of every object under ``self._key(sub)``."""
        raise NotImplementedError

    def _get_if_changed(self, key: str, version: str, limit: int) -> tuple[bytes, str] | None | bool:
        """Like ``_get``, but True, sending no body, when the object still has ``version``.

        The default asks unconditionally; a service that answers a conditional GET
        (If-None-Match, ifGenerationNotMatch) overrides it.
        """
        return self._get(key, limit)

    # -- plumbing --------------------------------------------------------------

    def _workdir(self) -> str:
        """Where pack indexes are cached and pushed packs are written."""
        if self.cache_dir is None:
            self.cache_dir = tempfile.mkdtemp(prefix=f"casstore-{self.scheme}-")
        os.makedirs(self.cache_dir, exist_ok=True)
        return self.cache_dir

    @staticmethod
    def _write_cache(path: str, data: bytes) -> None:
        """Replace a file of the local cache (derived data: not fsynced, fetched again if lost)."""
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The service client's exceptions as RemoteError naming the URL."""
        try:
            yield
        except CasError:
            raise
        except Exception as e:
            # network failures only: a local OSError (a full disk, say) keeps its own name
            module = type(e).__module__ or ""
            if not (module.startswith((*self.error_modules, "urllib3", "requests"))
                    or isinstance(e, (ConnectionError, TimeoutError))):
                raise
            # the services' messages say what failed; their class names mean nothing to a user
            raise RemoteError(self.url, (str(e).splitlines() or [type(e).__name__])[0]) from e

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        data = self._read_range(key, start, end)
        if len(data) != end - start:  # the connection closed early (or the object shrank)
            raise RemoteError(self.url, f"{key}: read {len(data)} of {end - start} bytes")
        return data

    def _marker_format(self, data: bytes) -> int:
        """The format a marker object's bytes name.

        Raises:
            RemoteError: they are not a marker, or name a format newer than ``FORMAT``.
        """
        words = data.split()
        if len(words) != 2 or words[0] != MARKER.encode() or not words[1].isdigit():
            raise RemoteError(self.url, f"{MARKER} holds something other than a casstore format marker")
        fmt = int(words[1])
        if fmt > FORMAT:
            raise RemoteError(self.url, f"written by a newer casstore (format {fmt}); upgrade casstore")
        return fmt

    def _check_marker(self, create: bool) -> int:
        """The remote's format (0: nothing there yet), created in ``FORMAT`` when absent and ``create``.

        Raises:
            RemoteError: a newer format; or a format-1 marker next to a root table
                (an upgrade stopped half-way, or a format-1 client that wrote its
                marker over a new remote's): ``cas remote upgrade`` resolves both.
        """
        got = self._get(self._key(MARKER), 256)
        if got is None:
            if not create:
                self.format = 0
                return 0
            # conditional: of racing first pushes, one marker wins and the others read it
            self._put_ref(self._key(MARKER), f"{MARKER} {FORMAT}\n".encode(), None)
            got = self._get(self._key(MARKER), 256)
            if got is None:
                raise RemoteError(self.url, f"{MARKER} vanished as it was written")
        fmt = self._marker_format(got[0])
        if fmt == FORMAT_PER_REF and self._get(self._key(ROOT_KEY), MAX_TABLE) is not None:
            raise RemoteError(self.url, "holds refs in both formats (an upgrade was interrupted, or a "
                                        "casstore older than 0.2 pushed to it meanwhile): run "
                                        f"`cas remote upgrade {self.url}`")
        self.format = fmt
        return fmt
