"""Ref tables: how a format-2 bucket remote holds its refs (see docs/format.md).

A format-1 bucket holds one object per ref, so reading the refs costs one
request per model.  Format 2 holds them in tables::

    <prefix>/reftable/root                the root: the states ref, and for each
                                          domain the digest of its table
    <prefix>/reftable/domains/<digest>    one domain's table: its history head and
                                          its model refs; immutable, named by the
                                          SHA-256 of its bytes

Every change of refs writes the new tables of the domains it touches (new
objects: nothing to race on), then replaces the root with a compare-and-swap
on the version it was read with.  The root is the one object every writer
swaps, so the service's conditional write decides between racing clients:
exactly one of several clients creating the same model ID wins, as with one
object per ref.  A domain's table is read only when the root names a digest
this client has not cached: an unchanged domain costs no request, an unchanged
root one conditional request that sends no body.

This module is the tables' encoding alone: text, one entry per line, sorted,
every name and id checked when read (a bucket is not trusted).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from dulwich.objects import ObjectID

from ..errors import CorruptObjectError, InvalidIdError
from ..util.names import check_domain, check_model_id

ROOT_KEY = "reftable/root"
TABLES = "reftable/domains/"
ROOT_HEADER = "casstore-reftable-root 1"
TABLE_HEADER = "casstore-reftable 1"
#: largest root or domain table read: 128 bytes a domain or a model, for millions of them
MAX_TABLE = 512 << 20

_HEX = frozenset("0123456789abcdef")


def digest(data: bytes) -> str:
    """The name of a domain table: the SHA-256 of its bytes, in hex."""
    return hashlib.sha256(data).hexdigest()


def _oid(text: str, where: str) -> ObjectID:
    if len(text) != 40 or not _HEX.issuperset(text):
        raise CorruptObjectError(where, f"not an object id: {text[:60]!r}")
    return ObjectID(text.encode())


def _lines(data: bytes, header: str, where: str) -> list[list[str]]:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise CorruptObjectError(where, "a ref table holds non-ASCII bytes") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines or lines[0].split(" ")[:2] != header.split(" "):
        raise CorruptObjectError(where, f"not a ref table (expected {header!r})")
    return [line.split(" ") for line in lines[1:]]


@dataclass
class DomainTable:
    """One domain's refs: its history head and its model refs."""

    domain: str
    history: ObjectID | None = None
    models: dict[str, ObjectID] = field(default_factory=dict)

    def empty(self) -> bool:
        return self.history is None and not self.models

    def encode(self) -> bytes:
        out = [f"{TABLE_HEADER} {self.domain}"]
        if self.history is not None:
            out.append(f"history {self.history.decode()}")
        out.extend(f"model {mid} {sha.decode()}" for mid, sha in sorted(self.models.items()))
        return ("\n".join(out) + "\n").encode()

    @classmethod
    def decode(cls, data: bytes, domain: str, where: str) -> DomainTable:
        """Parse a table read from ``where``, which the root says is ``domain``'s.

        Raises:
            CorruptObjectError: not a table, a bad line, or another domain's table.
        """
        rows = _lines(data, TABLE_HEADER, where)
        first = data.split(b"\n", 1)[0].decode("ascii").split(" ")
        if first[2:] != [domain]:
            raise CorruptObjectError(where, f"the root names this table for domain {domain!r}, it says {first[2:]}")
        table = cls(domain)
        try:
            for row in rows:
                if row[0] == "history" and len(row) == 2 and table.history is None:
                    table.history = _oid(row[1], where)
                elif row[0] == "model" and len(row) == 3 and row[1] not in table.models:
                    table.models[check_model_id(row[1])] = _oid(row[2], where)
                else:
                    raise CorruptObjectError(where, f"bad ref table line: {' '.join(row)[:80]!r}")
        except InvalidIdError as e:
            raise CorruptObjectError(where, f"bad ref name in a ref table: {e}") from None
        return table


@dataclass
class RootTable:
    """The store-wide root: the states ref and the digest of each domain's table."""

    states: ObjectID | None = None
    domains: dict[str, str] = field(default_factory=dict)
    #: bumped by every ``cas gc`` of the bucket before it deletes anything: a push that read
    #: the root before starts again (the objects it counted on may be gone)
    gc: int = 0

    def encode(self) -> bytes:
        out = [ROOT_HEADER]
        if self.gc:
            out.append(f"gc {self.gc}")
        if self.states is not None:
            out.append(f"states {self.states.decode()}")
        out.extend(f"domain {d} {h}" for d, h in sorted(self.domains.items()))
        return ("\n".join(out) + "\n").encode()

    @classmethod
    def decode(cls, data: bytes, where: str) -> RootTable:
        """Parse the root.

        Raises:
            CorruptObjectError: not a root, or a bad line.
        """
        root = cls()
        try:
            for row in _lines(data, ROOT_HEADER, where):
                if row[0] == "states" and len(row) == 2 and root.states is None:
                    root.states = _oid(row[1], where)
                elif row[0] == "gc" and len(row) == 2 and row[1].isdigit() and len(row[1]) < 19 and not root.gc:
                    root.gc = int(row[1])
                elif (row[0] == "domain" and len(row) == 3 and row[1] not in root.domains
                      and len(row[2]) == 64 and _HEX.issuperset(row[2])):
                    root.domains[check_domain(row[1])] = row[2]
                else:
                    raise CorruptObjectError(where, f"bad ref table line: {' '.join(row)[:80]!r}")
        except InvalidIdError as e:
            raise CorruptObjectError(where, f"bad ref name in the root table: {e}") from None
        return root
