"""An in-memory bucket: ``mem://bucket/prefix``, the bucket protocol over a dict.

``MemoryBucket`` is a ``BucketClient`` adapter (like s3.py, gcs.py, azure.py)
whose objects live in a ``MemoryService`` of this process.  It keeps the
semantics the protocol relies on from the real services:

* every write is atomic and immediately visible to every client (S3, GCS and
  Azure are strongly consistent for reads and listings since 2020);
* a write gives the object a new *version*: a generation number (GCS) by
  default, or with ``etags=True`` an S3-style ETag (the MD5 of the bytes, so
  rewriting the same bytes keeps the version, as on S3);
* ``_put_ref`` creates only if absent (``version`` None) or replaces only if the
  object still has ``version``; ``_delete_ref`` deletes only on a match; the
  conditional GET answers "unchanged" (304) without a body;
* a GET of an object bigger than the limit asked for is refused as the adapters
  refuse it; a ranged read of a missing object raises ObjectGoneError;
* a listing is paged, 1,000 keys a page, and every object has the time of its
  last write (``MemoryService.clock``; ``age`` makes every object older, to
  pass a grace period).

Every adapter call is counted as the requests the real service would answer
(``MemoryService.requests``, by kind: a listing counts one per page).

Faults (``MemoryService.inject``) stand for what the network and the services
do to a client: fail the Nth request of a kind before it happens ("fail"),
or after it happened with the answer lost ("lose": the write is there, the
client hears an error), or run some code just before it (``run``: another
client's push or gc landing between two requests).  An injected failure is a
``ConnectionResetError``, which the bucket client reports as RemoteError
naming the URL, as it does a real connection reset.

The fake adds a fast tier; it never replaces the tests on moto, fake-gcs-server
and Azurite, which run the real services' conditional-write code.
Only a process that calls ``install()`` (a test, a benchmark) knows ``mem://``.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from casstore.errors import CorruptObjectError
from casstore.remote.bucket import BucketClient, ObjectGoneError

#: keys answered by one page of a listing (S3's, GCS's default and Azure's maximum are 1,000 or more)
PAGE = 1000
#: S3's upload of a file bigger than this (casstore's multipart threshold) takes parts of this size
PART = 64 << 20

#: every kind of request the adapter makes
OPS = ("list", "list_times", "get", "get_if_changed", "read_range", "put", "upload", "put_ref", "delete_ref",
       "delete")


class InjectedFault(ConnectionResetError):
    """A failure injected by a ``Fault`` (a ConnectionError: the client reports it as RemoteError)."""


@dataclass
class Fault:
    """What to do to the ``nth`` next request of kind ``op`` (one of ``OPS``, or "*") whose key holds ``key``.

    ``action``: "fail" raises before the request happens; "lose" lets it happen,
    then raises (the answer was lost: a write is done, its client does not know);
    "retry" lets it happen, loses the answer and sends the same request again, as
    the services' SDKs do (a conditional write then meets its own first attempt);
    "run" calls ``run()`` and then lets the request happen normally.  ``times``
    requests in a row are hit (from the ``nth``).
    """

    op: str
    nth: int = 1
    action: str = "fail"
    key: str = ""
    run: Callable[[], object] | None = None
    times: int = 1
    #: requests that matched so far, and the times the fault fired
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.op != "*" and self.op not in OPS:
            raise ValueError(f"unknown request kind {self.op!r}; one of {OPS}")
        if self.action not in ("fail", "lose", "retry", "run") or (self.action == "run") != (self.run is not None):
            raise ValueError(f"action {self.action!r}: 'fail', 'lose', 'retry', or 'run' with a run function")


@dataclass
class _Object:
    data: bytes
    version: str
    mtime: float


@dataclass
class MemoryService:
    """The buckets of one fake service, by name, with its request counts and faults."""

    #: versions are S3-style ETags (MD5 of the bytes) instead of generation numbers
    etags: bool = False
    #: the time stamped on writes (the listing's "last modified")
    clock: Callable[[], float] = time.time
    buckets: dict[str, dict[str, _Object]] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    faults: list[Fault] = field(default_factory=list)
    _generation: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def total(self) -> int:
        """Requests answered so far, of every kind."""
        return sum(self.requests.values())

    def inject(self, fault: Fault) -> Fault:
        """Add ``fault``; returned, so that a test can check it fired."""
        with self._lock:
            self.faults.append(fault)
        return fault

    def objects(self, bucket: str) -> dict[str, bytes]:
        """A copy of a bucket's objects, by key."""
        with self._lock:
            return {k: o.data for k, o in self.buckets.get(bucket, {}).items()}

    def age(self, seconds: float) -> None:
        """Make every object ``seconds`` older (as if written that long before): to pass a grace period."""
        with self._lock:
            for objects in self.buckets.values():
                for o in objects.values():
                    o.mtime -= seconds

    def _version(self, data: bytes) -> str:
        return f'"{hashlib.md5(data).hexdigest()}"' if self.etags else str(next(self._generation))

    def _store(self, bucket: str, key: str, data: bytes) -> str:
        version = self._version(data)
        self.buckets.setdefault(bucket, {})[key] = _Object(bytes(data), version, self.clock())
        return version

    def _request(self, op: str, key: str, n: int = 1) -> list[Fault]:
        """Count a request; raise or run what a fault says before it; the faults to fire after it."""
        after: list[Fault] = []
        runs: list[Fault] = []
        with self._lock:
            self.requests[op] += n
            for f in self.faults:
                if (f.op in ("*", op)) and f.key in key:
                    f.seen += 1
                    if f.nth <= f.seen < f.nth + f.times:
                        f.fired += 1
                        if f.action == "fail":
                            raise InjectedFault(f"injected: connection reset before {op} {key}")
                        (runs if f.action == "run" else after).append(f)
        for f in runs:  # outside the lock: it may be another client's whole push or gc
            assert f.run is not None
            f.run()
        return after

    @staticmethod
    def _answer_lost(op: str, key: str, after: list[Fault]) -> None:
        if any(f.action == "lose" for f in after):
            raise InjectedFault(f"injected: connection reset after {op} {key} (the request was done)")

    @staticmethod
    def _retried(after: list[Fault]) -> bool:
        """Whether a fault says the answer was lost and the SDK sent the request again."""
        return any(f.action == "retry" for f in after)


class MemoryBucket(BucketClient):
    """``mem://bucket/prefix`` on the ``MemoryService`` the class is bound to (see ``install``)."""

    scheme = "mem"
    kind = "memory"
    service: MemoryService = MemoryService()

    @property
    def _objects(self) -> dict[str, _Object]:
        return self.service.buckets.setdefault(self.bucket, {})

    def _list_times(self, sub: str) -> Iterator[tuple[str, int, float]]:
        prefix = self._key(sub)
        with self.service._lock:
            found = sorted((k, len(o.data), o.mtime) for k, o in self._objects.items() if k.startswith(prefix))
        self.service._answer_lost("list", prefix, self.service._request("list", prefix, max(1, -(-len(found) // PAGE))))
        yield from found

    def _list(self, sub: str) -> Iterator[tuple[str, int]]:
        for key, size, _ in self._list_times(sub):
            yield key, size

    def _get(self, key: str, limit: int) -> tuple[bytes, str] | None:
        after = self.service._request("get", key)
        with self.service._lock:
            got = self._objects.get(key)
        self.service._answer_lost("get", key, after)
        if got is None:
            return None
        if len(got.data) > limit:
            raise CorruptObjectError(key, f"remote {self.url}: object is larger than {limit} bytes")
        return got.data, got.version

    def _get_if_changed(self, key: str, version: str, limit: int) -> tuple[bytes, str] | None | bool:
        after = self.service._request("get_if_changed", key)
        with self.service._lock:
            got = self._objects.get(key)
        self.service._answer_lost("get_if_changed", key, after)
        if got is not None and got.version == version:
            return True
        if got is None:
            return None
        if len(got.data) > limit:
            raise CorruptObjectError(key, f"remote {self.url}: object is larger than {limit} bytes")
        return got.data, got.version

    def _read_range(self, key: str, start: int, end: int) -> bytes:
        after = self.service._request("read_range", key)
        with self.service._lock:
            got = self._objects.get(key)
        if got is None:
            raise ObjectGoneError(self.url, key)
        self.service._answer_lost("read_range", key, after)
        return got.data[start:end]

    def _put(self, key: str, data: bytes) -> None:
        after = self.service._request("put", key)
        with self.service._lock:
            self.service._store(self.bucket, key, data)
        self.service._answer_lost("put", key, after)

    def _upload(self, key: str, path: str, sent: Callable[[int], None]) -> None:
        data = Path(path).read_bytes()
        parts = 1 if len(data) <= PART else -(-len(data) // PART) + 2  # create, parts, complete
        after = self.service._request("upload", key, parts)
        with self.service._lock:
            self.service._store(self.bucket, key, data)
        sent(len(data))
        self.service._answer_lost("upload", key, after)

    def _delete(self, key: str) -> None:
        after = self.service._request("delete", key)
        with self.service._lock:
            self._objects.pop(key, None)
        self.service._answer_lost("delete", key, after)

    def _put_ref(self, key: str, data: bytes, version: str | None) -> bool:
        after = self.service._request("put_ref", key)
        for _ in range(2 if self.service._retried(after) else 1):  # the retry meets the first attempt
            with self.service._lock:
                now = self._objects.get(key)
                ok = now is None if version is None else (now is not None and now.version == version)
                if ok:
                    new = self.service._store(self.bucket, key, data)
        self.service._answer_lost("put_ref", key, after)
        if ok:
            self.last_put_version = new
        return ok

    def _delete_ref(self, key: str, version: str) -> bool:
        after = self.service._request("delete_ref", key)
        for _ in range(2 if self.service._retried(after) else 1):
            with self.service._lock:
                now = self._objects.get(key)
                ok = now is not None and now.version == version
                if ok:
                    del self._objects[key]
        self.service._answer_lost("delete_ref", key, after)
        return ok


def install(service: MemoryService | None = None) -> MemoryService:
    """Make ``mem://`` URLs open a ``MemoryBucket`` on ``service`` (a new one by default) in this process.

    Every casstore entry point then takes them (``Store.push``/``pull``, remotes
    added by URL, ``ModelStore``); ``uninstall`` forgets the scheme again.
    """
    from casstore.remote import transports

    service = service if service is not None else MemoryService()
    MemoryBucket.service = service
    transports.SCHEMES["mem"] = MemoryBucket.open
    return service


def uninstall() -> None:
    """Forget ``mem://`` (what ``install`` did)."""
    from casstore.remote import transports

    transports.SCHEMES.pop("mem", None)
