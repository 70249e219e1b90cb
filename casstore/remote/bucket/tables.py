"""The refs of a bucket: the ref tables of format 2 (reftable.py), the per-ref objects of format 1."""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from dulwich.objects import ObjectID
from dulwich.refs import Ref

from ...errors import CorruptObjectError, MissingObjectError
from ..reftable import MAX_TABLE, ROOT_KEY, TABLES, DomainTable, RootTable, digest
from .base import BucketBase


def editable_table(root: RootTable, tables: Mapping[str, DomainTable], domain: str) -> DomainTable:
    """A copy of the table ``root`` names for ``domain`` (``tables`` holds it), or an empty one, to change."""
    t = tables.get(domain) if domain in root.domains else None
    return DomainTable(domain, t.history if t else None, dict(t.models) if t else {})


class RefTables(BucketBase):
    """Reading and writing the remote's refs."""

    def _cache_file(self, name: str) -> str:
        d = os.path.join(self._workdir(), "reftables")
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, name)

    def read_root(self, fresh: bool = False) -> tuple[RootTable, str | None]:
        """The root table and its version (None: no root yet, an empty remote).

        The last root read is cached with its version, and asked for again
        conditionally: an unchanged root costs one request and no body.
        ``fresh`` skips the cache (after a lost compare-and-swap).
        """
        cached = self._cache_file("root")
        key = self._key(ROOT_KEY)
        got: tuple[bytes, str] | None | bool
        version = data = None
        if not fresh and os.path.exists(cached):
            with open(cached, "rb") as f:
                version, _, data = f.read().partition(b"\n")
        if version:
            got = self._get_if_changed(key, version.decode(), MAX_TABLE)
            if got is True:
                assert data is not None
                return RootTable.decode(data, f"remote {self.url} (cached root)"), version.decode()
        else:
            got = self._get(key, MAX_TABLE)
        if not isinstance(got, tuple):
            if os.path.exists(cached):
                os.unlink(cached)
            return RootTable(), None
        root = RootTable.decode(got[0], f"remote {self.url}: {ROOT_KEY}")
        self._cache_root(got[0], got[1])
        return root, got[1]

    def _cache_root(self, data: bytes, version: str) -> None:
        """Keep the root's bytes with their version, for the next conditional read (``read_root``)."""
        if "\n" not in version:
            self._write_cache(self._cache_file("root"), version.encode() + b"\n" + data)

    def _merged(self) -> dict[str, str]:
        """The record ``note_merged`` keeps: the digest of the table of each domain this store merged last."""
        try:
            with open(self._cache_file("merged"), encoding="ascii") as f:
                return dict(line.split(" ", 1) for line in f.read().splitlines() if " " in line)
        except (FileNotFoundError, UnicodeDecodeError, ValueError):
            return {}

    def unchanged_since_merged(self) -> set[str]:
        """Domains whose table, as the last fetch read it, is the one a pull merged before (``note_merged``).

        Such a domain holds nothing new for this store: a pull need not merge it again.
        """
        merged = self._merged()
        return {d for d, name in self.tables_read.items() if merged.get(d) == name}

    def note_merged(self, domains: set[str]) -> None:
        """Record that this store merged the tables of ``domains`` the last fetch read."""
        merged = self._merged()
        new = {d: self.tables_read[d] for d in domains if d in self.tables_read}
        if all(merged.get(d) == name for d, name in new.items()):
            return  # a pull with nothing new: the record holds it already
        merged.update(new)
        self._write_cache(self._cache_file("merged"), "".join(f"{d} {n}\n" for d, n in sorted(merged.items())).encode())

    def read_table(self, domain: str, name: str) -> DomainTable:
        """The domain table ``name`` (its digest): from the local cache, else one GET.

        Raises:
            CorruptObjectError: the bytes do not hash to the name, or do not parse.
        """
        cached = self._cache_file(name)
        where = f"remote {self.url}: {TABLES}{name}"
        if os.path.exists(cached):
            with open(cached, "rb") as f:
                data = f.read()
        else:
            got = self._get(self._key(TABLES + name), MAX_TABLE)
            if got is None:
                raise MissingObjectError(name, f"remote {self.url}: the root names a domain table "
                                               "that is not there")
            data = got[0]
            if digest(data) != name:
                raise CorruptObjectError(where, "does not hash to its name")
        table = DomainTable.decode(data, domain, where)
        if not os.path.exists(cached):
            self._write_cache(cached, data)
        return table

    def read_tables(self, root: RootTable, domains: set[str] | None) -> dict[str, DomainTable]:
        """The tables of ``domains`` (None: all) the root names, a few read at once."""
        names = sorted(d for d in root.domains if domains is None or d in domains)
        with ThreadPoolExecutor(8) as pool:
            tables = list(pool.map(lambda d: self.read_table(d, root.domains[d]), names))
        return dict(zip(names, tables, strict=True))

    @staticmethod
    def tables_as_refs(root: RootTable, tables: Mapping[str, DomainTable]) -> dict[Ref, ObjectID]:
        """The refs the tables hold, named as a git remote advertises them."""
        refs: dict[Ref, ObjectID] = {}
        if root.states is not None:
            refs[Ref(b"refs/cas/states")] = root.states
        for domain, table in tables.items():
            if table.history is not None:
                refs[Ref(f"refs/cas/domains/{domain}".encode())] = table.history
            for mid, sha in table.models.items():
                refs[Ref(f"refs/cas/models/{domain}/{mid}".encode())] = sha
        return refs

    def write_root(self, root: RootTable, tables: Mapping[str, DomainTable], version: str | None) -> bool:
        """Write the tables ``root`` names that are new, then swap the root if it still has ``version``.

        A table is immutable and named by its digest: writing it races with
        nothing.  Returns False when the root moved meanwhile (nothing changed then
        but new unreferenced tables, which ``gc`` removes).
        """
        def put(domain: str) -> None:
            data = tables[domain].encode()
            self._put(self._key(TABLES + root.domains[domain]), data)
            self._write_cache(self._cache_file(root.domains[domain]), data)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, sorted(tables)))
        data = root.encode()
        if not self._put_ref(self._key(ROOT_KEY), data, version):
            return False
        # its new version, for the next conditional read: from the write's answer, else read back
        got = (data, self.last_put_version) if self.last_put_version else self._get(self._key(ROOT_KEY), MAX_TABLE)
        if got is not None and got[0] == data:
            self._cache_root(data, got[1])
        return True

    def read_ref_objects(self) -> tuple[dict[Ref, ObjectID], dict[Ref, str]]:
        """The refs of format 1 (one object per ref) and their versions (names and values are checked by the caller).

        Only ``refs/cas/``: anything else under the prefix is not ours to read.
        """
        keys = [key for key, _ in self._list("refs/cas/")]
        base = len(self._key(""))

        def one(key: str) -> tuple[Ref, ObjectID, str] | None:
            got = self._get(key, 100)
            if got is None:
                return None  # deleted since the listing
            return Ref(key[base:].encode()), ObjectID(got[0].strip()), got[1]

        refs: dict[Ref, ObjectID] = {}
        versions: dict[Ref, str] = {}
        with ThreadPoolExecutor(8) as pool:
            for item in pool.map(one, keys):
                if item is not None:
                    refs[item[0]], versions[item[0]] = item[1], item[2]
        return refs, versions

    def _root_moved(self, version: str | None) -> bool:
        """Whether the root's version is no longer ``version`` (another writer or a gc swapped it)."""
        return version is not None and self.read_root(fresh=True)[1] != version
