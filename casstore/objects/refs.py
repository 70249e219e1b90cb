"""The ref layout and atomic ref operations.

::

    refs/cas/models/<domain>/<model_id>   -> the model's commit (the source of truth)
    refs/cas/domains/<domain>             -> the domain's history (see model/history/)

Creating a model ref is the one atomic step that claims an ID: dulwich's
``add_if_new`` takes ``<ref>.lock`` with O_EXCL and fails if the ref exists, so of
several racing processes exactly one wins.  A held lock makes dulwich raise
``FileLocked`` at once; we retry with backoff for a while, then name the lock file.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

from dulwich.errors import PackedRefsException
from dulwich.file import FileLocked
from dulwich.objects import ObjectID, valid_hexsha
from dulwich.refs import SYMREF, DiskRefsContainer, Ref

from ..errors import CorruptObjectError, StoreLockedError
from ..util.fsutil import fsync_dir

MODELS = b"refs/cas/models/"
DOMAINS = b"refs/cas/domains/"
LOCK_TIMEOUT = 30.0
#: a ref lock this old, found while holding the domain lock, was left by a killed writer
STALE_LOCK_AGE = 2.0
T = TypeVar("T")


def model_ref(domain: str, model_id: str) -> Ref:
    return Ref(MODELS + domain.encode() + b"/" + model_id.encode())


def domain_ref(domain: str) -> Ref:
    return Ref(DOMAINS + domain.encode())


def with_lock_retry(fn: Callable[[], T], timeout: float = LOCK_TIMEOUT) -> T:
    """Call ``fn``, retrying while a ref lock is held by someone else."""
    start = time.monotonic()
    delay = 0.002
    while True:
        try:
            return fn()
        except FileLocked as e:
            waited = time.monotonic() - start
            if waited >= timeout:
                raise StoreLockedError(os.fsdecode(e.lockfilename), waited) from None
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)


class CheckedRefsContainer(DiskRefsContainer):
    """dulwich's refs, with damage reported as :class:`CorruptObjectError`.

    dulwich raises ``PackedRefsException`` (or ``StopIteration`` for an empty
    file) from every ref lookup once ``packed-refs`` holds one bad line, and hands
    back whatever text a damaged loose ref file holds.  Both are named here, by
    file, so that callers (and gc, which must know every root) stop with one clear
    error instead of a traceback or a lookup of garbage.
    """

    def get_packed_refs(self) -> dict[Ref, ObjectID]:
        path = os.path.join(os.fsdecode(self.path), "packed-refs")
        try:
            return super().get_packed_refs()
        except (PackedRefsException, StopIteration, ValueError) as e:
            self._invalidate_packed_refs_cache()
            raise CorruptObjectError(path, f"damaged packed-refs file: {e or 'empty'}") from None

    def read_loose_ref(self, name: Ref) -> bytes | None:
        value = super().read_loose_ref(name)
        if value is not None and not value.startswith(SYMREF) and not valid_hexsha(value):
            raise CorruptObjectError(os.path.join(os.fsdecode(self.path), os.fsdecode(name)),
                                     f"damaged ref file: {value[:60]!r} is not an object id")
        return value


class Refs:
    """casstore's view of the store's refs.

    Reading a damaged ref (a loose ref file that does not hold an object id, or
    a damaged ``packed-refs``) raises :class:`CorruptObjectError` naming the file.
    """

    def __init__(self, git_dir: str) -> None:
        self.git_dir = git_dir
        self.container = CheckedRefsContainer(git_dir)
        #: run before every ref change: the Repository makes held-back objects durable
        #: here (``ObjectDB.flush``), so no ref ever names an object that is not on disk
        self.before_write: Callable[[], object] = lambda: None

    def lock_files(self, domain: str | None, with_models: bool = True) -> list[str]:
        """The ``.lock`` files that exist for ``domain``'s refs (None: the state list's).

        ``with_models=False`` names only the history ref's, without listing the model refs.
        """
        refs_dir = os.path.join(self.git_dir, "refs", "cas")
        if domain is None:
            return [os.path.join(refs_dir, "states.lock")]
        models = os.path.join(refs_dir, "models", domain)
        out = [os.path.join(refs_dir, "domains", domain + ".lock")]
        if not with_models:
            return out
        try:
            out += [os.path.join(models, n) for n in sorted(os.listdir(models)) if n.endswith(".lock")]
        except (FileNotFoundError, NotADirectoryError):
            pass
        return out

    def clear_stale_locks(self, domain: str | None, min_age: float = STALE_LOCK_AGE,
                          with_models: bool = True) -> list[str]:
        """Remove the ref ``.lock`` files that a killed writer left behind.

        dulwich updates a ref through ``<ref>.lock``; a writer SIGKILLed in between
        leaves the file, and every later update of that ref fails until it is gone.
        Only for callers holding the lock that orders casstore's writers of these
        refs (the domain's, or for ``domain=None`` the state list's; model/writer.py):
        no casstore writer can be updating them then, so such a file is a leftover,
        or the live lock of a foreign writer (a ``git push`` into this store), which
        holds it for milliseconds.  A lock younger than ``min_age`` is therefore
        waited for (until it vanishes or reaches that age) before it is removed.

        Returns the paths removed.
        """
        removed = []
        for path in self.lock_files(domain, with_models):
            while True:
                try:
                    age = time.time() - os.stat(path).st_mtime
                except FileNotFoundError:
                    break  # none, or a live writer finished
                if age < min_age:
                    time.sleep(min(min_age - age, 0.1) + 0.005)
                    continue
                try:
                    os.unlink(path)
                    removed.append(path)
                except FileNotFoundError:
                    pass
                break
        for d in sorted({os.path.dirname(p) for p in removed}):
            fsync_dir(d)
        return removed

    def _sync(self, name: bytes) -> None:
        # dulwich fsyncs the ref file but not the directory holding its new name.  After
        # a deletion dulwich may also have removed the emptied directories: sync the
        # nearest one that is left.
        d = os.path.dirname(os.path.join(self.git_dir, os.fsdecode(name)))
        while not os.path.isdir(d) and len(d) > len(self.git_dir):
            d = os.path.dirname(d)
        fsync_dir(d)

    def get(self, name: Ref) -> ObjectID | None:
        try:
            return self.container[name]
        except KeyError:
            return None

    def add_if_new(self, name: Ref, sha: ObjectID) -> bool:
        self.before_write()
        ok = with_lock_retry(lambda: self.container.add_if_new(name, sha))
        if ok:
            self._sync(name)
        return ok

    def set_if_equals(self, name: Ref, old: ObjectID | None, new: ObjectID) -> bool:
        """Compare-and-swap; ``old=None`` means the ref must not exist yet."""
        if old is None:
            return self.add_if_new(name, new)
        self.before_write()
        ok = with_lock_retry(lambda: self.container.set_if_equals(name, old, new))
        if ok:
            self._sync(name)
        return ok

    def remove_if_equals(self, name: Ref, old: ObjectID) -> bool:
        self.before_write()
        ok = with_lock_retry(lambda: self.container.remove_if_equals(name, old))
        if ok:
            self._sync(name)
        return ok

    def subkeys(self, base: bytes) -> set[bytes]:
        """Ref names under ``base`` (without the prefix), loose and packed."""
        assert base.endswith(b"/")
        return set(self.container.subkeys(Ref(base)))

    def domains(self) -> set[str]:
        """Every domain with a model ref or a history, loose or packed.

        Reads two directories and ``packed-refs``, never the model refs themselves:
        listing every ref under ``refs/cas/models/`` cost O(models in the store).
        """
        names: set[str] = set()
        base = os.path.join(self.git_dir, "refs", "cas")
        for sub, want_dir in (("models", True), ("domains", False)):
            try:
                entries = list(os.scandir(os.path.join(base, sub)))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for e in entries:
                if e.name.endswith(".lock") or e.name.startswith("."):
                    continue
                if want_dir and e.is_dir(follow_symlinks=False):
                    if self._has_loose_ref(e.path):
                        names.add(e.name)
                elif not want_dir and e.is_file(follow_symlinks=False):
                    names.add(e.name)
        for name in self.container.get_packed_refs():
            for prefix in (MODELS, DOMAINS):
                if name.startswith(prefix):
                    first = name[len(prefix):].split(b"/")[0]
                    if first:
                        names.add(first.decode())
        return names

    @staticmethod
    def _has_loose_ref(directory: str) -> bool:
        """Whether a model refs directory holds a ref (dulwich may leave it empty, or with locks)."""
        with os.scandir(directory) as it:
            return any(not e.name.endswith(".lock") for e in it)

    def scan_models(self, domain: str) -> tuple[dict[bytes, ObjectID], list[os.DirEntry[str]]]:
        """The domain's model refs as they lie on disk, unread and unvalidated: one listing.

        Returns the packed ones (ID -> value, as ``packed-refs`` has it) and the
        loose ones (the files of ``refs/cas/models/<domain>/``, ``.lock`` files left
        out).  Model IDs never contain ``/``: deeper names are left out.  This is
        the one scan of a domain's refs that counting, listing and reconciling
        share; ``model_ids`` validates names through dulwich instead.
        """
        prefix = MODELS + domain.encode() + b"/"
        packed = {name[len(prefix):]: sha for name, sha in self.container.get_packed_refs().items()
                  if name.startswith(prefix) and b"/" not in name[len(prefix):]}
        try:
            with os.scandir(os.path.join(self.git_dir, os.fsdecode(prefix))) as it:
                loose = [e for e in it if not e.name.endswith(".lock") and e.is_file(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            loose = []
        return packed, loose

    def has_domain(self, domain: str) -> bool:
        """Whether ``domain`` has a history or a model ref: a stat, and rarely a listing."""
        if self.get(domain_ref(domain)) is not None:
            return True
        packed, loose = self.scan_models(domain)
        return bool(loose or packed)

    def model_ids(self, domain: str) -> set[str]:
        return {k.decode() for k in self.subkeys(MODELS + domain.encode() + b"/") if b"/" not in k}

    def count_model_ids(self, domain: str) -> int:
        """How many model refs ``domain`` has: one directory listing plus packed-refs.

        ``model_ids`` validates every ref name through dulwich, which costs ~0.2 ms
        per model (20 s for 100,000); counting needs only the names.
        """
        packed, loose = self.scan_models(domain)
        if not packed:
            return len(loose)
        return len({os.fsencode(e.name) for e in loose} | set(packed))
