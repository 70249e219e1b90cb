"""The repository: a bare git repository with casstore's object database, refs and lock.

This is what every layer above the objects needs from "the store": the object
database (:class:`~casstore.objects.odb.ObjectDB`), the refs
(:class:`~casstore.objects.refs.Refs`), the store lock that orders writers
(shared) against gc (exclusive), the scratch directory, and the format marker.
It knows nothing of models, frameworks or remotes: gc, fsck, statistics,
maintenance and the remote code take a Repository, and :class:`casstore.Store`
is built on one.

Layout (docs/format.md); the Repository is the one owner of these paths (its
attributes and methods below name each), the layers above ask it for them::

    <path>/config            git config + [cas] formatVersion      config_path
    <path>/objects/          packs and loose objects              (ObjectDB)
    <path>/refs/cas/...      models, domain histories, states     refs_dir, model_refs_dir()
    <path>/packed-refs       refs packed by git                   packed_refs_path
    <path>/cas/chunkidx/     chunk index sidecars, one per pack   (ObjectDB)
    <path>/cas/tmp/          scratch space (same file system)     tmp
    <path>/cas/gc.lock       the store lock                       lockfile
    <path>/cas/maintenance.lock  one maintainer at a time         maintenance_lock
    <path>/cas/locks/        one lock per domain, the state list  lock_path()
    <path>/cas/cache/<kind>/ derived data (signature verdicts, the load cache)  cache_dir()
    <path>/cas/remotes/      what transports learnt of each remote  remotes_dir
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from dulwich.config import ConfigFile
from dulwich.repo import Repo

from ..errors import NotAStoreError, SigningError
from ..util.locking import WaitFn, yielding_lock
from ..util.sshsig import key_signer, signing_key, signs_by_default
from .odb import ObjectDB, Signer
from .refs import Refs

FORMAT_VERSION = 1
_CAS_DIRS = ("cas", "cas/chunkidx", "cas/tmp")


#: git config of a store that git serves (``cas init --bare``; a path remote made by a
#: first push).  Measured on a 256 MiB model pulled over git:// (docs/remotes.md): the
#: server's peak RSS went from 248 to 60 MiB, its CPU time unchanged.  git maps packs
#: in windows of up to 1 GiB and keeps up to 8 GiB mapped, and every page it touches
#: while streaming our chunk entries counts in its RSS: small windows bound that.  Our
#: chunk blobs are zstd: no delta can shrink them, so pack-objects must not search for
#: one (``pack.window=0``), and objects above 32 KiB are streamed, never held whole
#: (``core.bigFileThreshold``).  ``receive.unpackLimit=1``: git explodes a push of fewer
#: than 100 objects (a small model, a few changed chunks) into loose objects, a file and
#: an fsync each, which every pack-objects that serves them must inflate and deflate
#: again; kept as the pack that arrived, its entries are served verbatim.  Sizes are
#: written as plain byte counts, not git's
#: ``16m``: dulwich's ``Repo`` reads ``core.packedGitLimit`` with ``int()`` and refuses
#: to open a repository whose config says ``64m``.
SERVER_CONFIG: dict[tuple[bytes, bytes], bytes] = {
    (b"core", b"packedGitWindowSize"): str(16 << 20).encode(),
    (b"core", b"packedGitLimit"): str(64 << 20).encode(),
    (b"pack", b"window"): b"0",
    (b"core", b"bigFileThreshold"): str(32 << 10).encode(),
    (b"receive", b"unpackLimit"): b"1",
}


def init_repository(path: str, *, served: bool = False) -> None:
    """Create a new, empty repository at ``path`` (an empty or missing directory).

    ``served``: others will push to and pull from it through git, so it also gets
    :data:`SERVER_CONFIG`.

    Raises:
        NotAStoreError: ``path`` is a directory that is not empty.
    """
    os.makedirs(path, exist_ok=True)
    if os.listdir(path):
        raise NotAStoreError(path, "directory is not empty")
    Repo.init_bare(path).close()
    cfg_path = os.path.join(path, "config")
    cfg = ConfigFile.from_path(cfg_path)
    cfg.set((b"cas",), b"formatVersion", str(FORMAT_VERSION).encode())
    # Chunk blobs are zstd already: git must not zlib them again.
    cfg.set((b"core",), b"compression", b"0")
    cfg.set((b"core",), b"fsync", b"objects,reference")
    # git's automatic gc would repack without our chunk index sidecars and prune
    # with its own rules; `cas gc` does this job.
    cfg.set((b"gc",), b"auto", b"0")
    cfg.set((b"receive",), b"fsckObjects", b"true")
    if served:
        for (section, name), value in SERVER_CONFIG.items():
            cfg.set((section,), name, value)
    cfg.write_to_path(cfg_path)
    for d in _CAS_DIRS:
        os.makedirs(os.path.join(path, d), exist_ok=True)


def is_repository(path: str) -> bool:
    """Whether ``path`` holds a casstore repository (a git repo with the format marker)."""
    cfg = os.path.join(path, "config")
    if not os.path.isfile(cfg) or not os.path.isdir(os.path.join(path, "objects")):
        return False
    try:
        return ConfigFile.from_path(cfg).get((b"cas",), b"formatVersion") is not None
    except (KeyError, ValueError, OSError):
        return False


def is_git_copy_of_store(path: str) -> bool:
    """Whether ``path`` is a git repository holding casstore refs but no casstore config: a
    ``git clone --mirror`` (or a plain copy made with git) of a store."""
    if not os.path.isdir(os.path.join(path, "objects")) or is_repository(path):
        return False
    if os.path.isdir(os.path.join(path, "cas")):
        return False  # a store of ours whose config or format marker is damaged: not a copy
    if os.path.isdir(os.path.join(path, "refs", "cas")):
        return True
    try:
        with open(os.path.join(path, "packed-refs"), "rb") as f:
            return any(b" refs/cas/" in line for line in f)
    except OSError:
        return False


#: what to do with a git copy of a store
GIT_COPY_HINT = ("a git copy of a casstore store (git clone --mirror), not a store: its chunk indexes and "
                 "settings do not travel with git; make a store from it with `cas clone {path} DIR`")


class Repository:
    """An open casstore repository.  Safe to share between threads and processes.

    Raises (on open):
        NotAStoreError: ``path`` is missing, not a casstore repository, has a
            damaged format marker, or is of a newer format than this casstore reads.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        if not os.path.isdir(self.path):
            raise NotAStoreError(self.path, "no such directory")
        if is_git_copy_of_store(self.path):
            raise NotAStoreError(self.path, GIT_COPY_HINT.format(path=self.path))
        if not is_repository(self.path):
            raise NotAStoreError(self.path, "no casstore config (create one with `cas init`)")
        #: the store's git config as read when it was opened
        self.config = ConfigFile.from_path(os.path.join(self.path, "config"))
        marker = self.config.get((b"cas",), b"formatVersion")
        try:
            version = int(marker)
        except ValueError:
            raise NotAStoreError(self.path, f"damaged format marker cas.formatVersion = {marker!r} in config") from None
        if version > FORMAT_VERSION:
            raise NotAStoreError(self.path, f"format version {version} is newer than this casstore ({FORMAT_VERSION})")
        for d in _CAS_DIRS:
            os.makedirs(os.path.join(self.path, d), exist_ok=True)
        self.odb = ObjectDB(self.path)
        self.odb.default_signer = self.configured_signer
        self.refs = Refs(self.path)
        self.refs.before_write = self.odb.flush  # objects held back by ObjectDB.deferred, before any ref
        #: the store lock: writers hold it shared, gc exclusive
        self.lockfile = os.path.join(self.path, "cas", "gc.lock")
        #: scratch space on the store's file system (renames into objects/ are atomic)
        self.tmp = os.path.join(self.path, "cas", "tmp")
        #: the store's git config (``cas.*`` settings, the format marker)
        self.config_path = os.path.join(self.path, "config")
        #: the loose refs, and git's packed ones
        self.refs_dir = os.path.join(self.path, "refs")
        self.packed_refs_path = os.path.join(self.path, "packed-refs")
        #: held by the one process that rolls up packs (objects/maintenance.py)
        self.maintenance_lock = os.path.join(self.path, "cas", "maintenance.lock")
        #: one directory per remote URL, for what its transport caches
        self.remotes_dir = os.path.join(self.path, "cas", "remotes")
        #: the directory of the store's writable state (read-only when the store is)
        self.cas_dir = os.path.join(self.path, "cas")

    def __repr__(self) -> str:
        return f"Repository({self.path!r})"

    def model_refs_dir(self, domain: str) -> str:
        """The directory of a domain's loose model refs (``refs/cas/models/<domain>``)."""
        return os.path.join(self.refs_dir, "cas", "models", domain)

    def lock_path(self, name: str) -> str:
        """The lock file ``cas/locks/<name>.lock`` (domains: ``util.locking.domain_lock_path``)."""
        return os.path.join(self.cas_dir, "locks", name + ".lock")

    def cache_dir(self, kind: str) -> str:
        """Where derived data of one kind is cached (``cas/cache/<kind>``; may not exist yet)."""
        return os.path.join(self.cas_dir, "cache", kind)

    @contextmanager
    def lock(self, exclusive: bool = False, timeout: float | None = None,
             on_wait: WaitFn | None = None) -> Iterator[None]:
        """Hold the store lock: shared for writers, exclusive for gc; fair to gc (see util/locking.py)."""
        with yielding_lock(self.lockfile, exclusive=exclusive, timeout=timeout, on_wait=on_wait):
            yield

    def configured_signer(self) -> Signer | None:
        """The signer ``cas.signCommits`` asks for (None when it is off).

        Raises:
            SigningError: signing is on but no key is configured.
        """
        if not signs_by_default(self.path):
            return None
        return self.signer()

    def signer(self) -> Signer:
        """A signer with the configured key (``cas.signingKey``, else git's ``user.signingKey``).

        Raises:
            SigningError: no key is configured.
        """
        key = signing_key(self.path)
        if key is None:
            raise SigningError("signing needs a key: `cas config cas.signingKey ~/.ssh/id_ed25519` "
                               "(or git's user.signingKey)")
        return key_signer(key)

    def close(self) -> None:
        self.odb.close()
