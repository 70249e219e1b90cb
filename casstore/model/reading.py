"""Reading one model's objects: its commit, manifest and per-file chunk lists.

Callable with any repository (no Store needed): fsck, stats, the remote code and
the Store's readers share it, so a model is interpreted the same way everywhere.
Every object read is verified (SHA-1 by the object database, the manifest
strictly parsed, its domain and ID checked against the ref that led to it).
"""

from __future__ import annotations

from dataclasses import dataclass

from dulwich.objects import Blob, Commit, ObjectID, Tree

from ..errors import CorruptObjectError, DomainNotFoundException, ModelExistsException, ModelNotFoundException
from ..objects.refs import model_ref
from ..objects.repository import Repository
from ..util.names import check_domain, check_model_id
from .manifest import Manifest
from .manifest import decode as decode_manifest
from .readback import chunk_oids


@dataclass
class StoredModel:
    """A model as stored: its commit, its manifest and the tree of its files' chunks."""

    commit: ObjectID
    manifest: Manifest
    files_tree: Tree


def model_commit(repo: Repository, domain: str, model_id: str) -> ObjectID:
    """The commit ``refs/cas/models/<domain>/<model_id>`` points at.

    Raises:
        InvalidIdError, DomainNotFoundException, ModelNotFoundException.
    """
    check_domain(domain)
    check_model_id(model_id)
    sha = repo.refs.get(model_ref(domain, model_id))
    if sha is None:
        if not repo.refs.has_domain(domain):
            raise DomainNotFoundException(domain)
        raise ModelNotFoundException(domain, model_id)
    return sha


def check_id_free(repo: Repository, domain: str, model_id: str) -> None:
    """Raises ModelExistsException when ``domain/model_id`` is taken now (an early check: claiming
    the ID, commit.py's ``claim_id``, is the atomic one), InvalidIdError for a bad name."""
    if repo.refs.get(model_ref(check_domain(domain), check_model_id(model_id))) is not None:
        raise ModelExistsException(domain, model_id)


def read_manifest(repo: Repository, sha: ObjectID) -> tuple[Manifest, Tree]:
    """The manifest and ``files`` tree of model commit ``sha``.

    Raises:
        CorruptObjectError: a missing or damaged object, or a malformed model tree.
    """
    c = repo.odb.read(sha, Commit)
    assert isinstance(c, Commit)
    root = repo.odb.read(c.tree, Tree)
    assert isinstance(root, Tree)
    try:
        _, manifest_id = root[b"manifest"]
        _, files_id = root[b"files"]
    except KeyError:
        raise CorruptObjectError(c.tree.decode(), "model tree lacks manifest or files") from None
    blob = repo.odb.read(manifest_id, Blob)
    assert isinstance(blob, Blob)
    manifest = decode_manifest(blob.as_raw_string(), manifest_id.decode())
    files_tree = repo.odb.read(files_id, Tree)
    assert isinstance(files_tree, Tree)
    return manifest, files_tree


def read_model(repo: Repository, domain: str, model_id: str) -> StoredModel:
    """Read and verify the model ``domain``/``model_id``.

    Raises:
        ModelNotFoundException, DomainNotFoundException: no such model.
        CorruptObjectError: a missing or damaged object, or a ref that points
            at another model.
    """
    sha = model_commit(repo, domain, model_id)
    manifest, files_tree = read_named_manifest(repo, domain, model_id, sha)
    return StoredModel(sha, manifest, files_tree)


def read_named_manifest(repo: Repository, domain: str, model_id: str, sha: ObjectID) -> tuple[Manifest, Tree]:
    """:func:`read_manifest` of ``sha``, checked to name ``domain``/``model_id``: what a ref
    ``refs/cas/models/<domain>/<model_id>`` may point at (a ref aliasing another model's
    commit would show, load and push that model under a second name).

    Raises:
        CorruptObjectError: a damaged model, or one whose manifest names another model.
    """
    manifest, files_tree = read_manifest(repo, sha)
    if manifest.domain != domain or manifest.model_id != model_id:
        raise CorruptObjectError(
            sha.decode(), f"ref {domain}/{model_id} points at model {manifest.domain}/{manifest.model_id}"
        )
    return manifest, files_tree


def file_oids(repo: Repository, files_tree: Tree, manifest: Manifest, index: int) -> list[bytes]:
    """The chunk blob ids of file ``index`` of a model, in order, checked against its manifest."""
    try:
        _, tid = files_tree[b"%08x" % index]
    except KeyError:
        raise CorruptObjectError(files_tree.id.decode(), f"no chunk tree for file {index}") from None
    return chunk_oids(repo.odb, tid, manifest.files[index])
