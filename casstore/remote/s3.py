"""S3-compatible object storage as a remote: ``s3://bucket/prefix``.

The layout and the protocol are bucket.py's; this module is the S3 requests.
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
from ..util.progress import ProgressFn
from .bucket import BucketClient
from .bucket import SendResult as SendResult  # re-exported: it was defined here


class S3Client(BucketClient):
    """push and pull to ``s3://bucket/prefix`` (see bucket.py)."""

    scheme = "s3"
    kind = "S3"
    error_modules = ("botocore", "boto3", "s3transfer")

    def __init__(self, url: str, cache_dir: str | None = None, progress: ProgressFn | None = None) -> None:
        super().__init__(url, cache_dir, progress)
        self._client: Any = None

    @property
    def s3(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:  # pragma: no cover - depends on the installation
                raise RemoteError(self.url, "S3 remotes need boto3: pip install 'casstore[s3]'") from None
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            config = Config(
                retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=120,
                max_pool_connections=16, s3={"addressing_style": "path"} if endpoint else {},
            )
            session = boto3.session.Session()
            self._client = session.client("s3", region_name=session.region_name or "us-east-1",
                                          endpoint_url=endpoint, config=config)
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

    def _get(self, key: str, limit: int) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError

        try:
            r = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if self._code(e) in ("NoSuchKey", "404"):
                return None
            raise
        with r["Body"] as body:
            data = body.read(limit + 1)
        if len(data) > limit:
            raise CorruptObjectError(key, f"remote {self.url}: object is larger than {limit} bytes")
        return data, str(r.get("ETag", ""))

    def _read_range(self, key: str, start: int, end: int) -> bytes:
        r = self.s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        with r["Body"] as body:
            data: bytes = body.read(end - start + 1)
        return data

    def _put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def _upload(self, key: str, path: str, sent: Callable[[int], None]) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20, max_concurrency=4)
        self.s3.upload_file(path, self.bucket, key, Config=config, Callback=sent)

    def _conditional(self, request: Callable[..., Any], **kwargs: Any) -> bool:
        from botocore.exceptions import ClientError

        try:
            request(Bucket=self.bucket, **kwargs)
        except ClientError as e:
            if self._code(e) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise
        return True

    def _put_ref(self, key: str, data: bytes, version: str | None) -> bool:
        condition = {"IfMatch": version} if version is not None else {"IfNoneMatch": "*"}
        return self._conditional(self.s3.put_object, Key=key, Body=data, **condition)

    def _delete_ref(self, key: str, version: str) -> bool:
        return self._conditional(self.s3.delete_object, Key=key, IfMatch=version)
