"""Opening a connection to a remote: any git transport dulwich speaks.

Local paths and ``file://`` URLs use ``git-upload-pack``/``git-receive-pack``
subprocesses, so server-side hooks run and ref updates are reported exactly as
on a server (dulwich's in-process local transport reports failed ref updates as
successes).  ``ssh://`` and ``user@host:path`` use the ``ssh`` command, with
``$CAS_SSH_COMMAND`` or ``$GIT_SSH_COMMAND`` if set; ``git://`` and
``http(s)://`` speak the smart protocols.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlparse

from dulwich.client import GitClient, SSHGitClient, SubprocessGitClient, get_transport_and_path
from dulwich.config import Config

from ..errors import CasError


class RemoteError(CasError):
    """The remote could not be reached or refused the operation."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(f"remote {url}: {detail}")


_SCP_LIKE = re.compile(r"^[^/:@]+@[^/:]+:")


def local_path(url: str) -> str | None:
    """The filesystem path of a local remote, or None for a network URL."""
    if url.startswith("file://"):
        return urlparse(url).path
    if "://" in url or _SCP_LIKE.match(url):
        return None
    return os.path.abspath(url)


def open_transport(url: str, config: Config | None = None) -> tuple[GitClient, str]:
    """A dulwich client and the path on the remote.

    ``config`` is the store's git config: ``http.sslCAInfo``, ``http.sslVerify``,
    ``http.proxy`` and the like apply as they do for git.
    """
    path = local_path(url)
    if path is not None:
        return SubprocessGitClient(), path
    try:
        client, remote_path = get_transport_and_path(url, config=config)
    except ValueError as e:
        raise RemoteError(url, str(e)) from None
    if isinstance(client, SSHGitClient):
        command = os.environ.get("CAS_SSH_COMMAND") or os.environ.get("GIT_SSH_COMMAND")
        if command:
            client.ssh_command = command
    return client, remote_path
