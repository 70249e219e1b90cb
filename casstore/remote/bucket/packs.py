"""The bucket's packs: the listing, the cached indexes, where each object is; publishing and deleting packs."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from ...errors import CorruptObjectError, MissingObjectError
from ...objects.packidx import PackIdx, check_idx
from ...objects.packs import PackLayout, find_first, verify_entry
from ...objects.packwriter import MAX_OBJECT
from ...util.parallel import byte_runs
from ...util.progress import Counter, ProgressFn
from .base import RELIST, BucketBase, ObjectGoneError

Loc = tuple[PackLayout, int, int]  # where an object is: pack, start, end


class RemotePacks(BucketBase):
    """Listing the remote's packs, locating objects in them, publishing and deleting packs."""

    def __init__(self, url: str, cache_dir: str | None = None, progress: ProgressFn | None = None) -> None:
        super().__init__(url, cache_dir, progress)
        self._packs: dict[str, PackLayout] | None = None
        self._packs_lock = threading.Lock()

    def _forget_packs(self) -> None:
        """Drop the pack listing (packs were published or deleted): the next read lists again."""
        with self._packs_lock:
            self._packs = None

    def _load_packs(self) -> dict[str, PackLayout]:
        """Every published remote pack, with its index (cached locally by name and size).

        The listing is kept for the client's life: a pack deleted since (combined
        into another by ``combine_packs``, which publishes the new pack before it
        deletes any old one) makes the read that finds it gone list again
        (``_reload_packs``): the new listing holds the pack that replaced it.
        """
        with self._packs_lock:
            for attempt in range(RELIST):
                if self._packs is not None:
                    break
                try:
                    self._packs = self._list_packs()
                except ObjectGoneError:  # an index deleted between the listing and its download
                    if attempt == RELIST - 1:
                        raise
            assert self._packs is not None
            return self._packs

    def _reload_packs(self, key: str) -> None:
        """List the packs again because the pack object ``key`` was deleted, unless another thread did since."""
        gone = key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        with self._packs_lock:
            if self._packs is not None and gone in self._packs:
                self._packs = None
        self._load_packs()

    def _relist(self, gone: ObjectGoneError, attempt: int) -> None:
        """After attempt ``attempt`` (from 0) of a read found a pack gone: list again, or raise after ``RELIST``."""
        if attempt == RELIST - 1:
            raise gone
        self._reload_packs(gone.key)

    def _listing(self) -> dict[str, int]:
        """Size of every object under objects/pack/, by file name."""
        return {key.rsplit("/", 1)[-1]: size for key, size in self._list("objects/pack/")}

    def _list_packs(self, listing: dict[str, int] | None = None) -> dict[str, PackLayout]:
        if listing is None:
            listing = self._listing()
        packs: dict[str, PackLayout] = {}
        cache = self._workdir()
        for fn, idx_size in sorted(listing.items()):
            name = fn[: -len(".idx")]
            if not fn.endswith(".idx") or name + ".pack" not in listing:
                continue
            if not name.startswith("pack-") or len(name) != 45 or any(c not in "0123456789abcdef" for c in name[5:]):
                raise CorruptObjectError(fn, f"remote {self.url} has a pack with a bad name")
            where = f"{fn} (remote {self.url})"
            path = os.path.join(cache, fn)
            if not os.path.exists(path) or os.path.getsize(path) != idx_size:
                data = self._get_range(self._key("objects/pack/" + fn), 0, idx_size) if idx_size else b""
                check_idx(where, data)
                self._write_cache(path, data)
            # the .pack is never read whole: its index must name it and fit the size listed
            packs[name] = PackLayout.of(name, PackIdx(path), listing[name + ".pack"], where)
        self._prune_cache(cache, {name + ".idx" for name in packs})
        return packs

    @staticmethod
    def _prune_cache(cache: str, live: set[str]) -> None:
        """Delete cached indexes of packs the bucket no longer lists (combined or gc'd there).

        The cache only ever grows otherwise: one ``.idx`` per pack ever seen.  A
        cached index is derived data (fetched again by name and size if needed), so
        removing one another process is reading costs that process a re-fetch at most.
        """
        for fn in os.listdir(cache):
            if fn.startswith("pack-") and fn.endswith(".idx") and fn not in live:
                try:
                    os.unlink(os.path.join(cache, fn))
                except FileNotFoundError:
                    pass

    def _locate(self, raws: list[bytes]) -> dict[bytes, Loc]:
        """Where each binary oid is on the remote: (pack, start, end), in the first pack listed that holds it.

        Raises:
            MissingObjectError: an object no remote pack holds.
        """
        packs = list(self._load_packs().values())
        out: dict[bytes, Loc] = {}
        missing: list[bytes] = []
        for raw, found in zip(raws, find_first([p.idx for p in packs], raws), strict=True):
            if found is None:
                missing.append(raw)
            else:
                out[raw] = self._loc(packs[found[0]], found[1], raw)
        if missing:
            raise MissingObjectError(missing[0].hex(), f"the remote {self.url} refers to it but has no pack holding it")
        return out

    def _loc(self, p: PackLayout, pos: int, oid: bytes) -> Loc:
        """Where the entry at ``.idx`` position ``pos`` of ``p`` is, no larger than any object casstore writes.

        Raises:
            CorruptObjectError: a larger entry (a damaged or hostile index): it is not fetched.
        """
        start, end = p.entry(pos)
        if end - start > MAX_OBJECT + 64:
            raise CorruptObjectError(oid.hex(), f"remote {self.url}: a pack entry of {end - start} bytes")
        return p, start, end

    @staticmethod
    def _runs(items: list[Loc], gap: int, limit: int) -> Iterator[list[Loc]]:
        """Entries grouped into ranges of one pack: sorted, at most ``gap`` apart, ``limit`` long (``byte_runs``)."""
        for _, group in itertools.groupby(sorted(items, key=lambda t: (t[0].name, t[1])), key=lambda t: t[0].name):
            locs = list(group)
            for r in byte_runs([start for _, start, _ in locs], [end for _, _, end in locs], limit, gap):
                yield locs[r.start : r.stop]

    def _parse_entry(self, entry: bytes | memoryview, oid: bytes, name: str) -> tuple[int, bytes]:
        """(type, content) of a whole-object pack entry, checked against its oid (``verify_entry``)."""
        try:
            type_num, parts = verify_entry(entry, oid)
        except CorruptObjectError as e:
            raise CorruptObjectError(e.oid, f"remote {self.url} ({name}): {e.detail}") from None
        return type_num, b"".join(parts)

    @contextlib.contextmanager
    def _scratch(self, what: str) -> Iterator[str]:
        """A directory in the work dir to write a pack in (for ``_publish``), removed after."""
        work = tempfile.mkdtemp(prefix=f"{what}-", dir=self._workdir())
        try:
            yield work
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _publish(self, work: str, name: str, label: str | None = None) -> tuple[int, int]:
        """Upload pack ``name`` written in ``work``: its ``.pack``, then its ``.idx``; their sizes.

        The ``.idx`` goes last: readers see only packs that have one, so the pack
        is published whole or not at all.  ``label``: report the bytes sent as progress.
        """
        paths = [os.path.join(work, name + ext) for ext in (".pack", ".idx")]
        sizes = (os.path.getsize(paths[0]), os.path.getsize(paths[1]))
        counter = Counter(self.progress, label, sum(sizes)) if label is not None else None
        lock = threading.Lock()

        def sent(n: int) -> None:  # may be called from the service client's transfer threads
            if counter is not None:
                with lock:
                    counter(n)

        for path in paths:
            self._upload(self._key("objects/pack/" + os.path.basename(path)), path, sent)
        return sizes

    def _delete_packs(self, names: list[str]) -> None:
        """Delete packs, a few at once: each ``.pack`` before its ``.idx``, then drop the listing.

        An index whose pack is gone is ignored by readers, and deleted by the next
        combine or gc; a pack without its index would be invisible but kept.
        """

        def delete(pack: str) -> None:
            self._delete(self._key(f"objects/pack/{pack}.pack"))
            self._delete(self._key(f"objects/pack/{pack}.idx"))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(delete, names))
        self._forget_packs()
