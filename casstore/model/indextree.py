"""The ``models`` tree of a domain index: leaves that split past a bound.

A history commit's ``models`` tree maps model IDs to model commits (gitlinks).
Its shape (docs/format.md, "Index layout") keeps the bytes one event writes
bounded however large the domain grows:

* every ID has a **key**, 10 lowercase hex digits (``key_of``);
* a **node** at prefix ``P`` (the hex digits of the directory names from
  ``models`` down to it, concatenated) is a *leaf* holding its IDs as gitlinks,
  or *internal*, holding one subtree per next digit of its IDs' keys;
* the shape casstore writes is a function of the set of IDs: a node holding at
  most ``LEAF_MAX`` IDs (or at prefix length ``KEY_DIGITS``) is a leaf, a larger
  one is split 16 ways by digit ``len(P)`` of the key.  Adding an ID splits the
  one leaf that passes the bound; deleting one joins the node whose leaves fall
  back under it.  An event rewrites the trees on one root-to-leaf path: 16
  entries per level, at most ``LEAF_MAX`` in the leaf.

Readers follow whatever shape a tree has, as long as each ID sits on its own
key's path: a gitlink ``models/<d1>/.../<dk>/<id>`` is valid when
``d1 + ... + dk`` is a prefix of ``key_of(id)``, each ``di`` being 1 or 2 hex
digits.  That rule also holds for the layouts older casstore wrote, which are
therefore read as they are: the flat one (``models/<id>``, k = 0) and the
256-shard one (``models/<xx>/<id>``, ``xx`` = the key's first two digits, which
are ``shard_of``).  The first write to a tree in another shape than the one
above (a 2-digit directory, a node with both gitlinks and subtrees) rewrites it
whole in that shape, once; a flat tree of at most ``LEAF_MAX`` IDs already is.

This module knows nothing of events or commits (history.py does).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterator, Mapping, MutableMapping

from dulwich.objects import ObjectID, Tree, parse_tree

from ..errors import CorruptObjectError
from ..objects.graph import GITLINK as GITLINK
from ..objects.odb import ObjectDB
from ..util.names import check_model_id

TREE = 0o040000

#: a node holding more IDs than this is split 16 ways (docs/format.md, "Index layout")
LEAF_MAX = 128
#: hex digits of an ID's key: the deepest prefix a node can have
KEY_DIGITS = 10

SHARD_MUL = 131
SHARD_MOD = 1000003
KEY_MOD = 4294967291  # the largest prime below 2**32
KEY_MIX = 40503
#: 131**(n-1-i) mod SHARD_MOD for the bytes i of an n-byte ID: the polynomial as one C-level sum
_POWS = [tuple(pow(SHARD_MUL, n - 1 - i, SHARD_MOD) for i in range(n)) for n in range(129)]
#: names.py's rule as one expression (fast path of reading a tree; check_model_id decides otherwise)
_VALID = re.compile(r"(?!\.)(?!.*\.\.)(?!.*\.\Z)(?!.*\.lock\Z)[A-Za-z0-9._-]{1,128}")
_HEX_NAMES = frozenset([f"{i:x}" for i in range(16)] + [f"{i:02x}" for i in range(256)])


def shard_of(model_id: str) -> str:
    """The first two hex digits of ``key_of(model_id)``: the 256-shard layout's directory."""
    h = 0
    for b in model_id.encode():
        h = (h * SHARD_MUL + b) % SHARD_MOD
    return f"{h % 256:02x}"


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
    if len(raw) < len(_POWS):
        h = sum(map(operator.mul, raw, _POWS[len(raw)])) % SHARD_MOD
    else:
        h = 0
        for b in raw:
            h = (h * SHARD_MUL + b) % SHARD_MOD
    x = ((int.from_bytes(raw, "big") % KEY_MOD) * KEY_MIX + h) % KEY_MOD
    return f"{h % 256:02x}" + f"{x:08x}"[::-1]


class _Node:
    """One tree of the ``models`` tree, as read (``tree_id``) or as changed (``tree_id`` None)."""

    __slots__ = ("tree_id", "links", "subs")

    def __init__(self, tree_id: ObjectID | None = None) -> None:
        self.tree_id = tree_id
        self.links: dict[str, ObjectID] = {}
        self.subs: dict[str, _Node | ObjectID] = {}


def _parse(odb: ObjectDB, tree_id: ObjectID, prefix: str) -> _Node:
    """Read and check the node at ``prefix``: every gitlink on its own key's path.

    Parses the raw tree (no dulwich Tree object): a full read of a big index
    reads thousands of small trees, and this is most of its time.
    """
    type_num, raw = odb.read_raw(tree_id)
    if type_num != Tree.type_num:
        raise CorruptObjectError(tree_id.decode(), "is not a tree, in domain index")
    try:
        entries = parse_tree(raw, 20)
    except Exception as e:  # dulwich raises a zoo of parse errors
        raise CorruptObjectError(tree_id.decode(), f"does not parse: {e}") from None
    node = _Node(tree_id)
    want = _prefix_test(prefix)
    for path, mode, sha in entries:
        name = path.decode("utf-8", "replace")
        if mode == TREE and name in _HEX_NAMES and len(prefix) + len(name) <= KEY_DIGITS:
            node.subs[name] = ObjectID(sha)
        elif mode == GITLINK:
            mid = name if _VALID.fullmatch(name) else check_model_id(name)
            if want is not None and not _on_path(mid, want):
                raise CorruptObjectError(tree_id.decode(), f"model {mid} is filed under a directory of key "
                                         f"{prefix!r}, not on the path of its key {key_of(mid)}, in domain index")
            node.links[mid] = ObjectID(sha)
        else:
            raise CorruptObjectError(tree_id.decode(), f"unexpected entry {path!r} in domain index")
    return node


def _prefix_test(prefix: str) -> tuple[int, int, int, int] | None:
    """What ``_on_path`` compares for keys starting with ``prefix`` (None: any key does)."""
    if not prefix:
        return None
    shard = prefix[:2]
    low = prefix[2:][::-1]  # key digits 3.. are x's hex digits, least significant first
    return (int(shard, 16), 256 if len(shard) == 2 else 16, int(low, 16) if low else 0, (1 << 4 * len(low)) - 1)


def _on_path(mid: str, want: tuple[int, int, int, int]) -> bool:
    """``key_of(mid).startswith(prefix)``, from ``_prefix_test(prefix)``, without formatting the key."""
    shard, width, low, mask = want
    raw = mid.encode()
    h: int
    if len(raw) < len(_POWS):
        h = sum(map(operator.mul, raw, _POWS[len(raw)])) % SHARD_MOD
    else:
        h = 0
        for b in raw:
            h = (h * SHARD_MUL + b) % SHARD_MOD
    if (h % 256 if width == 256 else (h % 256) >> 4) != shard:
        return False
    if not mask:
        return True
    x: int = ((int.from_bytes(raw, "big") % KEY_MOD) * KEY_MIX + h) % KEY_MOD
    return (x & mask) == low


def _regular(node: _Node) -> bool:
    """Whether the node has the shape writers keep: a leaf, or an internal node of 1-digit subtrees."""
    return not (node.links and node.subs) and all(len(n) == 1 for n in node.subs)


class ShardedModels(MutableMapping[str, ObjectID]):
    """``models/`` of a domain index (model ID -> model commit), read one path at a time.

    Looking up, adding or removing one ID reads only the trees on its key's path;
    ``to_tree`` writes only the trees that changed (that path) and reuses every
    other tree id.  Iterating reads every tree.  Trees of an older layout are
    read as they are; the first change rewrites them whole (``legacy``).
    """

    def __init__(self, odb: ObjectDB, tree_id: ObjectID | None) -> None:
        self._odb = odb
        #: the ``models`` tree this was read from
        self.tree_id = tree_id
        self._root = _Node() if tree_id is None else _parse(odb, tree_id, "")
        #: read from a tree not in the current shape (an older layout): the next write converts it
        self.legacy = not _regular(self._root)

    # -- reading ------------------------------------------------------------

    def _child(self, node: _Node, name: str, prefix: str) -> _Node:
        sub = node.subs[name]
        if isinstance(sub, _Node):
            return sub
        child = _parse(self._odb, sub, prefix + name)
        node.subs[name] = child
        return child

    def _find(self, node: _Node, prefix: str, mid: str, key: str) -> ObjectID | None:
        if mid in node.links:
            return node.links[mid]
        for width in (1, 2):
            name = key[len(prefix):len(prefix) + width]
            if len(name) == width and name in node.subs:
                found = self._find(self._child(node, name, prefix), prefix + name, mid, key)
                if found is not None:
                    return found
        return None

    def _walk(self, node: _Node, prefix: str) -> Iterator[tuple[str, ObjectID]]:
        stack = [(node, prefix)]
        while stack:
            node, prefix = stack.pop()
            yield from node.links.items()
            for name in sorted(node.subs, reverse=True):
                stack.append((self._child(node, name, prefix), prefix + name))

    def load_all(self) -> None:
        """Read (and so check) every tree now; an ID listed twice makes the index corrupt."""
        seen: set[str] = set()
        count = 0
        for mid, _ in self._walk(self._root, ""):
            seen.add(mid)
            count += 1
            if len(seen) != count:
                raise CorruptObjectError(str(self._root.tree_id), f"model {mid} is listed twice in domain index")

    def __getitem__(self, mid: str) -> ObjectID:
        found = self._find(self._root, "", mid, key_of(mid)) if isinstance(mid, str) else None
        if found is None:
            raise KeyError(mid)
        return found

    def __contains__(self, mid: object) -> bool:
        return isinstance(mid, str) and self._find(self._root, "", mid, key_of(mid)) is not None

    def __iter__(self) -> Iterator[str]:
        for mid, _ in list(self._walk(self._root, "")):
            yield mid

    def __len__(self) -> int:
        return sum(1 for _ in self._walk(self._root, ""))

    # -- writing ------------------------------------------------------------

    def _convert(self) -> None:
        """Rebuild the whole tree in the current shape (a tree of an older layout, once)."""
        items: dict[str, ObjectID] = {}
        for mid, sha in self._walk(self._root, ""):
            if mid in items:
                raise CorruptObjectError(str(self._root.tree_id), f"model {mid} is listed twice in domain index")
            items[mid] = sha
        self._root = _build(items, "")
        self.legacy = False

    def _path(self, key: str) -> list[tuple[_Node, str]]:
        """The nodes from the root down to the leaf of ``key`` (created empty if missing), with their prefixes."""
        if self.legacy:
            self._convert()
        node, prefix = self._root, ""
        path = [(node, prefix)]
        while node.subs:
            name = key[len(prefix)]
            if name in node.subs:
                node = self._child(node, name, prefix)
            else:
                node.subs[name] = node = _Node()
            prefix += name
            if not _regular(node):
                self._convert()
                return self._path(key)
            path.append((node, prefix))
        return path

    def __setitem__(self, mid: str, sha: ObjectID) -> None:
        key = key_of(mid)
        path = self._path(key)
        for node, _ in path:
            node.tree_id = None
        leaf, prefix = path[-1]
        leaf.links[mid] = sha
        if len(leaf.links) > LEAF_MAX and len(prefix) < KEY_DIGITS:
            split = _build(leaf.links, prefix)
            leaf.links, leaf.subs = split.links, split.subs

    def __delitem__(self, mid: str) -> None:
        key = key_of(mid)
        if self._find(self._root, "", mid, key) is None:
            raise KeyError(mid)
        path = self._path(key)
        leaf, _ = path[-1]
        del leaf.links[mid]
        for node, _ in path:
            node.tree_id = None
        # back up the path: drop empty nodes, join a node whose leaves fit in one again
        for depth in range(len(path) - 1, 0, -1):
            node, prefix = path[depth]
            parent, _ = path[depth - 1]
            if not node.links and not node.subs:
                del parent.subs[prefix[-1]]
        for depth in range(len(path) - 2, -1, -1):
            node, prefix = path[depth]
            joined = self._joined(node, prefix)
            if joined is None:
                break
            node.links, node.subs = joined, {}

    def _joined(self, node: _Node, prefix: str) -> dict[str, ObjectID] | None:
        """The IDs of an internal node if its subtrees are leaves holding at most LEAF_MAX in all."""
        if not node.subs:
            return None
        out: dict[str, ObjectID] = {}
        for name in sorted(node.subs):
            child = self._child(node, name, prefix)
            if child.subs:
                return None
            out.update(child.links)
            if len(out) > LEAF_MAX:
                return None
        return out

    def reshape(self) -> None:
        """Rebuild the whole tree in the current shape now (``cas convert-layout``): reads every tree."""
        self._convert()

    def to_tree(self, odb: ObjectDB) -> ObjectID | None:
        """The ``models`` tree (None when empty), writing only the trees that changed."""
        if self.legacy:
            self._convert()  # a tree read in an older layout is written in the current one
        return _write(odb, self._root)


def _build(items: Mapping[str, ObjectID], prefix: str, keys: Mapping[str, str] | None = None) -> _Node:
    """The node at ``prefix`` holding ``items`` (whose keys start with ``prefix``), in the current shape.

    ``keys``: the items' keys, if known (computed once for a whole tree, not per level).
    """
    node = _Node()
    if len(items) <= LEAF_MAX or len(prefix) >= KEY_DIGITS:
        node.links = dict(items)
        return node
    if keys is None:
        keys = {mid: key_of(mid) for mid in items}
    groups: dict[str, dict[str, ObjectID]] = {}
    at = len(prefix)
    for mid, sha in items.items():
        groups.setdefault(keys[mid][at], {})[mid] = sha
    for digit, members in sorted(groups.items()):
        node.subs[digit] = _build(members, prefix + digit, keys)
    return node


def _write(odb: ObjectDB, node: _Node) -> ObjectID | None:
    """Write the changed trees under ``node``, children first; None for an empty node."""
    if node.tree_id is not None:
        return node.tree_id
    t = Tree()
    for mid, sha in node.links.items():
        t.add(mid.encode(), GITLINK, sha)
    for name, sub in node.subs.items():
        sub_id = _write(odb, sub) if isinstance(sub, _Node) else sub
        if sub_id is not None:
            t.add(name.encode(), TREE, sub_id)
    if not t.items():
        return None
    node.tree_id = odb.write_loose(t)
    return node.tree_id


def models_tree(odb: ObjectDB, models: Mapping[str, ObjectID], base: ObjectID | None = None) -> ObjectID | None:
    """The ``models`` tree of ``models`` (None when empty), in the current shape.

    ``base``: a ``models`` tree that holds nearly the same IDs (a merge's parent).
    The result is then written as ``base`` changed entry by entry: the same tree
    (the shape depends on the IDs only) with only the changed paths written,
    instead of every tree of the index.
    """
    if isinstance(models, ShardedModels):
        return models.to_tree(odb)
    if base is not None:
        tree = ShardedModels(odb, base)
        if not tree.legacy:
            have = dict(tree.items())
            for mid in have.keys() - models.keys():
                del tree[mid]
            for mid, sha in models.items():
                if have.get(mid) != sha:
                    tree[mid] = sha
            return tree.to_tree(odb)
    return _write(odb, _build(models, ""))


def check_models_tree(odb: ObjectDB, tree_id: ObjectID, checked: set[ObjectID]) -> None:
    """Check every tree under ``models`` (``_parse``'s rule), skipping those in ``checked``.

    ``checked`` holds ``<prefix>:<tree id>`` of the trees already checked (a tree
    is valid at one prefix, not at every one); the ones checked now are added.

    Raises:
        CorruptObjectError: an entry that breaks the layout's rule.
    """
    stack = [("", tree_id)]
    while stack:
        prefix, tid = stack.pop()
        mark = ObjectID(prefix.encode() + b":" + tid)
        if mark in checked:
            continue
        node = _parse(odb, tid, prefix)
        checked.add(mark)
        stack.extend((prefix + name, sub) for name, sub in node.subs.items() if not isinstance(sub, _Node))
