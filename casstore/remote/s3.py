"""S3-compatible object storage as a remote: ``s3://bucket/prefix``.

The layout and the protocol are the bucket package's (bucket/); this module is the S3 requests.
A ref's version is its ETag: a model ref is created with ``If-None-Match: *``,
a history or the states ref is replaced, and a model ref deleted, with
``If-Match: <ETag>``.

Credentials, region and endpoint come from boto3's usual sources
(``AWS_ACCESS_KEY_ID``, ``~/.aws/config``, ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL`` for S3-compatible servers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import CorruptObjectError, RemoteError
from ..util.install import install_hint
from ..util.progress import ProgressFn
from .bucket import BucketClient, ObjectGoneError, shared_client
from .bucket import SendResult as SendResult  # re-exported: it was defined here

#: the environment that decides which client a URL gets: endpoint, region, credentials
_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE", "AWS_CA_BUNDLE")


def _make_client(url: str) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:  # pragma: no cover - depends on the installation
        raise RemoteError(url, f"S3 remotes need boto3: {install_hint('s3')}") from None
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=120,
        max_pool_connections=16, s3={"addressing_style": "path"} if endpoint else {},
    )
    # a boto3 session loads and parses the service model: 0.2 to 0.5 s, most of a small
    # push or pull, hence one client per process (shared_client); sessions are not
    # thread-safe, so this one is used here only, under shared_client's lock
    session = boto3.session.Session()
    return session.client("s3", region_name=session.region_name or "us-east-1", endpoint_url=endpoint,
                          config=config)


class S3Client(BucketClient):
    """push and pull to ``s3://bucket/prefix`` (see bucket/)."""

    scheme = "s3"
    kind = "S3"
    error_modules = ("botocore", "boto3", "s3transfer")

    def __init__(self, url: str, cache_dir: str | None = None, progress: ProgressFn | None = None) -> None:
        super().__init__(url, cache_dir, progress)
        self._client: Any = None

    @property
    def s3(self) -> Any:
        """The boto3 client: one per process and configuration (boto3 clients are thread-safe)."""
        if self._client is None:
            self._client = shared_client("s3", _ENV, lambda: _make_client(self.url))
        return self._client

    @staticmethod
    def _code(e: Exception) -> str:
        response = getattr(e, "response", None) or {}
        return str(response.get("Error", {}).get("Code", ""))

    def _list(self, sub: str) -> Iterator[tuple[str, int]]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(sub))
        for page in pages:
            for o in page.get("Contents", []):
                yield str(o["Key"]), int(o["Size"])

    def _list_times(self, sub: str) -> Iterator[tuple[str, int, float]]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(sub))
        for page in pages:
            for o in page.get("Contents", []):
                yield str(o["Key"]), int(o["Size"]), o["LastModified"].timestamp()

    def _get(self, key: str, limit: int) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError

        try:
            r = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if self._code(e) in ("NoSuchKey", "404"):
                return None
            raise
        return self._bounded_body(r, key, limit)

    def _bounded_body(self, r: dict[str, Any], key: str, limit: int) -> tuple[bytes, str]:
        """A GET's body (at most ``limit`` bytes, else CorruptObjectError) and its ETag."""
        with r["Body"] as body:
            data = body.read(limit + 1)
        if len(data) > limit:
            raise CorruptObjectError(key, f"remote {self.url}: object is larger than {limit} bytes")
        return data, str(r.get("ETag", ""))

    def _read_range(self, key: str, start: int, end: int) -> bytes:
        from botocore.exceptions import ClientError

        try:
            r = self.s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        except ClientError as e:
            if self._code(e) in ("NoSuchKey", "404"):
                raise ObjectGoneError(self.url, key) from None
            raise
        with r["Body"] as body:
            data: bytes = body.read(end - start + 1)
        return data

    def _put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def _delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=key)  # S3 answers 204 for a key already gone

    def _upload(self, key: str, path: str, sent: Callable[[int], None]) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20, max_concurrency=4)
        self.s3.upload_file(path, self.bucket, key, Config=config, Callback=sent)

    def _get_if_changed(self, key: str, version: str, limit: int) -> tuple[bytes, str] | None | bool:
        from botocore.exceptions import ClientError

        try:
            r = self.s3.get_object(Bucket=self.bucket, Key=key, IfNoneMatch=version)
        except ClientError as e:
            code = self._code(e)
            if code in ("304", "NotModified"):
                return True
            if code in ("NoSuchKey", "404"):
                return None
            raise
        return self._bounded_body(r, key, limit)

    def _conditional(self, request: Callable[..., Any], **kwargs: Any) -> bool:
        from botocore.exceptions import ClientError

        try:
            answer = request(Bucket=self.bucket, **kwargs)
        except ClientError as e:
            if self._code(e) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise
        self.last_put_version = str(answer.get("ETag") or "") or None
        return True

    def _put_ref(self, key: str, data: bytes, version: str | None) -> bool:
        condition = {"IfMatch": version} if version is not None else {"IfNoneMatch": "*"}
        return self._conditional(self.s3.put_object, Key=key, Body=data, **condition)

    def _delete_ref(self, key: str, version: str) -> bool:
        return self._conditional(self.s3.delete_object, Key=key, IfMatch=version)
