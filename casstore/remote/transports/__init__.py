"""The transports: one module per kind of remote, behind one protocol (``base.Transport``).

``open_transport`` picks the transport by the URL's scheme in ``SCHEMES``; a path
or ``file://`` URL is a store on this machine (``path.py``), ``user@host:path`` is
ssh (``git.py``), and a bucket (``s3://``, ``gs://``, ``az://``) is ``remote/bucket/``'s
``BucketClient`` of its kind, itself a ``Transport``.  A new kind of remote is one module here implementing
``Transport`` and one line in ``SCHEMES`` (and the scheme in ``remote/config.py``'s
``SCHEMES``, which refuses unknown URLs when a remote is added).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dulwich.config import Config

from ...util.progress import ProgressFn
from .base import Opener, Received, Sent, Transport, describe_transport_error
from .git import GitTransport
from .path import PathTransport, local_path

if TYPE_CHECKING:  # remote/bucket/ builds on .base: imported when a bucket is opened
    from ..bucket import BucketClient

__all__ = ["SCHEMES", "GitTransport", "Opener", "PathTransport", "Received", "Sent",
           "Transport", "describe_transport_error", "local_path", "open_bucket", "open_transport"]


def _s3(url: str, config: Config | None = None, cache_dir: str | None = None,
        progress: ProgressFn | None = None) -> BucketClient:
    from ..s3 import S3Client  # boto3 is imported when an s3:// remote is used, not before

    return S3Client.open(url, config, cache_dir, progress)


def _gcs(url: str, config: Config | None = None, cache_dir: str | None = None,
         progress: ProgressFn | None = None) -> BucketClient:
    from ..gcs import GCSClient

    return GCSClient.open(url, config, cache_dir, progress)


def _azure(url: str, config: Config | None = None, cache_dir: str | None = None,
           progress: ProgressFn | None = None) -> BucketClient:
    from ..azure import AzureClient

    return AzureClient.open(url, config, cache_dir, progress)


#: URL scheme -> what opens its transport
SCHEMES: dict[str, Opener] = {
    "file": PathTransport.open,
    "ssh": GitTransport.open,
    "git": GitTransport.open,
    "http": GitTransport.open,
    "https": GitTransport.open,
    "s3": _s3,
    "gs": _gcs,
    "az": _azure,
}


def open_transport(url: str, config: Config | None = None, cache_dir: str | None = None,
                   progress: ProgressFn | None = None) -> Transport:
    """The transport of the remote at ``url``.

    ``config`` is the store's git config: ``http.sslCAInfo``, ``http.sslVerify``,
    ``http.proxy`` and the like apply as they do for git.  ``cache_dir`` is where
    a transport may keep what it learnt about the remote; ``progress`` gets what it
    reports beyond the objects sync itself counts (uploads).

    Raises:
        RemoteError: a URL no transport can open.
    """
    if "://" in url:
        scheme = url.split("://", 1)[0]
    else:
        scheme = "file" if local_path(url) is not None else "ssh"
    opener = SCHEMES.get(scheme, GitTransport.open)  # dulwich names what it cannot open
    return opener(url, config, cache_dir, progress)


def open_bucket(url: str, cache_dir: str | None = None) -> BucketClient | None:
    """The client of the bucket remote at ``url`` (for its maintenance: gc, upgrade); None for
    any other kind of remote."""
    from ..bucket import BucketClient

    transport = open_transport(url, cache_dir=cache_dir)
    return transport if isinstance(transport, BucketClient) else None
