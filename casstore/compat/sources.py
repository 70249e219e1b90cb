"""Reading a modelstore store (``cas import-modelstore``'s source): a directory or an S3 bucket.

Keys are relative paths inside modelstore's root (``operatorai-model-store``);
the source may be hostile, so every key is checked before use and nothing is read
outside the root.
"""

from __future__ import annotations

import json
import os
import posixpath
from abc import ABC, abstractmethod
from typing import Any, BinaryIO
from urllib.parse import urlparse

from ..errors import RemoteError, UnsafePathError
from ..util.fsutil import check_relpath
from .meta import MODELSTORE_DIR

ROOT = MODELSTORE_DIR
#: no metadata file modelstore writes comes near this; a bigger one is refused unread
MAX_JSON = 16 << 20


class ModelstoreSource(ABC):
    """Read access to a modelstore root (``operatorai-model-store``): keys are relative paths in it."""

    url: str

    @abstractmethod
    def list(self, prefix: str) -> tuple[list[str], list[str]]:
        """(sub-directories, files) directly under ``prefix`` ("" for the root), names only."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """The file ``key``, for reading.

        Raises:
            FileNotFoundError: no such file.
            UnsafePathError: a key that leaves the root.
        """

    def read_json(self, key: str) -> Any:
        """The JSON document at ``key``.

        Raises:
            ValueError: not JSON, nested deeper than the parser allows, or larger than MAX_JSON.
        """
        with self.open(key) as f:
            data = f.read(MAX_JSON + 1)
        if len(data) > MAX_JSON:
            raise ValueError(f"{key}: larger than {MAX_JSON} bytes")
        try:
            return json.loads(data)
        except RecursionError:
            raise ValueError(f"{key}: nested deeper than the JSON parser allows") from None



def check_key(key: str) -> str:
    if key:
        check_relpath(key)
    return key


class FileSystemSource(ModelstoreSource):
    """A modelstore file-system root: ``root_directory`` or its ``operatorai-model-store``."""

    def __init__(self, path: str) -> None:
        path = os.path.abspath(path)
        inner = os.path.join(path, ROOT)
        self.base = os.path.realpath(inner if os.path.isdir(inner) else path)
        if not os.path.isdir(self.base):
            raise FileNotFoundError(f"{path}: no modelstore store here (no {ROOT} directory)")
        self.url = self.base
        #: the root_directory modelstore was given (where ModelStore.from_file_system looks too)
        self.root = os.path.dirname(path) if os.path.basename(path) == ROOT else path

    def _path(self, key: str) -> str:
        p = os.path.join(self.base, check_key(key))
        real = os.path.realpath(p)
        if real != self.base and not real.startswith(self.base + os.sep):
            raise UnsafePathError(key, f"leads outside the source ({real})")
        return real

    def list(self, prefix: str) -> tuple[list[str], list[str]]:
        p = self._path(prefix)
        if not os.path.isdir(p):
            return [], []
        dirs, files = [], []
        with os.scandir(p) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    dirs.append(e.name)
                elif e.is_file(follow_symlinks=True):
                    files.append(e.name)
        return sorted(dirs), sorted(files)

    def open(self, key: str) -> BinaryIO:
        p = self._path(key)
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{key}: not a file in {self.base}")
        return open(p, "rb")


class S3Source(ModelstoreSource):
    """A modelstore store in an S3 bucket: ``s3://bucket/<root_prefix>`` (boto3's usual configuration)."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise RemoteError(url, "not an S3 URL: s3://bucket[/root_prefix]")
        self.url = url
        self.bucket = parsed.netloc
        prefix = parsed.path.strip("/")
        if prefix.split("/")[-1] != ROOT:
            prefix = f"{prefix}/{ROOT}" if prefix else ROOT
        self.prefix = prefix
        import boto3

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        session = boto3.session.Session()
        self.s3 = session.client("s3", region_name=session.region_name or "us-east-1", endpoint_url=endpoint)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{check_key(key)}" if key else self.prefix

    def list(self, prefix: str) -> tuple[list[str], list[str]]:
        full = self._key(prefix) + "/"
        dirs, files = [], []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full,
                                                                      Delimiter="/"):
            dirs += [p["Prefix"][len(full):].rstrip("/") for p in page.get("CommonPrefixes", [])]
            files += [o["Key"][len(full):] for o in page.get("Contents", [])]
        return sorted(d for d in dirs if d), sorted(f for f in files if f)

    def open(self, key: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"{key}: not in {self.url}") from None
            raise RemoteError(self.url, f"{key}: {e}") from e
        return body  # type: ignore[no-any-return]


def open_source(source: str) -> ModelstoreSource:
    """A source for ``source``: ``s3://bucket/prefix`` or a directory."""
    if source.startswith("s3://"):
        return S3Source(source)
    if "://" in source:
        raise RemoteError(source, "cas import-modelstore reads a directory or s3://bucket/prefix")
    return FileSystemSource(source)



def archive_key(meta: dict[str, Any]) -> str:
    """Where modelstore put the model's archive, relative to its root (from the stored location).

    Raises:
        ValueError: the location names no archive inside ``operatorai-model-store``.
    """
    storage = meta.get("storage") or {}
    if not isinstance(storage, dict):
        raise ValueError(f"its metadata's storage is a {type(storage).__name__}, not an object: {storage!r:.200}")
    for loc in (storage.get("path"), storage.get("prefix")):
        if isinstance(loc, str) and f"{ROOT}/" in loc:
            key = loc.split(f"{ROOT}/", 1)[1]
            return check_key(posixpath.normpath(key))
    raise ValueError(f"its metadata names no archive inside {ROOT} (storage: {storage!r})")
