"""Named remotes, stored like git's: ``[remote "origin"] url = ...`` in the store's config."""

from __future__ import annotations

import hashlib
import os
import shutil
from typing import TYPE_CHECKING

from dulwich.config import ConfigFile

from ..errors import CasError
from ..util.names import check_name

if TYPE_CHECKING:
    from ..objects.repository import Repository


class RemoteNotFoundError(CasError, KeyError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no remote named {name!r} (add one with `cas remote add {name} URL`)")

    def __str__(self) -> str:
        return str(self.args[0])


def _config(repo: Repository) -> tuple[ConfigFile, str]:
    path = os.path.join(repo.path, "config")
    return ConfigFile.from_path(path), path


def list_remotes(repo: Repository) -> dict[str, str]:
    cfg, _ = _config(repo)
    out = {}
    for section in cfg.sections():
        if len(section) == 2 and section[0] == b"remote":
            try:
                out[section[1].decode()] = cfg.get(section, b"url").decode()
            except KeyError:
                pass
    return dict(sorted(out.items()))


def add_remote(repo: Repository, name: str, url: str) -> None:
    check_name(name, "remote name")
    if name in list_remotes(repo):
        raise CasError(f"remote {name!r} already exists")
    cfg, path = _config(repo)
    cfg.set((b"remote", name.encode()), b"url", url.encode())
    cfg.write_to_path(path)


def cache_dir(repo: Repository, url: str) -> str:
    """Where a transport may keep what it learnt about the remote at ``url`` (S3: pack indexes)."""
    return os.path.join(repo.path, "cas", "remotes", hashlib.sha1(url.encode()).hexdigest()[:16])


def remove_remote(repo: Repository, name: str) -> None:
    """Forget a named remote, and what was cached about it."""
    url = list_remotes(repo).get(name)
    if url is None:
        raise RemoteNotFoundError(name)
    cfg, path = _config(repo)
    del cfg[(b"remote", name.encode())]
    cfg.write_to_path(path)
    shutil.rmtree(cache_dir(repo, url), ignore_errors=True)


def resolve_remote(repo: Repository, remote: str) -> str:
    """A configured remote's URL, or ``remote`` itself when it looks like a URL or path."""
    remotes = list_remotes(repo)
    if remote in remotes:
        return remotes[remote]
    if "/" in remote or ":" in remote or remote.startswith("."):
        return remote
    raise RemoteNotFoundError(remote)
