"""What the Store's remote methods do: which URL a remote name means, push, pull (and the
staging of ``pull_download``), and reading a remote's refs.

The remote code (remote/, but for its configuration, config.py) is imported inside each
function: opening a store or reading models does not load it (tests/test_commit_pack.py
checks this).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..model.signatures import Verifier
from ..objects.repository import Repository
from ..remote.config import default_remote, resolve_remote
from ..util.progress import ProgressFn
from .synclog import log_sync

if TYPE_CHECKING:
    from ..remote.bucket import BucketClient
    from ..remote.staging import Staging
    from ..remote.sync import RemoteRefs, SyncResult


def remote_url(repo: Repository, remote: str | None) -> str:
    """The URL ``remote`` names: a configured remote's, or ``remote`` itself when it is a URL or
    a path; None: the store's ``cas.defaultRemote``, else ``origin``."""
    return resolve_remote(repo, default_remote(repo) if remote is None else remote)


def push(repo: Repository, remote: str | None, domains: Sequence[str] | None,
         progress: ProgressFn | None) -> SyncResult:
    """``Store.push``: send what the remote lacks, then log (and warn) what changed (synclog.py)."""
    from ..remote.sync import push

    result = push(repo, remote_url(repo, remote), list(domains) if domains else None, progress)
    log_sync("push", result)
    return result


def pull(repo: Repository, remote: str | None, domains: Sequence[str] | None,  # noqa: PLR0913 - Store.pull's options
         progress: ProgressFn | None, theirs: bool, verifier: Verifier | None,
         staging: Staging | None = None) -> SyncResult:
    """``Store.pull``: fetch, verify and merge (``verifier``: every new model and event must be
    signed), then log (and warn) what changed (synclog.py)."""
    from ..remote.sync import pull

    result = pull(repo, remote_url(repo, remote), list(domains) if domains else None, progress,
                  take_theirs=theirs, require_signed=verifier, staging=staging)
    log_sync("pull", result)
    return result


@contextmanager
def staging(local_path: str | os.PathLike[str], domain: str, model_id: str | None) -> Iterator[Staging]:
    """Where a pull writes the files of the model it verifies, for ``pull_download``'s download
    (remote/staging.py); whatever the download did not take is removed at the end."""
    from ..remote.staging import Staging

    staged = Staging(os.fspath(local_path), domain, model_id)
    try:
        yield staged
    finally:
        staged.close()


def remote_refs(repo: Repository, remote: str | None) -> RemoteRefs:
    """The remote's casstore refs, from its ref listing alone."""
    from ..remote.sync import list_refs

    return list_refs(repo, remote_url(repo, remote))


def remote_status(repo: Repository, remote: str | None) -> dict[str, Any]:
    """How this store compares with the remote (``cas status``), from its ref listing alone."""
    from ..remote.inspect import remote_status

    return remote_status(repo, remote_url(repo, remote))


def bucket_remote(repo: Repository, url: str) -> BucketClient | None:
    """A client of the bucket remote at ``url``; None for another kind of remote."""
    from ..remote.config import cache_dir
    from ..remote.transports import open_bucket

    return open_bucket(url, cache_dir(repo, url))
