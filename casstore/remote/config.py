"""Named remotes, stored like git's: ``[remote "origin"] url = ...`` in the store's config."""

from __future__ import annotations

import hashlib
import os
import re
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
    path = repo.config_path
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


_SCP_LIKE = re.compile(r"[^/:@]+@[^/:]+:.*", re.S)  # user@host:path, as git and scp write it


class UnsupportedRemoteError(CasError, ValueError):
    """A remote URL no casstore transport handles (``ftp://...``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"remote URL {url!r}: unsupported scheme; use a path, file://, ssh://, user@host:path, "
                         f"git://, http(s)://, s3://, gs:// or az://")


def check_url(url: str) -> str:
    """``url`` if some transport handles it, else UnsupportedRemoteError.

    Accepted: a local path, ``file://``, ``ssh://``, ``user@host:path``, ``git://``,
    ``http(s)://``, ``s3://``, ``gs://``, ``az://``.
    """
    if not url or "\n" in url or "\0" in url:
        raise UnsupportedRemoteError(url)
    from .transports import SCHEMES  # the schemes some transport handles; the others are refused
    # here, when a remote is added, not later by an unrelated transport's error

    scheme, sep, _ = url.partition("://")
    if sep:
        if scheme.lower() not in SCHEMES:
            raise UnsupportedRemoteError(url)
        return url
    if _SCP_LIKE.fullmatch(url):
        return url
    head = url.split("/", 1)[0]
    if ":" in head and not re.fullmatch(r"[A-Za-z0-9._-]+", head.split(":", 1)[0]):
        raise UnsupportedRemoteError(url)  # host:path (ssh, like git) needs a host name before ':'
    return url


def add_remote(repo: Repository, name: str, url: str) -> None:
    """Add ``[remote "NAME"] url = URL``; the URL's scheme is checked first."""
    check_name(name, "remote name")
    check_url(url)
    if name in list_remotes(repo):
        raise CasError(f"remote {name!r} already exists")
    cfg, path = _config(repo)
    cfg.set((b"remote", name.encode()), b"url", url.encode())
    cfg.write_to_path(path)


def set_remote_url(repo: Repository, name: str, url: str) -> None:
    """Point remote ``name`` at ``url`` (checked); what was cached about the old URL is dropped."""
    old = list_remotes(repo).get(name)
    if old is None:
        raise RemoteNotFoundError(name)
    check_url(url)
    cfg, path = _config(repo)
    cfg.set((b"remote", name.encode()), b"url", url.encode())
    cfg.write_to_path(path)
    if old != url:
        shutil.rmtree(cache_dir(repo, old), ignore_errors=True)


def rename_remote(repo: Repository, old: str, new: str) -> None:
    """Rename a remote (its cache is keyed by URL, so it stays); ``cas.defaultRemote`` follows."""
    remotes = list_remotes(repo)
    if old not in remotes:
        raise RemoteNotFoundError(old)
    check_name(new, "remote name")
    if new in remotes:
        raise CasError(f"remote {new!r} already exists")
    cfg, path = _config(repo)
    section = cfg[(b"remote", old.encode())]
    del cfg[(b"remote", old.encode())]
    for key, value in section.items():
        cfg.set((b"remote", new.encode()), key, value)
    try:
        if cfg.get((b"cas",), b"defaultRemote") == old.encode():
            cfg.set((b"cas",), b"defaultRemote", new.encode())
    except KeyError:
        pass
    cfg.write_to_path(path)


def default_remote(repo: Repository) -> str:
    """The remote push and pull use when none is named: ``cas.defaultRemote`` (store, then user), else origin."""
    from ..util.config import get_setting

    return get_setting(repo.config_path, "cas.defaultRemote") or "origin"


def cache_dir(repo: Repository, url: str) -> str:
    """Where a transport may keep what it learnt about the remote at ``url`` (S3: pack indexes)."""
    return os.path.join(repo.remotes_dir, hashlib.sha1(url.encode()).hexdigest()[:16])


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
        return check_url(remote)
    raise RemoteNotFoundError(remote)
