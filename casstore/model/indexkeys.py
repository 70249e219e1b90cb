"""The keys that place model IDs in a domain index's ``models`` tree (indextree.py).

``key_of`` (10 hex digits per ID, recomputed by the server hook in awk) and the
checks that a gitlink sits on its key's path, one ID at a time (``on_path``)
or for many at once with numpy (``key_ints``, ``check_keys``); and the
expressions that check a tree's names.  Split out of indextree.py, which keeps
the tree's shape (split, join, write).
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Mapping, Sequence
from typing import cast

from dulwich.objects import ObjectID

from ..errors import CorruptObjectError
from ..util.lazy import numpy as np  # imported on first use (util/lazy.py)

SHARD_MUL = 131
SHARD_MOD = 1000003
KEY_MOD = 4294967291  # the largest prime below 2**32
KEY_MIX = 40503


@functools.cache
def _pows(n: int) -> tuple[int, ...]:
    """131**(n-1-i) mod SHARD_MOD for the bytes i of an n-byte ID: the polynomial as one C-level sum
    (made per length when first needed: all 128 lengths at import cost every `cas` process 3 ms)."""
    return tuple(pow(SHARD_MUL, n - 1 - i, SHARD_MOD) for i in range(n))


#: names.py's rule as one expression (fast path of reading a tree; check_model_id decides otherwise)
VALID = re.compile(r"(?!\.)(?!.*\.\.)(?!.*\.\Z)(?!.*\.lock\Z)[A-Za-z0-9._-]{1,128}")
#: ``VALID`` for many names at once, each followed by a newline (a leaf's names, joined)
VALID_LINES = re.compile(rb"(?:(?!\.)(?![^\n]*\.\.)(?![^\n]*\.\n)(?![^\n]*\.lock\n)[A-Za-z0-9._-]{1,128}\n)*")


def _poly(raw: bytes) -> int:
    """The polynomial hash of ``key_of`` (base SHARD_MUL modulo SHARD_MOD) of an ID's bytes:
    one dot product with the precomputed powers for IDs of up to 128 bytes."""
    h: int
    if len(raw) <= 128:
        h = sum(map(operator.mul, raw, _pows(len(raw)))) % SHARD_MOD
        return h
    h = 0
    for b in raw:
        h = (h * SHARD_MUL + b) % SHARD_MOD
    return h


def shard_of(model_id: str) -> str:
    """The first two hex digits of ``key_of(model_id)``: the 256-shard layout's directory."""
    return f"{_poly(model_id.encode()) % 256:02x}"


def key_of(model_id: str) -> str:
    """The ID's key: 10 lowercase hex digits that place it in the ``models`` tree.

    Digits 1-2 are ``shard_of`` (a polynomial hash, base 131 modulo 1000003, of
    the ID's bytes), so that the 256-shard layout of older stores follows the
    same rule.  Digits 3-10 come from ``x = (g * 40503 + h) mod p``, with ``g``
    the ID's bytes as a big-endian number modulo ``p = 4294967291`` and ``h`` the
    first hash before its ``mod 256``, written least significant hex digit
    first.  Not cryptographic (choosing IDs that share a key prefix gains
    nothing but a deeper leaf); simple so that the server hook (remote/hook.py)
    recomputes it in awk with exact integers below 2**53.
    """
    raw = model_id.encode()
    h = _poly(raw)
    x = ((int.from_bytes(raw, "big") % KEY_MOD) * KEY_MIX + h) % KEY_MOD
    return f"{h % 256:02x}" + f"{x:08x}"[::-1]


def off_path(tree_id: ObjectID, prefix: str, mid: str) -> CorruptObjectError:
    return CorruptObjectError(tree_id.decode(), f"model {mid} is filed under a directory of key {prefix!r}, "
                              f"not on the path of its key {key_of(mid)}, in domain index")


def key_ints(mids: Sequence[str]) -> np.ndarray:
    """``int(key_of(mid), 16)`` of every ID, computed with numpy (a full read checks 1,000,000 of them)."""
    raws = [m.encode() for m in mids]
    lens = np.fromiter(map(len, raws), dtype=np.int64, count=len(raws))
    order = np.argsort(lens, kind="stable")
    bounds = np.flatnonzero(np.diff(lens[order])) + 1
    h = np.zeros(len(raws), dtype=np.int64)
    g = np.zeros(len(raws), dtype=np.int64)
    for rows in np.split(order, bounds):  # the IDs of one length: a matrix of their bytes
        length = int(lens[rows[0]])
        mat = np.frombuffer(b"".join(map(raws.__getitem__, rows.tolist())), dtype=np.uint8)
        hh = np.zeros(len(rows), dtype=np.int64)
        gg = np.zeros(len(rows), dtype=np.int64)
        for col in mat.reshape(len(rows), length).T.astype(np.int64):
            hh = (hh * SHARD_MUL + col) % SHARD_MOD
            gg = (gg * 256 + col) % KEY_MOD
        h[rows] = hh
        g[rows] = gg
    x = (g * KEY_MIX + h) % KEY_MOD
    # x's 8 hex digits, least significant first: swap the nibbles of each byte, then the bytes
    x = ((x & 0x0F0F0F0F) << 4) | ((x >> 4) & 0x0F0F0F0F)
    x = ((x & 0xFF) << 24) | ((x & 0xFF00) << 8) | ((x >> 8) & 0xFF00) | ((x >> 24) & 0xFF)
    return ((h % 256) << 32) | x


def check_keys(nodes: Sequence[tuple[ObjectID | None, Mapping[str, ObjectID], str]]) -> None:
    """indextree's key rule for the gitlinks of many trees (tree id, gitlinks, prefix): each on its key's path.

    Raises:
        CorruptObjectError: naming the tree and the first ID off its path.
    """
    mids: list[str] = []
    wants: list[int] = []
    shifts: list[int] = []
    counts: list[int] = []
    owners: list[tuple[ObjectID | None, str]] = []
    for tree_id, links, prefix in nodes:
        if prefix and links:
            mids.extend(links)
            wants.append(int(prefix, 16))
            shifts.append(40 - 4 * len(prefix))  # keys are 10 hex digits: 40 bits
            counts.append(len(links))
            owners.append((tree_id, prefix))
    if not mids:
        return
    keys = key_ints(mids)
    bad = np.nonzero((keys >> np.repeat(np.array(shifts, dtype=np.int64), counts))
                     != np.repeat(np.array(wants, dtype=np.int64), counts))[0]
    if bad.size:
        first = int(bad[0])
        owner = int(np.searchsorted(np.cumsum(counts), first, side="right"))
        tree_id, prefix = owners[owner]
        raise off_path(cast(ObjectID, tree_id), prefix, mids[first])


def prefix_test(prefix: str) -> tuple[int, int, int, int] | None:
    """What ``on_path`` compares for keys starting with ``prefix`` (None: any key does)."""
    if not prefix:
        return None
    shard = prefix[:2]
    low = prefix[2:][::-1]  # key digits 3.. are x's hex digits, least significant first
    return (int(shard, 16), 256 if len(shard) == 2 else 16, int(low, 16) if low else 0, (1 << 4 * len(low)) - 1)


def on_path(mid: str, want: tuple[int, int, int, int]) -> bool:
    """``key_of(mid).startswith(prefix)``, from ``prefix_test(prefix)``, without formatting the key."""
    shard, width, low, mask = want
    raw = mid.encode()
    h = _poly(raw)
    if (h % 256 if width == 256 else (h % 256) >> 4) != shard:
        return False
    if not mask:
        return True
    x: int = ((int.from_bytes(raw, "big") % KEY_MOD) * KEY_MIX + h) % KEY_MOD
    return (x & mask) == low
