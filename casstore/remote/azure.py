"""Azure Blob Storage as a remote: ``az://container/prefix``.

The layout and the protocol are the bucket package's (bucket/); this module is the Blob service
requests, through azure-storage-blob (``pip install 'casstore[azure]'``).  A
ref's version is its ETag: a model ref is created with ``If-None-Match: *``
(the service answers 409 if it exists), a history or the states ref is
replaced, and a model ref deleted, with ``If-Match: <ETag>`` (412 if stale).

Configuration comes from the environment, so that a URL alone opens a remote:
``AZURE_STORAGE_CONNECTION_STRING`` if set (an account key, a SAS, or a local
emulator such as Azurite); else ``AZURE_STORAGE_ACCOUNT`` names the account,
reached at ``https://<account>.blob.core.windows.net`` with azure-identity's
``DefaultAzureCredential`` (environment, managed identity, ``az login``), which
must then be installed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import CorruptObjectError, RemoteError
from ..util.install import install_hint
from ..util.progress import ProgressFn
from .bucket import BucketClient, ObjectGoneError, shared_client

#: seconds to connect, and to wait for data on an open connection
CONNECT_TIMEOUT, READ_TIMEOUT = 10, 120
#: retries of one request through transient failures, about 3, 5 and 9 s apart
#: (the SDK's default waits 15 + 3, then 15 + 9, then 15 + 27 s)
RETRIES = 3


#: the environment that decides which client a URL gets
_ENV = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_CLIENT_ID", "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE")


def _make_service(url: str) -> Any:
    """A ``BlobServiceClient`` (its credential fetches and caches tokens: one per process)."""
    from azure.storage.blob import BlobServiceClient, ExponentialRetry

    options: dict[str, Any] = {
        "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=RETRIES),
        "connection_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT,
    }
    connection = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    account = os.environ.get("AZURE_STORAGE_ACCOUNT")
    if connection:
        try:
            service = BlobServiceClient.from_connection_string(connection, **options)
        except ValueError as e:
            raise RemoteError(url, f"AZURE_STORAGE_CONNECTION_STRING: {e}") from None
    elif account:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            raise RemoteError(url, "AZURE_STORAGE_ACCOUNT without a connection string needs "
                                   "azure-identity for credentials (pip install azure-identity), "
                                   "or set AZURE_STORAGE_CONNECTION_STRING") from None
        service = BlobServiceClient(f"https://{account}.blob.core.windows.net",
                                    credential=DefaultAzureCredential(), **options)
    else:
        raise RemoteError(url, "no Azure storage account: set AZURE_STORAGE_CONNECTION_STRING, "
                               "or AZURE_STORAGE_ACCOUNT (with azure-identity installed)")
    return service


class AzureClient(BucketClient):
    """push and pull to ``az://container/prefix`` (see bucket/ and the module docstring)."""

    scheme = "az"
    kind = "Azure Blob"
    error_modules = ("azure", "requests")

    def __init__(self, url: str, cache_dir: str | None = None, progress: ProgressFn | None = None) -> None:
        super().__init__(url, cache_dir, progress)
        self._container: Any = None

    @property
    def az(self) -> Any:
        """The ``azure.storage.blob.ContainerClient``, made on first use."""
        if self._container is None:
            try:
                import azure.storage.blob  # noqa: F401
            except ImportError:  # pragma: no cover - depends on the installation
                raise RemoteError(self.url, "Azure Blob remotes need azure-storage-blob: "
                                            f"{install_hint('azure')}") from None
            service = shared_client("az", _ENV, lambda: _make_service(self.url))
            self._container = service.get_container_client(self.bucket)
        return self._container

    def _list(self, sub: str) -> Iterator[tuple[str, int]]:
        for blob in self.az.list_blobs(name_starts_with=self._key(sub)):
            yield str(blob.name), int(blob.size or 0)

    def _list_times(self, sub: str) -> Iterator[tuple[str, int, float]]:
        for blob in self.az.list_blobs(name_starts_with=self._key(sub)):
            when = blob.last_modified
            # an unknown time counts as now: young, never collected
            yield str(blob.name), int(blob.size or 0), when.timestamp() if when is not None else time.time()

    def _get(self, key: str, limit: int) -> tuple[bytes, str] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            # a range, so that a huge blob planted under a ref's name is not downloaded whole
            stream = self.az.get_blob_client(key).download_blob(offset=0, length=limit + 1)
            data = stream.readall()
        except ResourceNotFoundError:
            return None
        if len(data) > limit:
            raise CorruptObjectError(key, f"remote {self.url}: object is larger than {limit} bytes")
        return bytes(data), str(stream.properties.etag)

    def _read_range(self, key: str, start: int, end: int) -> bytes:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            stream = self.az.get_blob_client(key).download_blob(offset=start, length=end - start)
            return bytes(stream.readall())
        except ResourceNotFoundError:
            raise ObjectGoneError(self.url, key) from None

    def _delete(self, key: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.az.get_blob_client(key).delete_blob()
        except ResourceNotFoundError:
            pass  # deleted already: by another client combining the same packs, or a retried request

    def _put(self, key: str, data: bytes) -> None:
        self.az.get_blob_client(key).upload_blob(data, overwrite=True)

    def _upload(self, key: str, path: str, sent: Callable[[int], None]) -> None:
        done = 0

        def hook(current: int, total: int | None) -> None:  # cumulative: the bar wants increments
            nonlocal done
            if current > done:
                sent(current - done)
                done = current

        with open(path, "rb") as f:
            self.az.get_blob_client(key).upload_blob(f, length=os.path.getsize(path), overwrite=True,
                                                     max_concurrency=4, progress_hook=hook)

    def _put_ref(self, key: str, data: bytes, version: str | None) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        blob = self.az.get_blob_client(key)
        try:
            if version is None:
                answer = blob.upload_blob(data, overwrite=False)  # If-None-Match: *
            else:
                answer = blob.upload_blob(data, overwrite=True, etag=version,
                                          match_condition=MatchConditions.IfNotModified)
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return False
        self.last_put_version = str(answer.get("etag") or "") or None
        return True

    def _get_if_changed(self, key: str, version: str, limit: int) -> tuple[bytes, str] | None | bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError, ResourceNotModifiedError

        try:
            stream = self.az.get_blob_client(key).download_blob(offset=0, length=limit + 1, etag=version,
                                                                match_condition=MatchConditions.IfModified)
            data = stream.readall()
        except (ResourceNotModifiedError, ResourceModifiedError):
            # 304; or 412, which Azurite answers to a ranged GET whose If-None-Match holds
            return True
        except ResourceNotFoundError:
            return None
        if len(data) > limit:
            raise CorruptObjectError(key, f"remote {self.url}: object is larger than {limit} bytes")
        return bytes(data), str(stream.properties.etag)

    def _delete_ref(self, key: str, version: str) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        try:
            self.az.get_blob_client(key).delete_blob(etag=version, match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True
