"""The ``models`` tree of a domain index: leaves that split past a bound.

Over 500 lines because reading, writing, diffing and checking the tree share its private
node type and parser; the ID keys live apart in indexkeys.py.

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

This module knows nothing of events or commits (history/ does); the keys and
their checks are indexkeys.py's.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, MutableMapping
from typing import cast

from dulwich.objects import ObjectID, Tree, parse_tree

from ..errors import CorruptObjectError
from ..objects.bulkread import read_trees as read_trees
from ..objects.graph import GITLINK as GITLINK
from ..objects.odb import ObjectDB
from ..util.names import check_model_id
from .indexkeys import KEY_MIX as KEY_MIX
from .indexkeys import KEY_MOD as KEY_MOD
from .indexkeys import SHARD_MOD as SHARD_MOD
from .indexkeys import SHARD_MUL as SHARD_MUL
from .indexkeys import VALID, VALID_LINES, check_keys, off_path, on_path, prefix_test
from .indexkeys import key_of as key_of
from .indexkeys import shard_of as shard_of

TREE = 0o040000

#: a node holding more IDs than this is split 16 ways (docs/format.md, "Index layout")
LEAF_MAX = 128
#: hex digits of an ID's key: the deepest prefix a node can have
KEY_DIGITS = 10

_HEX_NAMES = frozenset([f"{i:x}" for i in range(16)] + [f"{i:02x}" for i in range(256)])


class _Node:
    """One tree of the ``models`` tree, as read (``tree_id``) or as changed (``tree_id`` None)."""

    __slots__ = ("tree_id", "links", "subs")

    def __init__(self, tree_id: ObjectID | None = None) -> None:
        self.tree_id = tree_id
        self.links: dict[str, ObjectID] = {}
        self.subs: dict[str, _Node | ObjectID] = {}


def _parse(odb: ObjectDB, tree_id: ObjectID, prefix: str) -> _Node:
    """Read and check the node at ``prefix``: every gitlink on its own key's path."""
    type_num, raw = odb.read_raw(tree_id)
    if type_num != Tree.type_num:
        raise CorruptObjectError(tree_id.decode(), "is not a tree, in domain index")
    node = _node_of(tree_id, raw, prefix)
    want = prefix_test(prefix)
    if want is not None:
        for mid in node.links:
            if not on_path(mid, want):
                raise off_path(tree_id, prefix, mid)
    return node


def _node_of(tree_id: ObjectID, raw: bytes, prefix: str) -> _Node:
    """The node at ``prefix`` of the raw tree ``raw``, its names checked, not yet its gitlinks' keys.

    Parses the raw tree (no dulwich Tree object): a full read of a big index
    parses tens of thousands of small trees.  A leaf's names are checked by one
    regular expression over all of them (names.py's rule decides when it fails).
    """
    try:
        entries = list(parse_tree(raw, 20))
    except Exception as e:  # dulwich raises a zoo of parse errors
        raise CorruptObjectError(tree_id.decode(), f"does not parse: {e}") from None
    node = _Node(tree_id)
    if entries:
        names, modes, shas = zip(*entries, strict=True)
        if modes.count(GITLINK) == len(modes):
            joined = b"\n".join(names)
            if VALID_LINES.fullmatch(joined + b"\n"):
                # ASCII names: the expression allows nothing else
                node.links = dict(zip(joined.decode("ascii").split("\n"), cast("tuple[ObjectID, ...]", shas),
                                      strict=True))
                if len(node.links) == len(entries):
                    return node
                node.links = {}  # an ID listed twice: the loop below names it
    for path, mode, sha in entries:
        name = path.decode("utf-8", "replace")
        if mode == TREE and name in _HEX_NAMES and len(prefix) + len(name) <= KEY_DIGITS:
            node.subs[name] = ObjectID(sha)
        elif mode == GITLINK:
            mid = name if VALID.fullmatch(name) else check_model_id(name)
            if mid in node.links:
                raise CorruptObjectError(tree_id.decode(), f"model {mid} is listed twice in domain index")
            node.links[mid] = ObjectID(sha)
        else:
            raise CorruptObjectError(tree_id.decode(), f"unexpected entry {path!r} in domain index")
    return node


def _regular(node: _Node) -> bool:
    """Whether the node has the shape writers keep: a leaf, or an internal node of 1-digit subtrees."""
    return not (node.links and node.subs) and all(len(n) == 1 for n in node.subs)


def _disjoint(node: _Node) -> bool:
    """Whether no two of the node's children can hold the same ID: subtree names of one length, no gitlinks beside."""
    return not (node.links and node.subs) and len({len(n) for n in node.subs}) <= 1


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

    def _read_all(self) -> None:
        """Read and check every tree not read yet, a level of the tree at a time.

        Each level's trees are read in one pass over the packs (``read_trees``)
        and their gitlinks' keys checked in one vectorised step (``_check_keys``):
        the per-tree and per-ID costs of reading 1,000,000 IDs one path at a time
        are most of a full read otherwise.
        """
        level = [(self._root, "")]
        while level:
            want: list[tuple[_Node, str, str, ObjectID]] = []
            deeper: list[tuple[_Node, str]] = []
            for node, prefix in level:
                for name, sub in node.subs.items():
                    if isinstance(sub, _Node):
                        deeper.append((sub, prefix + name))
                    else:
                        want.append((node, name, prefix + name, sub))
            fresh: list[tuple[_Node, str]] = []
            for (node, name, prefix, tid), raw in zip(want, read_trees(self._odb, [w[3] for w in want]),
                                                      strict=True):
                child = _node_of(tid, raw, prefix)
                node.subs[name] = child
                fresh.append((child, prefix))
            check_keys([(node.tree_id, node.links, prefix) for node, prefix in fresh])
            level = fresh + deeper

    def _nodes(self) -> Iterator[_Node]:
        """Every node, after ``_read_all``."""
        stack = [self._root]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(cast("list[_Node]", list(node.subs.values())))

    def load_all(self) -> None:
        """Read (and so check) every tree now; an ID listed twice makes the index corrupt."""
        self._read_all()
        if all(_disjoint(node) for node in self._nodes()):
            return  # each ID on its key's path, under prefixes that never overlap: no ID twice
        seen: set[str] = set()
        for mid, _ in self._walk(self._root, ""):
            if mid in seen:
                raise CorruptObjectError(str(self._root.tree_id), f"model {mid} is listed twice in domain index")
            seen.add(mid)

    def __getitem__(self, mid: str) -> ObjectID:
        found = self._find(self._root, "", mid, key_of(mid)) if isinstance(mid, str) else None
        if found is None:
            raise KeyError(mid)
        return found

    def __contains__(self, mid: object) -> bool:
        return isinstance(mid, str) and self._find(self._root, "", mid, key_of(mid)) is not None

    def __iter__(self) -> Iterator[str]:
        self._read_all()
        for mid, _ in list(self._walk(self._root, "")):
            yield mid

    def __len__(self) -> int:
        self._read_all()
        return sum(len(node.links) for node in self._nodes())

    def items(self) -> ItemsView[str, ObjectID]:
        """(ID, commit) pairs, read by walking the trees (not one lookup per ID)."""
        return _Items(self)

    def to_dict(self) -> dict[str, ObjectID]:
        """Every (ID, commit) as a dict, reading every tree first: one ``update`` per leaf."""
        self._read_all()
        out: dict[str, ObjectID] = {}
        for node in self._nodes():
            out.update(node.links)
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self.to_dict() == (other.to_dict() if isinstance(other, ShardedModels) else dict(other.items()))

    def walk_items(self) -> Iterator[tuple[str, ObjectID]]:
        """Every (ID, commit), reading every tree first (``_read_all``)."""
        self._read_all()
        return iter(list(self._walk(self._root, "")))

    # -- writing ------------------------------------------------------------

    def _convert(self) -> None:
        """Rebuild the whole tree in the current shape (a tree of an older layout, once)."""
        items: dict[str, ObjectID] = {}
        self._read_all()
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


class _Items(ItemsView[str, ObjectID]):
    """``ShardedModels.items()``: iterating walks the trees once."""

    _mapping: ShardedModels

    def __iter__(self) -> Iterator[tuple[str, ObjectID]]:
        return self._mapping.walk_items()


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
    instead of every tree of the index.  That still reads ``base`` whole to find
    what changed; ``apply_changes`` reads only the changed paths.
    """
    if isinstance(models, ShardedModels):
        return models.to_tree(odb)
    if base is not None:
        tree = ShardedModels(odb, base)
        if not tree.legacy:
            have = tree.to_dict()
            for mid in have.keys() - models.keys():
                del tree[mid]
            for mid, sha in models.items() - have.items():  # set operations: in C for dicts
                tree[mid] = sha
            return tree.to_tree(odb)
    return _write(odb, _build(models, ""))


class StaleBase(Exception):
    """``apply_changes``: the base tree does not hold what a change says it replaces."""


def apply_changes(odb: ObjectDB, base: ObjectID | None,
                  changes: Mapping[str, tuple[ObjectID | None, ObjectID | None]]) -> ObjectID | None:
    """``base`` (a ``models`` tree) with each ID's ``(old, new)`` change made: new None deletes it.

    Reads only the trees on the changed IDs' paths (a merge of 1,000,000 models
    where a handful differ), and writes the same tree a full write of the
    resulting IDs would (the shape depends on the IDs only; a base of an older
    layout is read whole and converted, once).

    Raises:
        StaleBase: ``base`` holds another commit than ``old`` for an ID (nothing
            is written: the caller writes the index whole instead).
    """
    tree = ShardedModels(odb, base)
    for mid in sorted(changes):
        old, new = changes[mid]
        if tree.get(mid) != old:
            raise StaleBase(mid)
        if new is None:
            del tree[mid]
        else:
            tree[mid] = new
    return tree.to_tree(odb)


def diff_models(odb: ObjectDB, a: ObjectID | None,
                b: ObjectID | None) -> dict[str, tuple[ObjectID | None, ObjectID | None]]:
    """The IDs whose commit differs between two ``models`` trees: ID -> (in ``a``, in ``b``), None when absent.

    Walks both trees together and skips every subtree with the same id on both
    sides: reads the trees on the paths that differ, not the index (a subtree
    whose shape differs, a leaf against its split, is read whole).
    """
    out: dict[str, tuple[ObjectID | None, ObjectID | None]] = {}
    stack = [(a, b, "")]
    while stack:
        ta, tb, prefix = stack.pop()
        if ta == tb:
            continue
        na = _Node() if ta is None else _parse(odb, ta, prefix)
        nb = _Node() if tb is None else _parse(odb, tb, prefix)
        if not na.links and not nb.links and _regular(na) and _regular(nb):
            for name in set(na.subs) | set(nb.subs):
                stack.append((cast("ObjectID | None", na.subs.get(name)), cast("ObjectID | None", nb.subs.get(name)),
                              prefix + name))
            continue
        la, lb = _links_under(odb, na, prefix), _links_under(odb, nb, prefix)
        out.update((mid, (la.get(mid), lb.get(mid))) for mid in la.keys() | lb.keys() if la.get(mid) != lb.get(mid))
    return out


def _links_under(odb: ObjectDB, node: _Node, prefix: str) -> dict[str, ObjectID]:
    """Every gitlink under ``node`` (read at ``prefix``), each tree read and checked at its own prefix."""
    out = dict(node.links)
    stack = [(cast(ObjectID, sub), prefix + name) for name, sub in node.subs.items()]
    while stack:
        tid, at = stack.pop()
        child = _parse(odb, tid, at)
        out.update(child.links)
        stack.extend((cast(ObjectID, sub), at + name) for name, sub in child.subs.items())
    return out


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
