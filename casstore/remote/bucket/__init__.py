"""Object storage as a remote: the protocol every bucket kind shares.

There is no git server to negotiate with, so the remote is laid out like a
bare repository that clients read and write with plain object requests::

    <prefix>/casstore-remote                  format marker ("casstore-remote 2")
    <prefix>/objects/pack/pack-<sha>.pack     git packs of whole objects, no deltas,
    <prefix>/objects/pack/pack-<sha>.idx      non-blob objects first; .idx uploaded last
    <prefix>/reftable/...                     format 2: the refs in ref tables (reftable.py)
    <prefix>/refs/cas/...                     format 1: one object per ref, "<hex oid>\\n"
    <prefix>/locks/gc                         while ``gc`` runs

Push uploads one pack of exactly the objects the remote's refs do not reach,
then moves refs with conditional writes: a model ref is created only if absent
(it never overwrites, even between racing clients), a history or the states
ref is replaced only if it still has the version it was read with (compare and
swap).  Format 2 does all of a push's changes in one compare-and-swap of the
root ref table (``_update_tables``); format 1 (remotes not yet upgraded with
``upgrade``) one conditional request per ref (``_update_refs``).  Then, when
the bucket holds more than ``MAX_SMALL_PACKS`` packs under ``SMALL_PACK`` bytes,
the push combines them (``combine_packs``: the new pack
is published before any old one is deleted, so an object is never missing).

Pull walks the object graph from the wanted refs, fetching by byte range from
the remote packs only the objects the local store lacks (objects next to each
other travel in one request), and hands them to the quarantine as one pack:
everything is verified there before any ref moves.  A pack found gone since it
was listed (combined meanwhile) makes the reader list again.

``BucketClient`` is that protocol; a bucket kind (s3.py, gcs.py, azure.py) is
a subclass that supplies the object requests: list, get (whole and by range),
put, upload a file, delete, put-if-absent / put-if-version / delete-if-version of a
ref.  A *version* is whatever the service compares in its conditional requests
(an ETag on S3 and Azure, a generation number on GCS), read with the ref.

``BucketClient`` is itself a ``Transport`` (``remote/transports/base.py``): ``read_refs``,
``fetch``, ``send`` and ``note_merged`` are what ``sync`` uses.  Two things only a bucket
does: it reads the ref tables of the domains a push may change or a pull merges, and it
remembers which domain tables this store merged (``note_merged``), leaving those out of
the next pull's refs when they are unchanged (a pull with nothing new is O(changed
domains), not O(models)).  There is no server to negotiate with: a fetch asks the local
store what it has, so no haves are listed (O(models)).

Where each part lives (one module each; ``BucketClient`` puts them together):

* ``base``: the object requests a bucket kind implements, their plumbing, the format marker;
* ``tables``: the refs (ref tables of format 2, per-ref objects of format 1);
* ``packs``: the pack listing and the cached indexes, locating objects;
* ``fetch``: listing the refs and pull (``read_refs``, ``fetch``); ``push``: push (``send``);
* ``combine``: combining small packs; ``gc``: garbage collection and its lock;
* ``upgrade``: format 1 to ref tables.

A tuning constant lives in the module that uses it (``combine.MAX_SMALL_PACKS``,
``gc.STALE_LOCK``, ...): a test that changes one patches that module.
"""

from __future__ import annotations

from dulwich.config import Config

from ...util.progress import ProgressFn
from .base import (
    CAS_ATTEMPTS,
    FORMAT,
    FORMAT_PER_REF,
    GAP,
    MARKER,
    READAHEAD,
    RELIST,
    RUN_BYTES,
    BucketBase,
    ObjectGoneError,
    shared_client,
)
from .combine import MAX_SMALL_PACKS, SMALL_PACK, CombineResult
from .gc import GC_LOCK, STALE_LOCK, BucketGcReport, Gc
from .push import Push, SendResult
from .upgrade import UPGRADE_SETTLE, Upgrade, UpgradeResult

__all__ = [
    "CAS_ATTEMPTS", "FORMAT", "FORMAT_PER_REF", "GAP", "GC_LOCK", "MARKER", "MAX_SMALL_PACKS", "READAHEAD",
    "RELIST", "RUN_BYTES", "SMALL_PACK", "STALE_LOCK", "UPGRADE_SETTLE", "BucketBase", "BucketClient",
    "BucketGcReport", "CombineResult", "ObjectGoneError", "SendResult", "UpgradeResult", "shared_client",
]


class BucketClient(Push, Gc, Upgrade):
    """push and pull to ``<scheme>://bucket/prefix`` (see the module docstring): a ``Transport``.

    Subclasses set ``scheme``, ``kind`` and ``error_modules`` and implement the
    object requests of ``BucketBase`` (its "adapter" part); everything else is shared.
    """

    @classmethod
    def open(cls, url: str, config: Config | None = None, cache_dir: str | None = None,
             progress: ProgressFn | None = None) -> BucketClient:
        """The client of ``url``, as the transports' registry opens it (``config``: unused)."""
        return cls(url, cache_dir, progress)
