"""The object graph: what a git object refers to.

Every walk of the store (gc's mark, fsck's history check, push's and pull's
search for what the other side lacks) descends through :func:`children`, so
that they agree on what is reachable: a commit reaches its tree and parents, a
tree its subtrees and blobs, a tag the object it tags.  Gitlinks (tree entries
of mode :data:`GITLINK`, which the domain index uses to name model commits) are
never followed: git's own reachability does not follow them either, which is
why a history does not keep a deleted model alive (docs/format.md).
"""

from __future__ import annotations

from dulwich.objects import Commit, ObjectID, ShaFile, Tag, Tree

#: the tree entry mode of a gitlink (a "submodule": a commit named, not contained)
GITLINK = 0o160000
#: the tree entry mode bit of a subtree
TREE_BIT = 0o040000
#: git object type numbers by name (as in pack entry headers)
TYPE_NUMS = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}


def children(obj: ShaFile) -> tuple[list[ObjectID], list[ObjectID]]:
    """(objects to read to go on, blobs) that ``obj`` refers to, as hex ids.

    The first list holds a commit's tree and parents, a tree's subtrees, a tag's
    target (of any type); the second a tree's blobs, which a walk need not read.
    Gitlinks are left out.  A blob has no children.
    """
    if isinstance(obj, Commit):
        return [obj.tree, *obj.parents], []
    if isinstance(obj, Tree):
        inner: list[ObjectID] = []
        blobs: list[ObjectID] = []
        for e in obj.iteritems():
            if e.mode == GITLINK:
                continue
            (inner if e.mode & TREE_BIT else blobs).append(e.sha)
        return inner, blobs
    if isinstance(obj, Tag):
        return [obj.object[1]], []
    return [], []
