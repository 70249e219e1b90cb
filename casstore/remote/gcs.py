"""Google Cloud Storage as a remote: ``gs://bucket/prefix``.

The layout and the protocol are the bucket package's (bucket/); this module is the GCS requests,
through google-cloud-storage (``pip install 'casstore[gcs]'``).  A ref's
version is its *generation*: a model ref is created with
``ifGenerationMatch=0`` (only if absent), a history or the states ref is
replaced, and a model ref deleted, with ``ifGenerationMatch=<generation>``.

Configuration comes from the environment, so that a URL alone opens a remote:
with ``STORAGE_EMULATOR_HOST`` set (a local emulator such as fake-gcs-server),
the client talks to it with anonymous credentials and never looks for real
ones; otherwise it uses Google's application default credentials
(``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth application-default login``,
or the metadata server on GCP).  ``GOOGLE_CLOUD_PROJECT`` names the project
if the credentials do not; bucket requests do not need one.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import CorruptObjectError, RemoteError
from ..util.install import install_hint
from ..util.progress import ProgressFn
from .bucket import BucketClient, ObjectGoneError, shared_client

#: (connect, read) timeouts of one request, in seconds
TIMEOUT = (10, 120)
#: how long the client retries one request through transient failures, in seconds
RETRY_SECONDS = 20.0
#: resumable uploads send packs in parts of this size (a multiple of 256 KiB)
CHUNK = 16 << 20


class _Counting(io.RawIOBase):
    """A file read by the uploader, reporting bytes as they first go out.

    A retried part is read again: only progress past the furthest point counts.
    """

    def __init__(self, f: io.BufferedReader, sent: Callable[[int], None]) -> None:
        self._f = f
        self._sent = sent
        self._furthest = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        pos = self._f.tell()
        if pos > self._furthest:
            self._sent(pos - self._furthest)
            self._furthest = pos
        return data

    def readinto(self, b: Any) -> int:  # pragma: no cover - the uploader calls read()
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


#: the environment that decides which client a URL gets
_ENV = ("STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG")


def _make_client(url: str, storage: Any) -> Any:
    """A ``google.cloud.storage.Client`` (finding credentials may take requests: one per process)."""
    project = os.environ.get("GOOGLE_CLOUD_PROJECT")
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        client = storage.Client(project=project or "casstore", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    else:
        try:
            client = storage.Client(project=project)
        except Exception as e:  # DefaultCredentialsError and the like
            raise RemoteError(url, f"no Google credentials ({type(e).__name__}: {e}); set "
                                   "GOOGLE_APPLICATION_CREDENTIALS or run "
                                   "`gcloud auth application-default login`") from None
    return client


class GCSClient(BucketClient):
    """push and pull to ``gs://bucket/prefix`` (see bucket/ and the module docstring)."""

    scheme = "gs"
    kind = "GCS"
    error_modules = ("google", "requests")

    def __init__(self, url: str, cache_dir: str | None = None, progress: ProgressFn | None = None) -> None:
        super().__init__(url, cache_dir, progress)
        self._bucket: Any = None
        self._retry: Any = None

    @property
    def gcs(self) -> Any:
        """The ``google.cloud.storage.Bucket``, made on first use."""
        if self._bucket is None:
            try:
                from google.cloud import storage
                from google.cloud.storage.retry import DEFAULT_RETRY
            except ImportError:  # pragma: no cover - depends on the installation
                raise RemoteError(self.url, "GCS remotes need google-cloud-storage: "
                                            f"{install_hint('gcs')}") from None
            client = shared_client("gs", _ENV, lambda: _make_client(self.url, storage))
            # the library's default keeps retrying for two minutes; a dead endpoint should fail sooner
            self._retry = DEFAULT_RETRY.with_timeout(RETRY_SECONDS).with_delay(initial=0.5, maximum=4.0,
                                                                               multiplier=2.0)
            self._bucket = client.bucket(self.bucket)
        return self._bucket

    def _list(self, sub: str) -> Iterator[tuple[str, int]]:
        bucket = self.gcs
        for blob in bucket.client.list_blobs(bucket, prefix=self._key(sub), timeout=TIMEOUT, retry=self._retry):
            yield str(blob.name), int(blob.size or 0)

    def _list_times(self, sub: str) -> Iterator[tuple[str, int, float]]:
        bucket = self.gcs
        for blob in bucket.client.list_blobs(bucket, prefix=self._key(sub), timeout=TIMEOUT, retry=self._retry):
            when = blob.updated or blob.time_created
            # an unknown time counts as now: young, never collected
            yield str(blob.name), int(blob.size or 0), when.timestamp() if when is not None else time.time()

    def _get(self, key: str, limit: int) -> tuple[bytes, str] | None:
        from google.api_core.exceptions import NotFound, RequestRangeNotSatisfiable

        blob = self.gcs.blob(key)
        try:
            # a range, so that a huge object planted under a ref's name is not downloaded whole
            data = blob.download_as_bytes(start=0, end=limit, checksum=None, timeout=TIMEOUT, retry=self._retry)
        except NotFound:
            return None
        except RequestRangeNotSatisfiable:  # an empty object has no byte 0
            data = blob.download_as_bytes(checksum=None, timeout=TIMEOUT, retry=self._retry)
        if len(data) > limit:
            raise CorruptObjectError(key, f"remote {self.url}: object is larger than {limit} bytes")
        if blob.generation is None:  # every GCS answer carries one; without it no ref can move safely
            raise RemoteError(self.url, f"{key}: the server sent no generation number")
        return bytes(data), str(blob.generation)

    def _read_range(self, key: str, start: int, end: int) -> bytes:
        from google.api_core.exceptions import NotFound

        # checksum=None: a range cannot be checked against the whole object's hash;
        # the caller verifies every object it parses from the bytes
        try:
            data = self.gcs.blob(key).download_as_bytes(start=start, end=end - 1, checksum=None,
                                                        timeout=TIMEOUT, retry=self._retry)
        except NotFound:
            raise ObjectGoneError(self.url, key) from None
        return bytes(data)

    def _delete(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.gcs.blob(key).delete(timeout=TIMEOUT, retry=self._retry)
        except NotFound:
            pass  # deleted already: by another client combining the same packs, or a retried request

    def _put(self, key: str, data: bytes) -> None:
        self.gcs.blob(key).upload_from_string(data, timeout=TIMEOUT, retry=self._retry)

    def _upload(self, key: str, path: str, sent: Callable[[int], None]) -> None:
        blob = self.gcs.blob(key, chunk_size=CHUNK)
        with open(path, "rb") as f:
            # a pack's name is its content's hash: repeating an upload is harmless, so retry it
            blob.upload_from_file(_Counting(f, sent), size=os.path.getsize(path), timeout=TIMEOUT,
                                  retry=self._retry)

    def _get_if_changed(self, key: str, version: str, limit: int) -> tuple[bytes, str] | None | bool:
        from google.api_core.exceptions import NotFound, NotModified

        blob = self.gcs.blob(key)
        try:
            data = blob.download_as_bytes(start=0, end=limit, checksum=None, if_generation_not_match=int(version),
                                          timeout=TIMEOUT, retry=self._retry)
        except NotModified:
            return True
        except NotFound:
            return None
        if len(data) > limit:
            raise CorruptObjectError(key, f"remote {self.url}: object is larger than {limit} bytes")
        if blob.generation is None:
            raise RemoteError(self.url, f"{key}: the server sent no generation number")
        return bytes(data), str(blob.generation)

    def _put_ref(self, key: str, data: bytes, version: str | None) -> bool:
        from google.api_core.exceptions import PreconditionFailed

        blob = self.gcs.blob(key)
        try:
            blob.upload_from_string(data, if_generation_match=int(version or 0), timeout=TIMEOUT, retry=self._retry)
        except PreconditionFailed:
            return False
        self.last_put_version = str(blob.generation) if blob.generation is not None else None
        return True

    def _delete_ref(self, key: str, version: str) -> bool:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        try:
            self.gcs.blob(key).delete(if_generation_match=int(version), timeout=TIMEOUT, retry=self._retry)
        except (PreconditionFailed, NotFound):
            return False
        return True
