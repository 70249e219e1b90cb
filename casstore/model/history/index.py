"""The domain index of a history commit: ``models`` and ``states`` (read, checked, written).

The tree's layout is the package docstring's; ``models`` is indextree.py's tree of leaves.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

from dulwich.objects import Commit, ObjectID, Tree

from ...errors import CorruptObjectError
from ...objects.odb import ObjectDB
from ...util.names import check_model_id, check_state
from ..indextree import GITLINK, TREE, ShardedModels, StaleBase, apply_changes, check_models_tree, models_tree

#: model ID -> (commit before, commit after; None: absent): what a merge changed of one side's models
Changes = dict[str, tuple[ObjectID | None, ObjectID | None]]


def _read_gitlinks(odb: ObjectDB, tree_id: ObjectID) -> dict[str, ObjectID]:
    """The gitlinks of one state's tree of the index."""
    t = odb.read(tree_id, Tree)
    assert isinstance(t, Tree)
    out: dict[str, ObjectID] = {}
    for entry in t.iteritems():
        if entry.mode != GITLINK:
            raise CorruptObjectError(tree_id.decode(), f"unexpected entry {entry.path!r} in domain index")
        out[check_model_id(entry.path.decode())] = entry.sha
    return out


def _gitlink_tree(members: Mapping[str, ObjectID]) -> Tree:
    t = Tree()
    for mid, sha in members.items():
        t.add(mid.encode(), GITLINK, sha)
    return t


@dataclass
class DomainIndex:
    """The domain index of one history commit: ``models`` and ``states``.

    ``models`` is a :class:`ShardedModels` when read from a history (lazy, per
    key path) or any mapping when built by a caller (merge); ``to_tree`` writes
    the current layout either way.
    """

    models: MutableMapping[str, ObjectID] = field(default_factory=dict)  # id -> hex commit
    states: dict[str, dict[str, ObjectID]] = field(default_factory=dict)  # state -> id -> hex
    #: (history commit, changes): ``models`` is that commit's models with these changes made (a
    #: merge's result, from what it merged: ``to_tree`` then reads only the changed paths)
    changed_from: tuple[ObjectID, Changes] | None = field(default=None, compare=False, repr=False)

    def to_tree(self, odb: ObjectDB, base: ObjectID | None = None) -> ObjectID:
        """Write the index; ``base``: a history commit whose index is nearly this one (a merge's parent).

        With ``changed_from``, the ``models`` tree is that commit's with the
        changes made (``apply_changes``: the trees on the changed paths are read,
        no other), whatever ``base`` is: the tree depends on the IDs only.  Else,
        with ``base``, a ``models`` mapping that is not read from a history is
        written as the changes to ``base``'s tree (which reads it whole): the same
        tree, fewer writes.
        """
        root = Tree()
        models: ObjectID | None = None
        written = False
        if self.changed_from is not None:
            try:
                models, written = apply_changes(odb, _models_of(odb, self.changed_from[0]), self.changed_from[1]), True
            except StaleBase:  # not that commit's models after all: written from ``models``
                pass
        if not written:
            models = models_tree(odb, self.models, None if base is None else _models_of(odb, base))
        if models is not None:
            root.add(b"models", TREE, models)
        if any(self.states.values()):
            st = Tree()
            for state, members in self.states.items():
                if not members:
                    continue
                st.add(state.encode(), TREE, odb.write_loose(_gitlink_tree(members)))
            root.add(b"states", TREE, odb.write_loose(st))
        return odb.write_loose(root)


def _models_of(odb: ObjectDB, commit_id: ObjectID) -> ObjectID | None:
    """The ``models`` tree id of a history commit (None when it has none)."""
    c = odb.read(commit_id, Commit)
    assert isinstance(c, Commit)
    root = odb.read(c.tree, Tree)
    assert isinstance(root, Tree)
    for entry in root.iteritems():
        if entry.path == b"models" and entry.mode == TREE:
            return entry.sha
    return None


def read_index(odb: ObjectDB, commit_id: ObjectID | None, full: bool = False) -> DomainIndex:
    """The domain index at history commit ``commit_id`` (empty for None).

    Reads the root, ``models`` and ``states`` trees now and each tree under
    ``models`` when first used; ``full`` reads and checks every tree now.

    Raises:
        CorruptObjectError: an entry that is not of the index's shape (also
            raised later, by the access that reads a damaged tree).
    """
    idx = DomainIndex()
    if commit_id is None:
        return idx
    models, idx.states = _read_root(odb, commit_id)
    sharded = ShardedModels(odb, models)
    if full:
        sharded.load_all()
    idx.models = sharded
    return idx



def read_states(odb: ObjectDB, commit_id: ObjectID | None) -> dict[str, dict[str, ObjectID]]:
    """The ``states`` of the domain index at history commit ``commit_id`` (empty for None):
    ``read_index(...).states`` without reading the ``models`` tree, which in an older layout
    holds an entry per model.

    Raises:
        CorruptObjectError: an entry that is not of the index's shape.
    """
    return {} if commit_id is None else _read_root(odb, commit_id)[1]


def _read_root(odb: ObjectDB, commit_id: ObjectID) -> tuple[ObjectID | None, dict[str, dict[str, ObjectID]]]:
    """The root of the domain index at ``commit_id``: its ``models`` tree (not read) and its states."""
    c = odb.read(commit_id, Commit)
    assert isinstance(c, Commit)
    root = odb.read(c.tree, Tree)
    assert isinstance(root, Tree)
    models: ObjectID | None = None
    states: dict[str, dict[str, ObjectID]] = {}
    for entry in root.iteritems():
        if entry.path == b"models" and entry.mode == TREE:
            models = entry.sha
        elif entry.path == b"states" and entry.mode == TREE:
            st = odb.read(entry.sha, Tree)
            assert isinstance(st, Tree)
            for s in st.iteritems():
                if s.mode != TREE:
                    raise CorruptObjectError(entry.sha.decode(), f"unexpected entry {s.path!r} in domain index")
                states[check_state(s.path.decode())] = _read_gitlinks(odb, s.sha)
        else:
            raise CorruptObjectError(c.tree.decode(), f"unexpected entry {entry.path!r} in domain index")
    return models, states


def check_index(odb: ObjectDB, commit_id: ObjectID, checked: set[ObjectID]) -> None:
    """Check the shape of the domain index at ``commit_id`` (what ``read_index(full=True)`` checks).

    Trees already checked (marked in ``checked``) are skipped; the ones checked
    now are added.  Checking a chain of history commits (a pull) therefore reads
    each version of each tree of the index once, instead of every tree per commit.

    Raises:
        CorruptObjectError: an entry that is not of the index's shape.
    """
    c = odb.read(commit_id, Commit)
    assert isinstance(c, Commit)
    if c.tree in checked:
        return
    read_index(odb, commit_id)  # root, states and the models tree itself
    root = odb.read(c.tree, Tree)
    assert isinstance(root, Tree)
    for entry in root.iteritems():
        if entry.path == b"models":
            check_models_tree(odb, entry.sha, checked)
    checked.add(c.tree)
