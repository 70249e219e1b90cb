"""The commit pipeline: save each model through its framework, ingest, write, claim.

``Store.commit_models`` and ``commit_files`` check their arguments, take the store
lock and a scratch directory, then call :func:`commit` (docs/architecture.md, "The
life of a commit", steps 2 to 6).  Nothing is visible to readers until the model
ref exists (model/commit.py's ``claim_id``); on any error the store is left as it
was, apart from unreferenced objects that gc removes.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
from collections.abc import Callable, Sequence
from typing import Any

from dulwich.objects import ObjectID

from ..errors import FrameworkError, UnsafePathError
from ..frameworks import Framework, Saved, bundle_params, resolve
from ..frameworks.sklearn import with_store_format
from ..model.commit import claim_id, maintain_quietly, snapshot_unsized, write_errors, write_files_tree, write_model
from ..model.ingest import Source, ingest
from ..model.manifest import FileEntry, FrameworkEntry, Manifest, check_paths
from ..objects.chunker import ChunkParams
from ..objects.repository import Repository
from ..util.names import check_shown_name
from ..util.progress import ProgressFn
from ..version import __version__

log = logging.getLogger("casstore")

#: what ``commit`` calls for each entry of the plan: ``save(kwarg, framework, item, directory)``
SaveFn = Callable[[str, Framework, Any, str], Saved]


def plan_models(models: dict[str, Any], sklearn_format: str) -> list[tuple[str, Framework, Any]]:
    """(keyword, framework, object) for each model given to ``commit_models``.

    Raises:
        TypeError: an object no framework recognises.  FrameworkError: two claim one.
    """
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
    """Save, ingest and write the model, then claim its ID: the body of ``Store._commit``.

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
