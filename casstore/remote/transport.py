"""Opening a connection to a remote: any git transport dulwich speaks.

Local paths and ``file://`` URLs copy objects as pack entries (localpath.py)
and move refs through ``git-upload-pack``/``git-receive-pack`` subprocesses, so
server-side hooks run and ref updates are reported exactly as on a server
(dulwich's in-process local transport reports failed ref updates as successes).
``ssh://`` and ``user@host:path`` use the ``ssh`` command, with
``$CAS_SSH_COMMAND`` or ``$GIT_SSH_COMMAND`` if set; ``git://`` and
``http(s)://`` speak the smart protocols.

Other kinds of remote register a URL scheme in ``SCHEMES``: a function of the
URL, a cache directory and a progress function that returns a client with
dulwich's ``fetch_pack`` and ``send_pack`` (``s3://``, ``gs://``, ``az://``:
see bucket.py).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from dulwich.client import GitClient, SSHGitClient, get_transport_and_path
from dulwich.config import Config
from dulwich.errors import HangupException

from ..errors import RemoteError as RemoteError  # raised here; defined with the other errors
from ..util.progress import ProgressFn
from .localpath import LocalPathClient

_SCP_LIKE = re.compile(r"^[^/:@]+@[^/:]+:")


def local_path(url: str) -> str | None:
    """The filesystem path of a local remote, or None for a network URL."""
    if url.startswith("file://"):
        return urlparse(url).path
    if "://" in url or _SCP_LIKE.match(url):
        return None
    return os.path.abspath(url)


def _open_s3(url: str, cache_dir: str | None, progress: ProgressFn | None) -> tuple[Any, str]:
    from .s3 import S3Client

    return S3Client(url, cache_dir, progress), url


def _open_gcs(url: str, cache_dir: str | None, progress: ProgressFn | None) -> tuple[Any, str]:
    from .gcs import GCSClient

    return GCSClient(url, cache_dir, progress), url


def _open_azure(url: str, cache_dir: str | None, progress: ProgressFn | None) -> tuple[Any, str]:
    from .azure import AzureClient

    return AzureClient(url, cache_dir, progress), url


#: URL scheme -> opener(url, cache_dir, progress) for remotes that are not git servers
SCHEMES: dict[str, Callable[[str, str | None, ProgressFn | None], tuple[Any, str]]] = {
    "s3": _open_s3,
    "gs": _open_gcs,
    "az": _open_azure,
}


def open_transport(url: str, config: Config | None = None, cache_dir: str | None = None,
                   progress: ProgressFn | None = None) -> tuple[GitClient, str]:
    """A client (dulwich's, or one with the same fetch/send methods) and the path on the remote.

    ``config`` is the store's git config: ``http.sslCAInfo``, ``http.sslVerify``,
    ``http.proxy`` and the like apply as they do for git.  ``cache_dir`` is where
    a client may keep what it learnt about the remote; ``progress`` gets what such a
    client reports beyond the objects sync itself counts (uploads).
    """
    opener = SCHEMES.get(url.split("://", 1)[0]) if "://" in url else None
    if opener is not None:
        client, where = opener(url, cache_dir, progress)
        return client, where  # type: ignore[no-any-return]
    path = local_path(url)
    if path is not None:
        return LocalPathClient(), path
    try:
        client, remote_path = get_transport_and_path(url, config=config)
    except ValueError as e:
        raise RemoteError(url, str(e)) from None
    if isinstance(client, SSHGitClient):
        command = os.environ.get("CAS_SSH_COMMAND") or os.environ.get("GIT_SSH_COMMAND")
        if command:
            client.ssh_command = command
    return client, remote_path


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
