"""A store on this machine (a path or ``file://`` URL): objects copied, refs through git.

Objects travel as copied pack entries, verified on the way (``remote/localpath.py``);
refs move through ``git-upload-pack``/``git-receive-pack`` subprocesses
(``LocalPathClient``), so the remote's hooks run and refused ref updates are
reported exactly as by a server (dulwich's in-process local transport reports
failed ref updates as successes).  A push to a path where nothing is yet creates
the remote store (with its hooks); a listing of it is empty until then.  While a
push copies, it holds the remote's store lock shared, so that a ``cas gc`` there
does not take the copied packs (unreferenced until the refs move) for garbage.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator, Set
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from dulwich.config import Config
from dulwich.objects import ZERO_SHA, ObjectID
from dulwich.pack import UnpackedObject
from dulwich.refs import Ref

from ...objects.odb import ObjectDB
from ...objects.repository import init_repository, is_repository
from ...util.locking import yielding_lock
from ...util.progress import ProgressFn
from ..hook import install_hook
from ..localpath import LocalPathClient, Presence, chunk_claims, missing_objects, scratch_cidx_dir, transfer
from .base import Received, Sent, UpdateRefs, Wants, transport_errors
from .git import list_refs, send_pack

if TYPE_CHECKING:
    from ...objects.repository import Repository
    from ..incoming import Quarantine

_SCP_LIKE = re.compile(r"^[^/:@]+@[^/:]+:")


def local_path(url: str) -> str | None:
    """The filesystem path of a local remote, or None for a network URL."""
    if url.startswith("file://"):
        return urlparse(url).path
    if "://" in url or _SCP_LIKE.match(url):
        return None
    return os.path.abspath(url)


def git_dir(path: str) -> str:
    """The git directory of the store at ``path`` (``path/.git`` for a non-bare one)."""
    dot_git = os.path.join(path, ".git")
    return dot_git if os.path.isdir(dot_git) else path


class PathTransport:
    """A store in a directory of this machine (see the module docstring)."""

    def __init__(self, url: str, path: str) -> None:
        self.url = url
        self.path = path
        self.client = LocalPathClient()

    @classmethod
    def open(cls, url: str, config: Config | None = None, cache_dir: str | None = None,
             progress: ProgressFn | None = None) -> PathTransport:
        path = local_path(url)
        assert path is not None, url  # the registry sends only paths and file:// URLs here
        return cls(url, path)

    def read_refs(self) -> dict[Ref, ObjectID]:
        if not os.path.exists(self.path):
            return {}  # a path remote a first push creates: empty until then
        return list_refs(self.client, self.path, self.url)

    def fetch(self, repo: Repository, wants: Wants, quarantine: Quarantine, domains: set[str] | None,
              progress: ProgressFn | None) -> Received:
        """Copy what the wanted objects reach and ``repo`` lacks into the quarantine.

        Every entry is verified on the way (localpath.py: framing, SHA-1, trailer);
        the quarantine's model checks then decompress each new chunk once and check
        its key before anything is published.
        """
        with transport_errors(self.url):
            refs = self.client.remote_refs(self.path)
        wanted = wants(refs)
        if not wanted:
            return Received()
        src = ObjectDB(git_dir(self.path))
        have = Presence(repo.odb)
        try:
            objects, _ = missing_objects(src, wanted, have)
            # no chunk claims: the copy checks the git objects, and the quarantine's model checks
            # decompress and check each new chunk once (Quarantine.verify_model)
            stats = transfer(src, objects, quarantine.odb.pack_dir, quarantine.odb.cidx_dir, {},
                             hostile=True, progress=progress, label="receiving")
        finally:
            have.close()
            src.close()
        for pc in stats.packs:
            quarantine.adopt_pack(pc.name, pc.locations, pc.chunks)
        quarantine.adopt(stats.writer, stats.pack, stats.chunks)
        return Received(stats.objects, stats.pack_bytes)

    def send(self, repo: Repository, update_refs: UpdateRefs, domains: set[str] | None,
             progress: ProgressFn | None) -> Sent:
        """Copy the objects into the remote's packs, then move its refs through ``git-receive-pack``.

        receive-pack gets an empty pack: the objects are published in the remote
        before git moves any ref, and its hooks judge the ref updates.
        """
        if not os.path.exists(self.path) or (os.path.isdir(self.path) and not os.listdir(self.path)):
            init_repository(self.path, served=True)
            install_hook(self.path)
        sent = Sent()

        def generate(have: Set[ObjectID], want: Set[ObjectID], *, ofs_delta: bool = False,
                     progress: object = None) -> tuple[int, Iterator[UnpackedObject]]:
            sent.objects, sent.bytes = self._copy_out(repo, [w for w in want if w != ZERO_SHA], report)
            return 0, iter([])

        report = progress  # generate's own ``progress`` is dulwich's
        with self._lock():
            status, sent.messages = send_pack(self.client, self.path, update_refs, generate, self.url)
        sent.ref_status = dict(status.ref_status or {})
        return sent

    def _copy_out(self, repo: Repository, wants: list[ObjectID], progress: ProgressFn | None) -> tuple[int, int]:
        """Copy what ``wants`` reaches and the remote lacks into its packs: (objects, pack bytes)."""
        gd = git_dir(self.path)
        dest = ObjectDB(gd)
        have = Presence(dest)
        try:
            objects, models = missing_objects(repo.odb, wants, have)
        finally:
            have.close()
            dest.close()
        claims = chunk_claims(repo.odb, models)
        cidx_dir = scratch_cidx_dir(gd)
        try:
            # our own chunks were verified when they entered this store: check each entry's
            # oid (cheap, catches damage on disk), not every chunk's BLAKE3 again
            stats = transfer(repo.odb, objects, os.path.join(gd, "objects", "pack"), cidx_dir, claims,
                             hostile=False, progress=progress, label="sending")
        finally:
            if not cidx_dir.startswith(gd):
                shutil.rmtree(cidx_dir, ignore_errors=True)
        return stats.objects, stats.pack_bytes

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """The remote's store lock, held shared from the copy of the objects until its refs moved.

        The copied packs are unreferenced until ``git-receive-pack`` moves the refs, and
        a ``cas gc --grace 0`` there would take them for garbage: it waits for this push
        (as for a local writer), and this push for it.
        """
        gd = git_dir(self.path)
        if not is_repository(gd):
            yield
            return
        with yielding_lock(os.path.join(gd, "cas", "gc.lock")):
            yield

    def note_merged(self, domains: set[str]) -> None:
        pass  # objects are compared by a walk each time
