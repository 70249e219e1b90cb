"""Import a modelstore store into a casstore store (``cas import-modelstore``).

modelstore keeps, under ``<root>/operatorai-model-store/``::

    model_states/<state>.json                    {"state_name": ..., "created": ...}
    domains/<domain>.json                         the metadata of the domain's last upload
    <domain>/versions/<id>.json                   each live model's metadata
    <domain>/versions/<state>/<id>.json           the models in a state
    <domain>/versions/modelstore-deleted/<id>.json   deleted models (their archives are gone)
    <domain>/<upload time>/<id>/artifacts.tar.gz  model files, model-info.json, extras/<name>

Every live model becomes a casstore model with the same domain, ID and creation
time, its archive's files stored byte for byte (a scikit-learn ``model.joblib``
as an sklearn entry that ``load`` reads; other libraries' files as ``model_file``
entries, whose ``load`` returns their paths), ``extras/<name>`` and
``model-info.json`` as extra files, and modelstore's metadata dict kept whole
under ``extra_metadata["modelstore"]``, so ``casstore.ModelStore`` returns what
modelstore returned.  A deleted model is committed (its metadata only) and
deleted, so the history shows both and ``ModelStore`` raises
ModelDeletedException for it.  States are created and set.

The import is resumable: a model whose ID the store already holds (or already
shows as deleted) is skipped, state changes that are already there record
nothing; a model modelstore lists as deleted that the store holds as exactly that
model (a placeholder whose deletion an interrupted run never reached) is deleted.
Whatever cannot be imported is reported, with the reason, and the rest goes on.
The source may be hostile: names are checked before use, nothing is read outside
the source root, and archives are unpacked member by member
(regular files with plain relative names only) into the store's scratch
directory and nowhere else.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import CasError, InvalidIdentityError, InvalidIdError
from ..frameworks import Saved
from ..store import Store
from ..util.identity import check_identity
from ..util.names import check_domain, check_model_id
from .archive import ArchiveTooLargeError, unpack
from .meta import (
    DELETED_STATE,
    EXPANSION_ALLOWANCE,
    EXTRAS_DIR,
    MAX_EXPANSION,
    META_KEY,
    MODEL_INFO,
    as_modelstore_returns,
    is_valid_state_name,
)
from .meta import parse_modelstore_time as parse_time
from .modelstore import ModelStore
from .sources import ROOT, FileSystemSource, ModelstoreSource, S3Source, archive_key, open_source

__all__ = ["EXPANSION_ALLOWANCE", "MAX_EXPANSION", "ROOT", "ArchiveTooLargeError", "FileSystemSource", "ImportReport",
           "ModelstoreSource", "S3Source", "import_modelstore", "mapped_id", "open_source"]

_LAYOUT_DIRS = ("domains", "model_states")
#: where ``--map-ids`` keeps modelstore's own ID: ``meta["model"][ORIGINAL_ID]``
ORIGINAL_ID = "modelstore_model_id"


@dataclass
class ImportReport:
    """What ``import_modelstore`` did: ``"domain/id"`` lists, and failures with their reasons."""

    source: str
    imported: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # imported as deleted models
    skipped: list[str] = field(default_factory=list)  # already in the store (an earlier run)
    states_created: list[str] = field(default_factory=list)
    states_set: list[str] = field(default_factory=list)  # "domain/id state"
    #: imported, but not as modelstore had it (e.g. a library loaded as files)
    notes: dict[str, str] = field(default_factory=dict)
    #: what could not be imported ("domain/id", a state or a path) -> why
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__, ok=self.ok)



def _created(meta: dict[str, Any]) -> _dt.datetime:
    """When modelstore created the model: ``code.created`` (``meta.created`` in its older files).

    Raises:
        ValueError: neither holds a time in modelstore's format.
    """
    for section in ("code", "meta"):
        part = meta.get(section)
        if isinstance(part, dict) and isinstance(part.get("created"), str):
            return parse_time(part["created"])
    raise ValueError("its metadata has no creation time (code.created)")


def mapped_id(model_id: str) -> str:
    """A casstore ID for a modelstore ID casstore refuses (``--map-ids``): the same for the same ID.

    Runs of characters outside casstore's alphabet become ``-``, and a hash of the
    original ends it, so two IDs never map to one: ``v1+exp`` -> ``v1-exp-<8 hex>``.
    """
    base = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "-", model_id)).lstrip(".")[:100] or "id"
    return check_model_id(f"{base}-{hashlib.sha256(model_id.encode()).hexdigest()[:8]}")


class _Importer:
    def __init__(self, store: Store, source: ModelstoreSource, progress: Callable[[str], None] | None,
                 max_expansion: float = MAX_EXPANSION, map_ids: bool = False) -> None:
        self.max_expansion = max_expansion
        self.map_ids = map_ids
        self.store = store
        self.source = source
        self.ms = ModelStore(store)
        self.report = ImportReport(source.url)
        self.say = progress or (lambda text: None)

    def run(self) -> ImportReport:
        states = self._states()
        dirs, _ = self.source.list("")
        for domain in dirs:
            if domain in _LAYOUT_DIRS:
                continue
            try:
                check_domain(domain)
            except CasError as e:
                self.report.failed[domain] = f"domain not imported: {e}"
                continue
            self._domain(domain, states)
        return self.report

    def _states(self) -> set[str]:
        existing = set(self.store.list_model_states())
        _, files = self.source.list("model_states")
        for f in files:
            if not f.endswith(".json"):
                continue
            name = f[: -len(".json")]
            if name == DELETED_STATE:
                continue  # modelstore's own; deletions are history events here
            try:
                doc = self.source.read_json(f"model_states/{f}")
                if not isinstance(doc, dict) or doc.get("state_name") != name or not is_valid_state_name(name):
                    raise ValueError(f"not a state modelstore creates: {doc!r:.200}")
                if name not in existing:
                    self.store.create_model_state(name)
                    existing.add(name)
                    self.report.states_created.append(name)
            except (CasError, OSError, ValueError) as e:
                self.report.failed[f"state {name}"] = str(e)
        return existing

    def _metas(self, prefix: str) -> Iterator[tuple[str, dict[str, Any] | str]]:
        """(model ID, metadata or the reason it is unusable) for each ``<id>.json`` under ``prefix``."""
        _, files = self.source.list(prefix)
        for f in files:
            if not f.endswith(".json"):
                continue
            mid = f[: -len(".json")]
            try:
                meta = self.source.read_json(f"{prefix}/{f}")
                if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
                    raise ValueError("not modelstore metadata")
                yield mid, meta
            except (CasError, OSError, ValueError) as e:
                yield mid, f"{prefix}/{f}: {e}"

    def _id(self, mid: str) -> str:
        """The casstore ID of modelstore's ``mid``: itself, or (``map_ids``) its mapped_id if casstore refuses it.

        Raises:
            InvalidIdError: casstore refuses it and IDs are not mapped.
        """
        try:
            return check_model_id(mid)
        except InvalidIdError as e:
            if not self.map_ids:
                raise InvalidIdError(e.kind, e.name, f"{e.rule}; --map-ids imports it under a casstore "
                                                     "ID made from it") from None
            return mapped_id(mid)

    def _todo(self, domain: str, kind: str, mid: str, meta: dict[str, Any] | str) -> tuple[float, str, str,
                                                                                           dict[str, Any]]:
        """(created, kind, casstore ID, metadata as modelstore returns it) for one metadata file.

        Raises:
            ValueError, TypeError, CasError: why the model cannot be imported.
        """
        if isinstance(meta, str):
            raise ValueError(meta)
        if meta["model"].get("model_id") != mid or meta["model"].get("domain") != domain:
            raise ValueError(f"its metadata names {meta['model'].get('domain')!r}/"
                             f"{meta['model'].get('model_id')!r}")
        cas_id = self._id(mid)
        created = _created(meta)
        meta = as_modelstore_returns(meta)
        if cas_id != mid:  # the ID the model has here, as ModelStore returns it; modelstore's kept beside it
            meta["model"]["model_id"] = cas_id
            meta["model"][ORIGINAL_ID] = mid
            self.report.notes[f"{domain}/{cas_id}"] = (f"modelstore's ID {mid!r} is not a casstore ID: "
                                                       f"imported as {cas_id}")
        return created.timestamp(), kind, cas_id, meta

    def _domain(self, domain: str, states: set[str]) -> None:
        versions = f"{domain}/versions"
        live = list(self._metas(versions))
        gone = list(self._metas(f"{versions}/{DELETED_STATE}"))
        # a live model in modelstore-deleted was labelled so by set_model_state: it stays live
        live_ids = {mid for mid, _ in live}
        labelled = [mid for mid, _ in gone if mid in live_ids]
        gone = [(mid, meta) for mid, meta in gone if mid not in live_ids]
        todo: list[tuple[float, str, str, dict[str, Any]]] = []  # (created, kind, id, meta)
        for kind, entries in (("live", live), ("deleted", gone)):
            for mid, meta in entries:
                try:
                    todo.append(self._todo(domain, kind, mid, meta))
                except (CasError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
                    self.report.failed[f"{domain}/{mid}"] = e.args[0] if isinstance(meta, str) else f"not imported: {e}"
        # oldest first, so the history tells the story in modelstore's order
        deleted_here = set(self.ms.list_models(domain, DELETED_STATE)) if todo and (
            domain in self.store.list_domains()) else set()
        for _, kind, mid, meta in sorted(todo, key=lambda t: (t[0], t[2])):
            key = f"{domain}/{mid}"
            try:
                self._entry(domain, (kind, mid, meta), mid in deleted_here)
            except (CasError, OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError,
                    tarfile.TarError) as e:
                self.report.failed[key] = f"{type(e).__name__}: {e}"
        for source_id in labelled:
            self._set_state(domain, source_id, DELETED_STATE, states)
        for state in self.source.list(versions)[0]:
            if state == DELETED_STATE:
                continue
            for source_id, _meta in self._metas(f"{versions}/{state}"):
                self._set_state(domain, source_id, state, states)

    def _entry(self, domain: str, entry: tuple[str, str, dict[str, Any]], deleted_here: bool) -> None:
        """Import one model of the domain: ``entry`` is (``"live"`` or ``"deleted"``, ID, metadata).

        ``deleted_here``: the store shows the ID as deleted already.
        """
        kind, mid, meta = entry
        key = f"{domain}/{mid}"
        if self.store.model_exists(domain, mid):
            if kind == "live" or not self._ours(domain, mid, meta):
                self.report.skipped.append(key)
                return
            # a deleted model's placeholder whose deletion an interrupted run never
            # reached (or a model imported live that modelstore deleted since): delete it
            self.say(f"deleting {key}")
            self.store.delete_model(domain, mid)
            self.report.deleted.append(key)
            return
        if kind == "deleted" and deleted_here:
            self.report.skipped.append(key)
            return
        self.say(f"importing {key}")
        if kind == "live":
            self._model(domain, mid, meta)
            self.report.imported.append(key)
        else:
            self._deleted(domain, mid, meta)
            self.report.deleted.append(key)

    def _set_state(self, domain: str, source_id: str, state: str, states: set[str]) -> None:
        """Put an imported model in ``state``, as modelstore had it (nothing if it is there already).

        ``states``: the states modelstore created; the reserved ``modelstore-deleted`` (a live model
        labelled with ``set_model_state``) needs none, and goes through ``ModelStore``, which stores it.
        A failure is reported, and the import goes on.
        """
        key = f"{domain}/{source_id} {state}"
        try:
            mid = self._id(source_id)
            if state != DELETED_STATE and state not in states:
                raise ValueError(f"state {state!r} was never created (no model_states/{state}.json)")
            if not self.store.model_exists(domain, mid):
                raise ValueError("the model was not imported")
            if state == DELETED_STATE:
                if mid not in self.ms.list_models(domain, DELETED_STATE):
                    self.ms.set_model_state(domain, mid, state)
                    self.report.states_set.append(key)
            elif state not in self.store.get_model_states(domain, mid):
                self.store.set_model_state(domain, mid, state)
                self.report.states_set.append(key)
        except (CasError, OSError, ValueError) as e:
            self.report.failed[key] = f"state not set: {e}"

    def _author(self, domain: str, mid: str, meta: dict[str, Any]) -> str | None:
        """modelstore's ``code.user`` as a git identity (``user <>``: modelstore records no email).

        None (the importer's identity) when there is none, or none git accepts; the latter is noted.
        """
        code = meta.get("code")
        name = code.get("user") if isinstance(code, dict) else None
        if not isinstance(name, str) or not name.strip():
            return None
        try:
            check_identity(name, "", "modelstore's code.user")
        except InvalidIdentityError as e:
            self.report.notes[f"{domain}/{mid}"] = f"author not kept: {e}"
            return None
        return f"{name.strip()} <>"

    def _ours(self, domain: str, mid: str, meta: dict[str, Any]) -> bool:
        """Whether the store's model ``domain/mid`` is the one modelstore's metadata ``meta`` describes."""
        extra = self.store.get_model_info(domain, mid, annotations=False).get("extra_metadata")
        return isinstance(extra, dict) and extra.get(META_KEY) == meta

    def _model(self, domain: str, mid: str, meta: dict[str, Any]) -> None:
        key = archive_key(meta)
        with self.store.scratch_dir("import-") as work:
            files = os.path.join(work, "files")
            os.mkdir(files)
            with self.source.open(key) as archive:
                top, extras = unpack(archive, files, key, self.max_expansion)
            model_type = meta["model"].get("model_type") or {}
            library = model_type.get("library") if isinstance(model_type, dict) else None
            model_files = [f for f in top if f != MODEL_INFO]
            if not model_files:
                raise ValueError(f"{key}: the archive holds no model file")
            paths = {f: os.path.join(files, f) for f in model_files}
            if library == "sklearn" and model_files == ["model.joblib"]:
                version = ((meta.get("code") or {}).get("dependencies") or {}).get("sklearn")
                lib = {"name": "sklearn", **({"version": str(version)} if version else {})}
                entry = ("model", "sklearn", Saved("joblib", paths, lib, str(model_type.get("type") or "")))
            else:
                entry = ("model", "model_file", Saved("file", paths, {}, "file" if len(paths) == 1 else "files"))
                self.report.notes[f"{domain}/{mid}"] = (
                    f"{library} model imported as files ({', '.join(model_files)}): load() returns their paths")
            extra_files = []
            if MODEL_INFO in top:
                extra_files.append(os.path.join(files, MODEL_INFO))
            if extras:
                extra_files.append(os.path.join(files, EXTRAS_DIR))
            self.store.commit_files(domain, frameworks=[entry], model_id=mid, extra_files=extra_files,
                                    extra_metadata={META_KEY: meta}, created=_created(meta),
                                    author=self._author(domain, mid, meta))

    def _deleted(self, domain: str, mid: str, meta: dict[str, Any]) -> None:
        """A deleted model: commit its metadata alone, then delete it (the history shows both)."""
        with self.store.scratch_dir("import-") as work:
            path = os.path.join(work, f"{DELETED_STATE}.json")
            with open(path, "w") as f:
                json.dump(meta, f)
            saved = Saved("file", {f"{DELETED_STATE}.json": path}, {}, "file")
            self.store.commit_files(domain, frameworks=[("model", "model_file", saved)], model_id=mid,
                                    extra_metadata={META_KEY: meta}, created=_created(meta),
                                    author=self._author(domain, mid, meta))
        self.store.delete_model(domain, mid)


def import_modelstore(store: Store, source: str | ModelstoreSource,
                      progress: Callable[[str], None] | None = None, *,
                      max_expansion: float = MAX_EXPANSION, map_ids: bool = False) -> ImportReport:
    """Import every domain, model, state and deletion of a modelstore store into ``store``.

    ``source`` is a modelstore file-system root (the ``root_directory`` or its
    ``operatorai-model-store``) or ``s3://bucket/<root_prefix>``.  Resumable;
    see the module docstring for what is kept and what is refused.  An archive
    that expands to more than ``max_expansion`` times its compressed size (plus
    EXPANSION_ALLOWANCE) fails its model, as a decompression bomb.  With
    ``map_ids``, a model whose modelstore ID casstore refuses is imported under
    :func:`mapped_id` of it, modelstore's ID kept in its metadata
    (``meta["model"]["modelstore_model_id"]``); without, it fails, and says so.

    Raises:
        FileNotFoundError: no modelstore store at ``source``.
        RemoteError: the bucket cannot be read.
    """
    src = open_source(source) if isinstance(source, str) else source
    return _Importer(store, src, progress, max_expansion, map_ids).run()


