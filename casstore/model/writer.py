"""Writing to a domain: its lock, reconciling its history, and the event trailers.

Every change of a model ref of a domain and the history event that records it
run inside :func:`domain_writer`, so no other casstore writer of the domain can
come between them (docs/format.md, "Locks and the history invariant").  The Store,
pull and ``fsck --repair`` all write through here.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dulwich.objects import ObjectID

from ..errors import CasError
from ..objects.refs import domain_ref
from ..objects.repository import Repository
from ..util.identity import author
from ..util.locking import DOMAIN_LOCK_TIMEOUT, domain_lock_path, store_lock
from ..util.names import check_domain
from .history import read_index, reconcile
from .manifest import Manifest
from .reading import read_manifest


def frameworks_summary(m: Manifest) -> str:
    """``model=sklearn explainer=shap``: the Cas-Frameworks trailer of a commit event."""
    return " ".join(f"{e.kwarg}={e.framework}" for e in m.frameworks)


def metadata_summary(meta: Any) -> str:
    """``auc=0.91 dataset=v2``: the Cas-Summary trailer (each value cut at 40 characters)."""
    if not isinstance(meta, dict):
        return ""
    parts = []
    for k, v in meta.items():
        text = repr(v) if not isinstance(v, str) else v
        parts.append(f"{k}={text if len(text) <= 40 else text[:37] + '...'}")
    return " ".join(parts)


def event_trailers(m: Manifest) -> dict[str, str]:
    """The trailers of the commit event for a model with manifest ``m``."""
    return {"Frameworks": frameworks_summary(m), "Summary": metadata_summary(m.extra_metadata)}


def model_event_trailers(repo: Repository, sha: ObjectID) -> dict[str, str]:
    """The commit-event trailers for model commit ``sha`` (best effort: {} if unreadable)."""
    try:
        manifest, _ = read_manifest(repo, sha)
    except (CasError, KeyError):
        return {}
    return event_trailers(manifest)


def _refs_stamp(repo: Repository, domain: str) -> tuple[str, int]:
    """What the domain's refs look like on disk, cheaply: a change of any model ref shows.

    Creating, deleting or renaming a ref file (and dulwich's ``<ref>.lock`` files)
    changes its directory's mtime/ctime; ``packed-refs`` is stat'ed too, and the
    history head read.  Writing a ref file in place is not seen: casstore never
    does, and ``fsck --repair`` reads every ref.  Returns the stamp's text and the
    newest mtime in it (see domain_writer for why).
    """
    parts = []
    newest = 0
    for path in (repo.model_refs_dir(domain), repo.packed_refs_path):
        try:
            st = os.stat(path)
            parts.append(f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}")
            newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            parts.append("-")
    head = repo.refs.get(domain_ref(domain))
    parts.append(head.decode() if head else "-")
    return "casstore-refs-stamp-1 " + " ".join(parts) + "\n", newest


def _stamp_holds(repo: Repository, domain: str, stamp_path: str) -> bool:
    """Whether the refs are exactly as the stamp at ``stamp_path`` describes them.

    File system clocks are coarse (a few ms, up to seconds on some): a change made
    in the same tick as the last one the stamp saw would leave every time stamp
    as it was.  So the stamp only counts when the stamp file itself was written
    in a later tick than everything it describes: any change after it then gets
    a newer time than the one recorded.
    """
    try:
        with open(stamp_path) as f:
            stamped = f.read()
            written = os.fstat(f.fileno()).st_mtime_ns
    except OSError:
        return False
    text, newest = _refs_stamp(repo, domain)
    return bool(stamped) and stamped == text and newest < written


def refs_as_stamped(repo: Repository, domain: str) -> bool:
    """Whether the domain's model refs are as its last writer left them (its stamp holds).

    Then the history at its head lists exactly the refs (every writer changes both
    under the domain lock before the stamp is written): a reader may trust the
    history without listing the refs.  Costs two stats and two small file reads.
    """
    lock = domain_lock_path(repo.path, domain)
    return _stamp_holds(repo, domain, lock[: -len(".lock")] + ".stamp")


@contextmanager
def domain_writer(repo: Repository, domain: str, full: bool = False) -> Iterator[list[str]]:
    """Hold the domain's lock, after recording what killed writers left out.

    Every change of a model ref of ``domain`` and the history event that
    records it run inside this block, so no other casstore writer of the
    domain can come between them.  Callers hold the shared store lock.  Ref
    lock files a killed writer left for this domain are removed first
    (Refs.clear_stale_locks), with a warning.
    Yields what reconcile recorded (usually nothing); ``full`` reads every
    model ref (see history.reconcile).

    A writer that finishes its block records a stamp of the domain's refs
    (``cas/locks/domain-<domain>.stamp``, see _refs_stamp).  When the next
    writer finds the refs as stamped, no writer was killed between a ref change
    and its event since, and nothing else touched the refs: reconcile and the
    listing of stale ref locks (each O(models of the domain)) are skipped, and
    only the history ref's own lock file is looked for.  A missing, torn or
    different stamp means the full check.

    Raises:
        StoreBusyError: another writer held the domain for DOMAIN_LOCK_TIMEOUT.
        CorruptObjectError: the domain's history cannot be read (nothing was changed).
    """
    check_domain(domain)
    lock = domain_lock_path(repo.path, domain)
    stamp_path = lock[: -len(".lock")] + ".stamp"
    with store_lock(lock, exclusive=True, timeout=DOMAIN_LOCK_TIMEOUT):
        if not full and _stamp_holds(repo, domain, stamp_path):
            _clear_stale_locks(repo, domain, models=False)
            # the history must still be readable before any ref changes (reconcile's check)
            read_index(repo.odb, repo.refs.get(domain_ref(domain)))
            done: list[str] = []
        else:
            _clear_stale_locks(repo, domain)
            done = reconcile(repo.odb, repo.refs, domain, author(repo.path),
                             lambda sha: model_event_trailers(repo, sha), full=full)
        try:
            os.unlink(stamp_path)  # until this block ends well, the next writer checks in full
        except FileNotFoundError:
            pass
        yield done
        # Not fsynced: a lost stamp only costs the next writer the full check, and the
        # refs and history it describes were made durable before this point.
        try:
            with open(stamp_path, "w") as f:  # a torn stamp never matches: the full check
                f.write(_refs_stamp(repo, domain)[0])
        except OSError:
            pass


@contextmanager
def states_writer(repo: Repository) -> Iterator[None]:
    """Hold the state list's lock: every update of ``refs/cas/states`` runs inside it.

    Like :func:`domain_writer`, it first removes a ref lock a killed writer left.
    Callers hold the shared store lock.
    """
    with store_lock(repo.lock_path("states"), exclusive=True,
                    timeout=DOMAIN_LOCK_TIMEOUT):
        _clear_stale_locks(repo, None)
        yield


def _clear_stale_locks(repo: Repository, domain: str | None, models: bool = True) -> None:
    for path in repo.refs.clear_stale_locks(domain, with_models=models):
        warnings.warn(f"casstore: removed {path}, a ref lock left by a killed writer", stacklevel=4)
