"""The object graph (objects/graph.py): what each object refers to, and the walks built on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from dulwich.objects import Blob, Commit, Tag, Tree

from casstore import CorruptObjectError
from casstore.objects.graph import GITLINK, children
from casstore.objects.repository import Repository, init_repository
from casstore.ops.fsck import _check_chain
from casstore.remote.walk import walk

AUTHOR = b"t <t@example.com>"


def _commit(tree: Tree, parents: list[bytes] | None = None) -> Commit:
    c = Commit()
    c.tree = tree.id
    c.parents = parents or []
    c.author = c.committer = AUTHOR
    c.author_time = c.commit_time = 0
    c.author_timezone = c.commit_timezone = 0
    c.message = b"x\n"
    return c


def _tag(target: Commit) -> Tag:
    t = Tag()
    t.object = (Commit, target.id)
    t.name = b"v1"
    t.tagger = AUTHOR
    t.tag_time = 0
    t.tag_timezone = 0
    t.message = b"tag\n"
    return t


def test_children_of_each_kind_leave_gitlinks_out() -> None:
    blob, sub = Blob.from_string(b"data"), Tree()
    sub.add(b"b", 0o100644, blob.id)
    tree = Tree()
    tree.add(b"blob", 0o100644, blob.id)
    tree.add(b"sub", 0o040000, sub.id)
    tree.add(b"model", GITLINK, b"1" * 40)
    parent = _commit(sub)
    c = _commit(tree, [parent.id])
    assert children(tree) == ([sub.id], [blob.id])
    assert children(c) == ([tree.id, parent.id], [])
    assert children(_tag(c)) == ([c.id], [])
    assert children(blob) == ([], [])


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    init_repository(str(tmp_path / "r"))
    return Repository(str(tmp_path / "r"))


def test_fsck_history_check_follows_tags(repo: Repository) -> None:
    """fsck's walk of a history read a tag and stopped there: what the tag names went unchecked.

    Regression: the commit behind the tag lacks its tree; the check must say so.
    """
    lost = Tree()
    lost.add(b"x", 0o100644, Blob.from_string(b"gone").id)
    c = _commit(lost)  # its tree is never written
    tag = _tag(c)
    repo.odb.write_loose(c)
    repo.odb.write_loose(tag)
    try:
        with pytest.raises(CorruptObjectError) as e:
            _check_chain(repo, tag.id)
        assert e.value.oid == lost.id.decode()
    finally:
        repo.close()


def test_walks_agree_on_what_a_tag_reaches(repo: Repository) -> None:
    blob = Blob.from_string(b"content")
    tree = Tree()
    tree.add(b"f", 0o100644, blob.id)
    tree.add(b"m", GITLINK, b"2" * 40)  # not followed: the object is nowhere
    c = _commit(tree)
    tag = _tag(c)
    for obj in (blob, tree, c, tag):
        repo.odb.write_loose(obj)
    try:
        assert {oid for oid, _ in walk(repo.odb, [tag.id])} == {tag.id, c.id, tree.id, blob.id}
        _check_chain(repo, tag.id)  # everything there: no error
    finally:
        repo.close()
