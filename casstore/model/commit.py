"""Writing a model commit and claiming its ID: the last steps of every commit.

``Store.commit_models``, ``commit_files``, ``copy_model`` and ``restore_model`` all
end here (docs/architecture.md, "The life of a commit", steps 4 to 6): the ``files``
tree, the model commit (``write_model``), then the model ref created with
create-if-absent and the history event appended, as one step under the domain's
lock (``claim``).  Also the extra files' gathering (``extra_sources``), checked
before anything is stored.  Needs only a Repository.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from dulwich.objects import Blob, ObjectID, Tree

from ..errors import CasError, ExtraFileError, ModelExistsException, StoreWriteError, UnsafePathError
from ..objects.maintenance import maintain
from ..objects.odb import ObjectDB
from ..objects.refs import model_ref
from ..objects.repository import Repository
from ..objects.trailers import format_trailers
from ..util.fsutil import NOWHERE, check_regular, check_relpath, walk_files
from ..util.locking import deferred_interrupts
from ..util.names import check_shown_name
from .history import DomainIndex, append_event
from .ingest import IngestedFile
from .manifest import Manifest
from .reading import StoredModel
from .writer import domain_writer, event_trailers

BLOB_MODE = 0o100644
TREE_MODE = 0o040000


@contextmanager
def write_errors(path: str) -> Iterator[None]:
    """Turn a full disk or I/O error into a StoreWriteError naming the store at ``path``."""
    try:
        yield
    except OSError as e:
        if isinstance(e, CasError) or e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS):
            raise
        raise StoreWriteError(path, e) from e


def write_files_tree(odb: ObjectDB, files: list[IngestedFile]) -> ObjectID:
    """The ``files`` tree: one tree per file listing its chunk blobs in order."""
    files_tree = Tree()
    for i, f in enumerate(files):
        t = Tree()
        for j, oid in enumerate(f.oids):
            t.add(b"%08x" % j, BLOB_MODE, ObjectID(oid.hex().encode()))
        files_tree.add(b"%08x" % i, TREE_MODE, odb.write_loose(t))
    return odb.write_loose(files_tree)


def write_model(odb: ObjectDB, manifest: Manifest, files_id: ObjectID, created: _dt.datetime,
                trailers: dict[str, str] | None = None) -> ObjectID:
    """The model commit: a root tree of the manifest and the ``files`` tree."""
    root = Tree()
    root.add(b"manifest", BLOB_MODE, odb.write_loose(Blob.from_string(manifest.encode())))
    root.add(b"files", TREE_MODE, files_id)
    summary = ", ".join(f"{e.kwarg}={e.framework}" for e in manifest.frameworks)
    message = (
        f"model {manifest.domain}/{manifest.model_id}\n\n{summary}\n\n"
        + format_trailers({"Domain": manifest.domain, "Model": manifest.model_id,
                           "Created": manifest.created, **(trailers or {})})
    ).encode()
    return odb.write_commit(odb.write_loose(root), [], manifest.author.encode(), message,
                            int(created.timestamp()))


def claim_id(repo: Repository, manifest: Manifest, commit_id: ObjectID, ident: bytes,  # noqa: PLR0913 - the model, its commit and the event's trailers
          trailers: dict[str, str] | None = None, now: bool = False) -> None:
    """Create the model ref (the ID claim) and log the commit event, as one step.

    The event's time is the model's creation time, or the present with ``now``
    (a restore: ``cas log`` shows it after the deletion it undoes).

    Callers hold the shared store lock, so gc keeps the new objects until the ref names them.

    Raises:
        ModelExistsException: the ID is taken.
    """
    domain, model_id = manifest.domain, manifest.model_id
    with write_errors(repo.path), domain_writer(repo, domain), deferred_interrupts():
        claimed: list[bool] = []

        def claim() -> None:  # after the event's objects: in a deferred commit, one pack for all
            if not claimed:
                if not repo.refs.add_if_new(model_ref(domain, model_id), commit_id):
                    raise ModelExistsException(domain, model_id)
                claimed.append(True)

        def add(idx: DomainIndex) -> None:
            idx.models[model_id] = commit_id

        append_event(repo.odb, repo.refs, domain, ident, "commit", model_id, commit_id, add,
                     when=None if now else int(_dt.datetime.fromisoformat(manifest.created).timestamp()),
                     trailers={**event_trailers(manifest), **(trailers or {})}, before_ref=claim)


def write_copy(repo: Repository, m: StoredModel, new_id: str, ident: bytes) -> tuple[Manifest, ObjectID]:
    """Commit the model ``m`` again as ``new_id``, sharing its ``files`` tree, with a
    ``Cas-Copied-From`` trailer (``Store.copy_model``); returns the copy's manifest and commit.

    Callers hold the shared store lock.

    Raises:
        ModelExistsException: ``new_id`` is taken (checked atomically).
    """
    copy = dataclasses.replace(m.manifest, model_id=new_id)
    origin = f"{m.manifest.domain}/{m.manifest.model_id} {m.commit.decode()}"
    with write_errors(repo.path):
        commit_id = write_model(repo.odb, copy, m.files_tree.id, _dt.datetime.fromisoformat(copy.created),
                                {"Copied-From": origin})
    claim_id(repo, copy, commit_id, ident, {"Copied-From": origin})
    return copy, commit_id


def maintain_quietly(repo: Repository) -> None:
    """Keep the pack count logarithmic and loose objects few (see maintenance.py).

    The commit is complete when this runs; a failure here only costs speed.
    """
    try:
        maintain(repo)
    except (CasError, OSError) as e:
        warnings.warn(f"casstore: store maintenance skipped: {e}", stacklevel=4)  # commit_models


def extra_sources(
    extra_files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
) -> list[tuple[str, str]]:
    """(name in the store, local path) for every extra file; directories recursively.

    A directory ``plots`` (also given as ``plots/``, ``.`` or ``..``: the name is
    the directory's own) is stored as ``plots/<its files>``.  Symbolic links are
    followed, to files and to directories alike, as ``cp -rL`` does; a link that
    leads back into a directory being walked is a loop and refused.  Every name
    is checked against the manifest's rules here, before anything is stored.

    Raises:
        FileNotFoundError: a path that does not exist (or a dangling symlink).
        ExtraFileError: a symlink loop, a file that is not a regular file, or a
            name the store cannot hold (control characters, backslashes ...).
    """
    if extra_files is None:
        return []
    if isinstance(extra_files, (str, os.PathLike)):
        extra_files = [extra_files]
    out: list[tuple[str, str]] = []
    for item in extra_files:
        p = os.fspath(item)
        if not os.path.exists(p):
            if os.path.lexists(p):
                raise ExtraFileError(p, NOWHERE)
            raise FileNotFoundError(f"extra file {p!r} does not exist")
        base = os.path.basename(os.path.abspath(p))
        if not base:
            raise ExtraFileError(p, "has no name to store it under (the root directory)")
        if os.path.isdir(p):
            out.extend(walk_files(p, base, ExtraFileError))
        else:
            check_regular(p, ExtraFileError)
            out.append((base, p))
    for name, local in out:
        try:
            check_shown_name(check_relpath(name))
        except UnsafePathError as e:
            raise ExtraFileError(local, f"cannot be stored under the name {name!r}: {e.rule}") from None
    return out


def snapshot_unsized(local: str, work: str) -> str:
    """``local``, or a copy of it when it reports size 0 but has content (``/proc`` files).

    Ingest reads as many bytes as ``fstat`` reports; pseudo-files report 0 and
    would be stored empty.  Such files are small: copy their content as read.
    """
    if os.stat(local).st_size != 0:
        return local
    with open(local, "rb") as f:
        if not f.read(1):
            return local
    fd, copy = tempfile.mkstemp(dir=work, prefix="unsized-")
    with os.fdopen(fd, "wb") as dst, open(local, "rb") as src:
        shutil.copyfileobj(src, dst)
    return copy
