"""The store-wide list of model states (``production``, ``staging``, ...).

Which models are in which state is part of each domain's history (see
history/).  The *names* of the states live on ``refs/cas/states``: a chain of
commits whose tree holds one empty blob per state, so the list travels with push
and pull like everything else and concurrent edits are compare-and-swap.
"""

from __future__ import annotations

from collections.abc import Callable

from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.refs import Ref

from ..objects.odb import ObjectDB
from ..objects.refs import Refs
from ..util.names import check_state

STATES_REF = Ref(b"refs/cas/states")


def list_states(odb: ObjectDB, refs: Refs) -> set[str]:
    return states_at(odb, refs.get(STATES_REF))


def states_at(odb: ObjectDB, head: ObjectID | None) -> set[str]:
    """The state names recorded by a commit of ``refs/cas/states``."""
    if head is None:
        return set()
    c = odb.read(head, Commit)
    assert isinstance(c, Commit)
    t = odb.read(c.tree, Tree)
    assert isinstance(t, Tree)
    return {check_state(e.path.decode()) for e in t.iteritems()}


def update_states(odb: ObjectDB, refs: Refs, author: bytes, message: str,
                  change: Callable[[set[str]], bool]) -> bool:
    """Apply ``change`` to the set of state names; False from it means no-op."""
    while True:
        head = refs.get(STATES_REF)
        names = list_states(odb, refs) if head else set()
        if change(names) is False:
            return False
        new = write_states(odb, names, [head] if head else [], author, message)
        if refs.set_if_equals(STATES_REF, head, new):
            return True


def write_states(odb: ObjectDB, names: set[str], parents: list[ObjectID], author: bytes,
                 message: str) -> ObjectID:
    """A commit for ``refs/cas/states`` whose tree names ``names`` (one empty blob each)."""
    empty = odb.write_loose(Blob.from_string(b""))
    t = Tree()
    for n in sorted(names):
        t.add(n.encode(), 0o100644, empty)
    return odb.write_commit(odb.write_loose(t), parents, author, (message + "\n").encode())
