"""The commit pipeline: save each model through its framework, ingest, write, claim.

``Store.commit_models`` and ``commit_files`` plan the entries, check every other argument
with :class:`Commit` (before any write), take the store lock and call ``Commit.run``: a
scratch directory, then :func:`commit_model` (docs/architecture.md, "The life of a
commit", steps 2 to 6).  Nothing is visible to readers until the model
ref exists (model/commit.py's ``claim_id``); on any error the store is left as it
was, apart from unreferenced objects that gc removes.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from dulwich.objects import ObjectID

from ..errors import FrameworkError, UnsafePathError
from ..frameworks import Framework, Saved, bundle_params, resolve
from ..frameworks.sklearn import with_store_format
from ..model.commit import (
    claim_id,
    extra_sources,
    maintain_quietly,
    snapshot_unsized,
    write_errors,
    write_files_tree,
    write_model,
)
from ..model.ingest import Source, ingest
from ..model.manifest import FileEntry, FrameworkEntry, Manifest, check_paths
from ..model.metadata import plain_metadata
from ..model.reading import check_id_free
from ..objects.chunker import ChunkParams
from ..objects.repository import Repository
from ..util.identity import author
from ..util.names import check_domain, check_model_id, check_shown_name, new_model_id
from ..util.progress import ProgressFn
from ..util.sshsig import key_signer
from ..version import __version__
from .info import committed_info

log = logging.getLogger("casstore")

#: ``extra_files`` as commit_models takes it: a path, a list of paths (directories recursively), or None
ExtraFiles = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None

#: what ``commit`` calls for each entry of the plan: ``save(kwarg, framework, item, directory)``
SaveFn = Callable[[str, Framework, Any, str], Saved]


def plan_models(models: dict[str, Any], sklearn_format: str) -> list[tuple[str, Framework, Any]]:
    """(keyword, framework, object) for each model given to ``commit_models``.

    Raises:
        TypeError: no model, or an object no framework recognises.  FrameworkError: two claim one.
    """
    if not models:
        raise TypeError("commit_models() needs at least one model, e.g. model=clf")
    models = bundle_params(models)  # annoy's metric= and num_trees= describe its model=
    plan = [(kwarg, resolve(kwarg, obj), obj) for kwarg, obj in models.items()]
    return [(k, fw, with_store_format(o, sklearn_format) if fw.name == "sklearn" else o)
            for k, fw, o in plan]


def save_object(kwarg: str, fw: Framework, obj: Any, directory: str) -> Saved:
    """``commit_models``' save: the framework serialises the object into ``directory``."""
    return fw.save(obj, kwarg, directory)


def given_files(kwarg: str, fw: Framework, saved: Saved, directory: str) -> Saved:
    """``commit_files``' save: the files a framework already wrote, as they are."""
    return saved


def save_all(plan: Sequence[tuple[str, Framework, Any]], save: SaveFn, extras: list[tuple[str, str]],
             work: str) -> tuple[list[FrameworkEntry], list[Source]]:
    """Each entry saved into its own directory under ``work``, and the extra files, as the
    manifest's framework entries and ingest's sources; two of them writing one stored name,
    or a name the store cannot hold, is a FrameworkError naming who wrote it."""
    entries: list[FrameworkEntry] = []
    sources: list[Source] = []
    owner: dict[str, str] = {}

    def claim(path: str, who: str) -> None:
        if path in owner:
            raise FrameworkError(f"{who} and {owner[path]} both write the file {path!r}")
        owner[path] = who

    for i, (kwarg, fw, obj) in enumerate(plan):
        d = os.path.join(work, f"{i}")
        os.mkdir(d)
        saved = save(kwarg, fw, obj, d)
        for name, local in saved.files.items():
            claim(name, f"{kwarg}={fw.name}")
            sources.append(Source(name, local, "model"))
        entries.append(FrameworkEntry(kwarg, fw.name, saved.cls, saved.format,
                                      list(saved.files), saved.library, fw.executes_code(saved.format)))
    for name, local in extras:
        claim(name, f"extra file {local}")
        sources.append(Source(name, snapshot_unsized(local, work), "extra"))
    try:
        check_paths(list(owner))
        for name in owner:
            check_shown_name(name)  # new names only: stored ones are escaped when shown
    except UnsafePathError as e:
        other = [q for q in owner if e.path.startswith(q + "/")]
        raise FrameworkError(f"{owner[e.path]}"
                             + (f" and {owner[other[0]]}" if other else "") + f": {e}") from None
    return entries, sources


def commit_model(repo: Repository, work: str, plan: Sequence[tuple[str, Framework, Any]], save: SaveFn,  # noqa: PLR0913 - what both commit entry points pass on
           extras: list[tuple[str, str]], *, domain: str, model_id: str, created: _dt.datetime | None,
           ident: bytes, extra_metadata: Any, params: ChunkParams, level: int,
           progress: ProgressFn | None) -> tuple[Manifest, ObjectID]:
    """Save, ingest and write the model, then claim its ID: the body of ``Commit.run``.

    Callers hold the shared store lock and checked every argument; ``work`` is a scratch
    directory in the store.  Returns the manifest and the model commit.

    Raises:
        ModelExistsException: the ID was taken meanwhile (checked atomically).
    """
    entries, sources = save_all(plan, save, extras, work)
    with write_errors(repo.path):
        files, stats = ingest(repo.odb, sources, params=params, level=level, progress=progress)
    created = _dt.datetime.now(_dt.timezone.utc) if created is None else created
    manifest = Manifest(
        domain=domain,
        model_id=model_id,
        created=created.isoformat(),
        author=ident.decode(),
        frameworks=entries,
        files=[FileEntry(f.path, f.kind, f.size, f.blake3, f.xxh3, f.keys, f.sizes) for f in files],
        extra_metadata=extra_metadata,
        environment={"python": platform.python_version(), "casstore": __version__,
                     "platform": platform.platform()},
        stats={"bytes_given": stats.bytes_given, "bytes_stored": stats.bytes_stored,
               "chunks_total": stats.chunks_total, "chunks_new": stats.chunks_new},
    )
    with write_errors(repo.path):
        commit_id = write_model(repo.odb, manifest, write_files_tree(repo.odb, files), created)
    claim_id(repo, manifest, commit_id, ident)
    maintain_quietly(repo)
    log.info("committed %s/%s (%s): %d bytes given, %d stored, %d/%d chunks new", domain, model_id,
             commit_id.decode()[:10], stats.bytes_given, stats.bytes_stored, stats.chunks_new,
             stats.chunks_total)
    return manifest, commit_id


def signed_as(repo: Repository, sign: bool | str | None) -> AbstractContextManager[None]:
    """The block's commits signed as ``sign`` asks (see ``Store.commit_models``).

    Raises:
        SigningError: ``sign`` (or ``cas.signCommits``) asks for a key that cannot be used:
            before anything is written.
    """
    if sign is None:  # cas.signCommits
        return repo.odb.signing(repo.configured_signer())
    if sign is False:
        return repo.odb.signing(None)
    return repo.odb.signing(repo.signer() if sign is True else key_signer(str(sign)))


class Commit:
    """One commit of ``Store.commit_models`` or ``commit_files``: every argument checked when
    made (before any write, and before the store lock), written by :meth:`run`."""

    def __init__(  # noqa: PLR0913 - what both commit entry points pass on
        self,
        repo: Repository,
        domain: str,
        model_id: str | None,
        plan: Sequence[tuple[str, Framework, Any]],
        save: SaveFn,
        extra_files: ExtraFiles,
        extra_metadata: dict[Any, Any] | None,
        created: _dt.datetime | None,
        given_author: bytes | None = None,
    ) -> None:
        self.repo, self.plan, self.save = repo, plan, save
        self.domain = check_domain(domain)
        self.model_id = new_model_id() if model_id is None else check_model_id(model_id)
        if created is not None and created.tzinfo is None:
            raise TypeError("created must be a timezone-aware datetime")
        # listings sort the ISO strings: every model's time must be in one zone (UTC, as the default: now)
        self.created = None if created is None else created.astimezone(_dt.timezone.utc)
        self.extra_metadata = plain_metadata(extra_metadata)  # numpy scalars made plain
        self.extras = list(extra_sources(extra_files))
        self.ident = author(repo.path) if given_author is None else given_author  # validated before any write
        check_id_free(repo, self.domain, self.model_id)

    def run(self, params: ChunkParams, level: int, progress: ProgressFn | None) -> dict[str, Any]:
        """Write the model and claim its ID (the caller holds the store lock); returns its info dict.

        Raises:
            ModelExistsException: the ID was taken meanwhile (checked atomically).
        """
        with self.repo.odb.deferred(), tempfile.TemporaryDirectory(dir=self.repo.tmp, prefix="commit-") as work:
            manifest, commit_id = commit_model(
                self.repo, work, self.plan, self.save, self.extras, domain=self.domain, model_id=self.model_id,
                created=self.created, ident=self.ident, extra_metadata=self.extra_metadata, params=params,
                level=level, progress=progress)
        return committed_info(manifest, commit_id)
