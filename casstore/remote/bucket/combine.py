"""Combining a bucket's small packs into one (every push uploads one pack)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ...objects.packs import PackLayout
from ...objects.packwriter import EncodedEntry, PackWriter, parse_object_header
from ...util.parallel import ordered
from ...util.progress import Counter
from .base import GAP, RUN_BYTES
from .packs import Loc, RemotePacks

#: a pack smaller than this is "small": a candidate for combining
SMALL_PACK = 64 << 20
#: a push that finds more small packs than this combines them into one (see combine_packs)
MAX_SMALL_PACKS = 16


@dataclass
class CombineResult:
    """What ``combine_packs`` did: the packs it replaced and the one that replaced them."""

    combined: list[str]
    pack: str
    objects: int
    bytes: int


class Combine(RemotePacks):
    """``combine_packs``, and the pack writing gc shares."""

    def combine_packs(self, force: bool = False) -> CombineResult | None:
        """Combine the bucket's small packs into one, when there are more than ``MAX_SMALL_PACKS``.

        Every push uploads one pack; without this a bucket pushed to N times holds
        N packs, and every reader lists and indexes all of them.  A pack under
        ``SMALL_PACK`` bytes is small; a push that leaves more than
        ``MAX_SMALL_PACKS`` of them combines them, except those at least twice
        as big as all smaller ones together (``_geometric``), so there are never
        more than that many small packs after a push, plus one pack per
        ``SMALL_PACK`` bytes or more of objects.  ``force`` combines every small
        pack when there are at least two.

        The small packs are streamed (one ranged request of at most ``RUN_BYTES``
        at a time, a few in flight; blobs spooled to a local file), every object
        checked against its id, and written as one pack without duplicates:
        commits and trees first, then blobs, as every bucket pack is.  It is
        uploaded, its ``.idx`` last, and only then are the small packs deleted
        (each ``.pack`` before its ``.idx``: an index whose pack is gone is
        ignored by readers and deleted by the next combine).

        Guarantees, with any number of pushers, readers and combiners at once:
        only packs in the listing taken at the start are deleted (a pack pushed
        meanwhile is not), and each only after the published new pack holds every
        object it held; two combiners at once leave duplicates at worst, never a
        missing object; a reader that listed a pack deleted since lists again and
        finds the objects in the new one; a combine stopped between upload and
        delete leaves duplicates, which the next combine removes.

        Returns None when there was nothing to combine.

        Raises:
            RemoteError, CorruptObjectError: the bucket could not be read or written,
                or a small pack holds an object that does not hash to its id;
                nothing has been deleted then.
        """
        with self._errors():
            listing = self._listing()
            # an index without its pack: a combine stopped between the two deletions
            # (a pusher uploads the pack first, so never one of its packs in flight)
            orphans = [fn for fn in listing if fn.endswith(".idx") and fn[:-4] + ".pack" not in listing]
            for fn in orphans:
                self._delete(self._key("objects/pack/" + fn))
            small_names = sorted(fn[:-5] for fn, size in listing.items()
                                 if fn.endswith(".pack") and fn[:-5] + ".idx" in listing and size < SMALL_PACK)
            if len(small_names) <= (1 if force else MAX_SMALL_PACKS):
                return None
            if not force:
                small_names = self._geometric(small_names, listing)
            packs = self._list_packs(listing)
            small = [packs[n] for n in small_names if n in packs]
            with self._scratch("combine") as work:
                name, objects = self._write_combined(small, work)
                size, _ = self._publish(work, name)
            # from here every object of every small pack is in the published pack `name`
            old = [p.name for p in small if p.name != name]
            self._delete_packs(old)
            return CombineResult(old, name, objects, size)

    @staticmethod
    def _geometric(names: list[str], listing: dict[str, int]) -> list[str]:
        """The small packs to combine: all but those at least twice the size of all smaller ones.

        Keeping the big packs of a geometric progression (as ``git repack
        --geometric=2`` does) bounds how often a byte is rewritten by the log of
        the number of pushes, where combining every small pack each time rewrote
        the bytes of the first pushes once per 16 pushes until their pack reached
        ``SMALL_PACK``.  At least two packs are combined.
        """
        by_size = sorted(names, key=lambda n: (-listing[n + ".pack"], n))
        sizes = [listing[n + ".pack"] for n in by_size]
        rest = sum(sizes)
        keep = 0
        for size in sizes:
            rest -= size
            if size < 2 * rest:
                break
            keep += 1
        return sorted(by_size[min(keep, len(by_size) - 2):])

    def _write_combined(self, small: list[PackLayout], work: str,
                        keep: Callable[[bytes], bool] | None = None) -> tuple[str, int]:
        """Write one pack in ``work`` of every object of ``small`` (that ``keep``s), once; returns (name, objects).

        Memory holds the object ids and a few ranges in flight, never a whole
        pack: blob entries wait in a spool file until the commits and trees,
        which go first, are written.
        """
        seen: set[bytes] = set()
        where: dict[tuple[str, int], bytes] = {}  # (pack, offset) -> oid, of the copy kept
        locs: list[Loc] = []
        for p in small:
            for pos in range(p.idx.count):
                oid = bytes(p.idx.sha(pos))
                if oid in seen or (keep is not None and not keep(oid)):  # a copy kept already; or dead
                    continue
                seen.add(oid)
                loc = self._loc(p, pos, oid)
                where[(p.name, loc[1])] = oid
                locs.append(loc)
        combining = Counter(self.progress, "combining packs", sum(e - s for _, s, e in locs))
        with PackWriter(work, work, len(locs), durable=False) as writer:
            blobs: list[tuple[bytes, int, int]] = []  # oid, header length, entry length, in spool order
            with tempfile.TemporaryFile(dir=work) as spool:

                def fetch(run: list[Loc]) -> tuple[list[Loc], bytes]:
                    p = run[0][0]
                    return run, self._get_range(self._key(f"objects/pack/{p.name}.pack"), run[0][1], run[-1][2])

                with ThreadPoolExecutor(4) as pool:
                    runs = self._runs(locs, GAP, RUN_BYTES)
                    for run, data in ordered(pool, 4, (lambda r=r: fetch(r) for r in runs)):  # type: ignore[misc]
                        base = run[0][1]
                        for p, start, end in run:
                            entry = memoryview(data)[start - base : end - base]
                            oid = where[(p.name, start)]
                            type_num, _ = self._parse_entry(entry, oid, f"{p.name}@{start}")
                            _, _, hlen = parse_object_header(entry)
                            if type_num == 3:
                                spool.write(entry)
                                blobs.append((oid, hlen, len(entry)))
                            else:
                                writer.add(EncodedEntry.verbatim(oid, bytes(entry[:hlen]), bytes(entry[hlen:])))
                            combining(len(entry))
                spool.seek(0)
                for oid, hlen, n in blobs:
                    entry_bytes = spool.read(n)
                    writer.add(EncodedEntry.verbatim(oid, entry_bytes[:hlen], entry_bytes[hlen:]))
            return writer.finish(), len(locs)
